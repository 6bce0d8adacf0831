"""Marking codes (table codes of migration 0002), and what a scan needs to know about one.

Every function takes the one connection it works on. A function that writes more than one row
runs its own transaction (do not call it inside another) and commits before it returns. The
rules come from controller.codes and controller.batches; this module only applies them to rows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import duckdb
import msgspec
import pyarrow as pa

from controller.batches import BatchKind, CodeState, StoredCode, join_verdict
from controller.codes import CodeStatus, CodeValidation, transition_error
from state._membership import (
    CODE_COLUMNS,
    CodeRow,
    add_members,
    batch_for_update,
    code_for_update,
    code_row,
    leave_batch,
)
from state._sql import MAX_LIMIT, capped, fetch_one, must, probe, transaction, where_clause
from state.batches import find_batch, get_batch
from state.buffer import find_buffer_entry
from state.errors import TransitionError, translated_errors

__all__ = [
    "BULK_CHECK_FROM",
    "MAX_LIMIT",
    "CodePage",
    "CodeRow",
    "InsertOutcome",
    "NewCode",
    "code_hash",
    "count_codes",
    "find_code",
    "get_code",
    "insert_checked",
    "insert_codes",
    "list_codes",
    "scan_facts",
    "set_code_status",
    "stored_among",
]

BULK_CHECK_FROM = 256
"""From this many codes a duplicate check semi-joins on code_hash instead of probing the key."""


class NewCode(msgspec.Struct, frozen=True, kw_only=True):
    """A validated code to store; see CodeValidation for code (normalized) and raw (canonical)."""

    code: str
    raw: str
    gtin: str | None
    serial: str | None
    industry: str
    line_id: str | None = None
    source: str | None = None
    party: str | None = None

    @classmethod
    def from_validation(
        cls,
        check: CodeValidation,
        *,
        line_id: str | None = None,
        source: str | None = None,
        party: str | None = None,
    ) -> NewCode:
        """The row for a code that passed validation; ValueError if it did not."""
        if not check.ok or check.normalized is None or check.canonical is None:
            raise ValueError(f"only a valid code is stored: {check.reason}")
        return cls(
            code=check.normalized,
            raw=check.canonical,
            gtin=check.gtin,
            serial=check.serial,
            industry=check.industry,
            line_id=line_id,
            source=source,
            party=party,
        )


class InsertOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """What became of one item of a bulk insert: created with an id, or not and why."""

    index: int
    code: str
    id: int | None = None
    duplicate: bool = False
    reason: str | None = None

    @property
    def created(self) -> bool:
        """Whether the item was stored."""
        return self.id is not None


class CodePage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of a code listing; pass next_cursor back for the next page (None: no more)."""

    items: list[CodeRow]
    next_cursor: int | None


