"""One scan, judged and carried out: validate the code, look up what the store knows of it,
ask controller.batches.effect_of what the scanner's role makes of it, and apply that.

`judge_scan` runs in one transaction (or joins the caller's: the traceability actor judges a
group of scans in one). The rules live in controller.codes and controller.batches; the state
functions used here re-check them against the rows they lock, so a stale context can refuse
a scan but never break a rule.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Collection, Sequence

import duckdb
import msgspec

from controller.batches import (
    BatchKind,
    BatchStatus,
    BatchView,
    CodeState,
    Effect,
    EffectKind,
    ScanContext,
    StoredCode,
    effect_of,
)
from controller.codes import CodeStatus, CodeValidation, validate
from controller.scanner_config import ScannerRole
from state._membership import BATCH_COLUMNS, batch_row, count_in, get_batch
from state._sql import fetch_one, probe, transaction
from state.batches import (
    add_to_batch,
    create_batch,
    find_batch,
    nest_package,
    remove_from_batch,
)
from state.buffer import consume_from_buffer
from state.codes import (
    NewCode,
    insert_checked,
    insert_codes,
    scan_facts,
    set_code_status,
    stored_among,
)

__all__ = [
    "MAX_SHOWN",
    "AddRun",
    "ScanOrigin",
    "ScanResult",
    "judge_adds",
    "judge_scan",
    "new_batch_identifier",
    "scan_context",
]

MAX_SHOWN = 200
"""Longest scanned text kept in a result: a reader sending garbage must not flood the journal."""


class ScanOrigin(msgspec.Struct, frozen=True, kw_only=True):
    """Where a scan comes from and what the line stamps on the codes it creates."""

    role: ScannerRole
    source: str  # `scanner.<name>` or `api`
    industry: str
    line_id: str | None = None
    party: str | None = None
    auto_batch: int | None = None  # ADD with no open batch opens one of this capacity


class ScanResult(msgspec.Struct, frozen=True, kw_only=True):
    """What became of one scan: published on `trace.scan.<source>`, kept in the recent list
    and answered to `POST /api/v1/scanner/scan`.

    accepted is False when the scan changed nothing (reason says why); duplicate marks a
    valid code that is already stored; eject asks the line to push the item off, alarm asks an
    operator to look. batch_* describe the batch the scan joined, left or nested into, after
    the scan.
    """

    ts_us: int
    source: str
    role: str
    raw: str
    valid: bool
    accepted: bool
    effect: str
    reason: str
    duplicate: bool = False
    code: str | None = None
    gtin: str | None = None
    serial: str | None = None
    code_id: int | None = None
    status: int | None = None
    batch_id: int | None = None
    batch_identifier: str | None = None
    batch_kind: str | None = None
    batch_status: str | None = None
    batch_count: int | None = None
    batch_completed: bool = False
    eject: bool = False
    alarm: bool = False


def scan_context(
    con: duckdb.DuckDBPyConnection,
    *,
    line_id: str | None,
    pending_rejections: frozenset[str] = frozenset(),
    confirm_only: frozenset[str] = frozenset(),
    need_buffer: bool = False,
    exclude: Collection[int] = (),
) -> ScanContext:
    """The line's state a scan is judged in: the newest open batch, package and box of the
    line (or of no line) but those in exclude, and whether any batch-accounting buffer is
    loaded."""
    rows = con.execute(
        f"SELECT {BATCH_COLUMNS} FROM batches WHERE status = ? "
        "AND (line_id IS NULL OR line_id = ?) ORDER BY id DESC",
        [str(BatchStatus.OPEN), line_id],
    ).fetchall()
    newest: dict[BatchKind, BatchView] = {}
    for row in rows:
        batch = batch_row(row)
        if batch.id not in exclude:
            newest.setdefault(batch.kind, batch.view())
    loaded = need_buffer and fetch_one(con, "SELECT 1 FROM buffer_codes LIMIT 1", []) is not None
    return ScanContext(
        open_batch=newest.get(BatchKind.BATCH),
        open_package=newest.get(BatchKind.PACKAGE),
        open_box=newest.get(BatchKind.BOX),
        buffer_loaded=loaded,
        pending_rejections=pending_rejections,
        confirm_only=confirm_only,
    )


def judge_scan(
    con: duckdb.DuckDBPyConnection,
    text: str,
    origin: ScanOrigin,
    *,
    now_us: int,
    pending_rejections: frozenset[str] = frozenset(),
    confirm_only: frozenset[str] = frozenset(),
) -> ScanResult:
    """Judge one scanned text in origin's role and apply the effect, in one transaction.

    pending_rejections are the codes of ejected items not yet seen on the reject chute;
    confirm_only those of them that were copies (see ScanContext)."""
    check = validate(text, origin.industry)
    with transaction(con):
        context = scan_context(
            con,
            line_id=origin.line_id,
            pending_rejections=pending_rejections,
            confirm_only=confirm_only,
            need_buffer=origin.role is ScannerRole.VERIFY_LOCAL_BUFFER,
        )
        scanned = text if origin.role is ScannerRole.BOX else None
        facts = scan_facts(con, check, scanned=scanned)
        if (origin.auto_batch is not None and origin.role is ScannerRole.ADD
                and context.open_batch is None and check.ok and facts.stored is None):
            opened = create_batch(
                con, identifier=new_batch_identifier(con, BatchKind.BATCH, now_us),
                kind=BatchKind.BATCH, now_us=now_us, capacity=origin.auto_batch,
                line_id=origin.line_id, device_id=origin.source)
            context = msgspec.structs.replace(context, open_batch=opened.view())
        effect = effect_of(origin.role, facts, context)
        return _apply(con, text, origin, check, facts, effect, now_us)


class AddRun(msgspec.Struct, frozen=True, kw_only=True):
    """The results of a run of ADD scans, and the line's context after it (valid for the next
    run as long as nothing else changes the line's batches)."""

    results: list[ScanResult]
    context: ScanContext


