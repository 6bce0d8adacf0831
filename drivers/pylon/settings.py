"""Camera settings and the pylon features they map to, checked against a device's own ranges.

Pure: the ranges come from the device's nodes (drivers/pylon/camera.py reads them), so the
checks run, and are property-tested, without a camera. Seed 000 names its settings after the
pylon features (`Width`, `OffsetX`, `MaxGain`, ...); `FEATURES` holds both names.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, NamedTuple

import msgspec

__all__ = [
    "FEATURES",
    "Choices",
    "DeviceRanges",
    "Feature",
    "FloatRange",
    "IntRange",
    "Kind",
    "PylonSettings",
    "SettingProblem",
    "SettingsError",
    "check_settings",
    "describe",
    "effective_ranges",
    "merge",
    "resolve_pixel_format",
    "settings_from_mapping",
]


class Kind(StrEnum):
    INT = "int"
    FLOAT = "float"
    ENUM = "enum"
    BOOL = "bool"


class Feature(NamedTuple):
    field: str  # Takt's name (the config key)
    seed: str  # seed 000's name
    nodes: tuple[str, ...]  # the pylon nodes, the first the camera has is used
    kind: Kind
    digits: int = 0  # a float is read back rounded to this many decimals


# In the order they are written: a user set first (it resets the rest), then what shapes the
# image, the limits before the values they bound, the auto mode before the exposure it may
# leave to the camera, then the frame rate.
FEATURES: tuple[Feature, ...] = (
    Feature("user_set", "user_set", ("UserSetSelector",), Kind.ENUM),
    Feature("pixel_format", "PixelFormat", ("PixelFormat",), Kind.ENUM),
    Feature("width", "Width", ("Width",), Kind.INT),
    Feature("height", "Height", ("Height",), Kind.INT),
    Feature("offset_x", "OffsetX", ("OffsetX",), Kind.INT),
    Feature("offset_y", "OffsetY", ("OffsetY",), Kind.INT),
    Feature("reverse_x", "ReverseX", ("ReverseX",), Kind.BOOL),
    Feature("reverse_y", "ReverseY", ("ReverseY",), Kind.BOOL),
    Feature("max_exposure_us", "MaxExposureTime",
            ("AutoExposureTimeUpperLimit", "AutoExposureTimeAbsUpperLimit"), Kind.INT),
    Feature("max_gain_db", "MaxGain", ("AutoGainUpperLimit",), Kind.FLOAT, 2),
    Feature("exposure_auto", "ExposureAuto", ("ExposureAuto",), Kind.ENUM),
    Feature("exposure_us", "ExposureTime", ("ExposureTime", "ExposureTimeAbs"), Kind.INT),
    Feature("gain_db", "Gain", ("Gain",), Kind.FLOAT, 2),
    Feature("frame_rate", "AcquisitionFrameRate",
            ("AcquisitionFrameRate", "AcquisitionFrameRateAbs"), Kind.FLOAT, 2),
)
FEATURE = {f.field: f for f in FEATURES}
_BY_SEED = {f.seed: f.field for f in FEATURES}

# The same format under the older (GigE, "Packed") and newer (SFNC) names.
_PIXEL_ALIASES = {"RGB8Packed": "RGB8", "BGR8Packed": "BGR8", "RGB8": "RGB8Packed",
                  "BGR8": "BGR8Packed"}


class PylonSettings(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True,
                    forbid_unknown_fields=True):
    """What Takt sets on a camera; None leaves that feature as the camera has it."""

    user_set: str | None = None
    pixel_format: str | None = None
    width: int | None = None
    height: int | None = None
    offset_x: int | None = None
    offset_y: int | None = None
    reverse_x: bool | None = None
    reverse_y: bool | None = None
    max_exposure_us: int | None = None
    max_gain_db: float | None = None
    exposure_us: int | None = None
    gain_db: float | None = None
    exposure_auto: str | None = None
    frame_rate: float | None = None


class IntRange(msgspec.Struct, frozen=True):
    min: int
    max: int
    inc: int = 1


class FloatRange(msgspec.Struct, frozen=True):
    min: float
    max: float


class Choices(msgspec.Struct, frozen=True):
    values: tuple[str, ...]


Range = IntRange | FloatRange | Choices | None  # None for a flag: any bool


class DeviceRanges(msgspec.Struct, frozen=True, kw_only=True):
    """What a camera accepts: a range per feature it has (missing: not supported)."""

    features: dict[str, Range]
    sensor_width: int | None = None  # the widest image at offset 0
    sensor_height: int | None = None


class SettingProblem(msgspec.Struct, frozen=True, kw_only=True):
    field: str
    message: str
    valid: str | None = None  # the range the camera accepts, as text


class SettingsError(ValueError):
    """Settings the camera would not take; nothing was changed."""

    def __init__(self, problems: list[SettingProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in problems))


def describe(value_range: Range) -> str:
    """A range as a user reads it: `1..4096 in steps of 16`, `one of: Off, Once`."""
    if isinstance(value_range, IntRange):
        step = f" in steps of {value_range.inc}" if value_range.inc > 1 else ""
        return f"{value_range.min}..{value_range.max}{step}"
    if isinstance(value_range, FloatRange):
        return f"{_num(value_range.min)}..{_num(value_range.max)}"
    if isinstance(value_range, Choices):
        return f"one of: {', '.join(value_range.values)}"
    return "true or false"


def _num(value: float) -> str:
    return f"{round(value, 2):g}"  # a node's 48.00000004 is 48 to a reader


def settings_from_mapping(data: Mapping[str, Any]) -> PylonSettings:
    """Settings from plain data keyed by Takt's or seed 000's names; SettingsError otherwise."""
    problems: list[SettingProblem] = []
    values: dict[str, Any] = {}
    for key, value in data.items():
        field = _BY_SEED.get(key, key) if isinstance(key, str) else None
        feature = FEATURE.get(field) if field is not None else None
        if feature is None:
            problems.append(SettingProblem(field=str(key), message="not a camera setting"))
            continue
        converted = _convert(feature, value)
        if isinstance(converted, SettingProblem):
            problems.append(converted)
        else:
            values[feature.field] = converted
    if problems:
        raise SettingsError(problems)
    return PylonSettings(**values)


def _convert(feature: Feature, value: Any) -> Any:
    if value is None:
        return None
    kind = feature.kind
    if kind is Kind.BOOL:
        if type(value) is bool or (type(value) is int and value in (0, 1)):
            return bool(value)
        return _bad(feature, value, "true or false")
    if kind is Kind.ENUM:
        if isinstance(value, str) and 0 < len(value) <= 64:
            return value
        return _bad(feature, value, "a name")
    if kind is Kind.INT:
        if type(value) is int and abs(value) < 2**62:
            return value
        if type(value) is float and value.is_integer() and abs(value) < 2**62:
            return int(value)
        return _bad(feature, value, "a whole number")
    if type(value) in (int, float) and math.isfinite(value) and abs(value) < 1e15:
        return float(value)
    return _bad(feature, value, "a finite number")


def _bad(feature: Feature, value: Any, expected: str) -> SettingProblem:
    return SettingProblem(field=feature.field, message=f"{value!r} is not {expected}")


def merge(base: PylonSettings, changes: PylonSettings) -> PylonSettings:
    """`base` with every setting `changes` gives."""
    given = {k: v for k, v in msgspec.structs.asdict(changes).items() if v is not None}
    return msgspec.structs.replace(base, **given)


def resolve_pixel_format(wanted: str, offered: tuple[str, ...]) -> str:
    """The camera's name for `wanted` (`RGB8Packed` is `RGB8` on newer cameras)."""
    if wanted in offered:
        return wanted
    alias = _PIXEL_ALIASES.get(wanted)
    return alias if alias in offered else wanted


