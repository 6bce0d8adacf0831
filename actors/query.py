"""Query actors: readers on their own cursors, so reads never wait behind the writer.

A small pool (`query:0`, `query:1`, ...) shares the read load; `pick_query_actor`
chooses the one with the shortest mailbox.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pykka

from actors.base import handles
from actors.database import DatabaseActor
from actors.runtime import ActorUnavailable, Directory
from state.events import EventFilter, StoredEvent, get_event, list_events, unacked_ids
from state.journal import JournalRow, read_journal

__all__ = ["GetEvent", "QueryActor", "ReadEvents", "ReadJournal", "UnackedEvents",
           "pick_query_actor"]

PREFIX = "query:"


class ReadJournal(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    from_seq: int = 0
    topic_prefix: str | None = None
    limit: int = 100


class ReadEvents(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    filter: EventFilter = EventFilter()
    before_id: int | None = None
    limit: int = 100


class GetEvent(msgspec.Struct, frozen=True, tag=True):
    id: int


class UnackedEvents(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    filter: EventFilter = EventFilter()
    up_to_id: int
    limit: int = 10_000


class QueryActor(DatabaseActor):
    @handles(ReadJournal)
    def _journal(self, msg: ReadJournal) -> list[JournalRow]:
        return read_journal(self.con, from_seq=msg.from_seq, topic_prefix=msg.topic_prefix,
                            limit=msg.limit)

    @handles(ReadEvents)
    def _events(self, msg: ReadEvents) -> list[StoredEvent]:
        return list_events(self.con, msg.filter, before_id=msg.before_id, limit=msg.limit)

    @handles(GetEvent)
    def _event(self, msg: GetEvent) -> StoredEvent | None:
        return get_event(self.con, msg.id)

    @handles(UnackedEvents)
    def _unacked(self, msg: UnackedEvents) -> list[int]:
        return unacked_ids(self.con, msg.filter, up_to_id=msg.up_to_id, limit=msg.limit)


def pick_query_actor(directory: Directory) -> pykka.ActorRef[Any]:
    """The running query actor with the fewest waiting messages."""
    refs = []
    for name in directory.names(PREFIX):
        try:
            refs.append(directory.get(name))
        except ActorUnavailable:
            continue
    if not refs:
        raise ActorUnavailable("no query actor is running")
    return min(refs, key=lambda r: r.actor_inbox.qsize())