def judge_adds(
    con: duckdb.DuckDBPyConnection,
    texts: Sequence[str],
    origin: ScanOrigin,
    *,
    now_us: int,
    context: ScanContext | None = None,
) -> AddRun:
    """Judge a run of ADD scans as judge_scan would one by one, in a few statements.

    The line's hot path: a statement costs half a millisecond or more here, and judge_scan
    needs a dozen per scan. Here the duplicate check is one probe for the run, the new codes
    one insert per stretch joining the same batch, one statement counts them into it, and
    effect_of still decides each scan (the run's earlier codes count as stored, the open batch
    fills as it goes). context, when given, is the line's context as the caller knows it
    (AddRun.context of the previous run): it saves reading it again.
    """
    if origin.role is not ScannerRole.ADD:
        raise ValueError("judge_adds judges ADD scans only")
    checks = [validate(text, origin.industry) for text in texts]
    with transaction(con):
        if context is None:
            context = scan_context(con, line_id=origin.line_id)
        keys = [c.normalized for c in checks if c.ok and c.normalized is not None]
        stored = _stored_rows(con, stored_among(con, keys)) if keys else {}
        results: list[ScanResult | None] = []
        fresh: list[tuple[int, NewCode, int | None]] = []  # scan index, code, batch joined
        after: dict[int, BatchView] = {}  # by scan: its batch as the scan left it
        full: set[int] = set()
        for index, (text, check) in enumerate(zip(texts, checks, strict=True)):
            known = stored.get(check.normalized or "")
            if (origin.auto_batch is not None and context.open_batch is None and check.ok
                    and known is None):
                opened = create_batch(
                    con, identifier=new_batch_identifier(con, BatchKind.BATCH, now_us),
                    kind=BatchKind.BATCH, now_us=now_us, capacity=origin.auto_batch,
                    line_id=origin.line_id, device_id=origin.source)
                context = msgspec.structs.replace(context, open_batch=opened.view())
            facts = CodeState(check=check, stored=known)
            effect = effect_of(ScannerRole.ADD, facts, context)
            if effect.kind is not EffectKind.CREATE or check.normalized is None:
                results.append(_result(text, origin, check, facts, effect, now_us,
                                       accepted=False))
                continue
            code = check.normalized
            status = effect.new_status or CodeStatus.CREATED
            stored[code] = StoredCode(status=status, batch_id=effect.batch_id, gtin=check.gtin)
            item = NewCode.from_validation(check, line_id=origin.line_id, source=origin.source,
                                           party=origin.party)
            fresh.append((index, item, effect.batch_id))
            results.append(_result(text, origin, check, facts, effect, now_us, accepted=True))
            if effect.batch_id is not None and context.open_batch is not None:
                batch = context.open_batch
                view = msgspec.structs.replace(batch, count=batch.count + 1)
                if effect.complete_batch:
                    view = msgspec.structs.replace(view, status=BatchStatus.COMPLETE)
                    full.add(view.id)
                after[index] = view
                # A full batch takes no more: the next scan goes to the next open one (its
                # row still says open: the run's rows are written at its end).
                context = (scan_context(con, line_id=origin.line_id, exclude=full)
                           if effect.complete_batch else
                           msgspec.structs.replace(context, open_batch=view))
        # Inserted in scan order (ids rise as the scans came), one statement per stretch of
        # codes joining the same batch.
        for batch_id, stretch in itertools.groupby(fresh, key=lambda f: f[2]):
            items = [(index, item) for index, item, _ in stretch]
            ids = insert_checked(con, [item for _, item in items], now_us=now_us,
                                 batch_id=batch_id)
            if batch_id is not None:
                count_in(con, batch_id, [item.code for _, item in items], now_us)
            for index, item in items:
                result = results[index]
                assert result is not None
                results[index] = _joined(result, ids[item.code], after.get(index))
    return AddRun(results=[r for r in results if r is not None], context=context)


