"""/api/v1/events: the operator journal (seed 002 "Events / Journal").

Entries are the durable events an operator should see (controller/events.py), newest first,
filtered by severity, category, source and time (microseconds since the epoch, as the seed
has them), with acknowledgement, operator notes and a streamed export.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal
from xml.sax.saxutils import escape, quoteattr

import msgspec
from quart import Blueprint, Response
from quart_schema import document_response, tag

from actors.bridge import ask
from actors.query import GetEvent, ReadEvents, UnackedEvents, pick_query_actor
from actors.store import Write
from api.http import Facade, ask_actor, body, facade, json_response, query
from api.problems import Problem
from api.security import current_principal, requires
from controller.access import Role
from controller.events import Category, Severity
from controller.timefmt import rfc3339
from state.events import EventAckRow, EventFilter, StoredEvent

__all__ = ["blueprint"]

blueprint = Blueprint("events", __name__, url_prefix="/api/v1/events")

MAX_LIMIT = 1000
_EXPORT_PAGE = 1000
_ACK_PAGE = 5000
_FIELDS = ("id", "ts", "ts_us", "severity", "category", "source", "message", "topic",
           "acknowledged", "ack_ts", "ack_by")


class EventQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    severity: str | None = None  # one or more, comma separated: warning,error
    category: str | None = None
    source: Annotated[str, msgspec.Meta(max_length=200)] | None = None  # a prefix
    from_us: Annotated[int, msgspec.Meta(ge=0)] | None = None
    to_us: Annotated[int, msgspec.Meta(ge=0)] | None = None
    ack: bool | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_LIMIT)] = 100
    cursor: Annotated[int, msgspec.Meta(ge=1)] | None = None  # next_cursor of the last page


class ExportQuery(EventQuery, frozen=True, kw_only=True, forbid_unknown_fields=True):
    format: Literal["csv", "json", "xml"] = "csv"


class EventEntry(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    ts: str
    ts_us: int
    severity: str
    category: str
    source: str | None
    message: str
    topic: str
    acknowledged: bool
    ack_ts: str | None
    ack_by: str | None


class EventPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[EventEntry]
    next_cursor: int | None  # pass as cursor for older entries; None on the last page


class Note(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    message: Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]
    severity: Severity = Severity.INFO


class AckAll(msgspec.Struct, frozen=True, kw_only=True):
    acknowledged: int
    up_to_id: int


def _entry(e: StoredEvent) -> EventEntry:
    return EventEntry(id=e.id, ts=rfc3339(e.ts_us), ts_us=e.ts_us, severity=e.severity,
                      category=e.category, source=e.source, message=e.message, topic=e.topic,
                      acknowledged=e.ack_us is not None,
                      ack_ts=rfc3339(e.ack_us) if e.ack_us is not None else None,
                      ack_by=e.ack_by)


def _choices(raw: str | None, allowed: type[Severity] | type[Category], name: str
             ) -> tuple[str, ...]:
    if raw is None:
        return ()
    values = tuple(v.strip() for v in raw.split(",") if v.strip())
    unknown = [v for v in values if v not in {m.value for m in allowed}]
    if unknown:
        known = ", ".join(m.value for m in allowed)
        raise Problem(400, f"unknown {name} {', '.join(unknown)} (known: {known})")
    return values


def _filter(q: EventQuery) -> EventFilter:
    if q.from_us is not None and q.to_us is not None and q.from_us > q.to_us:
        raise Problem(400, "from_us must not be after to_us")
    return EventFilter(severities=_choices(q.severity, Severity, "severity"),
                       categories=_choices(q.category, Category, "category"),
                       source=q.source, from_us=q.from_us, to_us=q.to_us, ack=q.ack)


async def _read(message: Any, f: Facade | None = None) -> Any:
    f = f or facade()  # passed in where the request context is gone (a streamed body)
    return await ask(f.runtime, pick_query_actor(f.runtime.directory), message,
                     f.ask_timeout_s)


async def _committed() -> None:
    """Wait until what was published so far is committed (an empty write is answered after
    the next commit, which holds every durable event already in the store's mailbox)."""
    await ask_actor("store", Write(rows=()))


@blueprint.get("")
@tag(["events"])
@requires(Role.OPERATOR)
@query(EventQuery)
@document_response(EventPage)
async def list_events(q: EventQuery) -> object:
    """Journal entries, newest first."""
    rows = await _read(ReadEvents(filter=_filter(q), before_id=q.cursor, limit=q.limit + 1))
    more = len(rows) > q.limit
    rows = rows[: q.limit]
    return json_response(EventPage(items=[_entry(r) for r in rows],
                                   next_cursor=rows[-1].id if more else None))


@blueprint.post("")
@tag(["events"])
@requires(Role.OPERATOR, write=True)
@body(Note)
@document_response(EventEntry, 201)
async def add_note(data: Note) -> object:
    """An operator's note; it is a command like any other, so recordings replay it."""
    event = facade().runtime.ingest.command("api", {
        "by": current_principal().name, "note": data.message, "severity": data.severity.value})
    await _committed()
    stored = await _read(GetEvent(event.seq))
    if stored is None:  # the store refused it: logged there, and the client must know
        raise Problem(503, "the note could not be stored", headers={"Retry-After": "5"})
    return json_response(_entry(stored), status=201)


@blueprint.get("/<int(max=9223372036854775807):event_id>")
@tag(["events"])
@requires(Role.OPERATOR)
@document_response(EventEntry)
async def get_event(event_id: int) -> object:
    stored = await _read(GetEvent(event_id))
    if stored is None:
        raise Problem(404, f"no event {event_id}")
    return json_response(_entry(stored))


@blueprint.post("/<int(max=9223372036854775807):event_id>/ack")
@tag(["events"])
@requires(Role.OPERATOR, write=True)
@document_response(EventEntry)
async def ack_event(event_id: int) -> object:
    stored = await _read(GetEvent(event_id))
    if stored is None:
        raise Problem(404, f"no event {event_id}")
    if stored.ack_us is not None:
        raise Problem(409, f"event {event_id} was acknowledged by {stored.ack_by} "
                           f"at {rfc3339(stored.ack_us)}")
    f = facade()
    by = current_principal().name
    f.runtime.ingest.command("api", {"by": by, "ack": [event_id]})
    await ask_actor("store", Write(rows=(
        EventAckRow(event_id=event_id, ack_us=f.runtime.clock.now_us(), ack_by=by),)))
    return json_response(_entry(await _read(GetEvent(event_id))))


@blueprint.post("/ack-all")
@tag(["events"])
@requires(Role.OPERATOR, write=True)
@query(EventQuery)
@document_response(AckAll)
async def ack_all(q: EventQuery) -> object:
    """Acknowledge every entry matching the filters that exists now (newer ones stay open)."""
    f = facade()
    flt = _filter(q)
    newest = await _read(ReadEvents(filter=EventFilter(), limit=1))
    up_to = newest[0].id if newest else 0
    by = current_principal().name
    f.runtime.ingest.command("api", {"by": by, "ack_all": msgspec.to_builtins(flt),
                                     "up_to_id": up_to})
    total = 0
    while True:
        ids = await _read(UnackedEvents(filter=flt, up_to_id=up_to, limit=_ACK_PAGE))
        if not ids:
            break
        now = f.runtime.clock.now_us()
        await ask_actor("store", Write(rows=tuple(
            EventAckRow(event_id=i, ack_us=now, ack_by=by) for i in ids)))
        total += len(ids)
    return json_response(AckAll(acknowledged=total, up_to_id=up_to))


@blueprint.get("/export")
@tag(["events"])
@requires(Role.OPERATOR)
@query(ExportQuery)
async def export(q: ExportQuery) -> object:
    """The matching entries as a CSV, JSON or XML download, streamed page by page."""
    flt = _filter(q)
    f = facade()
    station = f.station.station.id
    stamp = rfc3339(f.runtime.clock.now_us()).replace(":", "").replace(".", "")
    name = f"events-{station}-{stamp}.{q.format}"
    media = {"csv": "text/csv", "json": "application/json", "xml": "application/xml"}[q.format]

    async def pages() -> AsyncIterator[list[EventEntry]]:
        before: int | None = None
        while True:
            rows = await _read(ReadEvents(filter=flt, before_id=before, limit=_EXPORT_PAGE), f)
            if not rows:
                return
            yield [_entry(r) for r in rows]
            before = rows[-1].id

    render = {"csv": _csv, "json": _json, "xml": _xml}[q.format]
    return Response(render(pages()), mimetype=media,
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _cell(value: object) -> object:
    # A spreadsheet runs a cell that starts like a formula; a journal message is data.
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _xml_text(value: object) -> str:
    # XML 1.0 cannot carry most control characters at all, escaped or not.
    return _XML_ILLEGAL.sub("\ufffd", "" if value is None else str(value))


async def _csv(pages: AsyncIterator[list[EventEntry]]) -> AsyncIterator[bytes]:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(_FIELDS)
    async for page in pages:
        for e in page:
            writer.writerow([_cell(getattr(e, field)) for field in _FIELDS])
        yield out.getvalue().encode()
        out.seek(0)
        out.truncate()
    if out.getvalue():
        yield out.getvalue().encode()


async def _json(pages: AsyncIterator[list[EventEntry]]) -> AsyncIterator[bytes]:
    yield b"["
    first = True
    async for page in pages:
        for e in page:
            yield (b"" if first else b",") + msgspec.json.encode(e)
            first = False
    yield b"]"


async def _xml(pages: AsyncIterator[list[EventEntry]]) -> AsyncIterator[bytes]:
    yield b'<?xml version="1.0" encoding="UTF-8"?>\n<events>\n'
    async for page in pages:
        chunk = []
        for e in page:
            attrs = " ".join(f"{f}={quoteattr(_xml_text(getattr(e, f)))}"
                             for f in _FIELDS if f != "message")
            chunk.append(f"  <event {attrs}>{escape(_xml_text(e.message))}</event>\n")
        yield "".join(chunk).encode()
    yield b"</events>\n"
