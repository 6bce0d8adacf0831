"""The settings' features on a camera's node map (GenICam nodes): read them, read their ranges,
write them in order after checking them all, and the camera's auto functions.

A feature may go by several node names across camera generations (`ExposureTime` on SFNC
cameras, `ExposureTimeAbs` on older GigE ones); the first node the camera has is used. A node
the camera lacks is a placeholder whose `IsValid()` is False. Runs on the thread that owns the
camera (drivers/pylon/camera.py).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import msgspec
from pypylon import genicam, pylon

from drivers.errors import DriverError
from drivers.pylon.settings import (
    FEATURE,
    FEATURES,
    Choices,
    DeviceRanges,
    Feature,
    FloatRange,
    IntRange,
    Kind,
    PylonSettings,
    Range,
    SettingProblem,
    SettingsError,
    check_settings,
    merge,
    resolve_pixel_format,
)

__all__ = [
    "FeatureWriter",
    "NotSupported",
    "auto_adjust",
    "auto_focus",
    "node_of",
    "read_ranges",
    "read_values",
    "short_error",
    "stall_after_s",
    "write_feature",
]

log = logging.getLogger("takt.drivers.pylon")

# A limit the camera has no node for is kept by the writer and enforced on what it bounds.
_LIMITS = {"max_gain_db": "gain_db", "max_exposure_us": "exposure_us"}
_AUTO_OF = {"gain_db": "GainAuto", "exposure_us": "ExposureAuto"}
_FOCUS_NODES = ("FocusAuto", "BslFocusAuto", "AutoFocus")
_SIZE_OFFSET = {"width": "offset_x", "height": "offset_y"}


class NotSupported(DriverError):
    """The camera has no such feature (auto focus on a fixed-focus camera)."""


class FeatureWriter:
    """Writes settings to one camera, and keeps what the camera cannot: the user set loaded
    last, and the max gain / max exposure of a camera without upper-limit nodes."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.user_set: str | None = None
        self.kept: dict[str, Any] = {}

    def read(self, nodemap: Any) -> PylonSettings:
        return read_values(nodemap, user_set=self.user_set, kept=self.kept)

    def ranges(self, nodemap: Any) -> DeviceRanges:
        return read_ranges(nodemap, _LIMITS)

    def apply(self, cam: Any, changes: PylonSettings, *, everything: bool) -> PylonSettings:
        """Check every setting against the camera's ranges, then write the changed ones (all
        given ones with `everything`); SettingsError, with nothing written, if any is refused.
        Features locked while grabbing are written with grabbing stopped for a moment."""
        nodemap = cam.GetNodeMap()
        current = self.read(nodemap)
        given = {k for k, v in msgspec.structs.asdict(changes).items() if v is not None}
        wanted = _clamp_inherited(merge(current, changes), given)
        ranges = self.ranges(nodemap)
        offered = ranges.features.get("pixel_format")
        if wanted.pixel_format is not None and isinstance(offered, Choices):
            wanted = msgspec.structs.replace(
                wanted, pixel_format=resolve_pixel_format(wanted.pixel_format, offered.values))
        problems = check_settings(wanted, ranges)
        if problems:
            raise SettingsError(problems)
        if "user_set" not in given:
            wanted = msgspec.structs.replace(wanted, user_set=None)
        loads_user_set = wanted.user_set is not None
        values = msgspec.structs.asdict(wanted)
        old = msgspec.structs.asdict(current)
        fields = [f for f in FEATURES if values[f.field] is not None and (
            everything or loads_user_set or values[f.field] != old[f.field])]
        fields = [f for f in _with_offsets(fields) if values[f.field] is not None]
        if wanted.exposure_auto not in (None, "Off"):
            fields = [f for f in fields if f.field != "exposure_us"]  # the camera's to set
        self._write(cam, fields, values, old)
        return self.read(nodemap)

    def _write(self, cam: Any, fields: list[Feature], values: dict[str, Any],
               old: dict[str, Any]) -> None:
        nodemap = cam.GetNodeMap()
        nodes = {f.field: node_of(nodemap, f) for f in fields}
        locked = cam.IsGrabbing() and any(
            n is not None and not n.IsWritable() for n in nodes.values())
        if locked:
            cam.StopGrabbing()
        written: list[Feature] = []
        try:
            for feature in fields:
                self._write_one(nodemap, feature, nodes[feature.field], values[feature.field])
                written.append(feature)
        except genicam.GenericException as exc:
            self._restore(nodemap, written, old)
            refused = f"the camera refused it: {short_error(exc)}"
            raise SettingsError([SettingProblem(field=feature.field, message=refused)]) from exc
        finally:
            if locked:
                cam.StartGrabbing(pylon.GrabStrategy_LatestImageOnly)

    def _write_one(self, nodemap: Any, feature: Feature, node: Any, value: Any) -> None:
        if feature.field == "user_set":
            nodemap.GetNode("UserSetSelector").SetValue(value)
            nodemap.GetNode("UserSetLoad").Execute()
            self.user_set = value
        elif node is None and feature.field in _LIMITS:
            self.kept[feature.field] = value
            self._enforce_limit(nodemap, feature.field)
        elif node is not None:
            if feature.field in _SIZE_OFFSET:
                # The size's max counts from the offset: start at offset 0, set it after.
                offset = node_of(nodemap, FEATURE[_SIZE_OFFSET[feature.field]])
                if offset is not None and offset.IsWritable():
                    offset.SetValue(offset.GetMin())
            if feature.field == "frame_rate":
                enable = nodemap.GetNode("AcquisitionFrameRateEnable")
                if enable.IsValid() and enable.IsWritable():
                    enable.SetValue(True)
            write_feature(node, feature, value)

    def _restore(self, nodemap: Any, written: list[Feature], old: dict[str, Any]) -> None:
        for feature in reversed(written):
            if feature.field in self.kept and old.get(feature.field) is None:
                del self.kept[feature.field]  # a limit that was not there before
            if feature.field == "user_set" or old.get(feature.field) is None:
                continue
            try:
                self._write_one(nodemap, feature, node_of(nodemap, feature), old[feature.field])
            except genicam.GenericException as exc:
                log.warning("%s: could not restore %s: %s", self.name, feature.field,
                            short_error(exc))

    def enforce_limits(self, nodemap: Any) -> None:
        """Bring what a kept limit bounds back within it (after an auto adjust, say)."""
        for limit in list(self.kept):
            self._enforce_limit(nodemap, limit)

    def _enforce_limit(self, nodemap: Any, limit: str) -> None:
        """Clamp what a kept limit bounds, unless the camera's auto function has it."""
        bounded = FEATURE[_LIMITS[limit]]
        node = node_of(nodemap, bounded)
        auto = nodemap.GetNode(_AUTO_OF[bounded.field])
        if auto.IsValid() and auto.IsReadable() and auto.GetValue() == "Continuous":
            return
        if node is not None and node.IsWritable() and node.GetValue() > self.kept[limit]:
            write_feature(node, bounded, self.kept[limit])


