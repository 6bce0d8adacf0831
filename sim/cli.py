"""How a simulator runs as a process: start, say `READY <address>`, serve until told to stop."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType

__all__ = ["serve_until_stopped", "stop_on_signals"]


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT, for simulator processes that serve until told."""
    done = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return done


def serve_until_stopped(
    start: Callable[[], object],
    stop: Callable[[], None],
    *,
    program: Callable[[], object] | None = None,
) -> int:
    """Run a simulator until SIGTERM or SIGINT; returns the process exit status.

    start() returns the address clients use, printed as `READY <address>`; an OSError from
    it (a port in use...) is printed to stderr and the status is 1. program(), if given,
    runs once started (the demo PLC program). stop() runs whenever start() succeeded.
    """
    done = stop_on_signals()
    try:
        address = start()
    except OSError as exc:
        print(exc, file=sys.stderr)
        return 1
    try:
        if program is not None:
            program()
        print(f"READY {address}", flush=True)
        # Short waits so the handler's set() is noticed promptly whatever the platform.
        while not done.wait(0.5):
            pass
    finally:
        stop()
    return 0
