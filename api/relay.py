"""Rooms of WebSocket clients that relay messages to each other (seed 003's per-device relay):
pure trio, owned by the facade, touching no device and no store."""

from __future__ import annotations

import itertools

import trio

__all__ = ["RelayHub"]


class RelayHub:
    """Members of a room get what the others send; a member too slow to take it loses it
    (counted), so one stalled client never holds up the rest. Runs in the trio thread only."""

    def __init__(self, queue: int = 256) -> None:
        self._queue = queue
        self._rooms: dict[str, dict[int, trio.MemorySendChannel[bytes]]] = {}
        self._ids = itertools.count(1)
        self.relayed = 0
        self.dropped = 0

    def join(self, room: str) -> tuple[int, trio.MemoryReceiveChannel[bytes]]:
        """A new member of room: its id and the channel its relayed messages arrive on."""
        send, receive = trio.open_memory_channel[bytes](self._queue)
        member = next(self._ids)
        self._rooms.setdefault(room, {})[member] = send
        return member, receive

    def leave(self, room: str, member: int) -> None:
        members = self._rooms.get(room, {})
        send = members.pop(member, None)
        if send is not None:
            send.close()
        if not members:
            self._rooms.pop(room, None)

    def members(self, room: str) -> int:
        return len(self._rooms.get(room, {}))

    def relay(self, room: str, sender: int, message: bytes) -> int:
        """Offer message to every member of room but its sender; how many got it."""
        delivered = 0
        for member, send in self._rooms.get(room, {}).items():
            if member == sender:
                continue
            try:
                send.send_nowait(message)
                delivered += 1
            except trio.WouldBlock:
                self.dropped += 1
        self.relayed += delivered
        return delivered
