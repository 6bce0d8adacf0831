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
from state.journal import JournalRow, read_journal

__all__ = ["QueryActor", "ReadJournal", "pick_query_actor"]

PREFIX = "query:"


class ReadJournal(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    from_seq: int = 0
    topic_prefix: str | None = None
    limit: int = 100


class QueryActor(DatabaseActor):
    @handles(ReadJournal)
    def _journal(self, msg: ReadJournal) -> list[JournalRow]:
        return read_journal(self.con, from_seq=msg.from_seq, topic_prefix=msg.topic_prefix,
                            limit=msg.limit)


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