def _stored_rows(con: duckdb.DuckDBPyConnection, codes: set[str]) -> dict[str, StoredCode]:
    if not codes:
        return {}
    rows = probe(con, "SELECT code, status, batch_id, gtin FROM codes WHERE code IN ({marks})",
                 sorted(codes))
    return {code: StoredCode(status=CodeStatus(status), batch_id=batch_id, gtin=gtin)
            for code, status, batch_id, gtin in rows}


def _joined(result: ScanResult, code_id: int, batch: BatchView | None) -> ScanResult:
    """A stored ADD scan's result with its id and the batch as it stood after the scan."""
    if batch is None:
        return msgspec.structs.replace(result, code_id=code_id, status=int(CodeStatus.CREATED))
    return msgspec.structs.replace(
        result, code_id=code_id, status=int(CodeStatus.IN_BATCH), batch_id=batch.id,
        batch_identifier=batch.identifier, batch_kind=batch.kind.value,
        batch_status=batch.status.value, batch_count=batch.count,
        batch_completed=batch.status is BatchStatus.COMPLETE)


_BATCH_PREFIX = {BatchKind.BATCH: "B", BatchKind.PACKAGE: "P", BatchKind.BOX: "X"}


def new_batch_identifier(con: duckdb.DuckDBPyConnection, kind: BatchKind, now_us: int) -> str:
    """The next free identifier of its kind and year: B-2026-000001, P-.. packages, X-.. boxes."""
    year = time.gmtime(now_us / 1_000_000).tm_year
    prefix = f"{_BATCH_PREFIX[kind]}-{year}-"
    row = fetch_one(con, "SELECT count(*) FROM batches WHERE starts_with(identifier, ?)",
                    [prefix])
    n = int(row[0]) if row else 0
    while find_batch(con, f"{prefix}{n + 1:06d}") is not None:
        n += 1
    return f"{prefix}{n + 1:06d}"