def auto_adjust(nodemap: Any, camera: str) -> dict[str, str]:
    """Exposure and gain set once by the camera (ExposureAuto/GainAuto = Once)."""
    done = {}
    for name in ("ExposureAuto", "GainAuto"):
        node = nodemap.GetNode(name)
        if node.IsValid() and node.IsWritable() and "Once" in node.Symbolics:
            node.SetValue("Once")
            done[name] = "Once"
    if not done:
        raise NotSupported(f"{camera}: auto adjust is not supported by this camera "
                           f"(it has no ExposureAuto or GainAuto)")
    return done


def auto_focus(nodemap: Any, camera: str) -> dict[str, str]:
    """Focus once, where the camera has a focus feature."""
    for name in _FOCUS_NODES:
        node = nodemap.GetNode(name)
        if node.IsValid() and node.IsWritable():
            node.SetValue("Once")
            return {name: "Once"}
    raise NotSupported(f"{camera}: auto focus is not supported by this camera "
                       f"(it has no focus feature)")


def _clamp_inherited(wanted: PylonSettings, given: set[str]) -> PylonSettings:
    """A limit lowered below the present value pulls that value down with it (only a value
    asked for explicitly above its limit is an error)."""
    changes: dict[str, Any] = {}
    for limit, bounded in _LIMITS.items():
        top, value = getattr(wanted, limit), getattr(wanted, bounded)
        if bounded not in given and top is not None and value is not None and value > top:
            changes[bounded] = top
    return msgspec.structs.replace(wanted, **changes) if changes else wanted


