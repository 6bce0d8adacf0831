"""What the PLC actor is asked and answers: the messages of `actors.plc`, and its errors."""

from __future__ import annotations

from typing import Any

import msgspec

from drivers.errors import DeviceUnavailable

__all__ = [
    "Browse",
    "CompleteHandshake",
    "LinkCounters",
    "LinkTest",
    "NotWritable",
    "PlcInfo",
    "ReadSignals",
    "SignalInput",
    "SignalValue",
    "StartHandshake",
    "TestLink",
    "UnknownHandshake",
    "UnknownSignal",
    "Value",
    "WatchdogExpired",
    "WriteSignal",
]

Value = bool | int | float | str


class SignalInput(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """A decoded value as it came from the PLC (the recorded input)."""

    signal: str
    value: Value


class SignalValue(msgspec.Struct, frozen=True, kw_only=True):
    value: Value | None
    ts_us: int | None
    direction: str


class ReadSignals(msgspec.Struct, frozen=True, tag=True):
    pass


class WriteSignal(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Write an output; with read_back, read it from the PLC again and answer what it holds
    (None if the read failed), so the writer knows the PLC has it."""

    signal: str
    value: Value
    read_back: bool = False


class TestLink(msgspec.Struct, frozen=True, tag=True):
    """Read every bound input once, now, and say how long it took."""


class Browse(msgspec.Struct, frozen=True, tag=True):
    pass


class StartHandshake(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    handshake: str
    data: dict[str, Value] = {}


class CompleteHandshake(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    handshake: str
    result: dict[str, Value] = {}


class LinkTest(msgspec.Struct, frozen=True, kw_only=True):
    ok: bool
    latency_ms: float
    signals_read: int
    error: str | None = None


class LinkCounters(msgspec.Struct, frozen=True, kw_only=True):
    malformed_frames: int
    exception_responses: int
    missed_pulses: int
    polls: int
    poll_max_ms: float
    pushed: int


class PlcInfo(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    state: str
    last_error: str | None
    protocol: str
    address: str
    poll_interval_ms: int
    signals: dict[str, SignalValue]
    counters: LinkCounters
    heartbeat: dict[str, Any] | None
    handshakes: list[dict[str, Any]]


class UnknownSignal(KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class UnknownHandshake(UnknownSignal):
    pass


class NotWritable(ValueError):
    pass


class WatchdogExpired(DeviceUnavailable):
    """The PLC's heartbeat counter stopped: the PLC program is not running."""
