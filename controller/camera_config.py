"""The camera part of the station config (seed 000 "Camera"): Basler cameras read over pylon,
or a folder/OpenCV source for stations without one."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

__all__ = ["CameraConfig"]


class CameraConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    enabled: bool = True
    name: Annotated[str, Meta(pattern=r"^[a-z0-9_-]{1,32}(?!\n)$")]  # Takt's name for it
