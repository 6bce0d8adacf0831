"""The camera part of the station config (seed 000 "Camera"): Basler cameras read over pylon,
or a folder/OpenCV source for stations without one.

Ranges here are the static sanity bounds; each camera's own ranges (read from its device nodes)
are checked when the settings are applied (drivers/pylon/settings.py). Seed 000 names its
settings after the pylon features (`Width`, `OffsetX`, `MaxGain`, ...): `SEED_FIELDS` maps
them, and a few pylon spellings, to Takt's snake_case keys.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from controller.config_check import Problems, array_rule, duplicate_names, table_rule
from controller.config_lines import join_key

__all__ = [
    "LIVE_FIELDS",
    "SEED_FIELDS",
    "CameraConfig",
    "CameraSource",
    "ExposureAuto",
    "active_camera",
    "live_changes",
    "normalize_changes",
    "reopen_key",
]

_EMULATOR_SERIAL = r"^0815-[0-9]{4}(?!\n)$"


class CameraSource(StrEnum):
    PYLON = "pylon"  # a Basler camera, or the pylon camera emulator
    FOLDER = "folder"  # a folder of images, cycled at frame_rate
    OPENCV = "opencv"  # what cv2.VideoCapture opens: a device index, a URL or a video file


class ExposureAuto(StrEnum):
    OFF = "Off"
    ONCE = "Once"
    CONTINUOUS = "Continuous"


Pixels = Annotated[int, Meta(ge=1, le=16_384)]
Offset = Annotated[int, Meta(ge=0, le=16_384)]
GainDb = Annotated[float, Meta(ge=0, le=100)]
ExposureUs = Annotated[int, Meta(ge=1, le=60_000_000)]


class CameraConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    enabled: bool = True
    name: Annotated[str, Meta(pattern=r"^[a-z0-9_-]{1,32}(?!\n)$")]  # Takt's name for it
    source: CameraSource = CameraSource.PYLON
    device_user_name: Annotated[str, Meta(pattern=r"^[ -~]{1,64}(?!\n)$")] | None = None
    """The Basler DeviceUserID (seed: device_user_name, e.g. "RAP_CAM_01")."""
    serial: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.-]{1,32}(?!\n)$")] | None = None
    emulation: bool = False
    """The pylon camera emulator (PYLON_CAMEMU) instead of a real camera: opened by serial
    (0815-0000, 0815-0001, ...), its DeviceUserID set to device_user_name."""
    image_path: Annotated[str, Meta(min_length=1, max_length=4096)] | None = None
    """Seed ImageFilepath: the file or folder the emulator serves; a folder camera's folder."""
    capture_device: Annotated[str, Meta(min_length=1, max_length=4096)] | None = None
    """An OpenCV camera: a device index ("0") or a URL / video file cv2.VideoCapture opens."""
    width: Pixels = 896
    height: Pixels = 896
    offset_x: Offset = 0
    offset_y: Offset = 0
    reverse_x: bool = False
    reverse_y: bool = False
    pixel_format: Annotated[str, Meta(pattern=r"^[A-Za-z0-9]{1,32}(?!\n)$")] = "RGB8Packed"
    """Any format the camera offers; Mono, BGR and Bayer frames are converted to RGB."""
    exposure_auto: ExposureAuto = ExposureAuto.OFF
    exposure_us: ExposureUs | None = None  # None: as the camera (or its user set) has it
    gain_db: GainDb | None = None
    max_gain_db: GainDb | None = None  # seed MaxGain
    max_exposure_us: ExposureUs | None = None  # seed MaxExposureTime
    frame_rate: Annotated[float, Meta(gt=0, le=1000)] = 30.0
    user_set: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_]{1,32}(?!\n)$")] | None = None
    """A user set loaded before every other setting (e.g. "Default")."""
    auto_reconnect: bool = True
    """A lost camera is reopened with backoff; off: it stays disconnected until asked."""
    active: bool = False  # the station's active camera (the first one when none is marked)
    jpeg_quality: Annotated[int, Meta(ge=1, le=100)] = 80  # of streamed frames


