"""Batches, aggregation and batch accounting, and what a scan in each scanner role does.

A batch groups codes: a production batch (seed 002 "Batches"), a package (group pack) or a
box. Codes join an open batch; a batch closes when full or by hand, is sent to the cloud and
acknowledged (synced). Packages nest into boxes. Batch accounting (seed 002 "Партионный учёт")
loads the codes of a production batch into a local buffer; a VERIFY_LOCAL_BUFFER scanner then
accepts only codes from it, each once.

Everything here is pure: `effect_of` judges one scan from what the store knows and returns an
Effect; the scanner actor looks the code up, calls it, and performs the effect.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

import msgspec

from controller.codes import CodeStatus, CodeValidation, transition_error

# One definition of the roles: the scanner configuration's (seed 002 scanner config `role`).
from controller.scanner_config import ScannerRole

__all__ = [
    "BATCH_TRANSITIONS",
    "BatchKind",
    "BatchStatus",
    "BatchView",
    "BufferCheck",
    "BufferEntry",
    "BufferOutcome",
    "CodeState",
    "Effect",
    "EffectKind",
    "ScanContext",
    "StoredCode",
    "Verdict",
    "batch_transition_error",
    "buffer_check",
    "code_status_for_batch",
    "effect_of",
    "join_verdict",
    "leave_verdict",
    "nest_verdict",
]


class BatchKind(StrEnum):
    """What a batch is: a production batch, a group pack, or a box (which may hold packages)."""

    BATCH = "batch"
    PACKAGE = "package"
    BOX = "box"


class BatchStatus(StrEnum):
    """Where a batch is in its life; seed 002 shows `in_progress` (open) and `complete`."""

    OPEN = "open"
    COMPLETE = "complete"
    SENT = "sent"
    SYNCED = "synced"
    CANCELLED = "cancelled"


_B = BatchStatus

BATCH_TRANSITIONS: Mapping[BatchStatus, frozenset[BatchStatus]] = {
    _B.OPEN: frozenset({_B.COMPLETE, _B.CANCELLED}),
    _B.COMPLETE: frozenset({_B.OPEN, _B.SENT, _B.CANCELLED}),
    _B.SENT: frozenset({_B.SYNCED}),
    _B.SYNCED: frozenset(),
    _B.CANCELLED: frozenset(),
}
"""Legal batch status changes.

| from \\ to | open | complete | sent | synced | cancelled |
| --- | --- | --- | --- | --- | --- |
| open      | -   | yes | -   | -   | yes |
| complete  | yes | -   | yes | -   | yes |
| sent      | -   | -   | -   | yes | -   |
| synced    | -   | -   | -   | -   | -   |
| cancelled | -   | -   | -   | -   | -   |

complete -> open happens when a code is removed from a full batch (it has room again) or by
hand. Only a complete batch is sent. Cancelling returns its codes to Created and un-nests its
packages; a sent batch cannot be cancelled because the cloud already has it.
"""


def batch_transition_error(old: BatchStatus, new: BatchStatus) -> str | None:
    """Why a batch may not move from old to new, or None when it may."""
    if new in BATCH_TRANSITIONS[old]:
        return None
    if old == new:
        return f"batch is already {old}"
    return f"batch {old} -> {new} is not allowed"


def code_status_for_batch(status: BatchStatus) -> CodeStatus | None:
    """The status a batch's codes take when the batch reaches status; None leaves them be."""
    return {
        _B.SENT: CodeStatus.SENT,
        _B.SYNCED: CodeStatus.SYNCED,
        _B.CANCELLED: CodeStatus.CREATED,
    }.get(status)


class BatchView(msgspec.Struct, frozen=True, kw_only=True):
    """What the rules need to know of a batch; count is its direct members (codes, packages)."""

    id: int
    identifier: str
    kind: BatchKind
    status: BatchStatus
    count: int = 0
    capacity: int | None = None
    gtin: str | None = None
    parent_id: int | None = None

    @property
    def fill(self) -> str:
        """`12/50`, or `12` for a batch without a capacity."""
        return f"{self.count}/{self.capacity}" if self.capacity else str(self.count)


class Verdict(msgspec.Struct, frozen=True, kw_only=True):
    """Whether a batch change may happen; completes/reopens say what it does to the batch."""

    ok: bool
    reason: str | None = None
    completes: bool = False
    reopens: bool = False


def _no(reason: str) -> Verdict:
    return Verdict(ok=False, reason=reason)


