"""Stopping an asyncua server promptly and completely (shared by Takt's server and the sim)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

__all__ = ["stop_server"]


async def stop_server(server: Any) -> None:
    """Stop accepting first, then close every connection and stop the server.

    asyncua's own stop closes the connections it knows, then the listener, then waits
    (Python 3.11) for every connection to end: one accepted in between is never closed and
    the stop hangs. Its ServerStatus clock task also holds a stop for up to a second.
    """
    listener = getattr(getattr(server, "bserver", None), "_server", None)
    if listener is not None:
        listener.close()  # no new connections from here on
        for _ in range(10):  # let accepts in flight reach connection_made and register
            await asyncio.sleep(0)
    iserver = getattr(server, "iserver", None)
    clock = getattr(iserver, "time_task", None)
    if clock is not None:
        iserver.time_task = None  # type: ignore[union-attr]
        clock.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await clock
    await server.stop()
    for _ in range(10):  # run the transports' close callbacks so clients see the FIN now
        await asyncio.sleep(0)
