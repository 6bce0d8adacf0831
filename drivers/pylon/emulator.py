"""The pylon camera emulator (`PYLON_CAMEMU`): offering the configured camera, pointing it at the
image it serves, and noticing when that image changes.

The emulator counts its cameras from `PYLON_CAMEMU`, read at every enumeration (serials
0815-0000, 0815-0001, ...). It keeps no user names, and it reads its image file(s) when
grabbing starts: a changed file is only seen after grabbing restarts.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["EMULATOR_CLASS", "FIRST_SERIAL", "ensure_emulated", "file_signature", "serve"]

EMULATOR_CLASS = "BaslerCamEmu"  # the device class pylon enumerates emulated cameras as
FIRST_SERIAL = "0815-0000"


def ensure_emulated(serial: str) -> None:
    """Make the emulator offer `serial` (never fewer cameras than it offers already)."""
    digits = serial.rpartition("-")[2]
    index = int(digits) if digits.isdigit() else 0
    try:
        have = int(os.environ.get("PYLON_CAMEMU", "0"))
    except ValueError:
        have = 0
    if have < index + 1:
        os.environ["PYLON_CAMEMU"] = str(index + 1)


def serve(nodemap: Any, image_path: str) -> None:
    """Serve the file or folder at image_path instead of the test pattern."""
    # In this order: ImageFilename takes effect only with the test images off.
    nodemap.GetNode("TestImageSelector").SetValue("Off")
    nodemap.GetNode("ImageFileMode").SetValue("On")
    nodemap.GetNode("ImageFilename").SetValue(str(Path(image_path)))


def file_signature(path: str) -> tuple[int, int] | None:
    """(mtime, size) of the served file or folder; None while it is being replaced."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size
