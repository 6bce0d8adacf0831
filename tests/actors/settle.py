"""Waiting for real sockets while the runtime runs on virtual time."""

from __future__ import annotations

import time
from collections.abc import Callable

from actors.runtime import Runtime
from controller.clock import VirtualClock


def settle(runtime: Runtime, vclock: VirtualClock, until: Callable[[], bool], *,
           step_s: float = 0.01, max_virtual_s: float = 5.0, real_timeout_s: float = 10.0
           ) -> None:
    """Advance virtual time in small steps until `until()` holds.

    Bytes on a real socket take real time (an accept thread, a peer's answer), which no
    amount of virtual time brings sooner: once `max_virtual_s` is spent, keep waiting in
    real time (up to `real_timeout_s` in all) without moving the clock further.
    """
    deadline = time.monotonic() + real_timeout_s
    advanced = 0.0
    while True:
        assert runtime.wait_idle(5)
        if until():
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not met")
        if advanced < max_virtual_s:
            vclock.advance(step_s)
            advanced += step_s
        time.sleep(0.001)  # let socket threads run; the clock is what the actors see
