"""An asyncio event loop on a thread of its own, for asyncio-only libraries (asyncua, pymodbus).

Takt's actors are threads, not coroutines, so a driver built on asyncio owns one of these
and its blocking methods hand coroutines to the loop and wait with a timeout.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

__all__ = ["LoopThread"]

_T = TypeVar("_T")


class LoopThread:
    """Runs one event loop in a daemon thread until `stop()`; restartable after stop."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._loop is not None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError(f"{self.name}: loop is not running")
        return self._loop

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError(f"{self.name}: loop already running")
        ready: Future[asyncio.AbstractEventLoop] = Future()

        def main() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            ready.set_result(loop)
            try:
                loop.run_forever()
            finally:
                _cancel_pending(loop)
                loop.close()

        self._thread = threading.Thread(target=main, name=self.name, daemon=True)
        self._thread.start()
        self._loop = ready.result()

    def run(self, coro: Coroutine[Any, Any, _T], timeout_s: float | None) -> _T:
        """Run `coro` on the loop and wait for it; on timeout the coroutine is cancelled."""
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError(f"{self.name}: run() called from the loop's own thread")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout_s)
        except FutureTimeout:
            future.cancel()
            raise TimeoutError(f"{self.name}: no result within {timeout_s} s") from None

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        """Schedule a plain callback on the loop from any thread."""
        self.loop.call_soon_threadsafe(fn, *args)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the loop (pending tasks are cancelled) and join the thread; safe to call twice."""
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        if thread is not threading.current_thread():
            thread.join(timeout_s)


def _cancel_pending(loop: asyncio.AbstractEventLoop) -> None:
    # Give tasks their cancellation so their finally-blocks (socket closes) run.
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in tasks:
        task.cancel()
    if tasks:
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    loop.run_until_complete(loop.shutdown_asyncgens())
