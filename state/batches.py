"""Batches, packages and boxes, and the codes in them (tables of migration 0002).

Every function takes the one connection it works on. A function that writes more than one row
runs its own transaction (do not call it inside another) and commits before it returns. The
rules come from controller.batches; this module only applies them to rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import msgspec

from controller.batches import (
    BatchKind,
    BatchStatus,
    batch_transition_error,
    code_status_for_batch,
    join_verdict,
    leave_verdict,
    nest_verdict,
)
from controller.codes import CodeStatus
from state._membership import (
    BATCH_COLUMNS,
    CODE_COLUMNS,
    BatchRow,
    CodeRow,
    add_members,
    batch_for_update,
    batch_row,
    bump_count,
    code_for_update,
    code_row,
    get_batch,
    leave_batch,
)
from state._sql import MAX_LIMIT, capped, fetch_one, must, probe, transaction, where_clause
from state.errors import TransitionError, translated_errors

__all__ = [
    "MAX_LIMIT",
    "BatchPage",
    "BatchRow",
    "MemberOutcome",
    "Membership",
    "add_to_batch",
    "batch_history",
    "create_batch",
    "find_batch",
    "get_batch",
    "list_batches",
    "nest_package",
    "remove_from_batch",
    "set_batch_status",
]


class BatchPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of a batch listing, newest first."""

    items: list[BatchRow]
    next_cursor: int | None


class MemberOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """What became of one code (or package) asked to join or leave a batch."""

    code: str
    ok: bool
    reason: str | None = None


class Membership(msgspec.Struct, frozen=True, kw_only=True):
    """One stay of a code in a batch; removed_us is None while it is still there."""

    batch_id: int
    code: str
    added_us: int
    removed_us: int | None


def create_batch(
    con: duckdb.DuckDBPyConnection,
    *,
    identifier: str,
    kind: BatchKind,
    now_us: int,
    name: str | None = None,
    capacity: int | None = None,
    gtin: str | None = None,
    line_id: str | None = None,
    device_id: str | None = None,
) -> BatchRow:
    """Open a new batch; DuplicateError if the identifier is taken, ConstraintError if the
    capacity is not positive."""
    row = fetch_one(
        con,
        "INSERT INTO batches (identifier, name, kind, capacity, gtin, line_id, device_id, "
        f"created_us, updated_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING {BATCH_COLUMNS}",
        [identifier, name, str(kind), capacity, gtin, line_id, device_id, now_us, now_us],
    )
    return batch_row(must(row, "inserted batch"))


def find_batch(con: duckdb.DuckDBPyConnection, identifier: str) -> BatchRow | None:
    """The batch with this identifier (e.g. `B-2024-001234`, a box's SSCC), or None."""
    row = fetch_one(con, f"SELECT {BATCH_COLUMNS} FROM batches WHERE identifier = ?", [identifier])
    return batch_row(row) if row is not None else None


def list_batches(
    con: duckdb.DuckDBPyConnection,
    *,
    status: BatchStatus | None = None,
    kind: BatchKind | None = None,
    device_id: str | None = None,
    line_id: str | None = None,
    parent_id: int | None = None,
    limit: int = 100,
    cursor: int | None = None,
) -> BatchPage:
    """Batches matching every filter given, newest first; limit is capped at MAX_LIMIT."""
    limit = capped(limit)
    where: list[str] = []
    params: list[object] = []
    for column, value in (
        ("status", status),
        ("kind", kind),
        ("device_id", device_id),
        ("line_id", line_id),
        ("parent_id", parent_id),
    ):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(str(value) if isinstance(value, str) else value)
    if cursor is not None:
        where.append("id < ?")
        params.append(cursor)
    sql = f"SELECT {BATCH_COLUMNS} FROM batches{where_clause(where)} ORDER BY id DESC LIMIT ?"
    with translated_errors():
        rows = con.execute(sql, [*params, limit + 1]).fetchall()
    items = [batch_row(row) for row in rows[:limit]]
    return BatchPage(items=items, next_cursor=items[-1].id if len(rows) > limit else None)


def add_to_batch(
    con: duckdb.DuckDBPyConnection, batch_id: int, codes: Sequence[str], *, now_us: int
) -> list[MemberOutcome]:
    """Stored codes join a batch in one transaction, each reported; the batch completes when
    it reaches its capacity. NotFound if there is no such batch."""
    outcomes: list[MemberOutcome] = []
    with transaction(con):
        batch = batch_for_update(con, batch_id)
        view = batch.view()
        joined: list[str] = []
        rows = _codes_by_value(con, codes)
        for code in codes:
            row = rows.get(code)
            if row is None:
                outcomes.append(MemberOutcome(code=code, ok=False, reason="unknown code"))
                continue
            if code in joined:
                outcomes.append(
                    MemberOutcome(
                        code=code,
                        ok=False,
                        reason=f"code is already in {batch.kind} {batch.identifier}",
                    )
                )
                continue
            verdict = join_verdict(view, status=row.status, batch_id=row.batch_id, gtin=row.gtin)
            if not verdict.ok:
                outcomes.append(MemberOutcome(code=code, ok=False, reason=verdict.reason))
                continue
            joined.append(code)
            view = msgspec.structs.replace(view, count=view.count + 1)
            outcomes.append(MemberOutcome(code=code, ok=True))
        if joined:
            _set_codes(con, joined, status=CodeStatus.IN_BATCH, batch_id=batch_id, now_us=now_us)
            add_members(con, batch, joined, now_us)
    return outcomes