# Settings a running camera takes at once (checked against the device's own ranges first).
LIVE_FIELDS = frozenset({
    "user_set", "pixel_format", "width", "height", "offset_x", "offset_y", "reverse_x",
    "reverse_y", "exposure_auto", "exposure_us", "gain_db", "max_gain_db", "max_exposure_us",
    "frame_rate",
})

# What only Takt reads, never the camera: changed on a running camera without telling it.
_TAKT_FIELDS = frozenset({"active", "jpeg_quality"})


def _live(config: CameraConfig) -> frozenset[str]:
    # A folder or OpenCV source takes only its frame rate; its other settings are not a
    # device's, and a change of them reopens it.
    return LIVE_FIELDS if config.source == CameraSource.PYLON else frozenset({"frame_rate"})


def reopen_key(config: CameraConfig) -> CameraConfig:
    """What a running camera cannot change without being reopened: its config with what it
    takes live (and what only Takt reads) set to the defaults. Two configs with the same key
    differ only in `live_changes`."""
    defaults = CameraConfig(name=config.name)
    return msgspec.structs.replace(
        config, **{f: getattr(defaults, f) for f in _live(config) | _TAKT_FIELDS})


def live_changes(old: CameraConfig, new: CameraConfig) -> dict[str, Any]:
    """The settings to apply to a running camera whose config goes from `old` to `new` (with
    the same reopen_key): those that differ, without the ones set to "as the camera has it"
    (None), which leave the camera as it is."""
    return {f: getattr(new, f) for f in sorted(_live(new))
            if getattr(new, f) != getattr(old, f) and getattr(new, f) is not None}


# Seed 000 (and pylon) spellings of the config keys.
SEED_FIELDS: dict[str, str] = {
    "Width": "width", "Height": "height", "OffsetX": "offset_x", "OffsetY": "offset_y",
    "ReverseX": "reverse_x", "ReverseY": "reverse_y", "PixelFormat": "pixel_format",
    "ExposureAuto": "exposure_auto", "ExposureTime": "exposure_us", "Gain": "gain_db",
    "MaxGain": "max_gain_db", "MaxExposureTime": "max_exposure_us",
    "AcquisitionFrameRate": "frame_rate", "AcquisitionFrameRateAbs": "frame_rate",
    "framerate": "frame_rate", "AutoReconnect": "auto_reconnect",
    "DeviceUserID": "device_user_name", "device_serial_number": "serial",
    "ImageFilepath": "image_path",
}

_BOOL_FIELDS = frozenset({"reverse_x", "reverse_y", "auto_reconnect", "emulation", "enabled",
                          "active"})
_FIELDS = frozenset(f.encode_name for f in msgspec.structs.fields(CameraConfig))


def normalize_changes(data: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str],
                                                        list[tuple[str, str]]]:
    """(changes by config key, config key -> the key the caller used, problems by the caller's
    key). Seed spellings are accepted, and 0/1 for the seed's int-typed flags (ReverseX)."""
    changes: dict[str, Any] = {}
    sent_as: dict[str, str] = {}
    problems: list[tuple[str, str]] = []
    for key, value in data.items():
        field = SEED_FIELDS.get(key, key)
        if field not in _FIELDS:
            problems.append((key, _unknown(key)))
            continue
        if field in sent_as:
            problems.append((key, f"given twice (as {sent_as[field]!r} and {key!r})"))
            continue
        seed_flag = field in _BOOL_FIELDS and type(value) is int and value in (0, 1)
        changes[field] = bool(value) if seed_flag else value
        sent_as[field] = key
    return changes, sent_as, problems


