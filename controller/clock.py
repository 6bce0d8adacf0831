"""The one clock every actor uses: real time in production, virtual time in tests and replay.

Timers run their callbacks on the clock's own thread (real) or on the thread that
advances time (virtual); callbacks must be quick and non-blocking, typically a `tell`.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from typing import Protocol

__all__ = ["Clock", "RealClock", "TimerHandle", "VirtualClock"]


class TimerHandle:
    """A scheduled callback; `cancel()` is safe from any thread and idempotent."""

    __slots__ = ("callback", "cancelled", "due_us")

    def __init__(self, due_us: int, callback: Callable[[], None]) -> None:
        self.due_us = due_us
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Clock(Protocol):
    def now_us(self) -> int:
        """Microseconds since the Unix epoch (UTC)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back; for durations and windows."""
        ...

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> TimerHandle: ...

    def sleep_until(self, due_us: int) -> None: ...

    def close(self) -> None: ...


class _TimerQueue:
    """Heap of timers ordered by due time, then by scheduling order (deterministic ties)."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, TimerHandle]] = []
        self._order = itertools.count()

    def push(self, handle: TimerHandle) -> None:
        heapq.heappush(self._heap, (handle.due_us, next(self._order), handle))

    def next_due(self) -> int | None:
        while self._heap and self._heap[0][2].cancelled:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now_us: int) -> list[TimerHandle]:
        due: list[TimerHandle] = []
        while self._heap and self._heap[0][0] <= now_us:
            handle = heapq.heappop(self._heap)[2]
            if not handle.cancelled:
                due.append(handle)
        return due

    def __len__(self) -> int:
        return sum(1 for _, _, h in self._heap if not h.cancelled)


class RealClock:
    """Wall-clock time; one daemon thread fires all timers (no thread per timer)."""

    def __init__(self) -> None:
        self._timers = _TimerQueue()
        self._cond = threading.Condition()
        self._closed = False
        # Offset so monotonic() differences map onto wall-clock microseconds for timers.
        self._thread = threading.Thread(target=self._run, name="takt-clock", daemon=True)
        self._thread.start()

    def now_us(self) -> int:
        return time.time_ns() // 1000

    def monotonic(self) -> float:
        return time.monotonic()

    def _mono_us(self) -> int:
        return time.monotonic_ns() // 1000

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> TimerHandle:
        handle = TimerHandle(self._mono_us() + max(0, int(delay_s * 1_000_000)), callback)
        with self._cond:
            self._timers.push(handle)
            self._cond.notify()
        return handle

    def sleep_until(self, due_us: int) -> None:
        delay = (due_us - self.now_us()) / 1_000_000
        if delay > 0:
            time.sleep(delay)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed:
                    due = self._timers.next_due()
                    now = self._mono_us()
                    if due is not None and due <= now:
                        break
                    self._cond.wait(None if due is None else (due - now) / 1_000_000)
                if self._closed:
                    return
                fired = self._timers.pop_due(self._mono_us())
            for handle in fired:
                _fire(handle)


class VirtualClock:
    """Time that moves only when told to: `advance()`, `advance_to_next()`, `run_until_idle()`."""

    def __init__(self, start_us: int = 1_767_225_600_000_000) -> None:  # 2026-01-01T00:00Z
        self._now_us = start_us
        self._timers = _TimerQueue()
        self._cond = threading.Condition()

    def now_us(self) -> int:
        return self._now_us

    def monotonic(self) -> float:
        return self._now_us / 1_000_000

    def call_later(self, delay_s: float, callback: Callable[[], None]) -> TimerHandle:
        handle = TimerHandle(self._now_us + max(0, int(delay_s * 1_000_000)), callback)
        with self._cond:
            self._timers.push(handle)
        return handle

    def sleep_until(self, due_us: int) -> None:
        with self._cond:
            self._cond.wait_for(lambda: self._now_us >= due_us)

    def close(self) -> None:
        pass

    def pending_timers(self) -> int:
        with self._cond:
            return len(self._timers)

    def next_due_us(self) -> int | None:
        with self._cond:
            return self._timers.next_due()

    def advance(self, seconds: float) -> int:
        """Move time forward, firing every timer that falls due on the way, in order."""
        return self.advance_to(self._now_us + int(seconds * 1_000_000))

    def advance_to(self, target_us: int) -> int:
        fired = 0
        while True:
            with self._cond:
                due = self._timers.next_due()
                if due is None or due > target_us:
                    self._now_us = max(self._now_us, target_us)
                    self._cond.notify_all()
                    return fired
                self._now_us = max(self._now_us, due)
                handles = self._timers.pop_due(self._now_us)
                self._cond.notify_all()
            for handle in handles:
                _fire(handle)
                fired += 1

    def advance_to_next(self) -> bool:
        """Jump to the next timer and fire it (and any due at the same instant)."""
        due = self.next_due_us()
        if due is None:
            return False
        self.advance_to(due)
        return True

    def run_until_idle(
        self,
        wait_idle: Callable[[], bool],
        *,
        until_us: int | None = None,
        max_steps: int = 1_000_000,
    ) -> None:
        """Alternate 'wait until every mailbox is empty' and 'jump to the next timer'.

        This is what makes replay and timing tests deterministic: time never moves
        while any actor still has work.
        """
        for _ in range(max_steps):
            if not wait_idle():
                raise TimeoutError("actors did not become idle")
            due = self.next_due_us()
            if due is None or (until_us is not None and due > until_us):
                if until_us is not None:
                    self.advance_to(until_us)
                    if not wait_idle():
                        raise TimeoutError("actors did not become idle")
                return
            self.advance_to(due)
        raise RuntimeError("run_until_idle: too many steps (a timer that re-arms at zero delay?)")


def _fire(handle: TimerHandle) -> None:
    if handle.cancelled:
        return
    try:
        handle.callback()
    except Exception:  # a timer callback must never kill the clock thread
        import logging

        logging.getLogger("takt.clock").exception("timer callback failed")
