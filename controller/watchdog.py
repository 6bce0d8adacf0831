"""Heartbeat counters between Takt and a PLC, both ways (pure; times in microseconds).

Takt counts a register up every period so the PLC can watch Takt; the PLC counts one up so
Takt can watch the PLC. A counter, not a toggling bit, because a reader that polls slower
than the writer toggles would see a live bit as stuck half the time.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["HeartbeatWatch", "next_beat"]

_WRAP = 0x10000  # heartbeat registers are 16 bits on every PLC Takt talks to


def next_beat(value: int) -> int:
    """The counter value after `value`, wrapping at 16 bits."""
    return (value + 1) % _WRAP


@dataclass
class HeartbeatWatch:
    """Marks the peer stale when its counter has not changed for `stale_periods` periods.

    The clock starts at the first observation (or at `start`), so a PLC that is slow to send
    its first value gets the same grace as one whose counter stops.
    """

    period_us: int
    stale_periods: int = 3
    last_value: int | None = None
    changed_at_us: int = 0
    changes: int = 0

    def __post_init__(self) -> None:
        if self.period_us <= 0 or self.stale_periods < 1:
            raise ValueError("period_us and stale_periods must be positive")

    @property
    def limit_us(self) -> int:
        return self.period_us * self.stale_periods

    def start(self, now_us: int) -> None:
        """Begin watching (at connect): the peer has `limit_us` to show a change."""
        self.changed_at_us = now_us
        self.last_value = None

    def observe(self, value: int, now_us: int) -> None:
        """A counter value as read from the peer."""
        if value != self.last_value:
            if self.last_value is not None:
                self.changes += 1
            self.last_value = value
            self.changed_at_us = now_us

    def stale(self, now_us: int) -> bool:
        return now_us - self.changed_at_us >= self.limit_us

    def describe(self, now_us: int) -> str:
        quiet_s = (now_us - self.changed_at_us) / 1e6
        return (
            f"heartbeat counter stale: no change for {quiet_s:.1f} s "
            f"({self.stale_periods} periods of {self.period_us / 1e6:g} s)"
        )
