"""The robot's telemetry logs: one bounded list per kind, each entry with its own log id."""

from __future__ import annotations

import itertools
from collections import deque
from typing import Any

import msgspec

from drivers.robot.messages import (
    ActivityLog,
    BatteryLog,
    ConnectivityLog,
    LocationLog,
    LogEntry,
    LogKind,
    SystemLog,
)

__all__ = ["TelemetryLog"]

_TYPES: dict[LogKind, type[msgspec.Struct]] = {
    LogKind.ACTIVITY: ActivityLog,
    LogKind.CONNECTIVITY: ConnectivityLog,
    LogKind.LOCATION: LocationLog,
    LogKind.BATTERY: BatteryLog,
    LogKind.SYSTEM: SystemLog,
}


class TelemetryLog:
    """Keeps the newest `capacity` entries of each kind; log ids rise by one per kind."""

    def __init__(self, *, capacity: int = 500) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self._entries: dict[LogKind, deque[LogEntry]] = {
            kind: deque(maxlen=capacity) for kind in LogKind
        }
        self._ids = {kind: itertools.count(1) for kind in LogKind}
        self.dropped = dict.fromkeys(LogKind, 0)

    def add(self, kind: LogKind, **fields: Any) -> LogEntry:
        """Append an entry of kind built from fields (log_id is assigned here)."""
        entry: LogEntry = _TYPES[kind](log_id=next(self._ids[kind]), **fields)  # type: ignore[assignment]
        entries = self._entries[kind]
        if len(entries) == entries.maxlen:
            self.dropped[kind] += 1
        entries.append(entry)
        return entry

    def latest(self, kind: LogKind, count: int) -> list[LogEntry]:
        """The newest count entries of kind, newest first."""
        entries = self._entries[kind]
        return [entries[-1 - i] for i in range(min(count, len(entries)))]

    def __len__(self) -> int:
        return sum(len(entries) for entries in self._entries.values())