def join_verdict(
    batch: BatchView, *, status: CodeStatus, batch_id: int | None, gtin: str | None
) -> Verdict:
    """May a code with this status, batch and GTIN join batch?"""
    name = f"{batch.kind} {batch.identifier}"
    if status == CodeStatus.IN_BATCH and batch_id == batch.id:
        return _no(f"code is already in {name}")
    if status == CodeStatus.IN_BATCH:
        return _no(f"code is in another batch (id {batch_id}); remove it from there first")
    if status != CodeStatus.CREATED:
        return _no(f"code is {status.label}; only Created codes join a batch")
    if batch.status != BatchStatus.OPEN:
        return _no(f"{name} is {batch.status}, not open")
    if batch.capacity is not None and batch.count >= batch.capacity:
        return _no(f"{name} is full ({batch.fill})")
    if batch.gtin is not None and gtin != batch.gtin:
        return _no(f"GTIN {gtin} does not match the GTIN {batch.gtin} of {name}")
    full = batch.capacity is not None and batch.count + 1 >= batch.capacity
    return Verdict(ok=True, completes=full)


def leave_verdict(batch: BatchView | None, *, status: CodeStatus) -> Verdict:
    """May a code leave the batch it is in? A complete batch reopens: it has room again."""
    if status != CodeStatus.IN_BATCH:
        return _no(f"code is {status.label}, not in a batch")
    if batch is None:
        return _no("the batch the code is in was not found")
    if batch.status not in (BatchStatus.OPEN, BatchStatus.COMPLETE):
        return _no(f"{batch.kind} {batch.identifier} is {batch.status}; its codes stay in it")
    return Verdict(ok=True, reopens=batch.status == BatchStatus.COMPLETE)


def nest_verdict(child: BatchView, parent: BatchView) -> Verdict:
    """May package child go into box parent?"""
    if child.kind != BatchKind.PACKAGE or parent.kind != BatchKind.BOX:
        return _no(f"only a package goes into a box, not a {child.kind} into a {parent.kind}")
    if child.parent_id == parent.id:
        return _no(f"package {child.identifier} is already in box {parent.identifier}")
    if child.parent_id is not None:
        return _no(f"package {child.identifier} is in another box (id {child.parent_id})")
    if child.status != BatchStatus.COMPLETE:
        return _no(f"package {child.identifier} is {child.status}; close it first")
    if parent.status != BatchStatus.OPEN:
        return _no(f"box {parent.identifier} is {parent.status}, not open")
    if parent.capacity is not None and parent.count >= parent.capacity:
        return _no(f"box {parent.identifier} is full ({parent.fill})")
    full = parent.capacity is not None and parent.count + 1 >= parent.capacity
    return Verdict(ok=True, completes=full)


class BufferEntry(msgspec.Struct, frozen=True, kw_only=True):
    """A code's row in the batch-accounting buffer."""

    batch_identifier: str
    consumed_us: int | None = None
    consumed_by: str | None = None


class BufferOutcome(StrEnum):
    """What a buffer verification found."""

    CONSUMED = "consumed"
    NO_BUFFER = "no_buffer"
    NOT_IN_BUFFER = "not_in_buffer"
    ALREADY_CONSUMED = "already_consumed"


class BufferCheck(msgspec.Struct, frozen=True, kw_only=True):
    """The outcome of checking one code against the loaded buffer."""

    ok: bool
    outcome: BufferOutcome
    reason: str | None = None
    batch_identifier: str | None = None


def buffer_check(entry: BufferEntry | None, *, buffer_loaded: bool) -> BufferCheck:
    """May the code be consumed from the buffer? Each loaded code is consumed once."""
    if entry is None:
        if not buffer_loaded:
            return BufferCheck(
                ok=False, outcome=BufferOutcome.NO_BUFFER, reason="no batch is loaded in the buffer"
            )
        return BufferCheck(
            ok=False,
            outcome=BufferOutcome.NOT_IN_BUFFER,
            reason="code is not in any batch loaded in the buffer",
        )
    if entry.consumed_us is not None:
        by = f" by {entry.consumed_by}" if entry.consumed_by else ""
        return BufferCheck(
            ok=False,
            outcome=BufferOutcome.ALREADY_CONSUMED,
            reason=f"code of batch {entry.batch_identifier} was already consumed{by}",
            batch_identifier=entry.batch_identifier,
        )
    return BufferCheck(
        ok=True, outcome=BufferOutcome.CONSUMED, batch_identifier=entry.batch_identifier
    )


class StoredCode(msgspec.Struct, frozen=True, kw_only=True):
    """The store's current record of a code."""

    status: CodeStatus
    batch_id: int | None = None
    gtin: str | None = None


class CodeState(msgspec.Struct, frozen=True, kw_only=True):
    """Everything known about the scanned code when the scan is judged.

    stored is the store's row for check.normalized (None: never stored); batch is the batch
    that row is in; buffer its batch-accounting buffer row; as_package a package whose
    identifier is the scanned text (a BOX scanner reads package labels as well as items).
    """

    check: CodeValidation
    stored: StoredCode | None = None
    batch: BatchView | None = None
    buffer: BufferEntry | None = None
    as_package: BatchView | None = None


