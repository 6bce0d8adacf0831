"""What a camera actor is asked, what it answers, and the refusals it raises.

Asked as `ask_actor("camera:<name>", Capture())`. Settings the camera would not take raise
`SettingsError` (the API answers 422 with each field and its valid range; nothing changed), a
feature the camera lacks `NotSupportedByCamera` (409), a camera that is not connected
`CameraOffline` or, when the link is lost while asking, DeviceUnavailable (503).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from controller.camera_config import CameraConfig
from drivers.pylon.settings import SettingProblem, SettingsError

__all__ = [
    "AutoAdjust",
    "AutoFocus",
    "AutoResult",
    "CameraOffline",
    "CameraRefused",
    "CameraSettingsView",
    "CameraStatus",
    "Capture",
    "CapturedImage",
    "ChangeCameraSettings",
    "GetCameraSettings",
    "GetCameraStatus",
    "GetJpeg",
    "JpegFrame",
    "NoFrame",
    "NotSupportedByCamera",
    "PauseStream",
    "ReconnectCamera",
    "ResumeStream",
    "SetMaxExposure",
    "SetMaxGain",
    "SettingProblem",
    "SettingsError",
    "StreamState",
    "UseCameraConfig",
]

ImageFormat = Literal["jpeg", "png"]
Quality = Annotated[int, Meta(ge=1, le=100)]
CaptureSide = Annotated[int, Meta(ge=16, le=4096)]


# ---- refusals --------------------------------------------------------------------------------


class CameraRefused(Exception):
    """A request the camera cannot carry out as it is; the camera itself is fine."""


class NotSupportedByCamera(CameraRefused):
    """The camera has no such feature (auto focus on a fixed-focus lens)."""


class CameraOffline(RuntimeError):
    """The camera is not connected (lost, and auto_reconnect is off)."""


class NoFrame(RuntimeError):
    """No frame came in time (the camera has only just started, or stopped delivering)."""


# ---- requests ----------------------------------------------------------------------------------


class GetCameraStatus(msgspec.Struct, frozen=True, tag=True):
    pass


class GetCameraSettings(msgspec.Struct, frozen=True, tag=True):
    pass


class ChangeCameraSettings(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Settings keyed by config key (`width`) or seed name (`Width`); all or nothing."""

    changes: dict[str, Any]


class Capture(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """The newest frame, centre-cropped to the aspect of width x height and resized."""

    width: CaptureSide = 896
    height: CaptureSide = 896
    format: ImageFormat = "jpeg"
    quality: Quality = 90
    wait_s: float = 2.0  # for the first frame of a camera that has just started


class GetJpeg(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """For streaming: the newest frame with seq > after_seq as JPEG, answered when there is
    one (and the stream is not paused); None after wait_s without one."""

    after_seq: int = 0
    quality: Quality | None = None  # None: the camera's jpeg_quality
    wait_s: float = 2.0


class PauseStream(msgspec.Struct, frozen=True, tag=True):
    """Streaming clients get no new frames; grabbing (and inspection) carries on."""


class ResumeStream(msgspec.Struct, frozen=True, tag=True):
    pass


class AutoAdjust(msgspec.Struct, frozen=True, tag=True):
    """Exposure and gain once by the camera (ExposureAuto/GainAuto = Once)."""


class AutoFocus(msgspec.Struct, frozen=True, tag=True):
    pass


class SetMaxGain(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    max_gain_db: float


class SetMaxExposure(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    max_exposure_us: int


class ReconnectCamera(msgspec.Struct, frozen=True, tag=True):
    """Open a camera that was lost while auto_reconnect is off."""


class UseCameraConfig(msgspec.Struct, frozen=True, tag=True):
    """The camera's config changed only in what it takes live (settings, active, JPEG quality):
    apply the settings that differ, and keep the config for the next connect. Told by the
    devices supervisor, so a stored exposure does not reopen the camera."""

    config: CameraConfig


# ---- answers -----------------------------------------------------------------------------------


class CameraStatus(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    source: str
    device_user_name: str | None
    serial: str | None
    vendor: str | None
    model: str | None
    emulation: bool
    state: str  # connected | disconnected
    active: bool
    streaming: bool  # False while the stream is paused
    frames: int  # grabbed since the station started
    fps: float  # measured over the last frames
    overwritten: int  # frames no consumer took before the next one came
    failed_grabs: int
    scene_reloads: int  # emulator: times a changed image file was picked up
    last_error: str | None
    settings: dict[str, Any]


class CameraSettingsView(msgspec.Struct, frozen=True, kw_only=True):
    camera: str
    settings: dict[str, Any]  # as the camera has them now, by config key
    ranges: dict[str, str]  # what the camera accepts, by config key


class CapturedImage(msgspec.Struct, frozen=True, kw_only=True):
    camera: str
    frame_id: str
    seq: int
    at_us: int
    content_type: str
    width: int
    height: int
    data: bytes


class JpegFrame(msgspec.Struct, frozen=True, kw_only=True):
    seq: int
    frame_id: str
    at_us: int
    data: bytes


class StreamState(msgspec.Struct, frozen=True, kw_only=True):
    camera: str
    streaming: bool


class AutoResult(msgspec.Struct, frozen=True, kw_only=True):
    camera: str
    set: dict[str, str]  # the node and the value written
