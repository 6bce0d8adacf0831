"""Batches, packages and boxes, and the codes in them, against a real database file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from controller.batches import BatchKind, BatchStatus
from controller.codes import CodeStatus
from state.batches import (
    MemberOutcome,
    add_to_batch,
    batch_history,
    create_batch,
    find_batch,
    get_batch,
    list_batches,
    nest_package,
    remove_from_batch,
    set_batch_status,
)
from state.codes import count_codes, find_code, insert_codes, list_codes
from state.connection import open_database
from state.errors import ConstraintError, DuplicateError, NotFound, TransitionError
from tests.state.test_codes import GTIN, NOW, OTHER_GTIN, new, serials, stored


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    con = open_database(tmp_path / "station.duckdb")
    yield con
    con.close()


def test_a_batch_is_created_found_and_listed(con: duckdb.DuckDBPyConnection) -> None:
    made = create_batch(
        con,
        identifier="B-2024-001234",
        kind=BatchKind.BATCH,
        name="Batch 1234",
        capacity=50,
        gtin=GTIN,
        line_id="line-1",
        device_id="device-001",
        now_us=NOW,
    )
    create_batch(con, identifier="P-1", kind=BatchKind.PACKAGE, device_id="device-002", now_us=NOW)

    assert (made.status, made.member_count, made.capacity) == (BatchStatus.OPEN, 0, 50)
    assert get_batch(con, made.id) == made
    assert find_batch(con, "B-2024-001234") == made
    assert find_batch(con, "B-nope") is None
    assert [b.identifier for b in list_batches(con).items] == ["P-1", "B-2024-001234"]
    assert [b.identifier for b in list_batches(con, device_id="device-001").items] == [
        "B-2024-001234"
    ]
    assert [b.identifier for b in list_batches(con, kind=BatchKind.PACKAGE).items] == ["P-1"]
    first = list_batches(con, limit=1)
    second = list_batches(con, limit=1, cursor=first.next_cursor)
    assert [b.identifier for b in second.items] == ["B-2024-001234"]
    assert second.next_cursor is None


def test_batch_identifiers_are_unique_and_capacities_positive(
    con: duckdb.DuckDBPyConnection,
) -> None:
    create_batch(con, identifier="B-1", kind=BatchKind.BATCH, now_us=NOW)
    with pytest.raises(DuplicateError):
        create_batch(con, identifier="B-1", kind=BatchKind.BOX, now_us=NOW)
    with pytest.raises(ConstraintError):
        create_batch(con, identifier="B-2", kind=BatchKind.BATCH, capacity=0, now_us=NOW)


def test_a_batch_fills_to_capacity_and_refuses_the_rest(con: duckdb.DuckDBPyConnection) -> None:
    items = stored(con, 4)
    batch = create_batch(con, identifier="B-1", kind=BatchKind.BATCH, capacity=3, now_us=NOW)

    outcomes = add_to_batch(
        con, batch.id, [i.code for i in items] + ["01" + GTIN + "21NOSUCH"], now_us=NOW + 1
    )

    assert [o.ok for o in outcomes] == [True, True, True, False, False]
    assert outcomes[3].reason == "batch B-1 is full (3/3)"
    assert outcomes[4].reason == "unknown code"
    after = get_batch(con, batch.id)
    assert after is not None
    assert (after.status, after.member_count, after.closed_us) == (BatchStatus.COMPLETE, 3, NOW + 1)
    assert [r.code for r in list_codes(con, batch_id=batch.id, newest_first=False).items] == [
        i.code for i in items[:3]
    ]
    assert find_code(con, items[3].code).status == CodeStatus.CREATED  # type: ignore[union-attr]


def test_a_batch_with_a_gtin_takes_only_that_product(con: duckdb.DuckDBPyConnection) -> None:
    other = new("OTHER1", gtin=OTHER_GTIN)
    insert_codes(con, [other], now_us=NOW)
    batch = create_batch(con, identifier="B-1", kind=BatchKind.BATCH, gtin=GTIN, now_us=NOW)

    (outcome,) = add_to_batch(con, batch.id, [other.code], now_us=NOW)

    assert outcome.reason == f"GTIN {OTHER_GTIN} does not match the GTIN {GTIN} of batch B-1"


def test_codes_can_be_created_straight_into_a_batch(con: duckdb.DuckDBPyConnection) -> None:
    batch = create_batch(con, identifier="B-1", kind=BatchKind.BATCH, capacity=2, now_us=NOW)

    outcomes = insert_codes(con, [new(s) for s in serials(3)], now_us=NOW, batch_id=batch.id)

    assert [o.created for o in outcomes] == [True, True, False]
    assert outcomes[2].reason == "batch B-1 is full (2/2)"
    assert find_code(con, outcomes[2].code) is None
    assert get_batch(con, batch.id).status == BatchStatus.COMPLETE  # type: ignore[union-attr]
    assert count_codes(con)[CodeStatus.IN_BATCH] == 2


def test_a_bulk_insert_into_a_missing_batch_stores_nothing(con: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(NotFound):
        insert_codes(con, [new("LOST01")], now_us=NOW, batch_id=999)
    assert find_code(con, f"01{GTIN}21LOST01") is None


def test_removing_a_code_reopens_a_complete_batch_and_keeps_history(
    con: duckdb.DuckDBPyConnection,
) -> None:
    items = stored(con, 2)
    batch = create_batch(con, identifier="B-1", kind=BatchKind.BATCH, capacity=2, now_us=NOW)
    add_to_batch(con, batch.id, [i.code for i in items], now_us=NOW + 1)

    outcome = remove_from_batch(con, items[1].code, now_us=NOW + 2)

    assert outcome == MemberOutcome(code=items[1].code, ok=True)
    row = find_code(con, items[1].code)
    assert row is not None
    assert (row.status, row.batch_id) == (CodeStatus.CREATED, None)
    assert get_batch(con, batch.id).status == BatchStatus.OPEN  # type: ignore[union-attr]
    again = remove_from_batch(con, items[1].code, now_us=NOW + 3)
    assert again.reason == "code is Created, not in a batch"
    add_to_batch(con, batch.id, [items[1].code], now_us=NOW + 4)
    assert [(m.added_us, m.removed_us) for m in batch_history(con, items[1].code)] == [
        (NOW + 1, NOW + 2),
        (NOW + 4, None),
    ]


def test_sending_and_syncing_a_box_carries_its_packages_and_codes(
    con: duckdb.DuckDBPyConnection,
) -> None:
    items = stored(con, 3)
    package = create_batch(con, identifier="P-1", kind=BatchKind.PACKAGE, capacity=2, now_us=NOW)
    box = create_batch(con, identifier="X-1", kind=BatchKind.BOX, capacity=2, now_us=NOW)
    add_to_batch(con, package.id, [items[0].code, items[1].code], now_us=NOW + 1)
    assert nest_package(con, package.id, box.id, now_us=NOW + 2).ok
    add_to_batch(con, box.id, [items[2].code], now_us=NOW + 3)
    assert get_batch(con, box.id).status == BatchStatus.COMPLETE  # type: ignore[union-attr]

    set_batch_status(con, box.id, BatchStatus.SENT, now_us=NOW + 4)

    assert get_batch(con, package.id).status == BatchStatus.SENT  # type: ignore[union-attr]
    assert count_codes(con)[CodeStatus.SENT] == 3
    with pytest.raises(TransitionError, match="batch sent -> cancelled is not allowed"):
        set_batch_status(con, box.id, BatchStatus.CANCELLED, now_us=NOW + 5)
    assert remove_from_batch(con, items[0].code, now_us=NOW + 5).ok is False

    set_batch_status(con, box.id, BatchStatus.SYNCED, now_us=NOW + 6)

    assert count_codes(con)[CodeStatus.SYNCED] == 3
    assert get_batch(con, package.id).status == BatchStatus.SYNCED  # type: ignore[union-attr]


def test_nesting_refuses_an_open_package(con: duckdb.DuckDBPyConnection) -> None:
    package = create_batch(con, identifier="P-1", kind=BatchKind.PACKAGE, now_us=NOW)
    box = create_batch(con, identifier="X-1", kind=BatchKind.BOX, now_us=NOW)

    outcome = nest_package(con, package.id, box.id, now_us=NOW)

    assert outcome == MemberOutcome(
        code="P-1", ok=False, reason="package P-1 is open; close it first"
    )
    assert get_batch(con, box.id).member_count == 0  # type: ignore[union-attr]


def test_cancelling_a_batch_returns_its_codes_and_packages(con: duckdb.DuckDBPyConnection) -> None:
    items = stored(con, 2)
    package = create_batch(con, identifier="P-1", kind=BatchKind.PACKAGE, capacity=1, now_us=NOW)
    box = create_batch(con, identifier="X-1", kind=BatchKind.BOX, now_us=NOW)
    add_to_batch(con, package.id, [items[0].code], now_us=NOW)
    nest_package(con, package.id, box.id, now_us=NOW)
    add_to_batch(con, box.id, [items[1].code], now_us=NOW)

    cancelled = set_batch_status(con, box.id, BatchStatus.CANCELLED, now_us=NOW + 1)

    assert (cancelled.status, cancelled.member_count) == (BatchStatus.CANCELLED, 0)
    assert find_code(con, items[1].code).status == CodeStatus.CREATED  # type: ignore[union-attr]
    assert get_batch(con, package.id).parent_id is None  # type: ignore[union-attr]
    # The package itself is untouched: its code stays packed.
    assert find_code(con, items[0].code).batch_id == package.id  # type: ignore[union-attr]


def test_closing_by_hand_and_reopening(con: duckdb.DuckDBPyConnection) -> None:
    batch = create_batch(con, identifier="B-1", kind=BatchKind.BATCH, now_us=NOW)

    closed = set_batch_status(con, batch.id, BatchStatus.COMPLETE, now_us=NOW + 1)
    reopened = set_batch_status(con, batch.id, BatchStatus.OPEN, now_us=NOW + 2)

    assert (closed.status, closed.closed_us) == (BatchStatus.COMPLETE, NOW + 1)
    assert (reopened.status, reopened.closed_us) == (BatchStatus.OPEN, None)
    with pytest.raises(TransitionError, match="batch open -> sent is not allowed"):
        set_batch_status(con, batch.id, BatchStatus.SENT, now_us=NOW + 3)
    with pytest.raises(NotFound):
        set_batch_status(con, 999, BatchStatus.COMPLETE, now_us=NOW)
