"""`python -m sim.robot --port 8765`: a real-time simulated robot until SIGTERM/SIGINT."""

import sys

from sim.robot.server import main

sys.exit(main())
