"""Batch, aggregation and buffer rules, and what a scan does in each scanner role."""

from __future__ import annotations

import itertools

import pytest
from biip.checksums import gs1_standard_check_digit
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.batches import (
    BATCH_TRANSITIONS,
    BatchKind,
    BatchStatus,
    BatchView,
    BufferEntry,
    BufferOutcome,
    CodeState,
    Effect,
    EffectKind,
    ScanContext,
    StoredCode,
    batch_transition_error,
    buffer_check,
    code_status_for_batch,
    effect_of,
    join_verdict,
    leave_verdict,
    nest_verdict,
)
from controller.codes import GS, CodeStatus, CodeValidation, can_transition, validate
from controller.scanner_config import ScannerRole

GTIN = "0460000000001" + str(gs1_standard_check_digit("0460000000001"))
OTHER_GTIN = "0460000000002" + str(gs1_standard_check_digit("0460000000002"))
GOOD = validate(f"]d201{GTIN}21AbC123{GS}93XyZ9", "dairy")
CODE = f"01{GTIN}21AbC123"
BAD_DIGIT = validate(f"01{GTIN[:-1]}0" + f"21AbC123{GS}93XyZ9", "dairy")

B = BatchStatus
S = CodeStatus


def batch(
    *,
    id: int = 7,
    kind: BatchKind = BatchKind.BATCH,
    status: BatchStatus = B.OPEN,
    count: int = 0,
    capacity: int | None = None,
    gtin: str | None = None,
    parent_id: int | None = None,
) -> BatchView:
    return BatchView(
        id=id,
        identifier=f"{kind}-{id}",
        kind=kind,
        status=status,
        count=count,
        capacity=capacity,
        gtin=gtin,
        parent_id=parent_id,
    )


# --- batch statuses ---------------------------------------------------------------------------

LEGAL_BATCH = {
    (B.OPEN, B.COMPLETE),
    (B.OPEN, B.CANCELLED),
    (B.COMPLETE, B.OPEN),
    (B.COMPLETE, B.SENT),
    (B.COMPLETE, B.CANCELLED),
    (B.SENT, B.SYNCED),
}


@pytest.mark.parametrize(("old", "new"), list(itertools.product(BatchStatus, repeat=2)))
def test_every_batch_status_pair_is_legal_exactly_when_the_table_says(
    old: BatchStatus, new: BatchStatus
) -> None:
    legal = (old, new) in LEGAL_BATCH
    assert (new in BATCH_TRANSITIONS[old]) is legal
    assert (batch_transition_error(old, new) is None) is legal


def test_a_batchs_codes_follow_it_when_sent_synced_or_cancelled() -> None:
    assert code_status_for_batch(B.SENT) == S.SENT
    assert code_status_for_batch(B.SYNCED) == S.SYNCED
    assert code_status_for_batch(B.CANCELLED) == S.CREATED
    assert code_status_for_batch(B.COMPLETE) is None
    # Every status the batch hands its codes is one they may legally take.
    assert can_transition(S.IN_BATCH, S.SENT)
    assert can_transition(S.SENT, S.SYNCED)
    assert can_transition(S.IN_BATCH, S.CREATED)


# --- joining, leaving, nesting ----------------------------------------------------------------


def test_a_created_code_joins_an_open_batch_and_the_last_place_completes_it() -> None:
    assert join_verdict(batch(count=3, capacity=5), status=S.CREATED, batch_id=None, gtin=GTIN).ok
    last = join_verdict(batch(count=4, capacity=5), status=S.CREATED, batch_id=None, gtin=GTIN)
    assert last.ok
    assert last.completes
    assert not join_verdict(batch(count=4), status=S.CREATED, batch_id=None, gtin=GTIN).completes


@pytest.mark.parametrize(
    ("view", "status", "batch_id", "gtin", "reason"),
    [
        (batch(count=5, capacity=5), S.CREATED, None, GTIN, "batch batch-7 is full (5/5)"),
        (batch(status=B.COMPLETE), S.CREATED, None, GTIN, "batch batch-7 is complete, not open"),
        (batch(), S.IN_BATCH, 7, GTIN, "code is already in batch batch-7"),
        (
            batch(),
            S.IN_BATCH,
            3,
            GTIN,
            "code is in another batch (id 3); remove it from there first",
        ),
        (batch(), S.REJECTED, None, GTIN, "code is Rejected; only Created codes join a batch"),
        (
            batch(gtin=OTHER_GTIN),
            S.CREATED,
            None,
            GTIN,
            f"GTIN {GTIN} does not match the GTIN {OTHER_GTIN} of batch batch-7",
        ),
    ],
)
def test_joining_is_refused_with_a_reason(
    view: BatchView, status: CodeStatus, batch_id: int | None, gtin: str, reason: str
) -> None:
    verdict = join_verdict(view, status=status, batch_id=batch_id, gtin=gtin)
    assert not verdict.ok
    assert verdict.reason == reason