def _apply(
    con: duckdb.DuckDBPyConnection,
    text: str,
    origin: ScanOrigin,
    check: CodeValidation,
    facts: CodeState,
    effect: Effect,
    now_us: int,
) -> ScanResult:
    refused = _result(text, origin, check, facts, effect, now_us, accepted=False)
    kind, code = effect.kind, effect.code
    if kind is EffectKind.REFUSE or code is None:
        return refused
    code_id: int | None = None
    if kind is EffectKind.CREATE:
        item = NewCode.from_validation(
            check, line_id=origin.line_id, source=origin.source, party=origin.party
        )
        (outcome,) = insert_codes(con, [item], now_us=now_us, batch_id=effect.batch_id)
        if not outcome.created:  # the batch filled or closed since the context was read
            return msgspec.structs.replace(refused, reason=outcome.reason or "not stored")
        code_id = outcome.id
    elif kind is EffectKind.LEAVE_BATCH or kind is EffectKind.JOIN_BATCH:
        if kind is EffectKind.LEAVE_BATCH:
            member = remove_from_batch(con, code, now_us=now_us)
        else:
            assert effect.batch_id is not None  # effect_of names the batch joined
            (member,) = add_to_batch(con, effect.batch_id, [code], now_us=now_us)
        if not member.ok:
            return msgspec.structs.replace(refused, reason=member.reason or "refused")
    elif kind is EffectKind.REJECT or kind is EffectKind.CONFIRM_REJECTION:
        if effect.new_status is CodeStatus.REJECTED:
            set_code_status(con, code, CodeStatus.REJECTED, now_us=now_us)
    elif kind is EffectKind.CONSUME:
        found = consume_from_buffer(con, code, consumed_by=origin.source, now_us=now_us)
        if not found.ok:
            return msgspec.structs.replace(refused, reason=found.reason or "not in the buffer",
                                           eject=True)
    elif kind is EffectKind.NEST_PACKAGE:
        package = find_batch(con, code)
        assert package is not None and effect.batch_id is not None  # as effect_of saw them
        member = nest_package(con, package.id, effect.batch_id, now_us=now_us)
        if not member.ok:
            return msgspec.structs.replace(refused, reason=member.reason or "refused",
                                           eject=True)
    result = _result(text, origin, check, facts, effect, now_us, accepted=True)
    return _with_batch(con, result, effect, code_id)


def _result(
    text: str,
    origin: ScanOrigin,
    check: CodeValidation,
    facts: CodeState,
    effect: Effect,
    now_us: int,
    *,
    accepted: bool,
) -> ScanResult:
    shown = text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + "..."
    duplicate = (origin.role is ScannerRole.ADD and check.ok and facts.stored is not None)
    stored = facts.stored
    return ScanResult(
        ts_us=now_us,
        source=origin.source,
        role=origin.role.value,
        raw=shown,
        valid=check.ok,
        accepted=accepted,
        effect=effect.kind.value,
        reason=effect.reason,
        duplicate=duplicate,
        code=check.normalized,
        gtin=check.gtin,
        serial=check.serial,
        status=int(stored.status) if stored is not None else None,
        eject=effect.eject,
        alarm=effect.alarm,
    )


def _with_batch(
    con: duckdb.DuckDBPyConnection, result: ScanResult, effect: Effect, code_id: int | None
) -> ScanResult:
    """Fill in the stored code's id and status and its batch's state after the scan."""
    row = fetch_one(con, "SELECT id, status FROM codes WHERE code = ?", [result.code])
    batch = get_batch(con, effect.batch_id) if effect.batch_id is not None else None
    return msgspec.structs.replace(
        result,
        code_id=code_id if code_id is not None else (row[0] if row else None),
        status=int(row[1]) if row else None,
        batch_id=batch.id if batch else None,
        batch_identifier=batch.identifier if batch else None,
        batch_kind=batch.kind.value if batch else None,
        batch_status=batch.status.value if batch else None,
        batch_count=batch.member_count if batch else None,
        batch_completed=bool(
            batch and effect.complete_batch and batch.status is BatchStatus.COMPLETE
        ),
    )
