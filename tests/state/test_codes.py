"""Marking codes, and what a scan needs to know about one, against a real database file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from biip.checksums import gs1_standard_check_digit

from controller.batches import BatchKind, BatchStatus, EffectKind, ScanContext, effect_of
from controller.codes import GS, CodeStatus, validate
from controller.scanner_config import ScannerRole
from state.batches import add_to_batch, batch_history, create_batch, get_batch
from state.codes import (
    BULK_CHECK_FROM,
    MAX_LIMIT,
    InsertOutcome,
    NewCode,
    code_hash,
    count_codes,
    find_code,
    get_code,
    insert_codes,
    list_codes,
    scan_facts,
    set_code_status,
    stored_among,
)
from state.connection import open_database
from state.errors import NotFound, TransitionError

NOW = 1_750_000_000_000_000
GTIN = "0460000000001" + str(gs1_standard_check_digit("0460000000001"))
OTHER_GTIN = "0460000000002" + str(gs1_standard_check_digit("0460000000002"))


def scanned(serial: str, gtin: str = GTIN) -> str:
    return f"]d201{gtin}21{serial}{GS}93XyZ9\r"


def new(
    serial: str, *, gtin: str = GTIN, line_id: str = "line-1", source: str = "scanner:add"
) -> NewCode:
    check = validate(scanned(serial, gtin), "dairy")
    return NewCode.from_validation(check, line_id=line_id, source=source, party="PARTY-1")


def serials(n: int, prefix: str = "S") -> list[str]:
    return [f"{prefix}{i:0{6 - len(prefix)}d}" for i in range(n)]


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "station.duckdb"


@pytest.fixture
def con(db_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    con = open_database(db_path)
    yield con
    con.close()


def stored(con: duckdb.DuckDBPyConnection, n: int, prefix: str = "S") -> list[NewCode]:
    items = [new(s) for s in serials(n, prefix)]
    assert all(o.created for o in insert_codes(con, items, now_us=NOW))
    return items


# --- codes -------------------------------------------------------------------------------------


def test_a_bulk_insert_reports_each_item_and_stores_all_but_the_duplicates(
    con: duckdb.DuckDBPyConnection,
) -> None:
    first = new("AAA001")
    insert_codes(con, [first], now_us=NOW)
    batch = [new("AAA002"), first, new("AAA003"), new("AAA002")]

    outcomes = insert_codes(con, batch, now_us=NOW + 1)

    assert [(o.index, o.created, o.duplicate) for o in outcomes] == [
        (0, True, False),
        (1, False, True),
        (2, True, False),
        (3, False, True),
    ]
    assert outcomes[1].reason == "duplicate: already stored"
    assert outcomes[3].reason == "repeated in this request (item 0)"
    row = get_code(con, outcomes[2].id or -1)
    assert row is not None
    assert (row.code, row.raw, row.status, row.created_us) == (
        f"01{GTIN}21AAA003",
        f"01{GTIN}21AAA003{GS}93XyZ9",
        CodeStatus.CREATED,
        NOW + 1,
    )
    assert count_codes(con)[CodeStatus.CREATED] == 3


def test_the_same_item_scanned_differently_is_one_code(con: duckdb.DuckDBPyConnection) -> None:
    first = NewCode.from_validation(validate(f"01{GTIN}21AbC123{GS}93XyZ9", "dairy"))
    again = NewCode.from_validation(validate(f"]d201{GTIN}21AbC12393QQQQ\r\n", "dairy"))

    insert_codes(con, [first], now_us=NOW)

    assert insert_codes(con, [again], now_us=NOW)[0].duplicate


def test_a_large_import_finds_its_duplicates_through_the_hash_column(
    con: duckdb.DuckDBPyConnection,
) -> None:
    already = stored(con, 50, prefix="A")
    fresh = [new(s) for s in serials(BULK_CHECK_FROM + 100, prefix="B")]
    mixed = fresh[:100] + already[::5] + fresh[100:]

    outcomes = insert_codes(con, mixed, now_us=NOW + 5)

    assert {o.code for o in outcomes if o.duplicate} == {c.code for c in already[::5]}
    assert sum(o.created for o in outcomes) == len(fresh)
    assert stored_among(con, [c.code for c in fresh] + ["01" + GTIN + "21NOPE00"]) == {
        c.code for c in fresh
    }


def test_the_code_hash_is_pinned_because_stored_rows_depend_on_it() -> None:
    assert code_hash(f"01{GTIN}21AbC123") == -7756274454557730573


def test_only_a_valid_code_becomes_a_row() -> None:
    with pytest.raises(ValueError, match="check digit"):
        NewCode.from_validation(validate(f"01{GTIN[:-1]}0" + f"21AbC123{GS}93XyZ9", "dairy"))


def test_codes_survive_a_reopen(db_path: Path) -> None:
    con = open_database(db_path)
    insert_codes(con, [new("KEEP01")], now_us=NOW)
    con.close()

    con = open_database(db_path)
    try:
        assert find_code(con, f"01{GTIN}21KEEP01") is not None
        assert insert_codes(con, [new("KEEP01")], now_us=NOW)[0].duplicate
    finally:
        con.close()


def test_listing_pages_through_every_code_once(con: duckdb.DuckDBPyConnection) -> None:
    items = stored(con, 25)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = list_codes(con, limit=10, cursor=cursor)
        seen += [row.code for row in page.items]
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor

    assert pages == 3
    assert seen == [item.code for item in reversed(items)]  # newest first
    oldest = list_codes(con, limit=3, newest_first=False)
    assert [row.code for row in oldest.items] == [item.code for item in items[:3]]
    after = list_codes(con, limit=3, newest_first=False, cursor=oldest.next_cursor)
    assert [row.code for row in after.items] == [item.code for item in items[3:6]]


def test_listing_filters_by_status_line_source_batch_and_time(
    con: duckdb.DuckDBPyConnection,
) -> None:
    insert_codes(con, [new("LINE1A"), new("LINE1B")], now_us=NOW)
    insert_codes(con, [new("LINE2A", line_id="line-2", source="scanner:b")], now_us=NOW + 10)
    set_code_status(con, f"01{GTIN}21LINE1B", CodeStatus.REJECTED, now_us=NOW + 20)
    batch = create_batch(con, identifier="B-1", kind=BatchKind.BATCH, now_us=NOW)
    add_to_batch(con, batch.id, [f"01{GTIN}21LINE1A"], now_us=NOW + 30)

    def codes(**filters: object) -> list[str | None]:
        return [row.serial for row in list_codes(con, **filters).items]  # type: ignore[arg-type]

    assert codes(line_id="line-1") == ["LINE1B", "LINE1A"]
    assert codes(source="scanner:b") == ["LINE2A"]
    assert codes(status=CodeStatus.REJECTED) == ["LINE1B"]
    assert codes(batch_id=batch.id) == ["LINE1A"]
    assert codes(from_us=NOW + 10) == ["LINE2A"]
    assert codes(to_us=NOW + 10) == ["LINE1B", "LINE1A"]
    assert codes(line_id="line-1", status=CodeStatus.IN_BATCH) == ["LINE1A"]


def test_a_listing_limit_is_capped_and_must_be_positive(con: duckdb.DuckDBPyConnection) -> None:
    insert_codes(con, [new(s) for s in serials(MAX_LIMIT + 5)], now_us=NOW)

    page = list_codes(con, limit=MAX_LIMIT * 10)

    assert len(page.items) == MAX_LIMIT
    assert page.next_cursor is not None
    with pytest.raises(ValueError, match="limit"):
        list_codes(con, limit=0)


def test_counts_by_status_include_empty_statuses(con: duckdb.DuckDBPyConnection) -> None:
    items = stored(con, 3)
    set_code_status(con, items[0].code, CodeStatus.DELETED, now_us=NOW + 1)

    counts = count_codes(con)

    assert counts == {
        CodeStatus.CREATED: 2,
        CodeStatus.IN_BATCH: 0,
        CodeStatus.SENT: 0,
        CodeStatus.SYNCED: 0,
        CodeStatus.REJECTED: 0,
        CodeStatus.DELETED: 1,
    }
    assert count_codes(con, line_id="elsewhere")[CodeStatus.CREATED] == 0


def test_status_changes_follow_the_transition_table(con: duckdb.DuckDBPyConnection) -> None:
    (item,) = stored(con, 1)

    sent = set_code_status(con, item.code, CodeStatus.SENT, now_us=NOW + 1)
    synced = set_code_status(con, item.code, CodeStatus.SYNCED, now_us=NOW + 2)

    assert (sent.status, synced.status, synced.updated_us) == (
        CodeStatus.SENT,
        CodeStatus.SYNCED,
        NOW + 2,
    )
    with pytest.raises(TransitionError, match="Synced -> Deleted is not allowed: Synced is final"):
        set_code_status(con, item.code, CodeStatus.DELETED, now_us=NOW + 3)
    assert find_code(con, item.code).status == CodeStatus.SYNCED  # type: ignore[union-attr]
    with pytest.raises(NotFound):
        set_code_status(con, "01" + GTIN + "21NOSUCH", CodeStatus.DELETED, now_us=NOW)


def test_a_code_joins_a_batch_only_through_add_to_batch(con: duckdb.DuckDBPyConnection) -> None:
    (item,) = stored(con, 1)
    with pytest.raises(TransitionError, match="add_to_batch"):
        set_code_status(con, item.code, CodeStatus.IN_BATCH, now_us=NOW)


def test_rejecting_a_batched_code_takes_it_out_and_reopens_the_batch(
    con: duckdb.DuckDBPyConnection,
) -> None:
    items = stored(con, 2)
    batch = create_batch(con, identifier="B-1", kind=BatchKind.BATCH, capacity=2, now_us=NOW)
    add_to_batch(con, batch.id, [i.code for i in items], now_us=NOW + 1)
    assert get_batch(con, batch.id).status == BatchStatus.COMPLETE  # type: ignore[union-attr]

    row = set_code_status(con, items[0].code, CodeStatus.REJECTED, now_us=NOW + 2)

    assert (row.status, row.batch_id) == (CodeStatus.REJECTED, None)
    after = get_batch(con, batch.id)
    assert after is not None
    assert (after.status, after.member_count, after.closed_us) == (BatchStatus.OPEN, 1, None)
    assert [(m.batch_id, m.removed_us) for m in batch_history(con, items[0].code)] == [
        (batch.id, NOW + 2)
    ]


# --- a scan, end to end ------------------------------------------------------------------------


def test_an_add_scan_of_a_stored_code_is_a_duplicate_to_eject(
    con: duckdb.DuckDBPyConnection,
) -> None:
    check = validate(scanned("DUP001"), "dairy")
    first = effect_of(ScannerRole.ADD, scan_facts(con, check), ScanContext())
    assert first.kind == EffectKind.CREATE
    (outcome,) = insert_codes(con, [NewCode.from_validation(check)], now_us=NOW)
    assert isinstance(outcome, InsertOutcome)

    second = effect_of(ScannerRole.ADD, scan_facts(con, check), ScanContext())

    assert (second.kind, second.eject, second.reason) == (
        EffectKind.REFUSE,
        True,
        "duplicate: code is already stored (Created)",
    )


def test_a_box_scanner_recognises_a_package_label(con: duckdb.DuckDBPyConnection) -> None:
    package = create_batch(con, identifier="P-77", kind=BatchKind.PACKAGE, now_us=NOW)
    check = validate("P-77\r", "generic")

    facts = scan_facts(con, check, scanned="P-77\r")

    assert facts.as_package is not None
    assert facts.as_package.id == package.id
    assert facts.stored is None