def test_leaving_a_complete_batch_reopens_it_and_a_sent_batch_keeps_its_codes() -> None:
    assert leave_verdict(batch(), status=S.IN_BATCH).ok
    assert not leave_verdict(batch(), status=S.IN_BATCH).reopens
    assert leave_verdict(batch(status=B.COMPLETE), status=S.IN_BATCH).reopens
    sent = leave_verdict(batch(status=B.SENT), status=S.IN_BATCH)
    assert sent.reason == "batch batch-7 is sent; its codes stay in it"
    assert leave_verdict(batch(), status=S.CREATED).reason == "code is Created, not in a batch"


def test_a_complete_package_nests_into_an_open_box() -> None:
    package = batch(id=1, kind=BatchKind.PACKAGE, status=B.COMPLETE)
    box = batch(id=2, kind=BatchKind.BOX, count=1, capacity=2)

    verdict = nest_verdict(package, box)

    assert verdict.ok
    assert verdict.completes
    open_package = batch(id=1, kind=BatchKind.PACKAGE)
    assert nest_verdict(open_package, box).reason == "package package-1 is open; close it first"
    nested = batch(id=1, kind=BatchKind.PACKAGE, status=B.COMPLETE, parent_id=9)
    assert nest_verdict(nested, box).reason == "package package-1 is in another box (id 9)"
    assert not nest_verdict(box, package).ok


def test_the_buffer_consumes_each_loaded_code_once() -> None:
    fresh = buffer_check(BufferEntry(batch_identifier="P-1"), buffer_loaded=True)
    assert (fresh.ok, fresh.outcome, fresh.batch_identifier) == (
        True,
        BufferOutcome.CONSUMED,
        "P-1",
    )

    used = buffer_check(
        BufferEntry(batch_identifier="P-1", consumed_us=5, consumed_by="line-2"),
        buffer_loaded=True,
    )
    assert used.outcome == BufferOutcome.ALREADY_CONSUMED
    assert used.reason == "code of batch P-1 was already consumed by line-2"
    assert buffer_check(None, buffer_loaded=True).outcome == BufferOutcome.NOT_IN_BUFFER
    assert buffer_check(None, buffer_loaded=False).outcome == BufferOutcome.NO_BUFFER


# --- effect_of --------------------------------------------------------------------------------


def state(
    check: CodeValidation = GOOD,
    *,
    status: CodeStatus | None = None,
    in_batch: BatchView | None = None,
    buffer: BufferEntry | None = None,
    as_package: BatchView | None = None,
) -> CodeState:
    stored = None
    if status is not None:
        stored = StoredCode(status=status, batch_id=in_batch.id if in_batch else None, gtin=GTIN)
    return CodeState(
        check=check, stored=stored, batch=in_batch, buffer=buffer, as_package=as_package
    )


NOTHING = ScanContext()


def test_add_creates_a_new_code() -> None:
    effect = effect_of(ScannerRole.ADD, state(), NOTHING)
    assert effect == Effect(
        kind=EffectKind.CREATE, reason="created", code=CODE, new_status=S.CREATED
    )


def test_add_puts_a_new_code_into_the_open_batch_and_closes_it_when_full() -> None:
    open_batch = batch(count=49, capacity=50)

    effect = effect_of(ScannerRole.ADD, state(), ScanContext(open_batch=open_batch))

    assert (effect.kind, effect.new_status, effect.batch_id) == (EffectKind.CREATE, S.IN_BATCH, 7)
    assert effect.complete_batch


def test_add_keeps_a_good_code_when_the_open_batch_cannot_take_it() -> None:
    effect = effect_of(ScannerRole.ADD, state(), ScanContext(open_batch=batch(count=5, capacity=5)))

    assert (effect.kind, effect.new_status, effect.batch_id) == (EffectKind.CREATE, S.CREATED, None)
    assert effect.reason == "created, not added to batch-7: batch batch-7 is full (5/5)"
    assert not effect.eject


