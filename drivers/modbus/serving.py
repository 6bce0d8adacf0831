"""Stopping a pymodbus TCP server without leaving a connection open (Takt's server, the sim)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

__all__ = ["settle", "stop_tcp_server"]


async def settle() -> None:
    """A handful of loop turns: enough for asyncio's accept -> connection_made and
    close -> connection_lost callback chains (each two or three call_soon hops)."""
    for _ in range(10):
        await asyncio.sleep(0)


async def stop_tcp_server(server: Any) -> None:
    """Stop accepting, let accepts in flight finish, then close every connection.

    pymodbus closes only handlers whose connection_made has run, and asyncio 3.11 drops
    (without closing) a connection whose accept finishes after Server.close(); the kernel
    resets connections still in the backlog, and clients see the rest closed at once.
    """
    loop = asyncio.get_running_loop()
    for sock in cast(asyncio.Server, server.transport).sockets:
        loop.remove_reader(sock.fileno())
    await settle()
    await server.shutdown()
    await settle()
