"""Tightening results, stored torque settings and wrench controls in DuckDB."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import duckdb
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from state.errors import ConstraintError
from state.migrate import migrate
from state.tightening import (
    StoredProgram,
    Tightening,
    WrenchControls,
    get_tightening,
    last_tightening,
    list_programs,
    list_tightenings,
    load_controls,
    replace_programs,
    save_controls,
    save_program,
    store_result,
    tightening_counts,
)


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect(":memory:")
    migrate(connection)
    yield connection
    connection.close()


def result(wrench: str = "w1", *, ok: bool = True, n: int = 1, **extra: object) -> Tightening:
    fields: dict[str, object] = {
        "wrench": wrench, "tightening_id": n, "controller_name": "PF6000 cell 1", "cell_id": 1,
        "channel_id": 2, "job_id": 0, "pset": 3, "vin": "VIN-42", "batch_size": 4,
        "batch_counter": 1, "batch_status": "nok", "controller_ok": ok,
        "torque_status": "ok" if ok else "high", "angle_status": "ok", "torque_cnm": 1012,
        "torque_min_cnm": 900, "torque_max_cnm": 1100, "torque_target_cnm": 1000, "angle": 61,
        "angle_min": 30, "angle_max": 90, "angle_target": 60, "ok": ok,
        "controller_time": datetime(2026, 3, 1, 8, 15, 30), "received_us": 1_000_000 + n,
    }
    fields.update(extra)
    return Tightening(**fields)  # type: ignore[arg-type]


def test_a_result_keeps_every_field_and_gets_an_id(con: duckdb.DuckDBPyConnection) -> None:
    row = result(takt_torque_min_cnm=950, takt_torque_max_cnm=1050, takt_angle_min=30,
                 takt_angle_max=None, takt_ok=True)
    stored = store_result(con, row)
    assert stored.id >= 1
    assert stored == msgspec.structs.replace(row, id=stored.id)
    assert get_tightening(con, stored.id) == stored
    assert get_tightening(con, stored.id + 1) is None


def test_a_result_and_its_control_change_are_one_transaction(
        con: duckdb.DuckDBPyConnection) -> None:
    first = store_result(con, result(), WrenchControls(wrench="w1", sequence_counter=1,
                                                       sequence_size=2, updated_us=5))
    controls = load_controls(con, "w1")
    assert controls is not None and controls.sequence_counter == 1
    broken = WrenchControls(wrench="w1", tool_enabled=None)  # type: ignore[arg-type]
    with pytest.raises(ConstraintError):
        store_result(con, result(n=2), broken)
    # Neither the result nor the change is there: evidence and counter never disagree.
    assert last_tightening(con, "w1") == first
    assert load_controls(con, "w1") == controls


def test_the_schema_refuses_statuses_it_does_not_know(con: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(ConstraintError):
        store_result(con, result(batch_status="maybe"))
    assert tightening_counts(con, "w1").results == 0


@settings(max_examples=25, deadline=None)
@given(oks=st.lists(st.booleans(), max_size=30), limit=st.integers(1, 7),
       only=st.sampled_from([None, True, False]))
def test_pages_cover_every_result_newest_first_once(oks: list[bool], limit: int,
                                                    only: bool | None) -> None:
    con = duckdb.connect(":memory:")
    migrate(con)
    try:
        ids = [store_result(con, result(ok=ok, n=i)).id for i, ok in enumerate(oks)]
        store_result(con, result("other", n=99))
        expected = [i for i, ok in reversed(list(zip(ids, oks, strict=True)))
                    if only is None or ok is only]
        seen: list[int] = []
        cursor = None
        while True:
            page = list_tightenings(con, "w1", ok=only, cursor=cursor, limit=limit)
            assert len(page.items) <= limit
            seen += [t.id for t in page.items]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert seen == expected
        counts = tightening_counts(con, "w1")
        assert (counts.results, counts.ok, counts.nok) == (len(oks), sum(oks),
                                                           len(oks) - sum(oks))
    finally:
        con.close()


def test_listing_limits_and_the_last_result_after_a_clear(
        con: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(ValueError, match="limit"):
        list_tightenings(con, "w1", limit=0)
    a = store_result(con, result(n=1))
    b = store_result(con, result(n=2, flag="outside Takt's limits", ok=False))
    assert last_tightening(con, "w1") == b
    assert last_tightening(con, "w1", after_id=b.id) is None  # cleared through b
    assert last_tightening(con, "w1", after_id=a.id) == b
    assert tightening_counts(con, "w1").flagged == 1
    assert tightening_counts(con, "nobody").results == 0


def program(pset: int, wrench: str = "w1", **extra: object) -> StoredProgram:
    fields: dict[str, object] = {"wrench": wrench, "pset": pset, "name": f"p{pset}",
                                 "torque_min_nm": 9.5, "torque_max_nm": 10.5,
                                 "torque_target_nm": 10.0, "updated_us": 7,
                                 "updated_by": "eng"}
    fields.update(extra)
    return StoredProgram(**fields)  # type: ignore[arg-type]


def test_programs_are_saved_replaced_and_kept_per_wrench(
        con: duckdb.DuckDBPyConnection) -> None:
    save_program(con, program(1))
    save_program(con, program(1, torque_max_nm=11.0, angle_min=20, angle_max=80))
    save_program(con, program(1, wrench="w2"))
    (one,) = list_programs(con, "w1")
    assert (one.torque_max_nm, one.angle_min, one.angle_max) == (11.0, 20, 80)
    assert replace_programs(con, "w1", [program(5), program(2)]) == [program(2), program(5)]
    assert [p.pset for p in list_programs(con, "w1")] == [2, 5]
    assert [p.pset for p in list_programs(con, "w2")] == [1]  # another wrench's stay
    with pytest.raises(ValueError, match="belong"):
        replace_programs(con, "w1", [program(3, wrench="w2")])
    with pytest.raises(ConstraintError):
        save_program(con, program(1000))
    assert [p.pset for p in list_programs(con, "w1")] == [2, 5]


def test_controls_round_trip_and_replace(con: duckdb.DuckDBPyConnection) -> None:
    assert load_controls(con, "w1") is None
    first = WrenchControls(wrench="w1", tool_enabled=False, locked=True, selected_pset=3,
                           sequence_pset=3, sequence_size=4, sequence_counter=2,
                           cleared_through=10, malformed=1, updated_us=99)
    save_controls(con, first)
    assert load_controls(con, "w1") == first
    second = msgspec.structs.replace(first, locked=False, selected_pset=None)
    save_controls(con, second)
    assert load_controls(con, "w1") == second
