"""The operator-facing event journal: entries, acknowledgements, and the reads the API makes."""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import msgspec
import pyarrow as pa

from state._sql import first_row
from state.errors import translated_errors
from state.tables import TableSpec, register_table

__all__ = [
    "EVENTS",
    "EVENT_ACKS",
    "EventAckRow",
    "EventFilter",
    "EventRow",
    "StoredEvent",
    "get_event",
    "list_events",
    "unacked_ids",
]


class EventRow(msgspec.Struct, frozen=True, kw_only=True):
    id: int  # the bus seq of the event
    ts_us: int
    severity: str
    category: str
    source: str | None
    message: str
    topic: str


class EventAckRow(msgspec.Struct, frozen=True, kw_only=True):
    event_id: int
    ack_us: int
    ack_by: str


class StoredEvent(msgspec.Struct, frozen=True):
    """An entry with its first acknowledgement; fields in the order `_SELECT` reads them."""

    id: int
    ts_us: int
    severity: str
    category: str
    source: str | None
    message: str
    topic: str
    ack_us: int | None
    ack_by: str | None


class EventFilter(msgspec.Struct, frozen=True, kw_only=True):
    severities: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    source: str | None = None  # a prefix: "plc:" matches every PLC
    from_us: int | None = None
    to_us: int | None = None  # exclusive
    ack: bool | None = None  # True: acknowledged only; False: not yet acknowledged


EVENTS = register_table(TableSpec(
    table="events", row_type=EventRow,
    schema=pa.schema([("id", pa.int64()), ("ts_us", pa.int64()), ("severity", pa.string()),
                      ("category", pa.string()), ("source", pa.string()),
                      ("message", pa.string()), ("topic", pa.string())]),
))
EVENT_ACKS = register_table(TableSpec(
    table="event_acks", row_type=EventAckRow,
    schema=pa.schema([("event_id", pa.int64()), ("ack_us", pa.int64()),
                      ("ack_by", pa.string())]),
))

# The first acknowledgement of each entry counts; later ones (a race of two operators) do not.
_SELECT = """
SELECT e.id, e.ts_us, e.severity, e.category, e.source, e.message, e.topic,
       a.ack_us, a.ack_by
FROM events e
LEFT JOIN (SELECT event_id, min(ack_us) AS ack_us, arg_min(ack_by, ack_us) AS ack_by
           FROM event_acks GROUP BY event_id) a ON a.event_id = e.id
"""


def _where(f: EventFilter, before_id: int | None) -> tuple[str, list[object]]:
    clauses: list[str] = []
    params: list[object] = []
    if f.severities:
        clauses.append(f"e.severity IN ({', '.join('?' * len(f.severities))})")
        params += f.severities
    if f.categories:
        clauses.append(f"e.category IN ({', '.join('?' * len(f.categories))})")
        params += f.categories
    if f.source:
        clauses.append("starts_with(e.source, ?)")  # not LIKE: '_' and '%' are literal
        params.append(f.source)
    if f.from_us is not None:
        clauses.append("e.ts_us >= ?")
        params.append(f.from_us)
    if f.to_us is not None:
        clauses.append("e.ts_us < ?")
        params.append(f.to_us)
    if f.ack is not None:
        clauses.append("a.ack_us IS NOT NULL" if f.ack else "a.ack_us IS NULL")
    if before_id is not None:
        clauses.append("e.id < ?")
        params.append(before_id)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def list_events(con: duckdb.DuckDBPyConnection, f: EventFilter, *, before_id: int | None = None,
                limit: int = 100) -> list[StoredEvent]:
    """Newest first; pass the last id of a page as `before_id` for the next one."""
    if limit < 0:
        raise ValueError(f"limit must be >= 0, not {limit}")
    where, params = _where(f, before_id)
    with translated_errors():
        rows = con.execute(f"{_SELECT}{where} ORDER BY e.id DESC LIMIT ?",
                           [*params, limit]).fetchall()
    return [_stored(row) for row in rows]


def get_event(con: duckdb.DuckDBPyConnection, event_id: int) -> StoredEvent | None:
    with translated_errors():
        row = first_row(con.execute(f"{_SELECT} WHERE e.id = ?", [event_id]))
    return _stored(row) if row else None


def unacked_ids(con: duckdb.DuckDBPyConnection, f: EventFilter, *, up_to_id: int,
                limit: int = 10_000) -> list[int]:
    """Ids of entries matching `f` not yet acknowledged, with id <= up_to_id, oldest first."""
    where, params = _where(msgspec.structs.replace(f, ack=False), up_to_id + 1)
    with translated_errors():
        rows = con.execute(f"{_SELECT}{where} ORDER BY e.id LIMIT ?", [*params, limit]).fetchall()
    return [int(row[0]) for row in rows]


def _stored(row: Sequence[object]) -> StoredEvent:
    return StoredEvent(*row)  # type: ignore[arg-type]
