"""Probe writes: numbered rows per writer, for the SIGKILL crash test and the write benchmark.

A writer counts n = 1, 2, 3 ... and notes each n once its write is acknowledged; after a crash,
every acknowledged (writer, n) must be found here.
"""

from __future__ import annotations

import duckdb
import msgspec
import pyarrow as pa

from state.errors import translated_errors
from state.tables import TableSpec, register_table

__all__ = ["PROBE_WRITES", "ProbeRow", "read_probe_writes"]


class ProbeRow(msgspec.Struct, frozen=True, kw_only=True):
    """Write number n of one writer."""

    writer: int
    n: int
    ts_us: int


PROBE_WRITES = register_table(
    TableSpec(
        table="probe_writes",
        row_type=ProbeRow,
        schema=pa.schema([("writer", pa.int32()), ("n", pa.int64()), ("ts_us", pa.int64())]),
    )
)


def read_probe_writes(con: duckdb.DuckDBPyConnection, writer: int | None = None) -> list[ProbeRow]:
    """The stored probe rows, of one writer or of all, ordered by writer then n."""
    sql = "SELECT writer, n, ts_us FROM probe_writes"
    params: list[object] = []
    if writer is not None:
        sql += " WHERE writer = ?"
        params.append(writer)
    with translated_errors():
        rows = con.execute(sql + " ORDER BY writer, n", params).fetchall()
    return [ProbeRow(writer=w, n=n, ts_us=ts_us) for w, n, ts_us in rows]