def check_settings(settings: PylonSettings, ranges: DeviceRanges) -> list[SettingProblem]:
    """Every setting the camera would refuse, each with the range it accepts."""
    problems: list[SettingProblem] = []
    values = msgspec.structs.asdict(settings)
    for feature in FEATURES:
        value = values[feature.field]
        if value is None:
            continue
        if feature.field not in ranges.features:
            problems.append(SettingProblem(
                field=feature.field, message=f"not supported by this camera (it has no "
                                             f"{' or '.join(feature.nodes)})"))
            continue
        value_range = _effective_range(feature.field, values, ranges)
        problem = _out_of_range(feature, value, value_range)
        if problem is not None:
            problems.append(problem)
    problems += _above_limits(settings)
    return problems


def effective_ranges(settings: PylonSettings, ranges: DeviceRanges) -> dict[str, Range]:
    """Each supported feature's range given the other settings (an offset leaves room for the
    size; a size may use the whole sensor, the offset then moves back)."""
    values = msgspec.structs.asdict(settings)
    return {field: _effective_range(field, values, ranges) for field in ranges.features}


def _effective_range(field: str, values: Mapping[str, Any], ranges: DeviceRanges) -> Range:
    """The node's range, narrowed where another setting bounds it (offset + size <= sensor)."""
    value_range = ranges.features[field]
    size_of = {"offset_x": ("width", ranges.sensor_width),
               "offset_y": ("height", ranges.sensor_height),
               "width": ("offset_x", ranges.sensor_width),
               "height": ("offset_y", ranges.sensor_height)}
    if field in size_of and isinstance(value_range, IntRange):
        other, sensor = size_of[field]
        if sensor is not None:
            if field.startswith("offset"):
                size = values[other]
                # A size too big for the sensor is its own problem, not the offset's.
                if size is not None and size <= sensor:
                    return IntRange(value_range.min, max(sensor - size, value_range.min),
                                    value_range.inc)
            else:
                return IntRange(value_range.min, sensor, value_range.inc)
    return value_range