def stall_after_s(settings: PylonSettings, least: float) -> float:
    """How long without a frame means the camera is gone: a few frame periods, no less."""
    period = 1.0 / settings.frame_rate if settings.frame_rate else 0.0
    exposure = (settings.exposure_us or 0) / 1e6
    return max(least, 3 * (period + exposure))


def _with_offsets(fields: list[Feature]) -> list[Feature]:
    """A size written resets its offset to 0 first, so the offset is written again after."""
    names = {f.field for f in fields}
    extra = {_SIZE_OFFSET[n] for n in names if n in _SIZE_OFFSET} - names
    return [f for f in FEATURES if f.field in names | extra]


def node_of(nodemap: Any, feature: Feature) -> Any | None:
    """The node of `feature` the camera has (readable), or None."""
    for name in feature.nodes:
        node = nodemap.GetNode(name)
        if node is not None and node.IsValid() and node.IsReadable():
            return node
    return None


def read_feature(node: Any, feature: Feature) -> Any:
    value = node.GetValue()
    if feature.kind is Kind.INT:
        return round(value)
    if feature.kind is Kind.FLOAT:
        return round(float(value), feature.digits)
    if feature.kind is Kind.BOOL:
        return bool(value)
    return str(value)


def read_values(nodemap: Any, *, user_set: str | None = None,
                kept: dict[str, Any] | None = None) -> PylonSettings:
    """What the camera has now. The user set is the one loaded last (a camera does not say);
    `kept` holds the limits the driver keeps for a camera without limit nodes."""
    values: dict[str, Any] = {}
    for feature in FEATURES:
        if feature.field == "user_set":
            values["user_set"] = user_set
            continue
        node = node_of(nodemap, feature)
        if node is not None:
            values[feature.field] = read_feature(node, feature)
    values.update(kept or {})
    return PylonSettings(**values)


def read_range(node: Any, feature: Feature) -> Range:
    if feature.kind is Kind.BOOL:
        return None
    if feature.kind is Kind.ENUM:
        return Choices(tuple(str(s) for s in node.Symbolics))
    low, high = node.GetMin(), node.GetMax()
    if feature.kind is Kind.INT:
        inc = 1
        if isinstance(low, int):  # integer nodes always have one; a float node's is finer
            inc = max(int(node.GetInc()), 1)
        return IntRange(math.ceil(low), math.floor(high), inc)
    return FloatRange(float(low), float(high))


def read_ranges(nodemap: Any, limit_fallback: dict[str, str]) -> DeviceRanges:
    """Each feature's range on this camera. A limit without its node (`limit_fallback`: limit
    field -> the field it bounds) takes the bounded feature's range: the driver keeps it."""
    features: dict[str, Range] = {}
    for feature in FEATURES:
        node = node_of(nodemap, feature)
        if node is not None:
            features[feature.field] = read_range(node, feature)
    for limit, bounded in limit_fallback.items():
        if limit not in features and bounded in features:
            features[limit] = features[bounded]
    return DeviceRanges(features=features, sensor_width=_sensor(nodemap, "Width", "OffsetX"),
                        sensor_height=_sensor(nodemap, "Height", "OffsetY"))


def _sensor(nodemap: Any, size: str, offset: str) -> int | None:
    """The widest image at offset 0: `WidthMax` where the camera has it (binning counted), else
    the size's max, which on some cameras counts from the current offset."""
    for name in (f"{size}Max", f"Sensor{size}"):
        node = nodemap.GetNode(name)
        if node.IsValid() and node.IsReadable():
            return int(node.GetValue())
    size_node, offset_node = nodemap.GetNode(size), nodemap.GetNode(offset)
    if not (size_node.IsValid() and size_node.IsReadable()):
        return None
    extra = offset_node.GetValue() if offset_node.IsValid() and offset_node.IsReadable() else 0
    return int(size_node.GetMax()) + int(extra)


def write_feature(node: Any, feature: Feature, value: Any) -> None:
    if feature.kind is Kind.INT and not isinstance(node.GetValue(), int):
        node.SetValue(float(value))  # an integer setting on a float node (ExposureTime)
    else:
        node.SetValue(value)


def short_error(exc: BaseException) -> str:
    """A GenICam message without its source-file trailer."""
    text = str(exc).strip()
    head, sep, _ = text.partition(" : ")
    return head.rstrip(". ") if sep else text