class ScanContext(msgspec.Struct, frozen=True, kw_only=True):
    """The line's state a scan is judged in.

    open_batch is where ADD puts new codes (None: they stay Created); pending_rejections are
    the normalized codes the line decided to eject and whose ejection is not yet confirmed.
    """

    open_batch: BatchView | None = None
    open_package: BatchView | None = None
    open_box: BatchView | None = None
    buffer_loaded: bool = False
    pending_rejections: frozenset[str] = frozenset()
    # Of those, the ejected items that are not the stored code's own item (a duplicate read at
    # ADD, a code already consumed from the buffer): confirming them leaves the stored code be.
    confirm_only: frozenset[str] = frozenset()


class EffectKind(StrEnum):
    """The change a scan makes."""

    CREATE = "create"
    LEAVE_BATCH = "leave_batch"
    REJECT = "reject"
    CONSUME = "consume"
    JOIN_BATCH = "join_batch"
    NEST_PACKAGE = "nest_package"
    CONFIRM_REJECTION = "confirm_rejection"
    REFUSE = "refuse"


class Effect(msgspec.Struct, frozen=True, kw_only=True):
    """What one scan does, for the scanner actor to carry out.

    code is the normalized code acted on (for NEST_PACKAGE the package identifier);
    new_status the code's status afterwards; batch_id the batch joined, left or nested into;
    complete_batch/reopen_batch what that does to the batch; eject asks the line to push the
    item off; alarm asks an operator to look. REFUSE changes nothing and reason says why.
    """

    kind: EffectKind
    reason: str
    code: str | None = None
    new_status: CodeStatus | None = None
    batch_id: int | None = None
    complete_batch: bool = False
    reopen_batch: bool = False
    eject: bool = False
    alarm: bool = False


def effect_of(role: ScannerRole, code_state: CodeState, context: ScanContext) -> Effect:
    """What a scan of code_state by a scanner in role does, given the line's context.

    ADD: a valid, never-stored code is created (into the open batch if one is open and takes
      it); an invalid or duplicate code is refused and ejected.
    REMOVE: a code leaves its batch and is Created again (a complete batch reopens).
    REJECTION: the reject station; the code becomes Rejected and leaves its batch.
    VERIFY_LOCAL_BUFFER: the code must be in the loaded batch-accounting buffer, not yet
      consumed; it is consumed, otherwise refused and ejected.
    PACKAGE / BOX: aggregation of a stored Created code into the open package / box; a BOX
      scanner also takes a complete package's label and nests the package in the box.
    REJECTION_FEEDBACK: a scanner on the reject chute confirms an ejection the line asked
      for (the code becomes Rejected); an item there that was not to be rejected is an alarm.
    """
    handler = _HANDLERS.get(role)
    if handler is None:  # COACHING: a station scanner's read is not a line code
        return _refuse(f"a {role.value} scanner's reads are not traceability scans")
    return handler(code_state, context)


def _refuse(
    reason: str, code: str | None = None, *, eject: bool = False, alarm: bool = False
) -> Effect:
    return Effect(kind=EffectKind.REFUSE, reason=reason, code=code, eject=eject, alarm=alarm)


def _add(state: CodeState, context: ScanContext) -> Effect:
    check = state.check
    if not check.ok or check.normalized is None:
        return _refuse(check.reason or "invalid code", check.normalized, eject=True)
    code = check.normalized
    if state.stored is not None:
        return _refuse(
            f"duplicate: code is already stored ({state.stored.status.label})", code, eject=True
        )
    batch = context.open_batch
    if batch is None:
        return Effect(
            kind=EffectKind.CREATE, reason="created", code=code, new_status=CodeStatus.CREATED
        )
    verdict = join_verdict(batch, status=CodeStatus.CREATED, batch_id=None, gtin=check.gtin)
    if not verdict.ok:
        # The item is on the line and its code is good: keep it, aggregate it later by hand.
        return Effect(
            kind=EffectKind.CREATE,
            reason=f"created, not added to {batch.identifier}: {verdict.reason}",
            code=code,
            new_status=CodeStatus.CREATED,
        )
    return Effect(
        kind=EffectKind.CREATE,
        reason=f"created in {batch.kind} {batch.identifier}",
        code=code,
        new_status=CodeStatus.IN_BATCH,
        batch_id=batch.id,
        complete_batch=verdict.completes,
    )


def _known(state: CodeState) -> tuple[str, StoredCode] | Effect:
    """The stored code behind a scan, or the refusal to give when there is none."""
    code = state.check.normalized
    if code is None:
        return _refuse(state.check.reason or "unreadable code")
    if state.stored is None:
        return _refuse("unknown code: it was never added", code)
    return code, state.stored


