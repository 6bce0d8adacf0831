"""The event journal: every durable bus event, in seq order."""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import msgspec
import pyarrow as pa

from state._sql import first_row
from state.errors import translated_errors
from state.tables import TableSpec, insert_rows, register_table

__all__ = ["JOURNAL", "JournalRow", "append_journal", "max_journal_seq", "read_journal"]


class JournalRow(msgspec.Struct, frozen=True, kw_only=True):
    """One bus event as stored; payload is the event's JSON text, kept byte for byte."""

    seq: int
    ts_us: int
    topic: str
    source: str | None
    payload: str


JOURNAL = register_table(
    TableSpec(
        table="journal",
        row_type=JournalRow,
        schema=pa.schema(
            [
                ("seq", pa.int64()),
                ("ts_us", pa.int64()),
                ("topic", pa.string()),
                ("source", pa.string()),
                ("payload", pa.string()),
            ]
        ),
    )
)


def append_journal(con: duckdb.DuckDBPyConnection, rows: Sequence[JournalRow]) -> None:
    """Insert rows in one statement; the caller owns the transaction (or runs autocommit)."""
    insert_rows(con, JOURNAL, rows)


def max_journal_seq(con: duckdb.DuckDBPyConnection) -> int:
    """The highest stored seq, 0 when the journal is empty; the bus resumes numbering after it."""
    with translated_errors():
        row = first_row(con.execute("SELECT coalesce(max(seq), 0) FROM journal"))
    return int(row[0]) if row is not None else 0


def read_journal(
    con: duckdb.DuckDBPyConnection,
    *,
    from_seq: int = 0,
    topic_prefix: str | None = None,
    limit: int = 1000,
) -> list[JournalRow]:
    """Up to `limit` rows with seq >= from_seq, oldest first, optionally of topics with a prefix."""
    if limit < 0:
        raise ValueError(f"limit must be >= 0, not {limit}")
    sql = "SELECT seq, ts_us, topic, source, payload FROM journal WHERE seq >= ?"
    params: list[object] = [from_seq]
    if topic_prefix:
        # starts_with, not LIKE: '%' and '_' in a topic are literal characters.
        sql += " AND starts_with(topic, ?)"
        params.append(topic_prefix)
    sql += " ORDER BY seq LIMIT ?"
    params.append(limit)
    with translated_errors():
        rows = con.execute(sql, params).fetchall()
    return [
        JournalRow(seq=seq, ts_us=ts_us, topic=topic, source=source, payload=payload)
        for seq, ts_us, topic, source, payload in rows
    ]
