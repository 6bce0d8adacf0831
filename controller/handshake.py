"""The four-phase request/ack/done/clear handshake between Takt and a PLC (pure).

Both sides hold level flags until the other side has answered, so nothing relies on a
pulse being seen: the requester writes its data, then raises `request`; the responder
reads the data, raises `ack`, works, writes its result, raises `done`; the requester
reads the result and drops `request`; the responder drops `done` and `ack`. Each phase
that waits on the PLC has a timeout, so a PLC that stops mid-handshake is reported.

The machines do no I/O: they return effects (`Write`, `Read`, `Report`) that the PLC
actor carries out in order, feeding `Read` results back with `data_read`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any

import msgspec

__all__ = [
    "Effect",
    "HandshakeBusy",
    "Phase",
    "Read",
    "Report",
    "Requester",
    "Responder",
    "Write",
]


class Phase(StrEnum):
    IDLE = "idle"
    READING = "reading"  # waiting for the data (responder) or result (requester) read
    BUSY = "busy"  # responder: acked, Takt is working on it
    DONE = "done"  # responder: done raised, waiting for the PLC to drop request
    REQUESTED = "requested"  # requester: request raised, waiting for ack
    ACKED = "acked"  # requester: waiting for done
    CLEARING = "clearing"  # requester: request dropped, waiting for ack and done to drop
    FAULTED = "faulted"  # requester: timed out; waits for the PLC's flags to drop


class Write(msgspec.Struct, frozen=True):
    signal: str
    value: Any


class Read(msgspec.Struct, frozen=True):
    signals: tuple[str, ...]


class Report(msgspec.Struct, frozen=True):
    event: str  # requested, withdrawn, done, cleared, timeout, stalled, recovered
    detail: Mapping[str, Any] = {}


Effect = Write | Read | Report


class HandshakeBusy(RuntimeError):
    """A start or completion that does not fit the current phase."""


class _Machine:
    def __init__(self, name: str, *, request: str, ack: str, done: str,
                 data: Sequence[str] = (), result: Sequence[str] = (),
                 timeout_us: int = 5_000_000) -> None:
        self.name = name
        self.request, self.ack, self.done = request, ack, done
        self.data, self.result = tuple(data), tuple(result)
        self.timeout_us = timeout_us
        self.phase = Phase.IDLE
        self.deadline_us: int | None = None
        self.stalled = False
        self.levels: dict[str, bool] = {}
        self.completed = 0
        self.faults = 0

    @property
    def flags(self) -> tuple[str, ...]:
        """The PLC-driven flags this machine reacts to."""
        raise NotImplementedError

    def _enter(self, phase: Phase, now_us: int | None = None) -> None:
        self.phase = phase
        self.stalled = False
        self.deadline_us = None if now_us is None else now_us + self.timeout_us

    def _level(self, signal: str) -> bool:
        return self.levels.get(signal, False)

    def status(self) -> dict[str, Any]:
        return {"name": self.name, "phase": self.phase.value, "stalled": self.stalled,
                "completed": self.completed, "faults": self.faults}


class Responder(_Machine):
    """The PLC requests, Takt answers: Takt owns `ack`, `done` and the `result` signals."""

    @property
    def flags(self) -> tuple[str, ...]:
        return (self.request,)

    def reset(self) -> list[Effect]:
        """At (re)connect: drop our flags; a request still raised is then served afresh."""
        self._enter(Phase.IDLE)
        self.levels.clear()
        return [Write(self.done, False), Write(self.ack, False)]

    def flag_changed(self, signal: str, value: bool, now_us: int) -> list[Effect]:
        if signal != self.request:
            return []
        self.levels[signal] = value
        if value and self.phase is Phase.IDLE:
            self._enter(Phase.READING)
            return [Read(self.data)]
        if not value and self.phase in (Phase.READING, Phase.BUSY):
            self._enter(Phase.IDLE)
            return [Write(self.ack, False), Report("withdrawn")]
        if not value and self.phase is Phase.DONE:
            self._enter(Phase.IDLE)
            self.completed += 1
            return [Write(self.done, False), Write(self.ack, False), Report("cleared")]
        return []

    def data_read(self, values: Mapping[str, Any], now_us: int) -> list[Effect]:
        if self.phase is not Phase.READING:
            return []
        self._enter(Phase.BUSY)
        return [Write(self.ack, True), Report("requested", {"data": dict(values)})]

    def complete(self, result: Mapping[str, Any], now_us: int) -> list[Effect]:
        """Takt's answer: result signals first, then `done` (data before flags)."""
        if self.phase is not Phase.BUSY:
            raise HandshakeBusy(f"handshake {self.name} is {self.phase}, not waiting for a result")
        unknown = set(result) - set(self.result)
        if unknown:
            raise ValueError(f"handshake {self.name} has no result signal {sorted(unknown)}")
        self._enter(Phase.DONE, now_us)
        writes: list[Effect] = [Write(name, value) for name, value in result.items()]
        return [*writes, Write(self.done, True), Report("done", {"result": dict(result)})]

    def tick(self, now_us: int) -> list[Effect]:
        if self.phase is Phase.DONE and not self.stalled and self._due(now_us):
            self.stalled = True
            self.faults += 1
            return [Report("stalled", {"waiting_for": f"{self.request} to drop",
                                       "timeout_ms": self.timeout_us // 1000})]
        return []

    def _due(self, now_us: int) -> bool:
        return self.deadline_us is not None and now_us >= self.deadline_us


class Requester(_Machine):
    """Takt requests, the PLC answers: Takt owns `request` and the `data` signals."""

    @property
    def flags(self) -> tuple[str, ...]:
        return (self.ack, self.done)

    def reset(self) -> list[Effect]:
        """At (re)connect: withdraw any request; wait for the PLC's flags to drop if raised."""
        self._enter(Phase.FAULTED if self._busy_plc() else Phase.IDLE)
        return [Write(self.request, False)]

    def start(self, data: Mapping[str, Any], now_us: int) -> list[Effect]:
        """Data first, then `request`."""
        if self.phase is not Phase.IDLE or self._busy_plc():
            raise HandshakeBusy(
                f"handshake {self.name} is {self.phase}"
                + (" and the PLC still holds ack/done" if self._busy_plc() else "")
            )
        unknown = set(data) - set(self.data)
        if unknown:
            raise ValueError(f"handshake {self.name} has no data signal {sorted(unknown)}")
        self._enter(Phase.REQUESTED, now_us)
        writes: list[Effect] = [Write(name, value) for name, value in data.items()]
        return [*writes, Write(self.request, True), Report("requested", {"data": dict(data)})]

    def flag_changed(self, signal: str, value: bool, now_us: int) -> list[Effect]:
        if signal not in self.flags:
            return []
        self.levels[signal] = value
        if signal == self.ack and value and self.phase is Phase.REQUESTED:
            self._enter(Phase.ACKED, now_us)
            return []
        if signal == self.done and value and self.phase in (Phase.REQUESTED, Phase.ACKED):
            self._enter(Phase.READING)
            return [Read(self.result)]
        if not self._busy_plc() and self.phase in (Phase.CLEARING, Phase.FAULTED):
            recovered = self.phase is Phase.FAULTED
            self._enter(Phase.IDLE)
            if recovered:
                return [Report("recovered")]
            self.completed += 1
            return [Report("cleared")]
        return []

    def data_read(self, values: Mapping[str, Any], now_us: int) -> list[Effect]:
        if self.phase is not Phase.READING:
            return []
        self._enter(Phase.CLEARING, now_us)
        return [Report("done", {"result": dict(values)}), Write(self.request, False)]

    def tick(self, now_us: int) -> list[Effect]:
        if self.deadline_us is None or now_us < self.deadline_us:
            return []
        if self.phase in (Phase.REQUESTED, Phase.ACKED):
            waited = self.ack if self.phase is Phase.REQUESTED else self.done
            self.faults += 1
            # FAULTED waits for the PLC's flags to drop; with none raised there is nothing
            # to wait for (and no change would ever come to end the wait).
            self._enter(Phase.FAULTED if self._busy_plc() else Phase.IDLE)
            return [Write(self.request, False),
                    Report("timeout", {"waiting_for": waited,
                                       "timeout_ms": self.timeout_us // 1000})]
        if self.phase is Phase.CLEARING and not self.stalled:
            self.stalled = True
            self.faults += 1
            return [Report("stalled", {"waiting_for": f"{self.ack} and {self.done} to drop",
                                       "timeout_ms": self.timeout_us // 1000})]
        return []

    def _busy_plc(self) -> bool:
        return self._level(self.ack) or self._level(self.done)