def _remove(state: CodeState, context: ScanContext) -> Effect:
    known = _known(state)
    if isinstance(known, Effect):
        return known
    code, stored = known
    verdict = leave_verdict(state.batch, status=stored.status)
    if not verdict.ok:
        return _refuse(verdict.reason or "cannot leave", code)
    return Effect(
        kind=EffectKind.LEAVE_BATCH,
        reason=f"removed from {_batch_name(state.batch)}",
        code=code,
        new_status=CodeStatus.CREATED,
        batch_id=stored.batch_id,
        reopen_batch=verdict.reopens,
    )


def _reject(state: CodeState, context: ScanContext) -> Effect:
    known = _known(state)
    if isinstance(known, Effect):
        return known
    code, stored = known
    return _rejected(code, stored, state.batch, kind=EffectKind.REJECT, reason="rejected")


def _rejected(
    code: str, stored: StoredCode, batch: BatchView | None, *, kind: EffectKind, reason: str
) -> Effect:
    problem = transition_error(stored.status, CodeStatus.REJECTED)
    if problem is not None:
        return _refuse(problem, code)
    leaving = stored.status == CodeStatus.IN_BATCH
    reopens = leaving and batch is not None and batch.status == BatchStatus.COMPLETE
    return Effect(
        kind=kind,
        reason=reason,
        code=code,
        new_status=CodeStatus.REJECTED,
        batch_id=stored.batch_id if leaving else None,
        reopen_batch=reopens,
    )


def _verify(state: CodeState, context: ScanContext) -> Effect:
    code = state.check.normalized
    if code is None:
        return _refuse(state.check.reason or "unreadable code", eject=True)
    found = buffer_check(state.buffer, buffer_loaded=context.buffer_loaded)
    if not found.ok:
        return _refuse(found.reason or "not in the buffer", code, eject=True)
    return Effect(
        kind=EffectKind.CONSUME, reason=f"consumed from batch {found.batch_identifier}", code=code
    )


def _package(state: CodeState, context: ScanContext) -> Effect:
    return _aggregate(state, context.open_package, "package")


def _box(state: CodeState, context: ScanContext) -> Effect:
    box = context.open_box
    package = state.as_package
    if package is None or box is None:
        return _aggregate(state, box, "box")
    verdict = nest_verdict(package, box)
    if not verdict.ok:
        return _refuse(verdict.reason or "cannot nest", package.identifier, eject=True)
    return Effect(
        kind=EffectKind.NEST_PACKAGE,
        reason=f"package {package.identifier} put in box {box.identifier}",
        code=package.identifier,
        batch_id=box.id,
        complete_batch=verdict.completes,
    )


def _aggregate(state: CodeState, target: BatchView | None, kind: str) -> Effect:
    check = state.check
    if not check.ok or check.normalized is None:
        return _refuse(check.reason or "invalid code", check.normalized, eject=True)
    if target is None:
        return _refuse(f"no {kind} is open", check.normalized, eject=True)
    known = _known(state)
    if isinstance(known, Effect):
        return msgspec.structs.replace(known, eject=True)
    code, stored = known
    verdict = join_verdict(target, status=stored.status, batch_id=stored.batch_id, gtin=check.gtin)
    if not verdict.ok:
        return _refuse(verdict.reason or "cannot join", code, eject=True)
    return Effect(
        kind=EffectKind.JOIN_BATCH,
        reason=f"added to {target.kind} {target.identifier}",
        code=code,
        new_status=CodeStatus.IN_BATCH,
        batch_id=target.id,
        complete_batch=verdict.completes,
    )


def _feedback(state: CodeState, context: ScanContext) -> Effect:
    code = state.check.normalized
    if code is None:
        return _refuse(f"unreadable code on the reject chute: {state.check.reason}", alarm=True)
    if code not in context.pending_rejections:
        return _refuse("item reached the reject chute but was not to be rejected", code, alarm=True)
    if state.stored is None or code in context.confirm_only:
        # Ejected before it was ever stored (an invalid code), or a copy of a stored code whose
        # genuine item is still in its batch (a duplicate): confirm only.
        return Effect(kind=EffectKind.CONFIRM_REJECTION, reason="rejection confirmed", code=code)
    return _rejected(
        code,
        state.stored,
        state.batch,
        kind=EffectKind.CONFIRM_REJECTION,
        reason="rejection confirmed",
    )


def _batch_name(batch: BatchView | None) -> str:
    return f"{batch.kind} {batch.identifier}" if batch is not None else "its batch"


_HANDLERS = {
    ScannerRole.ADD: _add,
    ScannerRole.REMOVE: _remove,
    ScannerRole.REJECTION: _reject,
    ScannerRole.VERIFY_LOCAL_BUFFER: _verify,
    ScannerRole.PACKAGE: _package,
    ScannerRole.BOX: _box,
    ScannerRole.REJECTION_FEEDBACK: _feedback,
}
