"""Query plumbing shared by state.codes, state.batches and state.buffer (tables of migration 0002):
transactions, chunked IN-list probes, single-row fetches and listing limits."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

import duckdb

from state.errors import StateError, translated_errors

__all__ = ["MAX_LIMIT", "capped", "fetch_one", "first_row", "must", "probe", "transaction",
           "where_clause"]

MAX_LIMIT = 1000
"""The most rows one listing call returns."""

# IN-lists up to this size stay index probes in duckdb 2.0 (see the migration's figures).
_PROBE_CHUNK = 256


# Connections (by id) inside a transaction() block: an inner block joins the outer one.
_open: set[int] = set()


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Run the block in one transaction: commit at its end, roll back if it raises.

    Inside another transaction() on the same connection the block joins it: the traceability
    actor judges a group of scans in one transaction and one durable COMMIT, each scan through
    the same functions that run alone elsewhere. A connection is used by one thread at a time.
    """
    key = id(con)
    if key in _open:
        yield
        return
    with translated_errors():
        con.execute("BEGIN TRANSACTION")
        _open.add(key)
        try:
            yield
            con.execute("COMMIT")
        except BaseException:
            # A failed COMMIT has already ended the transaction; nothing is left to roll back.
            with suppress(duckdb.TransactionException):
                con.execute("ROLLBACK")
            raise
        finally:
            _open.discard(key)


def probe(
    con: duckdb.DuckDBPyConnection, sql: str, values: Sequence[object], *before: object
) -> list[tuple[Any, ...]]:
    """Run sql, whose `{marks}` is an IN-list of values, in chunks small enough to stay index
    probes; before are the parameters that come ahead of the list."""
    rows: list[tuple[Any, ...]] = []
    for start in range(0, len(values), _PROBE_CHUNK):
        part = list(values[start : start + _PROBE_CHUNK])
        marks = ", ".join("?" * len(part))
        rows += con.execute(sql.format(marks=marks), [*before, *part]).fetchall()
    return rows


def first_row(executed: duckdb.DuckDBPyConnection) -> tuple[Any, ...] | None:
    """The first row of the statement just executed on a connection, read to the end.

    Never `fetchone()`: a result left unread keeps its connection's transaction open, and
    while any connection holds one, every CHECKPOINT fails as soon as anything was written
    ("there are other write transactions active"). An idle actor's cursor whose last query
    was read with fetchone() stopped the store from checkpointing for good.
    """
    rows = executed.fetchall()
    return rows[0] if rows else None


def fetch_one(
    con: duckdb.DuckDBPyConnection, sql: str, params: list[object]
) -> tuple[Any, ...] | None:
    """The first row sql returns, or None."""
    with translated_errors():
        return first_row(con.execute(sql, params))


def must(row: Any, what: str) -> Any:
    """row, which the caller has just written; StateError if it is gone."""
    if row is None:
        raise StateError(f"{what} vanished")
    return row


def capped(limit: int) -> int:
    """A listing limit cut to MAX_LIMIT; ValueError below 1."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    return min(limit, MAX_LIMIT)


def where_clause(conditions: list[str]) -> str:
    """The WHERE clause joining conditions with AND, or nothing when there are none."""
    return f" WHERE {' AND '.join(conditions)}" if conditions else ""