def _unknown(key: str) -> str:
    close = difflib.get_close_matches(key, [*_FIELDS, *SEED_FIELDS], n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown camera setting {key!r}{hint}"


def active_camera(cameras: Sequence[CameraConfig]) -> CameraConfig | None:
    """The station's active camera: the enabled one marked active, else the first enabled."""
    enabled = [c for c in cameras if c.enabled]
    return next((c for c in enabled if c.active), enabled[0] if enabled else None)


# ---- rules -------------------------------------------------------------------------------------


@table_rule(CameraConfig, "source", "device_user_name", "serial", "emulation", "image_path",
            "capture_device")
def _source(key: str, c: CameraConfig) -> Problems:
    if c.source == CameraSource.PYLON:
        if not c.emulation and c.device_user_name is None and c.serial is None:
            yield (join_key(key, "device_user_name"),
                   "give device_user_name (the camera's DeviceUserID) or serial")
        if c.emulation and c.serial is not None and not _emulator_serial(c.serial):
            yield (join_key(key, "serial"),
                   "the pylon emulator's serials are 0815-0000, 0815-0001, ...")
    elif c.emulation:
        yield join_key(key, "emulation"), "the pylon emulator is for source = 'pylon' only"
    if c.source == CameraSource.FOLDER and c.image_path is None:
        yield join_key(key, "image_path"), "a folder camera needs image_path (its folder)"
    if c.source == CameraSource.OPENCV and c.capture_device is None:
        yield (join_key(key, "capture_device"),
               "an OpenCV camera needs capture_device (a device index, URL or video file)")
    if c.source != CameraSource.OPENCV and c.capture_device is not None:
        yield join_key(key, "capture_device"), "only an OpenCV camera (source = 'opencv') has one"


def _emulator_serial(serial: str) -> bool:
    return re.match(_EMULATOR_SERIAL, serial) is not None


@table_rule(CameraConfig, "exposure_us", "max_exposure_us", "gain_db", "max_gain_db",
            "exposure_auto")
def _limits(key: str, c: CameraConfig) -> Problems:
    if c.exposure_us is not None and c.max_exposure_us is not None \
            and c.exposure_us > c.max_exposure_us:
        yield (join_key(key, "exposure_us"),
               f"{c.exposure_us} us is above max_exposure_us ({c.max_exposure_us} us)")
    if c.gain_db is not None and c.max_gain_db is not None and c.gain_db > c.max_gain_db:
        yield join_key(key, "gain_db"), f"{c.gain_db:g} dB is above max_gain_db ({c.max_gain_db:g})"
    if c.exposure_auto is ExposureAuto.CONTINUOUS and c.exposure_us is not None:
        yield (join_key(key, "exposure_us"),
               "the camera sets the exposure itself while exposure_auto is Continuous; "
               "leave exposure_us out")


@table_rule(CameraConfig, "active", "enabled")
def _active_enabled(key: str, c: CameraConfig) -> Problems:
    if c.active and not c.enabled:
        yield join_key(key, "active"), "a disabled camera cannot be the active one"


@array_rule(CameraConfig, "name")
def _unique_names(items: Sequence[tuple[str, CameraConfig]]) -> Problems:
    return duplicate_names(items, "camera")


@array_rule(CameraConfig, "active")
def _one_active(items: Sequence[tuple[str, CameraConfig]]) -> Problems:
    active = [(k, c) for k, c in items if c.active]
    for k, _ in active[1:]:
        yield join_key(k, "active"), f"only one camera can be active ({active[0][1].name} is)"


@array_rule(CameraConfig, "source", "device_user_name", "serial", "emulation")
def _unique_devices(items: Sequence[tuple[str, CameraConfig]]) -> Problems:
    pylon = [(k, c) for k, c in items if c.source == CameraSource.PYLON]
    for field in ("device_user_name", "serial"):
        first: dict[str, str] = {}
        for k, c in pylon:
            value = getattr(c, field)
            if field == "serial" and c.emulation and value is None:
                value = "0815-0000"  # what an emulated camera without a serial opens
            if value is None:
                continue
            if value in first:
                yield join_key(k, field), f"{value!r} is already used by {first[value]}"
            else:
                first[value] = c.name

