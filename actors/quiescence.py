"""Counts messages in flight across all actors, so tests and replay can wait until idle.

A message is counted when it is sent (tell, ask, bus delivery, timer) and uncounted
after its handler returns. A handler's own sends are counted before its message is
uncounted, so the count never touches zero while work is still cascading.
"""

from __future__ import annotations

import threading

__all__ = ["InFlight"]


class InFlight:
    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._count = 0
        self._waiters = 0

    @property
    def count(self) -> int:
        return self._count

    def add(self, n: int = 1) -> None:
        with self._cond:
            self._count += n

    def done(self, n: int = 1) -> None:
        with self._cond:
            self._count -= n
            if self._count < 0:  # a message uncounted twice is a runtime bug, not load
                self._count = 0
                raise RuntimeError("in-flight count went negative")
            if self._count == 0 and self._waiters:
                self._cond.notify_all()

    def wait_idle(self, timeout: float | None = 10.0) -> bool:
        """Block until nothing is in flight; False on timeout."""
        with self._cond:
            self._waiters += 1
            try:
                return self._cond.wait_for(lambda: self._count == 0, timeout)
            finally:
                self._waiters -= 1
