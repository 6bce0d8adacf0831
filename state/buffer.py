"""The batch-accounting buffer (table buffer_codes of migration 0002): the codes of production
batches loaded ahead, each consumed at most once.

Every function takes the one connection it works on. A function that writes more than one row
runs its own transaction (do not call it inside another) and commits before it returns. The
rules come from controller.batches; this module only applies them to rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import msgspec
import pyarrow as pa

from controller.batches import BufferCheck, BufferEntry, buffer_check
from state._sql import fetch_one, probe, transaction
from state.errors import translated_errors

__all__ = [
    "BufferLoad",
    "BufferSummary",
    "buffer_summary",
    "consume_from_buffer",
    "find_buffer_entry",
    "load_buffer",
    "unload_buffer",
]


class BufferLoad(msgspec.Struct, frozen=True, kw_only=True):
    """Result of loading a batch into the buffer; conflicts are codes loaded for another batch."""

    loaded: int
    already_loaded: int
    conflicts: list[str]


class BufferSummary(msgspec.Struct, frozen=True, kw_only=True):
    """One loaded batch: how many codes it brought and how many are consumed."""

    batch_identifier: str
    loaded: int
    consumed: int
    remaining: int
    loaded_us: int


def load_buffer(
    con: duckdb.DuckDBPyConnection, batch_identifier: str, codes: Sequence[str], *, now_us: int
) -> BufferLoad:
    """Load a production batch's normalized codes into the buffer; loading again adds only
    what is new. A code already loaded for another batch is a conflict and is not loaded."""
    unique = list(dict.fromkeys(codes))
    with transaction(con):
        sql = "SELECT code, batch_identifier FROM buffer_codes WHERE code IN ({marks})"
        present: dict[str, str] = dict(probe(con, sql, unique))  # type: ignore[arg-type]
        new = [code for code in unique if code not in present]
        rows_in = pa.table(  # noqa: F841 - read by name by the INSERT below
            {
                "code": pa.array(new, pa.string()),
                "batch_identifier": pa.array([batch_identifier] * len(new), pa.string()),
                "loaded_us": pa.array([now_us] * len(new), pa.int64()),
            }
        )
        if new:
            con.execute(
                "INSERT INTO buffer_codes (code, batch_identifier, loaded_us) "
                "SELECT code, batch_identifier, loaded_us FROM rows_in"
            )
    conflicts = [code for code, owner in present.items() if owner != batch_identifier]
    return BufferLoad(
        loaded=len(new), already_loaded=len(present) - len(conflicts), conflicts=conflicts
    )


def find_buffer_entry(con: duckdb.DuckDBPyConnection, code: str) -> BufferEntry | None:
    """The buffer row of a normalized code, or None."""
    row = fetch_one(
        con,
        "SELECT batch_identifier, consumed_us, consumed_by FROM buffer_codes WHERE code = ?",
        [code],
    )
    if row is None:
        return None
    return BufferEntry(batch_identifier=row[0], consumed_us=row[1], consumed_by=row[2])


def consume_from_buffer(
    con: duckdb.DuckDBPyConnection, code: str, *, consumed_by: str | None, now_us: int
) -> BufferCheck:
    """Verify a code against the buffer and, when it is there and unused, consume it."""
    with transaction(con):
        entry = find_buffer_entry(con, code)
        loaded = entry is not None or fetch_one(con, "SELECT 1 FROM buffer_codes LIMIT 1", [])
        check = buffer_check(entry, buffer_loaded=bool(loaded))
        if check.ok:
            con.execute(
                "UPDATE buffer_codes SET consumed_us = ?, consumed_by = ? WHERE code = ?",
                [now_us, consumed_by, code],
            )
    return check


def buffer_summary(con: duckdb.DuckDBPyConnection) -> list[BufferSummary]:
    """Each loaded batch with its loaded, consumed and remaining counts, oldest load first."""
    with translated_errors():
        rows = con.execute(
            "SELECT batch_identifier, count(*), count(consumed_us), min(loaded_us) "
            "FROM buffer_codes GROUP BY batch_identifier ORDER BY min(loaded_us), batch_identifier"
        ).fetchall()
    return [
        BufferSummary(
            batch_identifier=batch,
            loaded=int(loaded),
            consumed=int(consumed),
            remaining=int(loaded) - int(consumed),
            loaded_us=int(loaded_us),
        )
        for batch, loaded, consumed, loaded_us in rows
    ]


def unload_buffer(con: duckdb.DuckDBPyConnection, batch_identifier: str) -> int:
    """Drop a batch from the buffer; return how many of its codes were dropped."""
    row = fetch_one(con, "DELETE FROM buffer_codes WHERE batch_identifier = ?", [batch_identifier])
    return int(row[0]) if row is not None else 0
