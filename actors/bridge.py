"""trio -> actor asks without holding a worker thread.

The request carries a reply callback. The actor calls it on its own thread; the
callback queues the answered slot and wakes the trio run, which reschedules the
waiting task. Wake-ups are batched: while one is pending, further answers only join
the queue, so a burst of answers costs one `run_sync_soon` (one write to trio's wake-up
socket), not one each. A cancelled or timed-out caller simply stops waiting; a late
answer lands in an abandoned slot and is dropped.
"""

from __future__ import annotations

import collections
import threading
from typing import Any

import pykka
import trio

from actors.runtime import AskTimeout, Request, Runtime, actor_name, tell

__all__ = ["ask"]


class _Slot:
    __slots__ = ("error", "result", "task")

    def __init__(self) -> None:
        # The waiting task, until it is woken or gives up (then None: nothing to wake).
        self.task: trio.lowlevel.Task | None = trio.lowlevel.current_task()
        self.result: Any = None
        self.error: BaseException | None = None


class _Waker:
    """The answered slots of one trio run, and at most one pending wake-up for them."""

    def __init__(self, token: trio.lowlevel.TrioToken) -> None:
        self._token = token
        self._ready: collections.deque[_Slot] = collections.deque()
        self._lock = threading.Lock()
        self._scheduled = False

    def post(self, slot: _Slot) -> None:  # any thread
        self._ready.append(slot)
        with self._lock:
            if self._scheduled:
                return
            self._scheduled = True
        try:
            self._token.run_sync_soon(self._drain)
        except trio.RunFinishedError:
            pass  # the trio run has ended; nobody is waiting any more

    def _drain(self) -> None:  # the trio thread
        with self._lock:
            self._scheduled = False  # before popping: a later post schedules a new drain
        ready = self._ready
        while ready:
            slot = ready.popleft()
            if slot.task is not None:
                trio.lowlevel.reschedule(slot.task)
                slot.task = None


_WAKER: trio.lowlevel.RunVar[_Waker] = trio.lowlevel.RunVar("takt_bridge_waker")


def _waker() -> _Waker:
    try:
        return _WAKER.get()
    except LookupError:
        waker = _Waker(trio.lowlevel.current_trio_token())
        _WAKER.set(waker)
        return waker


async def ask(runtime: Runtime, ref: pykka.ActorRef[Any], message: Any,
              timeout: float = 5.0) -> Any:
    """Ask an actor from trio; re-raises the actor's error here, AskTimeout on timeout."""
    slot = _Slot()
    post = _waker().post

    def reply(result: Any, error: BaseException | None) -> None:
        slot.result, slot.error = result, error
        post(slot)

    def abort(_: Any) -> trio.lowlevel.Abort:
        slot.task = None  # timed out or cancelled: a late answer wakes nobody
        return trio.lowlevel.Abort.SUCCEEDED

    tell(runtime, ref, Request(message, reply))  # raises ActorUnavailable at once if dead
    # A lighter wait than trio.Event: the answer reschedules this very task. The drain
    # cannot run before we park here, because nothing between tell and park yields.
    with trio.move_on_after(timeout) as scope:
        await trio.lowlevel.wait_task_rescheduled(abort)
    if scope.cancelled_caught:
        raise AskTimeout(f"{actor_name(ref)} did not answer {type(message).__name__} in {timeout}s")
    if slot.error is not None:
        raise slot.error
    return slot.result
