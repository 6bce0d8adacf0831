"""/api/v1/journal: durable events by seq, so a client that saw a gap on /ws can catch up."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from quart import Blueprint
from quart_schema import document_response, tag

from actors.bridge import ask
from actors.query import ReadJournal, pick_query_actor
from api.http import facade, json_response, query
from api.security import requires
from controller.access import Role
from controller.timefmt import rfc3339

__all__ = ["blueprint"]

blueprint = Blueprint("journal", __name__, url_prefix="/api/v1/journal")

MAX_LIMIT = 1000


class JournalQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    from_seq: Annotated[int, msgspec.Meta(ge=0)] = 0
    topic: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_LIMIT)] = 100


class JournalEntry(msgspec.Struct, frozen=True, kw_only=True):
    seq: int
    ts: str
    topic: str
    source: str | None
    data: Any


class JournalPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[JournalEntry]
    next_seq: int | None  # pass as from_seq for the next page; None when this was the last


@blueprint.get("")
@tag(["journal"])
@requires(Role.OPERATOR)
@query(JournalQuery)
@document_response(JournalPage)
async def read(q: JournalQuery) -> object:
    """Durable events from `from_seq` on (inclusive), oldest first; `topic` is a prefix."""
    f = facade()
    rows = await ask(f.runtime, pick_query_actor(f.runtime.directory),
                     ReadJournal(from_seq=q.from_seq, topic_prefix=q.topic, limit=q.limit + 1))
    more = len(rows) > q.limit
    rows = rows[: q.limit]
    items = [JournalEntry(seq=r.seq, ts=rfc3339(r.ts_us), topic=r.topic, source=r.source,
                          data=msgspec.json.decode(r.payload) if r.payload else None)
             for r in rows]
    return json_response(JournalPage(items=items, next_seq=rows[-1].seq + 1 if more else None))
