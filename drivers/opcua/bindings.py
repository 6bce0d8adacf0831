"""What an OPC-UA client binds: tags (node, type, how changes are monitored), their checks,
and the errors that name the bindings a server will not serve."""

from __future__ import annotations

import math

import msgspec
from asyncua import ua

from drivers.errors import DriverError
from drivers.opcua.values import variant_for

__all__ = [
    "DEADBANDS",
    "MonitoringRefused",
    "OpcuaTag",
    "TagProblems",
    "TypeMismatch",
    "UnknownNodes",
    "check_tag",
]

DEADBANDS = {
    "none": ua.DeadbandType.None_,
    "absolute": ua.DeadbandType.Absolute,
    "percent": ua.DeadbandType.Percent,
}


class OpcuaTag(msgspec.Struct, frozen=True, kw_only=True):
    """One bound PLC variable and how its changes reach Takt."""

    name: str  # Takt signal name
    node: str  # NodeId string, e.g. "ns=2;s=Line1.PartPresent" or "ns=2;i=1005"
    type: str  # Takt value type, see values.py
    subscribe: bool = True  # False: read on each poll() instead
    publishing_interval_ms: float = 0.0  # 0 = as fast as the server allows
    sampling_interval_ms: float = 0.0
    queue_size: int = 1
    deadband_type: str = "none"  # "none" | "absolute" | "percent"
    deadband: float = 0.0


class TagProblems(DriverError):
    """Problems with some bindings, by tag name."""

    summary = "bad bindings"

    def __init__(self, problems: dict[str, str]) -> None:
        self.problems = dict(problems)
        details = "; ".join(f"{name}: {text}" for name, text in self.problems.items())
        super().__init__(f"{self.summary}: {details}")


class UnknownNodes(TagProblems):
    """Bound nodes that do not exist on the server (or are not variables).

    `mismatched` holds the type problems of the other tags, found in the same pass, so a
    caller can report every problem at once.
    """

    summary = "unknown nodes"

    def __init__(self, problems: dict[str, str], mismatched: dict[str, str] | None = None
                 ) -> None:
        super().__init__(problems)
        self.mismatched = dict(mismatched or {})


class TypeMismatch(TagProblems):
    """Bindings whose declared type does not match the node's DataType."""

    summary = "type mismatch"


class MonitoringRefused(TagProblems):
    """Subscribed bindings the server will not monitor as asked (e.g. a deadband it refuses)."""

    summary = "monitoring refused"


def check_tag(tag: OpcuaTag) -> ua.NodeId:
    where = f"tag {tag.name!r}"
    try:
        variant_for(tag.type)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    if tag.deadband_type not in DEADBANDS:
        raise ValueError(f"{where}: deadband_type must be one of {', '.join(DEADBANDS)}")
    if not math.isfinite(tag.deadband) or tag.deadband < 0:
        raise ValueError(f"{where}: deadband must be a finite number >= 0")
    if tag.deadband_type != "none" and tag.type in ("bool", "string"):
        raise ValueError(f"{where}: a deadband applies to numbers, not {tag.type}")
    if tag.deadband_type == "percent" and tag.deadband > 100:
        raise ValueError(f"{where}: a percent deadband is 0..100")
    if tag.publishing_interval_ms < 0 or tag.sampling_interval_ms < 0 or tag.queue_size < 0:
        raise ValueError(f"{where}: intervals and queue_size must be >= 0")
    try:
        return ua.NodeId.from_string(tag.node)
    except (ua.UaStringParsingError, ValueError):
        raise ValueError(f"{where}: {tag.node!r} is not a NodeId (e.g. 'ns=2;s=Line1.X')") from None
