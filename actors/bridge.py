"""trio -> actor asks without holding a worker thread.

The request carries a reply callback. The actor calls it on its own thread; the
callback hands the answer to the trio run with `run_sync_soon`, which sets a
`trio.Event`. A cancelled or timed-out caller simply stops waiting; a late answer
lands in an abandoned slot and is dropped.
"""

from __future__ import annotations

from typing import Any

import pykka
import trio

from actors.runtime import AskTimeout, Request, Runtime, actor_name, tell

__all__ = ["ask"]


class _Slot:
    __slots__ = ("error", "event", "result")

    def __init__(self) -> None:
        self.event = trio.Event()
        self.result: Any = None
        self.error: BaseException | None = None


async def ask(runtime: Runtime, ref: pykka.ActorRef[Any], message: Any,
              timeout: float = 5.0) -> Any:
    """Ask an actor from trio; re-raises the actor's error here, AskTimeout on timeout."""
    token = trio.lowlevel.current_trio_token()
    slot = _Slot()

    def settle() -> None:
        slot.event.set()

    def reply(result: Any, error: BaseException | None) -> None:
        slot.result, slot.error = result, error
        try:
            token.run_sync_soon(settle)
        except trio.RunFinishedError:
            pass  # the trio run has ended; nobody is waiting any more

    tell(runtime, ref, Request(message, reply))  # raises ActorUnavailable at once if dead
    with trio.move_on_after(timeout) as scope:
        await slot.event.wait()
    if scope.cancelled_caught:
        raise AskTimeout(f"{actor_name(ref)} did not answer {type(message).__name__} in {timeout}s")
    if slot.error is not None:
        raise slot.error
    return slot.result
