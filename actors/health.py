"""Health of every component, kept across restarts of the actor that reports it.

An actor instance dies and is replaced on restart; its health record lives here so
the restart count, the time of the last change and the "logged once" state survive.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

import msgspec

from controller.clock import Clock

if TYPE_CHECKING:
    from actors.bus import Bus

__all__ = ["ComponentHealth", "HealthRegistry", "HealthState", "overall_status"]

log = logging.getLogger("takt.health")


class HealthState(enum.StrEnum):
    UNKNOWN = "UNKNOWN"
    UP = "UP"
    DOWN = "DOWN"
    RESET = "RESET"


class ComponentHealth(msgspec.Struct, frozen=True, kw_only=True):
    state: HealthState
    since_us: int
    restarts: int
    last_error: str | None
    mailbox: int
    handled: int
    errors: int
    critical: bool


class _Record:
    __slots__ = ("critical", "last_error", "restarts", "since_us", "state", "stats")

    def __init__(self, now_us: int, critical: bool) -> None:
        self.state = HealthState.UNKNOWN
        self.since_us = now_us
        self.restarts = 0
        self.last_error: str | None = None
        self.critical = critical
        self.stats: Callable[[], tuple[int, int, int]] | None = None


class HealthRegistry:
    def __init__(self, clock: Clock, bus: Bus | None = None) -> None:
        self._clock = clock
        self._bus = bus
        self._lock = threading.Lock()
        self._records: dict[str, _Record] = {}

    def register(self, name: str, *, critical: bool = False) -> None:
        with self._lock:
            rec = self._records.get(name)
            if rec is None:
                self._records[name] = _Record(self._clock.now_us(), critical)
            else:
                rec.critical = rec.critical or critical

    def attach(self, name: str, stats: Callable[[], tuple[int, int, int]]) -> None:
        """Point the record at the live instance's (mailbox, handled, errors) reader."""
        with self._lock:
            self._rec(name).stats = stats

    def set_state(self, name: str, state: HealthState, error: str | None = None, *,
                  stopped: bool = False) -> None:
        """Record a state change; 'unavailable' and 'back' are logged once per transition.

        `stopped`: DOWN because it was stopped on purpose (shutdown), not a fault.
        """
        with self._lock:
            rec = self._rec(name)
            previous = rec.state
            if error is not None:
                rec.last_error = error
            if previous == state:
                return
            rec.state = state
            rec.since_us = self._clock.now_us()
        if stopped:
            log.info("%s stopped", name, extra={"actor": name})
        elif state == HealthState.DOWN:
            log.warning("%s unavailable: %s", name, error or "stopped", extra={"actor": name})
        elif state == HealthState.UP and previous in (HealthState.DOWN, HealthState.RESET):
            log.info("%s back", name, extra={"actor": name})
        if self._bus is not None:
            self._bus.publish(
                f"health.{name}",
                {"state": state.value, "previous": previous.value, "error": error,
                 "stopped": stopped},
                source=name,
                durable=HealthState.DOWN in (state, previous),
            )

    def forget(self, name: str) -> None:
        """Drop a component that was removed from the station (not merely stopped)."""
        with self._lock:
            self._records.pop(name, None)

    def record_restart(self, name: str) -> int:
        with self._lock:
            rec = self._rec(name)
            rec.restarts += 1
            return rec.restarts

    def state(self, name: str) -> HealthState:
        with self._lock:
            rec = self._records.get(name)
            return rec.state if rec else HealthState.UNKNOWN

    def snapshot(self) -> dict[str, ComponentHealth]:
        with self._lock:
            items = list(self._records.items())
        return {name: _report(rec) for name, rec in items}

    def component(self, name: str) -> ComponentHealth:
        with self._lock:
            rec = self._rec(name)
        return _report(rec)

    def _rec(self, name: str) -> _Record:
        rec = self._records.get(name)
        if rec is None:
            rec = self._records[name] = _Record(self._clock.now_us(), False)
        return rec


def _report(rec: _Record) -> ComponentHealth:
    mailbox, handled, errors = rec.stats() if rec.stats else (0, 0, 0)
    return ComponentHealth(
        state=rec.state, since_us=rec.since_us, restarts=rec.restarts,
        last_error=rec.last_error, mailbox=mailbox, handled=handled, errors=errors,
        critical=rec.critical,
    )


def overall_status(components: dict[str, ComponentHealth]) -> str:
    """healthy: all UP; unhealthy: a critical component not UP; degraded otherwise."""
    if any(c.critical and c.state != HealthState.UP for c in components.values()):
        return "unhealthy"
    if all(c.state == HealthState.UP for c in components.values()):
        return "healthy"
    return "degraded"
