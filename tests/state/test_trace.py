"""One scan judged and carried out (state.trace.judge_scan) in every scanner role, against a
real database file: what the scan answers and which rows it leaves behind."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.batches import BatchKind, BatchStatus, EffectKind
from controller.codes import CodeStatus
from controller.scanner_config import ScannerRole
from state._sql import transaction
from state.batches import BatchRow, create_batch, find_batch, get_batch
from state.buffer import buffer_summary, find_buffer_entry, load_buffer
from state.codes import CodeRow, find_code, insert_codes
from state.connection import open_database
from state.trace import MAX_SHOWN, ScanOrigin, ScanResult, judge_scan, new_batch_identifier
from tests.state.test_codes import GTIN, NOW, OTHER_GTIN, new, scanned

R = ScannerRole
YEAR = 2025  # the year of NOW
TABLES = ("codes", "batches", "batch_members", "buffer_codes")


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    con = open_database(tmp_path / "station.duckdb")
    yield con
    con.close()


def origin(role: ScannerRole, *, line_id: str = "line-1", auto_batch: int | None = None
           ) -> ScanOrigin:
    return ScanOrigin(role=role, source=f"scanner.{role.value.lower()}", industry="dairy",
                      line_id=line_id, party="PARTY-1", auto_batch=auto_batch)


def key(serial: str, gtin: str = GTIN) -> str:
    """The normalized code of a serial (what the store keys codes by)."""
    return f"01{gtin}21{serial}"


def scan(con: duckdb.DuckDBPyConnection, role: ScannerRole, text: str, *, at: int = 0,
         pending: frozenset[str] = frozenset(), **kw: Any) -> ScanResult:
    return judge_scan(con, text, origin(role, **kw), now_us=NOW + at, pending_rejections=pending)


def code(con: duckdb.DuckDBPyConnection, serial: str) -> CodeRow:
    row = find_code(con, key(serial))
    assert row is not None, f"code {serial} is not stored"
    return row


def batch(con: duckdb.DuckDBPyConnection, identifier: str) -> BatchRow:
    row = find_batch(con, identifier)
    assert row is not None, f"no batch {identifier}"
    return row


def open_batch(con: duckdb.DuckDBPyConnection, identifier: str, kind: BatchKind = BatchKind.BATCH,
               *, capacity: int | None = None, line_id: str | None = "line-1",
               gtin: str | None = None) -> BatchRow:
    return create_batch(con, identifier=identifier, kind=kind, capacity=capacity, gtin=gtin,
                        line_id=line_id, now_us=NOW)


def store(con: duckdb.DuckDBPyConnection, *serials: str) -> None:
    """Codes stored Created, as a bulk load from an ERP leaves them."""
    outcomes = insert_codes(con, [new(s) for s in serials], now_us=NOW)
    assert all(o.created for o in outcomes)


def snapshot(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[Any, ...]]]:
    return {t: sorted(con.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in TABLES}


def count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    row = con.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


def members(con: duckdb.DuckDBPyConnection, batch_id: int) -> list[str]:
    rows = con.execute("SELECT code FROM batch_members WHERE batch_id = ? AND removed_us IS NULL "
                       "ORDER BY added_us, code", [batch_id]).fetchall()
    return [c for (c,) in rows]


# ---- ADD ---------------------------------------------------------------------------------------


def test_add_stores_a_new_code_created_when_no_batch_of_the_line_is_open(
        con: duckdb.DuckDBPyConnection) -> None:
    open_batch(con, "B-OTHER-LINE", line_id="line-2")  # another line's batch is not ours

    result = scan(con, R.ADD, scanned("AAA001"))

    assert (result.accepted, result.valid, result.effect, result.reason) == (
        True, True, "create", "created")
    assert (result.code, result.gtin, result.serial) == (key("AAA001"), GTIN, "AAA001")
    assert not (result.eject or result.alarm or result.duplicate)
    assert result.batch_id is None and result.status == 0
    row = code(con, "AAA001")
    assert result.code_id == row.id
    assert (row.status, row.batch_id, row.line_id, row.source, row.party, row.industry) == (
        CodeStatus.CREATED, None, "line-1", "scanner.add", "PARTY-1", "dairy")
    assert batch(con, "B-OTHER-LINE").member_count == 0


def test_add_fills_the_open_batch_and_completes_it_at_capacity(
        con: duckdb.DuckDBPyConnection) -> None:
    made = open_batch(con, "B-1", capacity=2)

    first = scan(con, R.ADD, scanned("AAA001"), at=1)
    second = scan(con, R.ADD, scanned("AAA002"), at=2)
    third = scan(con, R.ADD, scanned("AAA003"), at=3)

    assert (first.accepted, first.batch_id, first.batch_count, first.batch_status) == (
        True, made.id, 1, "open")
    assert first.batch_completed is False and first.status == 1
    assert first.reason == "created in batch B-1"
    assert (second.batch_count, second.batch_status, second.batch_completed) == (
        2, "complete", True)
    # The batch is full: the next code is stored, outside any batch.
    assert (third.accepted, third.batch_id, third.status) == (True, None, 0)
    after = batch(con, "B-1")
    assert (after.status, after.member_count, after.closed_us) == (
        BatchStatus.COMPLETE, 2, NOW + 2)
    assert members(con, made.id) == [key("AAA001"), key("AAA002")]
    assert [(code(con, s).status, code(con, s).batch_id) for s in ("AAA001", "AAA002")] == [
        (CodeStatus.IN_BATCH, made.id)] * 2
    assert (code(con, "AAA003").status, code(con, "AAA003").batch_id) == (CodeStatus.CREATED,
                                                                          None)


def test_add_keeps_a_good_code_the_open_batch_will_not_take(
        con: duckdb.DuckDBPyConnection) -> None:
    open_batch(con, "B-1", gtin=GTIN)

    result = scan(con, R.ADD, scanned("OTH001", OTHER_GTIN))

    assert result.accepted and result.batch_id is None and not result.eject
    assert "not added to B-1" in result.reason and OTHER_GTIN in result.reason
    row = find_code(con, key("OTH001", OTHER_GTIN))
    assert row is not None and (row.status, row.batch_id) == (CodeStatus.CREATED, None)
    assert batch(con, "B-1").member_count == 0


@pytest.mark.parametrize(("text", "why"), [
    ("garbage", "not a GS1 code"),
    (scanned("AAA001", GTIN[:-1] + str((int(GTIN[-1]) + 1) % 10)), "check digit"),
    ("]d201" + GTIN + "21AAA001", "93 missing"),
    ("", "empty code"),
])
def test_add_refuses_and_ejects_an_invalid_code_storing_nothing(
        con: duckdb.DuckDBPyConnection, text: str, why: str) -> None:
    open_batch(con, "B-1", capacity=5)
    before = snapshot(con)

    result = scan(con, R.ADD, text)

    assert (result.accepted, result.valid, result.effect, result.eject) == (
        False, False, "refuse", True)
    assert why in result.reason and not result.duplicate
    assert result.code_id is None and result.batch_id is None
    assert snapshot(con) == before


def test_add_refuses_and_ejects_a_duplicate_leaving_the_stored_code_alone(
        con: duckdb.DuckDBPyConnection) -> None:
    made = open_batch(con, "B-1", capacity=5)
    first = scan(con, R.ADD, scanned("AAA001"), at=1)
    before = snapshot(con)

    # The same code again, as another reader would send it (no AIM prefix, no CR).
    again = scan(con, R.ADD, "01" + GTIN + "21AAA001\x1d93XyZ9", at=2)

    assert first.accepted
    assert (again.accepted, again.valid, again.duplicate, again.eject) == (
        False, True, True, True)
    assert again.reason == "duplicate: code is already stored (In Batch)"
    assert again.code == key("AAA001") and again.status == int(CodeStatus.IN_BATCH)
    assert snapshot(con) == before
    assert batch(con, "B-1").member_count == 1 and members(con, made.id) == [key("AAA001")]


def test_auto_batch_opens_a_batch_for_the_first_good_code_and_the_next_when_full(
        con: duckdb.DuckDBPyConnection) -> None:
    store(con, "OLD001")
    refused = [scan(con, R.ADD, "garbage", auto_batch=2),
               scan(con, R.ADD, scanned("OLD001"), auto_batch=2)]  # a duplicate
    assert [(r.accepted, r.eject) for r in refused] == [(False, True), (False, True)]
    assert count(con, "batches") == 0  # a refused scan opens nothing

    results = [scan(con, R.ADD, scanned(f"AUT00{i}"), at=i, auto_batch=2) for i in range(3)]

    first_id, second_id = f"B-{YEAR}-000001", f"B-{YEAR}-000002"
    assert [r.batch_identifier for r in results] == [first_id, first_id, second_id]
    assert [r.batch_completed for r in results] == [False, True, False]
    one, two = batch(con, first_id), batch(con, second_id)
    assert (one.kind, one.capacity, one.status, one.member_count) == (
        BatchKind.BATCH, 2, BatchStatus.COMPLETE, 2)
    assert (one.line_id, one.device_id) == ("line-1", "scanner.add")
    assert (two.status, two.member_count) == (BatchStatus.OPEN, 1)
    assert code(con, "AUT002").batch_id == two.id


def test_auto_batch_uses_a_batch_that_is_already_open(con: duckdb.DuckDBPyConnection) -> None:
    made = open_batch(con, "B-BY-HAND")

    result = scan(con, R.ADD, scanned("AAA001"), auto_batch=2)

    assert result.batch_id == made.id
    assert count(con, "batches") == 1


def test_a_generated_identifier_skips_taken_ones(con: duckdb.DuckDBPyConnection) -> None:
    assert new_batch_identifier(con, BatchKind.PACKAGE, NOW) == f"P-{YEAR}-000001"
    open_batch(con, f"B-{YEAR}-000002")  # typed in by hand, out of order

    generated = new_batch_identifier(con, BatchKind.BATCH, NOW)

    assert generated == f"B-{YEAR}-000003"
    assert new_batch_identifier(con, BatchKind.BOX, NOW) == f"X-{YEAR}-000001"


def test_a_long_garbage_scan_is_shown_cut_short(con: duckdb.DuckDBPyConnection) -> None:
    result = scan(con, R.ADD, "x" * 10_000)

    assert not result.accepted
    assert result.raw == "x" * MAX_SHOWN + "..."


# ---- REMOVE and REJECTION ----------------------------------------------------------------------


def full_batch(con: duckdb.DuckDBPyConnection, *serials: str) -> BatchRow:
    made = open_batch(con, "B-1", capacity=len(serials))
    for s in serials:
        assert scan(con, R.ADD, scanned(s)).accepted
    assert batch(con, "B-1").status == BatchStatus.COMPLETE
    return made


def test_remove_takes_a_code_out_of_its_batch_and_reopens_a_complete_batch(
        con: duckdb.DuckDBPyConnection) -> None:
    made = full_batch(con, "AAA001", "AAA002")

    result = scan(con, R.REMOVE, scanned("AAA002"), at=5)

    assert (result.accepted, result.effect, result.reason) == (
        True, "leave_batch", "removed from batch B-1")
    assert (result.status, result.batch_id, result.batch_status, result.batch_count) == (
        0, made.id, "open", 1)
    assert result.code_id == code(con, "AAA002").id and not result.eject
    row = code(con, "AAA002")
    assert (row.status, row.batch_id) == (CodeStatus.CREATED, None)
    after = batch(con, "B-1")
    assert (after.status, after.member_count, after.closed_us) == (BatchStatus.OPEN, 1, None)
    assert members(con, made.id) == [key("AAA001")]


def test_remove_refuses_a_code_not_in_a_batch_or_never_added(
        con: duckdb.DuckDBPyConnection) -> None:
    store(con, "AAA001")
    before = snapshot(con)

    loose = scan(con, R.REMOVE, scanned("AAA001"))
    unknown = scan(con, R.REMOVE, scanned("NEW001"))
    unreadable = scan(con, R.REMOVE, "garbage")

    assert (loose.accepted, loose.reason) == (False, "code is Created, not in a batch")
    assert (unknown.accepted, unknown.reason) == (False, "unknown code: it was never added")
    assert not unreadable.accepted and "not a GS1 code" in unreadable.reason
    # A remove station takes items off by hand: nothing to push off the line.
    assert not any(r.eject for r in (loose, unknown, unreadable))
    assert snapshot(con) == before


def test_rejection_makes_a_code_rejected_and_takes_it_out_of_its_batch(
        con: duckdb.DuckDBPyConnection) -> None:
    made = full_batch(con, "AAA001", "AAA002")
    store(con, "LOOSE1")

    in_batch = scan(con, R.REJECTION, scanned("AAA001"), at=5)
    loose = scan(con, R.REJECTION, scanned("LOOSE1"), at=6)
    twice = scan(con, R.REJECTION, scanned("AAA001"), at=7)

    assert (in_batch.accepted, in_batch.effect, in_batch.status) == (True, "reject", 4)
    assert (in_batch.batch_id, in_batch.batch_status, in_batch.batch_count) == (
        made.id, "open", 1)
    row = code(con, "AAA001")
    assert (row.status, row.batch_id) == (CodeStatus.REJECTED, None)
    assert (batch(con, "B-1").status, batch(con, "B-1").member_count) == (BatchStatus.OPEN, 1)
    assert members(con, made.id) == [key("AAA002")]
    assert (loose.accepted, code(con, "LOOSE1").status) == (True, CodeStatus.REJECTED)
    assert (twice.accepted, twice.reason) == (False, "code is already Rejected")
    unknown = scan(con, R.REJECTION, scanned("NEW001"))
    assert (unknown.accepted, unknown.reason) == (False, "unknown code: it was never added")
    assert find_code(con, key("NEW001")) is None


# ---- VERIFY_LOCAL_BUFFER -----------------------------------------------------------------------


def test_buffer_verification_consumes_each_loaded_code_once(
        con: duckdb.DuckDBPyConnection) -> None:
    empty = scan(con, R.VERIFY_LOCAL_BUFFER, scanned("AAA001"))
    assert (empty.accepted, empty.eject, empty.reason) == (
        False, True, "no batch is loaded in the buffer")
    load_buffer(con, "PB-7", [key("AAA001"), key("AAA002")], now_us=NOW)

    first = scan(con, R.VERIFY_LOCAL_BUFFER, scanned("AAA001"), at=1)
    twice = scan(con, R.VERIFY_LOCAL_BUFFER, scanned("AAA001"), at=2)
    stranger = scan(con, R.VERIFY_LOCAL_BUFFER, scanned("ZZZ001"), at=3)
    unreadable = scan(con, R.VERIFY_LOCAL_BUFFER, "garbage", at=4)

    assert (first.accepted, first.effect, first.reason, first.eject) == (
        True, "consume", "consumed from batch PB-7", False)
    entry = find_buffer_entry(con, key("AAA001"))
    assert entry is not None
    assert (entry.consumed_us, entry.consumed_by) == (NOW + 1, "scanner.verify_local_buffer")
    assert (twice.accepted, twice.eject) == (False, True)
    assert twice.reason == "code of batch PB-7 was already consumed by scanner.verify_local_buffer"
    assert (stranger.accepted, stranger.eject) == (False, True)
    assert stranger.reason == "code is not in any batch loaded in the buffer"
    assert (unreadable.accepted, unreadable.eject) == (False, True)
    (summary,) = buffer_summary(con)
    assert (summary.loaded, summary.consumed, summary.remaining) == (2, 1, 1)
    assert count(con, "codes") == 0  # verifying a code does not store it


# ---- PACKAGE and BOX ---------------------------------------------------------------------------


def test_package_scans_put_stored_codes_into_the_open_package(
        con: duckdb.DuckDBPyConnection) -> None:
    store(con, "AAA001", "AAA002", "AAA003")
    nothing_open = scan(con, R.PACKAGE, scanned("AAA001"))
    assert (nothing_open.accepted, nothing_open.eject, nothing_open.reason) == (
        False, True, "no package is open")
    package = open_batch(con, "P-1", BatchKind.PACKAGE, capacity=2)

    first = scan(con, R.PACKAGE, scanned("AAA001"), at=1)
    unknown = scan(con, R.PACKAGE, scanned("NEW001"), at=2)
    again = scan(con, R.PACKAGE, scanned("AAA001"), at=3)
    second = scan(con, R.PACKAGE, scanned("AAA002"), at=4)

    assert (first.accepted, first.effect, first.batch_kind, first.batch_count) == (
        True, "join_batch", "package", 1)
    assert (unknown.accepted, unknown.eject, unknown.reason) == (
        False, True, "unknown code: it was never added")
    assert find_code(con, key("NEW001")) is None  # a package scanner never creates codes
    assert (again.accepted, again.reason) == (False, "code is already in package P-1")
    assert (second.batch_completed, second.batch_status) == (True, "complete")
    assert [(code(con, s).status, code(con, s).batch_id) for s in ("AAA001", "AAA002")] == [
        (CodeStatus.IN_BATCH, package.id)] * 2
    assert code(con, "AAA003").status == CodeStatus.CREATED
    after = batch(con, "P-1")
    assert (after.status, after.member_count) == (BatchStatus.COMPLETE, 2)


def test_a_package_scan_refuses_a_code_already_in_a_batch(
        con: duckdb.DuckDBPyConnection) -> None:
    made = open_batch(con, "B-1")
    scan(con, R.ADD, scanned("AAA001"))
    open_batch(con, "P-1", BatchKind.PACKAGE)

    result = scan(con, R.PACKAGE, scanned("AAA001"))

    assert (result.accepted, result.eject) == (False, True)
    assert "another batch" in result.reason
    assert code(con, "AAA001").batch_id == made.id
    assert batch(con, "P-1").member_count == 0


def test_box_scans_take_items_and_complete_packages_but_not_open_ones(
        con: duckdb.DuckDBPyConnection) -> None:
    store(con, "AAA001", "AAA002", "AAA003")
    done = open_batch(con, "P-DONE", BatchKind.PACKAGE, capacity=1)
    assert scan(con, R.PACKAGE, scanned("AAA001")).batch_completed
    box = open_batch(con, "X-1", BatchKind.BOX, capacity=2)
    still_open = open_batch(con, "P-OPEN", BatchKind.PACKAGE, capacity=5)

    item = scan(con, R.BOX, scanned("AAA002"), at=1)
    refused = scan(con, R.BOX, " P-OPEN\r\n", at=2)  # the package label, as a reader sends it
    nested = scan(con, R.BOX, "P-DONE", at=3)

    assert (item.accepted, item.batch_id, item.batch_count) == (True, box.id, 1)
    assert (code(con, "AAA002").status, code(con, "AAA002").batch_id) == (
        CodeStatus.IN_BATCH, box.id)
    assert (refused.accepted, refused.eject) == (False, True)
    assert refused.reason == "package P-OPEN is open; close it first"
    assert get_batch(con, still_open.id).parent_id is None  # type: ignore[union-attr]
    assert (nested.accepted, nested.effect, nested.reason) == (
        True, "nest_package", "package P-DONE put in box X-1")
    assert (nested.batch_id, nested.batch_count, nested.batch_completed) == (box.id, 2, True)
    assert batch(con, "P-DONE").parent_id == box.id
    assert code(con, "AAA001").batch_id == done.id  # the package keeps its codes
    after = batch(con, "X-1")
    assert (after.status, after.member_count) == (BatchStatus.COMPLETE, 2)
    again = scan(con, R.BOX, "P-DONE", at=4)
    assert not again.accepted and batch(con, "X-1").member_count == 2


# ---- REJECTION_FEEDBACK ------------------------------------------------------------------------


def test_rejection_feedback_confirms_pending_rejections_and_alarms_on_others(
        con: duckdb.DuckDBPyConnection) -> None:
    made = full_batch(con, "AAA001", "AAA002")
    pending = frozenset({key("AAA001"), key("GONE01")})
    before = snapshot(con)

    stranger = scan(con, R.REJECTION_FEEDBACK, scanned("AAA002"), pending=pending)
    unreadable = scan(con, R.REJECTION_FEEDBACK, "garbage", pending=pending)
    assert (stranger.accepted, stranger.alarm, stranger.eject) == (False, True, False)
    assert stranger.reason == "item reached the reject chute but was not to be rejected"
    assert (unreadable.accepted, unreadable.alarm) == (False, True)
    assert snapshot(con) == before

    never_stored = scan(con, R.REJECTION_FEEDBACK, scanned("GONE01"), pending=pending, at=1)
    confirmed = scan(con, R.REJECTION_FEEDBACK, scanned("AAA001"), pending=pending, at=2)

    assert (never_stored.accepted, never_stored.effect, never_stored.alarm) == (
        True, "confirm_rejection", False)
    assert find_code(con, key("GONE01")) is None
    assert (confirmed.accepted, confirmed.effect, confirmed.status) == (
        True, "confirm_rejection", 4)
    row = code(con, "AAA001")
    assert (row.status, row.batch_id) == (CodeStatus.REJECTED, None)
    assert (batch(con, "B-1").status, batch(con, "B-1").member_count) == (BatchStatus.OPEN, 1)
    assert members(con, made.id) == [key("AAA002")]
    assert code(con, "AAA002").status == CodeStatus.IN_BATCH


# ---- transactions ------------------------------------------------------------------------------


def test_scans_inside_one_outer_transaction_commit_together(
        con: duckdb.DuckDBPyConnection) -> None:
    reader = con.cursor()  # another connection: it sees only what is committed
    try:
        with transaction(con):
            first = scan(con, R.ADD, scanned("AAA001"), auto_batch=5)
            second = scan(con, R.ADD, scanned("AAA002"), auto_batch=5)
            assert count(reader, "codes") == 0 and count(reader, "batches") == 0
            # Inside the group each scan sees the ones before it.
            assert second.batch_id == first.batch_id and second.batch_count == 2
        assert count(reader, "codes") == 2
        assert count(reader, "batches") == 1
    finally:
        reader.close()


def test_an_error_after_scans_in_an_outer_transaction_rolls_them_all_back(
        con: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(RuntimeError, match="after the scans"), transaction(con):
        assert scan(con, R.ADD, scanned("AAA001"), auto_batch=5).accepted
        assert scan(con, R.ADD, scanned("AAA002"), auto_batch=5).accepted
        raise RuntimeError("after the scans")

    assert snapshot(con) == {t: [] for t in TABLES}
    # The connection is usable again, and a scan on its own commits by itself.
    result = scan(con, R.ADD, scanned("AAA001"), auto_batch=5)
    assert result.accepted and result.batch_identifier == f"B-{YEAR}-000001"
    reader = con.cursor()
    try:
        assert count(reader, "codes") == 1
    finally:
        reader.close()


# ---- any text, any role ------------------------------------------------------------------------

SEEDED = [f"SEED0{i}" for i in range(6)]
_SERIAL = st.text(alphabet="ABCXYZ0123456789", min_size=6, max_size=6)
_TEXTS = st.one_of(
    st.text(max_size=80),
    st.binary(max_size=60).map(lambda b: b.decode("latin-1")),
    st.sampled_from(SEEDED).map(scanned),
    _SERIAL.map(scanned),
    st.sampled_from(["P-OPEN", "P-DONE", "X-1", "B-1", " P-DONE\r\n"]),
    st.tuples(_SERIAL, st.text(max_size=8)).map(lambda t: scanned(t[0]) + t[1]),
)
_PENDING = st.frozensets(st.sampled_from([key(s) for s in SEEDED] + [key("GONE01")]), max_size=3)


@pytest.fixture
def seeded(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """A line in mid-shift: stored codes, an open batch, an open and a complete package, an
    open box and a loaded buffer. Examples share it and keep adding to it."""
    store(con, *SEEDED)
    open_batch(con, "B-1", capacity=3)
    open_batch(con, "P-OPEN", BatchKind.PACKAGE, capacity=4)
    open_batch(con, "P-DONE", BatchKind.PACKAGE, capacity=1)
    assert scan(con, R.PACKAGE, scanned(SEEDED[0])).accepted  # P-DONE is the newest: it fills
    open_batch(con, "X-1", BatchKind.BOX, capacity=3)
    load_buffer(con, "PB-1", [key(s) for s in SEEDED[3:]], now_us=NOW)
    return con


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_any_text_in_any_role_is_judged_and_a_refused_scan_changes_nothing(
        seeded: duckdb.DuckDBPyConnection, data: st.DataObject) -> None:
    con = seeded
    for step in range(data.draw(st.integers(1, 4), label="scans")):
        role = data.draw(st.sampled_from(list(ScannerRole)), label="role")
        text = data.draw(_TEXTS, label="text")
        auto = data.draw(st.sampled_from([None, 2]), label="auto_batch")
        pending = data.draw(_PENDING, label="pending")
        before = snapshot(con)

        result = scan(con, role, text, at=step, auto_batch=auto, pending=pending)

        assert result.role == role.value and len(result.raw) <= MAX_SHOWN + 3
        assert result.accepted == (result.effect != EffectKind.REFUSE.value)
        if not result.accepted:
            assert result.reason
            assert snapshot(con) == before
        elif role is ScannerRole.ADD:
            assert result.code is not None and find_code(con, result.code) is not None
