"""What a NUT UPS reports, as Takt reads it: `ups.status` flags and a summary of the variables.

`ups.status` is a blank-separated list of flags ("OL CHRG", "OB DISCHRG LB"). The flags
Takt knows are those of NUT's developer guide (new-drivers, "Status data"); any other word
is kept apart in `unknown`, never an error, since drivers add their own (ALARM, TEST...).
Numbers follow the protocol's rule: decimal with a dot, no exponent, hex or thousands
separator. A value that breaks it is reported in `problems` and left out, never raised.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from enum import StrEnum

import msgspec

__all__ = [
    "BATTERY_CHARGE",
    "BATTERY_RUNTIME",
    "INPUT_VOLTAGE",
    "UPS_LOAD",
    "UPS_STATUS",
    "StatusFlag",
    "UpsReading",
    "UpsStatus",
    "parse_number",
    "parse_status",
    "reading_from_vars",
]

UPS_STATUS = "ups.status"
BATTERY_CHARGE = "battery.charge"
BATTERY_RUNTIME = "battery.runtime"
INPUT_VOLTAGE = "input.voltage"
UPS_LOAD = "ups.load"

_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)", re.ASCII)
_EXCERPT_CHARS = 40


class StatusFlag(StrEnum):
    """A `ups.status` flag Takt understands."""

    OL = "OL"
    """On line: the load runs from utility power."""
    OB = "OB"
    """On battery: utility power is gone."""
    LB = "LB"
    """Low battery: shutdown is near."""
    HB = "HB"
    """High battery."""
    RB = "RB"
    """The battery needs replacing."""
    CHRG = "CHRG"
    """The battery is charging."""
    DISCHRG = "DISCHRG"
    """The battery is discharging."""
    BYPASS = "BYPASS"
    """On bypass: the load is unprotected."""
    CAL = "CAL"
    """Runtime calibration is running."""
    OFF = "OFF"
    """The UPS output is off."""
    OVER = "OVER"
    """The UPS is overloaded."""
    TRIM = "TRIM"
    """Trimming a high input voltage."""
    BOOST = "BOOST"
    """Boosting a low input voltage."""
    FSD = "FSD"
    """Forced shutdown: upsmon is shutting the systems down (treat as OB LB)."""


_FLAGS = {flag.value: flag for flag in StatusFlag}


class UpsStatus(msgspec.Struct, frozen=True, kw_only=True):
    """The parsed `ups.status`: known flags, and the other words in the order they came."""

    flags: frozenset[StatusFlag] = frozenset()
    unknown: tuple[str, ...] = ()

    @property
    def online(self) -> bool:
        """On utility power (OL and not OB)."""
        return StatusFlag.OL in self.flags and StatusFlag.OB not in self.flags

    @property
    def on_battery(self) -> bool:
        """Running from the battery (OB)."""
        return StatusFlag.OB in self.flags

    @property
    def low_battery(self) -> bool:
        """The UPS says the battery is low (LB)."""
        return StatusFlag.LB in self.flags

    @property
    def shutdown_imminent(self) -> bool:
        """On battery with a low battery, or a forced shutdown: power will go soon."""
        return (self.on_battery and self.low_battery) or StatusFlag.FSD in self.flags


class UpsReading(msgspec.Struct, frozen=True, kw_only=True):
    """The variables Takt acts on, from one LIST VAR; None where the UPS did not say."""

    status: UpsStatus | None = None
    battery_charge: float | None = None
    """Percent, 0..100."""
    battery_runtime_s: int | None = None
    input_voltage: float | None = None
    load: float | None = None
    """Percent of the UPS capacity (`ups.load`); above 100 when overloaded."""
    problems: tuple[str, ...] = ()
    """One line per value that could not be read; the caller counts and logs them."""
    raw: dict[str, str] = msgspec.field(default_factory=dict)
    """Every variable as the UPS sent it."""


def parse_status(text: str) -> UpsStatus:
    """Flags of a `ups.status` value; never raises (unknown words go to `unknown`)."""
    flags: set[StatusFlag] = set()
    unknown: list[str] = []
    for word in text.split():
        flag = _FLAGS.get(word.upper())
        if flag is not None:
            flags.add(flag)
        elif word not in unknown:
            unknown.append(word)
    return UpsStatus(flags=frozenset(flags), unknown=tuple(unknown))


def parse_number(text: str) -> float:
    """A NUT numeric value (`230.1`, `-5`, ` 100 `); ValueError says why not."""
    stripped = text.strip()
    if not _NUMBER.fullmatch(stripped):
        raise ValueError(f"{_excerpt(text)!r} is not a number")
    value = float(stripped)
    if not math.isfinite(value):
        raise ValueError(f"{_excerpt(text)!r} is out of range")
    return value


def reading_from_vars(variables: Mapping[str, str]) -> UpsReading:
    """Summarise a LIST VAR answer; bad values land in `problems`, never in an exception."""
    problems: list[str] = []

    def number(name: str, low: float, high: float = math.inf) -> float | None:
        text = variables.get(name)
        if text is None:
            return None
        try:
            value = parse_number(text)
        except ValueError as exc:
            problems.append(f"{name}: {exc}")
            return None
        if not low <= value <= high:
            problems.append(f"{name}: {_excerpt(text)!r} is outside {low:g}..{high:g}")
            return None
        return value

    status_text = variables.get(UPS_STATUS)
    charge = number(BATTERY_CHARGE, 0, 100)
    runtime = number(BATTERY_RUNTIME, 0)
    return UpsReading(
        status=None if status_text is None else parse_status(status_text),
        battery_charge=charge,
        # Some drivers report fractional seconds; whole seconds are what anyone acts on.
        battery_runtime_s=None if runtime is None else round(runtime),
        input_voltage=number(INPUT_VOLTAGE, 0),
        load=number(UPS_LOAD, 0),
        problems=tuple(problems),
        raw=dict(variables),
    )


def _excerpt(text: str) -> str:
    return text[:_EXCERPT_CHARS] + "..." if len(text) > _EXCERPT_CHARS else text