def code_hash(code: str) -> int:
    """The stored code_hash of a normalized code: blake2b-64 as a signed 64-bit integer."""
    digest = hashlib.blake2b(code.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


_CODE_SCHEMA = pa.schema(
    [
        ("code", pa.string()),
        ("code_hash", pa.int64()),
        ("raw", pa.string()),
        ("gtin", pa.string()),
        ("serial", pa.string()),
        ("industry", pa.string()),
        ("status", pa.uint8()),
        ("batch_id", pa.int64()),
        ("line_id", pa.string()),
        ("source", pa.string()),
        ("party", pa.string()),
        ("created_us", pa.int64()),
        ("updated_us", pa.int64()),
    ]
)


def stored_among(con: duckdb.DuckDBPyConnection, codes: Sequence[str]) -> set[str]:
    """Which of these normalized codes are already stored."""
    unique = list(dict.fromkeys(codes))
    if len(unique) >= BULK_CHECK_FROM:
        unique = _hash_candidates(con, unique)
    with translated_errors():
        rows = probe(con, "SELECT code FROM codes WHERE code IN ({marks})", unique)
    return {code for (code,) in rows}


def _hash_candidates(con: duckdb.DuckDBPyConnection, codes: list[str]) -> list[str]:
    """The codes whose hash is stored: the duplicates, and in theory a rare hash collision."""
    incoming = pa.table(  # noqa: F841 - read by name by the query below (a replacement scan)
        {
            "code": pa.array(codes, pa.string()),
            "code_hash": pa.array([code_hash(code) for code in codes], pa.int64()),
        }
    )
    with translated_errors():
        rows = con.execute(
            "SELECT i.code FROM incoming i SEMI JOIN codes c ON c.code_hash = i.code_hash"
        ).fetchall()
    return [code for (code,) in rows]


def insert_codes(
    con: duckdb.DuckDBPyConnection,
    items: Sequence[NewCode],
    *,
    now_us: int,
    batch_id: int | None = None,
) -> list[InsertOutcome]:
    """Store new codes in one transaction, reporting each item: created with its id, or why not.

    A code already stored, or repeated earlier in items, is a duplicate and is not stored; the
    others are. With batch_id every stored code also joins that batch (In Batch); an item the
    batch cannot take (full, closed, other GTIN) is not stored and says so.
    """
    outcomes: dict[int, InsertOutcome] = {}
    first_at: dict[str, int] = {}
    for index, item in enumerate(items):
        if item.code in first_at:
            outcomes[index] = InsertOutcome(
                index=index,
                code=item.code,
                duplicate=True,
                reason=f"repeated in this request (item {first_at[item.code]})",
            )
        else:
            first_at[item.code] = index
    with transaction(con):
        stored = stored_among(con, list(first_at))
        batch = batch_for_update(con, batch_id) if batch_id is not None else None
        fresh: list[int] = []
        count = batch.member_count if batch is not None else 0
        for code, index in first_at.items():
            if code in stored:
                outcomes[index] = InsertOutcome(
                    index=index, code=code, duplicate=True, reason="duplicate: already stored"
                )
                continue
            if batch is not None:
                view = msgspec.structs.replace(batch.view(), count=count)
                verdict = join_verdict(
                    view, status=CodeStatus.CREATED, batch_id=None, gtin=items[index].gtin
                )
                if not verdict.ok:
                    outcomes[index] = InsertOutcome(index=index, code=code, reason=verdict.reason)
                    continue
                count += 1
            fresh.append(index)
        ids = insert_checked(con, [items[i] for i in fresh], now_us=now_us, batch_id=batch_id)
        for index in fresh:
            outcomes[index] = InsertOutcome(
                index=index, code=items[index].code, id=ids[items[index].code]
            )
        if batch is not None and fresh:
            add_members(con, batch, [items[i].code for i in fresh], now_us)
    return [outcomes[index] for index in range(len(items))]


def insert_checked(
    con: duckdb.DuckDBPyConnection, items: list[NewCode], *, now_us: int, batch_id: int | None
) -> dict[str, int]:
    """Insert codes the caller has checked are new (insert_codes, or a run of ADD scans), in
    its transaction; code -> id. The primary key still refuses a duplicate (DuplicateError)."""
    if not items:
        return {}
    status = CodeStatus.IN_BATCH if batch_id is not None else CodeStatus.CREATED
    n = len(items)
    arrow_rows = pa.Table.from_arrays(  # noqa: F841 - read by name by the INSERT below
        [
            pa.array([i.code for i in items], pa.string()),
            pa.array([code_hash(i.code) for i in items], pa.int64()),
            pa.array([i.raw for i in items], pa.string()),
            pa.array([i.gtin for i in items], pa.string()),
            pa.array([i.serial for i in items], pa.string()),
            pa.array([i.industry for i in items], pa.string()),
            pa.array([int(status)] * n, pa.uint8()),
            pa.array([batch_id] * n, pa.int64()),
            pa.array([i.line_id for i in items], pa.string()),
            pa.array([i.source for i in items], pa.string()),
            pa.array([i.party for i in items], pa.string()),
            pa.array([now_us] * n, pa.int64()),
            pa.array([now_us] * n, pa.int64()),
        ],
        schema=_CODE_SCHEMA,
    )
    columns = ", ".join(_CODE_SCHEMA.names)
    rows = con.execute(
        f"INSERT INTO codes ({columns}) SELECT {columns} FROM arrow_rows RETURNING code, id"
    ).fetchall()
    return dict(rows)


def get_code(con: duckdb.DuckDBPyConnection, code_id: int) -> CodeRow | None:
    """The code with this id, or None."""
    row = fetch_one(con, f"SELECT {CODE_COLUMNS} FROM codes WHERE id = ?", [code_id])
    return code_row(row) if row is not None else None


def find_code(con: duckdb.DuckDBPyConnection, code: str) -> CodeRow | None:
    """The stored code with this normalized value, or None."""
    row = fetch_one(con, f"SELECT {CODE_COLUMNS} FROM codes WHERE code = ?", [code])
    return code_row(row) if row is not None else None


def list_codes(
    con: duckdb.DuckDBPyConnection,
    *,
    status: CodeStatus | None = None,
    batch_id: int | None = None,
    line_id: str | None = None,
    source: str | None = None,
    from_us: int | None = None,
    to_us: int | None = None,
    limit: int = 100,
    cursor: int | None = None,
    newest_first: bool = True,
) -> CodePage:
    """Codes matching every filter given, by id; created_us in [from_us, to_us).

    limit is capped at MAX_LIMIT. cursor is the next_cursor of the previous page.
    """
    limit = capped(limit)
    where, params = _filters(
        status=status,
        batch_id=batch_id,
        line_id=line_id,
        source=source,
        from_us=from_us,
        to_us=to_us,
    )
    if cursor is not None:
        where.append("id < ?" if newest_first else "id > ?")
        params.append(cursor)
    order = "DESC" if newest_first else "ASC"
    sql = f"SELECT {CODE_COLUMNS} FROM codes{where_clause(where)} ORDER BY id {order} LIMIT ?"
    with translated_errors():
        rows = con.execute(sql, [*params, limit + 1]).fetchall()
    items = [code_row(row) for row in rows[:limit]]
    more = len(rows) > limit
    return CodePage(items=items, next_cursor=items[-1].id if more else None)


def count_codes(
    con: duckdb.DuckDBPyConnection,
    *,
    line_id: str | None = None,
    from_us: int | None = None,
    to_us: int | None = None,
) -> dict[CodeStatus, int]:
    """How many codes are in each status (every status present, zero when none)."""
    where, params = _filters(line_id=line_id, from_us=from_us, to_us=to_us)
    sql = f"SELECT status, count(*) FROM codes{where_clause(where)} GROUP BY status"
    with translated_errors():
        rows = con.execute(sql, params).fetchall()
    counts = dict.fromkeys(CodeStatus, 0)
    counts.update({CodeStatus(status): int(n) for status, n in rows})
    return counts


def set_code_status(
    con: duckdb.DuckDBPyConnection, code: str, status: CodeStatus, *, now_us: int
) -> CodeRow:
    """Move a code to status if the transition table allows it; a code leaving In Batch leaves
    its batch. NotFound if there is no such code, TransitionError if the move is not allowed.
    """
    with transaction(con):
        row = code_for_update(con, code)
        problem = transition_error(row.status, status)
        if problem is None and status == CodeStatus.IN_BATCH:
            problem = "a code joins a batch through add_to_batch, which names the batch"
        if problem is not None:
            raise TransitionError(f"code {code}: {problem}")
        # In Batch -> Sent keeps the code in its batch; every other move out of In Batch
        # takes it out (a rejected or deleted item is no longer in the package).
        leaves = row.status == CodeStatus.IN_BATCH and status != CodeStatus.SENT
        if leaves:
            leave_batch(con, row, now_us)
        con.execute(
            "UPDATE codes SET status = ?, updated_us = ?, "
            "batch_id = CASE WHEN ? THEN NULL ELSE batch_id END WHERE code = ?",
            [int(status), now_us, leaves, code],
        )
    return must(find_code(con, code), f"code {code}")


def scan_facts(
    con: duckdb.DuckDBPyConnection, check: CodeValidation, *, scanned: str | None = None
) -> CodeState:
    """Everything controller.batches.effect_of needs to know about a scanned code.

    scanned is the raw text, looked up as a package identifier for BOX scanners.
    """
    stored = find_code(con, check.normalized) if check.normalized is not None else None
    batch = get_batch(con, stored.batch_id) if stored and stored.batch_id is not None else None
    buffer = find_buffer_entry(con, check.normalized) if check.normalized is not None else None
    package = None
    if scanned is not None:
        found = find_batch(con, scanned.strip())
        if found is not None and found.kind == BatchKind.PACKAGE:
            package = found.view()
    return CodeState(
        check=check,
        stored=StoredCode(status=stored.status, batch_id=stored.batch_id, gtin=stored.gtin)
        if stored is not None
        else None,
        batch=batch.view() if batch is not None else None,
        buffer=buffer,
        as_package=package,
    )


def _filters(**given: object) -> tuple[list[str], list[object]]:
    where: list[str] = []
    params: list[object] = []
    for name, value in given.items():
        if value is None:
            continue
        if name == "from_us":
            where.append("created_us >= ?")
        elif name == "to_us":
            where.append("created_us < ?")
        else:
            where.append(f"{name} = ?")
        params.append(int(value) if isinstance(value, CodeStatus) else value)
    return where, params
