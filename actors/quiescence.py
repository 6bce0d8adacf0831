"""Counts messages in flight across all actors, so tests and replay can wait until idle.

A message is counted when it is sent (tell, ask, bus delivery, timer) and uncounted
after its handler returns. A handler's own sends are counted before its message is
uncounted, so the count never touches zero while work is still cascading.

This sits on every actor hop, so it takes no lock: each thread keeps its own pair of
counters (only that thread writes them). Idle means the sum of `done` equals the sum
of `sent`; reading every `done` before every `sent` makes that test safe, because both
sums only grow and done never exceeds sent: if the `done` read before equals the
`sent` read after, nothing was in flight at the moment the `done` reading ended.
"""

from __future__ import annotations

import threading
import time
import weakref

__all__ = ["InFlight"]


class _Counters:
    __slots__ = ("done", "sent", "thread")

    def __init__(self) -> None:
        self.sent = 0
        self.done = 0
        self.thread = weakref.ref(threading.current_thread())


class InFlight:
    def __init__(self) -> None:
        self._local = threading.local()
        self._lock = threading.Lock()  # guards the registry only, never the counting
        self._all: list[_Counters] = []
        self._retired_sent = 0
        self._retired_done = 0

    def _mine(self) -> _Counters:
        try:
            return self._local.c  # type: ignore[no-any-return]
        except AttributeError:
            c = self._local.c = _Counters()
            with self._lock:
                self._all.append(c)
            return c

    def counters(self) -> _Counters:
        """This thread's own counters, for a thread that counts on every message (an actor)."""
        return self._mine()

    def add(self, n: int = 1) -> None:
        try:
            self._local.c.sent += n
        except AttributeError:  # this thread's first message
            self._mine().sent += n

    def done(self, n: int = 1) -> None:
        try:
            self._local.c.done += n
        except AttributeError:
            self._mine().done += n

    @property
    def count(self) -> int:
        with self._lock:
            self._retire_dead_threads()
            done = self._retired_done + sum(c.done for c in self._all)
            sent = self._retired_sent + sum(c.sent for c in self._all)
        return sent - done

    def wait_idle(self, timeout: float | None = 10.0) -> bool:
        """Block until nothing is in flight; False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.00005
        while True:
            count = self.count
            if count == 0:
                return True
            if count < 0:
                raise RuntimeError("in-flight count went negative: a message uncounted twice")
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(pause)
            pause = min(pause * 2, 0.002)

    def _retire_dead_threads(self) -> None:
        # Counters of finished threads are final: fold them in so the list stays short
        # however often actors restart.
        alive = []
        for c in self._all:
            if c.thread() is None or not c.thread().is_alive():  # type: ignore[union-attr]
                self._retired_sent += c.sent
                self._retired_done += c.done
            else:
                alive.append(c)
        self._all = alive