def test_add_ejects_a_duplicate_and_an_invalid_code() -> None:
    duplicate = effect_of(ScannerRole.ADD, state(status=S.SYNCED), NOTHING)
    assert (duplicate.kind, duplicate.eject) == (EffectKind.REFUSE, True)
    assert duplicate.reason == "duplicate: code is already stored (Synced)"

    invalid = effect_of(ScannerRole.ADD, state(BAD_DIGIT), NOTHING)
    assert (invalid.kind, invalid.eject) == (EffectKind.REFUSE, True)
    assert invalid.reason == BAD_DIGIT.reason


def test_remove_takes_a_code_out_of_its_batch() -> None:
    full = batch(status=B.COMPLETE, count=5, capacity=5)

    effect = effect_of(ScannerRole.REMOVE, state(status=S.IN_BATCH, in_batch=full), NOTHING)

    assert (effect.kind, effect.new_status, effect.batch_id) == (
        EffectKind.LEAVE_BATCH,
        S.CREATED,
        7,
    )
    assert effect.reopen_batch
    assert effect.reason == "removed from batch batch-7"


def test_remove_refuses_codes_that_are_not_in_a_removable_batch() -> None:
    unknown = effect_of(ScannerRole.REMOVE, state(), NOTHING)
    assert unknown.reason == "unknown code: it was never added"
    loose = effect_of(ScannerRole.REMOVE, state(status=S.CREATED), NOTHING)
    assert loose.reason == "code is Created, not in a batch"
    sent = effect_of(
        ScannerRole.REMOVE, state(status=S.IN_BATCH, in_batch=batch(status=B.SENT)), NOTHING
    )
    assert sent.kind == EffectKind.REFUSE
    assert not sent.eject


def test_rejection_rejects_and_takes_the_code_out_of_its_batch() -> None:
    effect = effect_of(
        ScannerRole.REJECTION, state(status=S.IN_BATCH, in_batch=batch(count=2)), NOTHING
    )
    assert (effect.kind, effect.new_status, effect.batch_id) == (EffectKind.REJECT, S.REJECTED, 7)

    loose = effect_of(ScannerRole.REJECTION, state(status=S.CREATED), NOTHING)
    assert (loose.new_status, loose.batch_id) == (S.REJECTED, None)

    synced = effect_of(ScannerRole.REJECTION, state(status=S.SYNCED), NOTHING)
    assert synced.kind == EffectKind.REFUSE
    assert synced.reason == "Synced -> Rejected is not allowed: Synced is final"


def test_verify_consumes_from_the_buffer_or_ejects() -> None:
    loaded = ScanContext(buffer_loaded=True)
    ok = effect_of(
        ScannerRole.VERIFY_LOCAL_BUFFER, state(buffer=BufferEntry(batch_identifier="P-1")), loaded
    )
    assert (ok.kind, ok.code, ok.reason) == (EffectKind.CONSUME, CODE, "consumed from batch P-1")

    missing = effect_of(ScannerRole.VERIFY_LOCAL_BUFFER, state(), loaded)
    assert (missing.kind, missing.eject) == (EffectKind.REFUSE, True)
    assert missing.reason == "code is not in any batch loaded in the buffer"
    nothing_loaded = effect_of(ScannerRole.VERIFY_LOCAL_BUFFER, state(), NOTHING)
    assert nothing_loaded.reason == "no batch is loaded in the buffer"


def test_package_aggregates_a_stored_code_into_the_open_package() -> None:
    package = batch(id=3, kind=BatchKind.PACKAGE, count=5, capacity=6)

    effect = effect_of(
        ScannerRole.PACKAGE, state(status=S.CREATED), ScanContext(open_package=package)
    )

    assert (effect.kind, effect.new_status, effect.batch_id) == (
        EffectKind.JOIN_BATCH,
        S.IN_BATCH,
        3,
    )
    assert effect.complete_batch


def test_package_refuses_and_ejects_what_cannot_be_packed() -> None:
    package = ScanContext(open_package=batch(id=3, kind=BatchKind.PACKAGE))
    assert effect_of(ScannerRole.PACKAGE, state(status=S.CREATED), NOTHING).reason == (
        "no package is open"
    )
    unknown = effect_of(ScannerRole.PACKAGE, state(), package)
    assert (unknown.reason, unknown.eject) == ("unknown code: it was never added", True)
    elsewhere = effect_of(
        ScannerRole.PACKAGE, state(status=S.IN_BATCH, in_batch=batch(id=9)), package
    )
    assert elsewhere.reason == "code is in another batch (id 9); remove it from there first"