def _out_of_range(feature: Feature, value: Any, value_range: Range) -> SettingProblem | None:
    valid = describe(value_range)
    if isinstance(value_range, IntRange):
        inside = value_range.min <= value <= value_range.max
        on_step = (value - value_range.min) % max(value_range.inc, 1) == 0
        if inside and on_step:
            return None
        what = "is outside" if not inside else "is not a step of"
        return SettingProblem(field=feature.field, valid=valid,
                              message=f"{value} {what} the camera's range {valid}")
    if isinstance(value_range, FloatRange):
        # A node's float max is often 48.00000004 for 48: compare with a little slack.
        slack = 1e-6 * max(1.0, abs(value_range.max))
        if value_range.min - slack <= value <= value_range.max + slack:
            return None
        return SettingProblem(field=feature.field, valid=valid,
                              message=f"{value:g} is outside the camera's range {valid}")
    if isinstance(value_range, Choices):
        if value in value_range.values or (
                feature.field == "pixel_format"
                and resolve_pixel_format(value, value_range.values) in value_range.values):
            return None
        return SettingProblem(field=feature.field, valid=valid,
                              message=f"{value!r} is not offered by the camera ({valid})")
    return None


def _above_limits(s: PylonSettings) -> list[SettingProblem]:
    problems = []
    if s.gain_db is not None and s.max_gain_db is not None and s.gain_db > s.max_gain_db + 1e-9:
        problems.append(SettingProblem(
            field="gain_db", valid=f"0..{s.max_gain_db:g}",
            message=f"{s.gain_db:g} dB is above max_gain_db ({s.max_gain_db:g} dB)"))
    if (s.exposure_us is not None and s.max_exposure_us is not None
            and s.exposure_us > s.max_exposure_us):
        problems.append(SettingProblem(
            field="exposure_us", valid=f"..{s.max_exposure_us}",
            message=f"{s.exposure_us} us is above max_exposure_us ({s.max_exposure_us} us)"))
    return problems