def batch_history(con: duckdb.DuckDBPyConnection, code: str) -> list[Membership]:
    """Every batch a code has been in, oldest first: its traceability through aggregation."""
    with translated_errors():
        rows = con.execute(
            "SELECT batch_id, code, added_us, removed_us FROM batch_members WHERE code = ? "
            "ORDER BY added_us, batch_id",
            [code],
        ).fetchall()
    return [
        Membership(batch_id=batch_id, code=code, added_us=added_us, removed_us=removed_us)
        for batch_id, code, added_us, removed_us in rows
    ]


def remove_from_batch(con: duckdb.DuckDBPyConnection, code: str, *, now_us: int) -> MemberOutcome:
    """Take a code out of its batch (it is Created again); a complete batch reopens."""
    with transaction(con):
        row = code_for_update(con, code)
        batch = get_batch(con, row.batch_id) if row.batch_id is not None else None
        verdict = leave_verdict(batch.view() if batch else None, status=row.status)
        if not verdict.ok:
            return MemberOutcome(code=code, ok=False, reason=verdict.reason)
        leave_batch(con, row, now_us)
        _set_codes(con, [code], status=CodeStatus.CREATED, batch_id=None, now_us=now_us)
    return MemberOutcome(code=code, ok=True)


def nest_package(
    con: duckdb.DuckDBPyConnection, package_id: int, box_id: int, *, now_us: int
) -> MemberOutcome:
    """Put a complete package into an open box; the box completes when full."""
    with transaction(con):
        package = batch_for_update(con, package_id)
        box = batch_for_update(con, box_id)
        verdict = nest_verdict(package.view(), box.view())
        if not verdict.ok:
            return MemberOutcome(code=package.identifier, ok=False, reason=verdict.reason)
        con.execute(
            "UPDATE batches SET parent_id = ?, updated_us = ? WHERE id = ?",
            [box_id, now_us, package_id],
        )
        bump_count(con, box, +1, now_us)
    return MemberOutcome(code=package.identifier, ok=True)


def set_batch_status(
    con: duckdb.DuckDBPyConnection, batch_id: int, status: BatchStatus, *, now_us: int
) -> BatchRow:
    """Move a batch (and the packages nested in it) to status, carrying its codes along:
    sent -> Sent, synced -> Synced, cancelled -> Created and out of the batch.
    TransitionError if the batch may not make that move."""
    with transaction(con):
        batch = batch_for_update(con, batch_id)
        problem = batch_transition_error(batch.status, status)
        if problem is not None:
            raise TransitionError(f"{batch.kind} {batch.identifier}: {problem}")
        if status == BatchStatus.CANCELLED:
            _cancel(con, batch, now_us)
        else:
            children = _children(con, batch_id) if status != BatchStatus.OPEN else []
            ids = [batch_id, *(c.id for c in children if c.status == batch.status)]
            # closed_us is when the batch last became complete; an open batch has none.
            closed = {BatchStatus.COMPLETE: "?", BatchStatus.OPEN: "NULL"}.get(status, "closed_us")
            marks = ", ".join("?" * len(ids))
            con.execute(
                f"UPDATE batches SET status = ?, updated_us = ?, closed_us = {closed} "
                f"WHERE id IN ({marks})",
                [str(status), now_us, *([now_us] if status == BatchStatus.COMPLETE else []), *ids],
            )
            code_status = code_status_for_batch(status)
            if code_status is not None:
                before = CodeStatus.IN_BATCH if status == BatchStatus.SENT else CodeStatus.SENT
                con.execute(
                    f"UPDATE codes SET status = ?, updated_us = ? "
                    f"WHERE batch_id IN ({marks}) AND status = ?",
                    [int(code_status), now_us, *ids, int(before)],
                )
    return must(get_batch(con, batch_id), f"batch {batch_id}")


def _cancel(con: duckdb.DuckDBPyConnection, batch: BatchRow, now_us: int) -> None:
    con.execute(
        "UPDATE batch_members SET removed_us = ? WHERE batch_id = ? AND removed_us IS NULL",
        [now_us, batch.id],
    )
    con.execute(
        "UPDATE codes SET status = ?, batch_id = NULL, updated_us = ? "
        "WHERE batch_id = ? AND status = ?",
        [int(CodeStatus.CREATED), now_us, batch.id, int(CodeStatus.IN_BATCH)],
    )
    con.execute(
        "UPDATE batches SET parent_id = NULL, updated_us = ? WHERE parent_id = ?",
        [now_us, batch.id],
    )
    con.execute(
        "UPDATE batches SET status = ?, member_count = 0, parent_id = NULL, updated_us = ?, "
        "closed_us = coalesce(closed_us, ?) WHERE id = ?",
        [str(BatchStatus.CANCELLED), now_us, now_us, batch.id],
    )
    if batch.parent_id is not None:
        parent = get_batch(con, batch.parent_id)
        if parent is not None:
            bump_count(con, parent, -1, now_us)


def _children(con: duckdb.DuckDBPyConnection, batch_id: int) -> list[BatchRow]:
    rows = con.execute(
        f"SELECT {BATCH_COLUMNS} FROM batches WHERE parent_id = ?", [batch_id]
    ).fetchall()
    return [batch_row(row) for row in rows]


def _set_codes(
    con: duckdb.DuckDBPyConnection,
    codes: list[str],
    *,
    status: CodeStatus,
    batch_id: int | None,
    now_us: int,
) -> None:
    probe(
        con,
        "UPDATE codes SET status = ?, batch_id = ?, updated_us = ? WHERE code IN ({marks})",
        codes,
        int(status),
        batch_id,
        now_us,
    )


def _codes_by_value(con: duckdb.DuckDBPyConnection, codes: Sequence[str]) -> dict[str, CodeRow]:
    sql = f"SELECT {CODE_COLUMNS} FROM codes WHERE code IN ({{marks}})"
    rows = probe(con, sql, list(dict.fromkeys(codes)))
    return {row[1]: code_row(row) for row in rows}
