"""Mobile robot controller simulator: pure world model, HTTP + WebSocket server on loopback."""

from sim.robot.device import RobotDevice
from sim.robot.maps import MapStore, StoredMap, demo_map
from sim.robot.planner import Box, FreeSpace
from sim.robot.server import RobotSim, SimStatistics
from sim.robot.world import BatteryModel, MotionLimits, RobotWorld

__all__ = [
    "BatteryModel",
    "Box",
    "FreeSpace",
    "MapStore",
    "MotionLimits",
    "RobotDevice",
    "RobotSim",
    "RobotWorld",
    "SimStatistics",
    "StoredMap",
    "demo_map",
]
