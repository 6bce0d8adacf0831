"""What state.codes and state.batches share: the code and batch rows, and the moves that keep a
code's membership in a batch consistent (batch_members, codes.batch_id, batches.member_count).

Both modules need these (a code can be stored straight into a batch, a status change can take it
out of one), so they live below both; state.codes and state.batches re-export the public names.
"""

from __future__ import annotations

from typing import Any

import duckdb
import msgspec
import pyarrow as pa

from controller.batches import BatchKind, BatchStatus, BatchView
from controller.codes import CodeStatus
from state._sql import fetch_one, first_row
from state.errors import NotFound

__all__ = [
    "BATCH_COLUMNS",
    "CODE_COLUMNS",
    "BatchRow",
    "CodeRow",
    "add_members",
    "batch_for_update",
    "batch_row",
    "bump_count",
    "code_for_update",
    "code_row",
    "count_in",
    "get_batch",
    "leave_batch",
]


class CodeRow(msgspec.Struct, frozen=True, kw_only=True):
    """A stored code."""

    id: int
    code: str
    raw: str
    gtin: str | None
    serial: str | None
    industry: str
    status: CodeStatus
    batch_id: int | None
    line_id: str | None
    source: str | None
    party: str | None
    created_us: int
    updated_us: int


class BatchRow(msgspec.Struct, frozen=True, kw_only=True):
    """A stored batch, package or box."""

    id: int
    identifier: str
    name: str | None
    kind: BatchKind
    status: BatchStatus
    capacity: int | None
    member_count: int
    gtin: str | None
    parent_id: int | None
    line_id: str | None
    device_id: str | None
    created_us: int
    updated_us: int
    closed_us: int | None

    def view(self) -> BatchView:
        """The batch as the rules in controller.batches see it."""
        return BatchView(
            id=self.id,
            identifier=self.identifier,
            kind=self.kind,
            status=self.status,
            count=self.member_count,
            capacity=self.capacity,
            gtin=self.gtin,
            parent_id=self.parent_id,
        )


_CODE_FIELDS = CodeRow.__struct_fields__
CODE_COLUMNS = ", ".join(_CODE_FIELDS)
"""The codes columns, in CodeRow's order, for a SELECT that code_row reads."""

_BATCH_FIELDS = BatchRow.__struct_fields__
BATCH_COLUMNS = ", ".join(_BATCH_FIELDS)
"""The batches columns, in BatchRow's order, for a SELECT that batch_row reads."""


def code_row(row: tuple[Any, ...]) -> CodeRow:
    """The CodeRow of a row selected with CODE_COLUMNS."""
    # convert, not the constructor: it turns the stored int and strings into the enums.
    return msgspec.convert(dict(zip(_CODE_FIELDS, row, strict=True)), CodeRow)


def batch_row(row: tuple[Any, ...]) -> BatchRow:
    """The BatchRow of a row selected with BATCH_COLUMNS."""
    return msgspec.convert(dict(zip(_BATCH_FIELDS, row, strict=True)), BatchRow)


def get_batch(con: duckdb.DuckDBPyConnection, batch_id: int) -> BatchRow | None:
    """The batch with this id, or None."""
    row = fetch_one(con, f"SELECT {BATCH_COLUMNS} FROM batches WHERE id = ?", [batch_id])
    return batch_row(row) if row is not None else None


def batch_for_update(con: duckdb.DuckDBPyConnection, batch_id: int) -> BatchRow:
    """The batch with this id, read inside the caller's transaction; NotFound if none."""
    batch = get_batch(con, batch_id)
    if batch is None:
        raise NotFound(f"no batch with id {batch_id}")
    return batch


def code_for_update(con: duckdb.DuckDBPyConnection, code: str) -> CodeRow:
    """The stored code, read inside the caller's transaction; NotFound if none."""
    row = first_row(con.execute(f"SELECT {CODE_COLUMNS} FROM codes WHERE code = ?", [code]))
    if row is None:
        raise NotFound(f"no code {code}")
    return code_row(row)


def add_members(
    con: duckdb.DuckDBPyConnection, batch: BatchRow, codes: list[str], now_us: int
) -> None:
    """Record codes as joining batch now and count them in; the caller has moved the codes."""
    _insert_members(con, batch.id, codes, now_us)
    bump_count(con, batch, len(codes), now_us)


def _insert_members(
    con: duckdb.DuckDBPyConnection, batch_id: int, codes: list[str], now_us: int
) -> None:
    members = pa.table(  # noqa: F841 - read by name by the INSERT below
        {
            "batch_id": pa.array([batch_id] * len(codes), pa.int64()),
            "code": pa.array(codes, pa.string()),
            "added_us": pa.array([now_us] * len(codes), pa.int64()),
        }
    )
    con.execute(
        "INSERT INTO batch_members (batch_id, code, added_us) "
        "SELECT batch_id, code, added_us FROM members"
    )


def count_in(
    con: duckdb.DuckDBPyConnection, batch_id: int, codes: list[str], now_us: int
) -> None:
    """add_members without reading the batch first: the codes join, and one statement counts
    them in and completes the batch when it reaches its capacity (the scan path, where every
    statement costs)."""
    _insert_members(con, batch_id, codes, now_us)
    full = "capacity IS NOT NULL AND member_count + $n >= capacity"
    con.execute(
        f"UPDATE batches SET member_count = member_count + $n, updated_us = $now, "
        f"status = CASE WHEN {full} THEN $complete ELSE status END, "
        f"closed_us = CASE WHEN {full} THEN $now ELSE closed_us END WHERE id = $id",
        {"n": len(codes), "now": now_us, "complete": str(BatchStatus.COMPLETE), "id": batch_id},
    )


def bump_count(con: duckdb.DuckDBPyConnection, batch: BatchRow, delta: int, now_us: int) -> None:
    """Change a batch's member count, completing it when it fills and reopening it when a
    complete batch loses a member."""
    count = batch.member_count + delta
    status, closed_us = batch.status, batch.closed_us
    if delta > 0 and batch.capacity is not None and count >= batch.capacity:
        status, closed_us = BatchStatus.COMPLETE, now_us
    elif delta < 0 and status == BatchStatus.COMPLETE:
        status, closed_us = BatchStatus.OPEN, None
    con.execute(
        "UPDATE batches SET member_count = ?, status = ?, updated_us = ?, closed_us = ? "
        "WHERE id = ?",
        [count, str(status), now_us, closed_us, batch.id],
    )


def leave_batch(con: duckdb.DuckDBPyConnection, row: CodeRow, now_us: int) -> None:
    """End the code's stay in its batch (if any) and count it out; the caller moves the code."""
    if row.batch_id is None:
        return
    con.execute(
        "UPDATE batch_members SET removed_us = ? "
        "WHERE batch_id = ? AND code = ? AND removed_us IS NULL",
        [now_us, row.batch_id, row.code],
    )
    batch = get_batch(con, row.batch_id)
    if batch is not None:
        bump_count(con, batch, -1, now_us)