def test_box_takes_items_and_package_labels() -> None:
    box = batch(id=4, kind=BatchKind.BOX, count=0, capacity=1)
    context = ScanContext(open_box=box)

    item = effect_of(ScannerRole.BOX, state(status=S.CREATED), context)
    assert (item.kind, item.batch_id) == (EffectKind.JOIN_BATCH, 4)

    label = validate("PKG-1", "generic")  # a package label is no GS1 code of an item
    package = batch(id=3, kind=BatchKind.PACKAGE, status=B.COMPLETE)
    nested = effect_of(ScannerRole.BOX, state(label, as_package=package), context)
    assert (nested.kind, nested.code, nested.batch_id) == (EffectKind.NEST_PACKAGE, "package-3", 4)
    assert nested.complete_batch


def test_rejection_feedback_confirms_expected_ejections_and_alarms_on_others() -> None:
    pending = ScanContext(pending_rejections=frozenset({CODE}))
    confirmed = effect_of(
        ScannerRole.REJECTION_FEEDBACK, state(status=S.IN_BATCH, in_batch=batch()), pending
    )
    assert (confirmed.kind, confirmed.new_status, confirmed.batch_id) == (
        EffectKind.CONFIRM_REJECTION,
        S.REJECTED,
        7,
    )
    never_stored = effect_of(ScannerRole.REJECTION_FEEDBACK, state(), pending)
    assert (never_stored.kind, never_stored.new_status) == (EffectKind.CONFIRM_REJECTION, None)

    surprise = effect_of(ScannerRole.REJECTION_FEEDBACK, state(status=S.CREATED), NOTHING)
    assert (surprise.kind, surprise.alarm) == (EffectKind.REFUSE, True)
    assert surprise.reason == "item reached the reject chute but was not to be rejected"


_checks = st.sampled_from(
    [GOOD, BAD_DIGIT, validate("junk", "generic"), validate(f"01{GTIN}21AbC123", "dairy")]
)
_views = st.builds(
    BatchView,
    id=st.integers(1, 4),
    identifier=st.just("X"),
    kind=st.sampled_from(BatchKind),
    status=st.sampled_from(BatchStatus),
    count=st.integers(0, 6),
    capacity=st.none() | st.integers(1, 6),
    gtin=st.none() | st.sampled_from([GTIN, OTHER_GTIN]),
    parent_id=st.none() | st.integers(1, 4),
)


@settings(max_examples=800, deadline=None)
@given(
    role=st.sampled_from(ScannerRole),
    check=_checks,
    status=st.none() | st.sampled_from(CodeStatus),
    in_batch=st.none() | _views,
    buffer=st.none()
    | st.builds(
        BufferEntry,
        batch_identifier=st.just("P"),
        consumed_us=st.none() | st.just(1),
    ),
    as_package=st.none() | _views,
    open_batch=st.none() | _views,
    open_package=st.none() | _views,
    open_box=st.none() | _views,
    loaded=st.booleans(),
    pending=st.booleans(),
)
def test_no_scan_ever_proposes_an_illegal_status_change(
    role: ScannerRole,
    check: CodeValidation,
    status: CodeStatus | None,
    in_batch: BatchView | None,
    buffer: BufferEntry | None,
    as_package: BatchView | None,
    open_batch: BatchView | None,
    open_package: BatchView | None,
    open_box: BatchView | None,
    loaded: bool,
    pending: bool,
) -> None:
    code_state = state(
        check, status=status, in_batch=in_batch, buffer=buffer, as_package=as_package
    )
    context = ScanContext(
        open_batch=open_batch,
        open_package=open_package,
        open_box=open_box,
        buffer_loaded=loaded,
        pending_rejections=frozenset({CODE}) if pending else frozenset(),
    )

    effect = effect_of(role, code_state, context)

    assert effect.reason
    if effect.kind == EffectKind.REFUSE:
        assert effect.new_status is None
        assert effect.batch_id is None
    if effect.new_status is not None and status is not None:
        assert can_transition(status, effect.new_status)
    if effect.kind == EffectKind.CREATE:
        assert status is None
        assert check.ok
