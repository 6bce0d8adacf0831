"""Supervision policy as pure code: which children restart, when, and when to give up.

OTP semantics (pykka has none): restart types, strategies, restart intensity and
exponential backoff with jitter that resets after a stable period.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass

__all__ = [
    "Backoff",
    "IntensityWindow",
    "Restart",
    "RestartIntensity",
    "Strategy",
    "restart_set",
    "should_restart",
]


class Restart(enum.StrEnum):
    PERMANENT = "permanent"  # always restarted
    TRANSIENT = "transient"  # restarted only after an abnormal exit
    TEMPORARY = "temporary"  # never restarted


class Strategy(enum.StrEnum):
    ONE_FOR_ONE = "one_for_one"  # only the failed child restarts
    REST_FOR_ONE = "rest_for_one"  # the failed child and every child started after it


def should_restart(restart: Restart, abnormal: bool) -> bool:
    return restart is Restart.PERMANENT or (restart is Restart.TRANSIENT and abnormal)


def restart_set(strategy: Strategy, order: list[str], failed: str) -> list[str]:
    """The children to restart, in start order."""
    if strategy is Strategy.ONE_FOR_ONE:
        return [failed]
    return order[order.index(failed):]


@dataclass(frozen=True)
class RestartIntensity:
    """At most `max_restarts` restarts within `within_s` seconds, else fail upward."""

    max_restarts: int = 3
    within_s: float = 5.0


class IntensityWindow:
    def __init__(self, intensity: RestartIntensity) -> None:
        self.intensity = intensity
        self._times: deque[float] = deque()

    def record(self, now_s: float) -> bool:
        """Count a restart at `now_s`; False when that exceeds the intensity."""
        self._times.append(now_s)
        horizon = now_s - self.intensity.within_s
        while self._times and self._times[0] <= horizon:
            self._times.popleft()
        return len(self._times) <= self.intensity.max_restarts

    @property
    def recent(self) -> int:
        return len(self._times)


@dataclass(frozen=True)
class Backoff:
    """delay = min(max, min * 2^n) * (1 + u * jitter), u in [0, 1); n resets when stable."""

    min_s: float = 0.1
    max_s: float = 5.0
    jitter: float = 0.2
    stable_s: float = 30.0

    def delay(self, attempt: int, u: float) -> float:
        base = self.max_s if attempt >= 64 else min(self.max_s, self.min_s * 2.0**attempt)
        return base * (1.0 + u * self.jitter)

    def next_attempt(self, attempt: int, ran_for_s: float) -> int:
        """The attempt number for the next restart, given how long the child last ran."""
        return 0 if ran_for_s >= self.stable_s else attempt + 1
