"""Step events (migration 0009) against a real database file: start, auto and manual finish,
who did it, every refusal leaving nothing behind, and the daily summary against an oracle."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from state.connection import open_database
from state.errors import DuplicateError
from state.operators import add_operator
from state.step_events import (
    STATION_MACHINE_ID,
    DaySummary,
    InvalidEndTimestamp,
    InvalidStartTimestamp,
    MachineNotFound,
    NoActiveStepEvent,
    UserNotFound,
    add_machine,
    ensure_station_machine,
    finish_step_event,
    get_step_event,
    list_machines,
    open_step_event,
    start_step_event,
    step_event_summary,
)
from state.users import create_user, set_user_disabled

T0 = 1_748_340_000_000_000  # 2025-05-27T10:00:00Z
S = 1_000_000
DAY = 86_400 * S


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    con = open_database(tmp_path / "station.duckdb")
    ensure_station_machine(con, station_id="cell-7", display_name="Cell 7", now_us=T0)
    yield con
    con.close()


def _start(con: duckdb.DuckDBPyConnection, start_us: int = T0, **kw: Any) -> Any:
    fields: dict[str, Any] = {
        "machine": "Cell 7", "operator_id": None, "user_email": None, "part": "PART123",
        "recipe_version": "1", "step_number": "10", "expected_cycle_s": 120.0,
        "expected_setup_s": 30.0, "qty_expected": 5, "wo_number": "WO-123", "source": "api",
        "record_id": None, "now_us": start_us + S, **kw}
    return start_step_event(con, start_us=start_us, **fields)


def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    row = con.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


def test_the_station_is_machine_one_and_follows_its_name(con: duckdb.DuckDBPyConnection) -> None:
    again = ensure_station_machine(con, station_id="cell-7", display_name="Cell 7", now_us=T0 + 1)
    assert (again.id, again.name, again.display_name, again.updated_us) == (
        STATION_MACHINE_ID, "cell-7", "Cell 7", T0)
    renamed = ensure_station_machine(con, station_id="cell-7", display_name="Cell Seven",
                                     now_us=T0 + 2)
    assert renamed.display_name == "Cell Seven" and renamed.updated_us == T0 + 2
    press = add_machine(con, name="press-1", display_name="Press 1", now_us=T0)
    assert press.id == 2
    assert [m.display_name for m in list_machines(con)] == ["Cell Seven", "Press 1"]
    with pytest.raises(DuplicateError):
        add_machine(con, name="other", display_name="Press 1", now_us=T0)


def test_a_start_creates_part_recipe_and_step_once(con: duckdb.DuckDBPyConnection) -> None:
    ada = add_operator(con, first_name="Ada", last_name="L", role="operator",
                       email="ada@example.com", now_us=T0)
    first = _start(con, user_email="ADA@example.com")
    e = first.event
    assert (e.machine_id, e.operator_id, e.user_id, e.start_us, e.end_us) == (
        1, ada.id, None, T0, None)
    assert (e.qty_expected, e.wo_number, e.ending_type, e.source) == (5, "WO-123", "manual",
                                                                       "api")
    assert first.part.unique_identifier == "PART123" and first.recipe.version == "1"
    assert first.recipe.part_id == first.part.id and first.step.recipe_id == first.recipe.id
    assert (first.step.number, first.step.expected_cycle_s, first.step.expected_setup_s) == (
        "10", 120.0, 30.0)
    assert first.finished is None
    second = _start(con, T0 + 60 * S, expected_cycle_s=90.0, expected_setup_s=None,
                    operator_id=ada.id, source="sequencer", record_id=7)
    assert (second.part.id, second.recipe.id, second.step.id) == (
        first.part.id, first.recipe.id, first.step.id)
    # Expected times given replace the stored ones; one left out keeps its value.
    assert (second.step.expected_cycle_s, second.step.expected_setup_s) == (90.0, 30.0)
    assert second.event.record_id == 7 and second.event.source == "sequencer"
    other = _start(con, T0 + 120 * S, recipe_version="2")
    assert other.part.id == first.part.id and other.recipe.id != first.recipe.id
    assert (_count(con, "parts"), _count(con, "recipes"), _count(con, "recipe_steps")) == (1, 2, 2)


def test_starting_finishes_the_open_event_automatically(con: duckdb.DuckDBPyConnection) -> None:
    first = _start(con)
    second = _start(con, T0 + 90 * S, step_number="20")
    assert second.finished is not None and second.finished.id == first.event.id
    closed = get_step_event(con, first.event.id)
    assert closed is not None and (closed.end_us, closed.ending_type) == (T0 + 90 * S, "auto")
    assert open_step_event(con, machine_id=1) == second.event
    # A start before the open event's start would have to end it before it began.
    with pytest.raises(InvalidStartTimestamp) as refused:
        _start(con, T0 + 30 * S)
    assert str(refused.value) == "Invalid start timestamp"
    assert _count(con, "step_events") == 2 and open_step_event(con, machine_id=1) == second.event


def test_who_did_it_operator_then_takt_user(con: duckdb.DuckDBPyConnection) -> None:
    user_id = create_user(con, "QA@Example.com", "$argon2id$h", "engineer", T0)
    by_user = _start(con, user_email="qa@example.com")
    assert (by_user.event.operator_id, by_user.event.user_id) == (None, user_id)
    nobody = _start(con, T0 + S, user_email=None)
    assert (nobody.event.operator_id, nobody.event.user_id) == (None, None)
    set_user_disabled(con, user_id, True)
    with pytest.raises(UserNotFound):
        _start(con, T0 + 2 * S, user_email="qa@example.com")


@pytest.mark.parametrize(("fields", "error", "message"), [
    ({"machine": "Cell 8"}, MachineNotFound, "Machine not found"),
    ({"user_email": "nobody@example.com"}, UserNotFound, "User not found"),
    ({"operator_id": 42}, UserNotFound, "User not found"),
])
def test_a_refused_start_writes_nothing(con: duckdb.DuckDBPyConnection, fields: dict[str, Any],
                                        error: type[Exception], message: str) -> None:
    with pytest.raises(error) as refused:
        _start(con, **fields)
    assert str(refused.value) == message
    assert [_count(con, t) for t in ("parts", "recipes", "recipe_steps", "step_events")] == [
        0, 0, 0, 0]


def test_finishing_the_open_event(con: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(NoActiveStepEvent) as refused:
        finish_step_event(con, machine="Cell 7", end_us=None, qty_made=1, qty_scrapped=0,
                          now_us=T0)
    assert str(refused.value) == "No active step event found for this machine"
    with pytest.raises(MachineNotFound):
        finish_step_event(con, machine="Cell 8", end_us=None, qty_made=None, qty_scrapped=None,
                          now_us=T0)
    started = _start(con)
    with pytest.raises(InvalidEndTimestamp) as refused:
        finish_step_event(con, machine="Cell 7", end_us=T0 - 1, qty_made=1, qty_scrapped=0,
                          now_us=T0 + S)
    assert str(refused.value) == "Invalid end timestamp"
    assert open_step_event(con, machine_id=1) == started.event  # untouched
    done = finish_step_event(con, machine="Cell 7", end_us=None, qty_made=42, qty_scrapped=3,
                             now_us=T0 + 3600 * S)
    assert (done.event.end_us, done.event.qty_made, done.event.qty_scrapped) == (
        T0 + 3600 * S, 42, 3)
    assert done.event.ending_type == "manual" and done.machine.display_name == "Cell 7"
    assert open_step_event(con, machine_id=1) is None
    with pytest.raises(NoActiveStepEvent):
        finish_step_event(con, machine="Cell 7", end_us=None, qty_made=None, qty_scrapped=None,
                          now_us=T0 + 3601 * S)


def test_a_zero_length_event_is_allowed(con: duckdb.DuckDBPyConnection) -> None:
    _start(con)
    done = finish_step_event(con, machine="Cell 7", end_us=T0, qty_made=None, qty_scrapped=None,
                             now_us=T0)
    assert done.event.end_us == done.event.start_us == T0


def test_summary_per_date_and_machine(con: duckdb.DuckDBPyConnection) -> None:
    add_machine(con, name="press", display_name="A Press", now_us=T0)
    day2 = T0 + DAY
    _start(con, T0)
    _start(con, T0 + 100 * S)  # finishes the first after 100 s
    finish_step_event(con, machine="Cell 7", end_us=T0 + 160 * S, qty_made=1, qty_scrapped=0,
                      now_us=T0)
    _start(con, day2, machine="A Press")  # open: counted, no cycle time yet
    assert step_event_summary(con, from_us=T0 - DAY, to_us=T0 + 2 * DAY, machine_ids=None) == [
        DaySummary(date="2025-05-27", machine_id=1, machine="Cell 7", events_count=2,
                   total_cycle_us=160 * S),
        DaySummary(date="2025-05-28", machine_id=2, machine="A Press", events_count=1,
                   total_cycle_us=0),
    ]
    assert [d.machine_id for d in step_event_summary(
        con, from_us=0, to_us=T0 + 2 * DAY, machine_ids=[2])] == [2]
    assert step_event_summary(con, from_us=0, to_us=T0 + 2 * DAY, machine_ids=[]) == []
    assert step_event_summary(con, from_us=T0 + 1, to_us=day2, machine_ids=None)[0] \
        .events_count == 1  # [from, to): the event at T0 is out, the one at to is out
    assert step_event_summary(con, from_us=day2, to_us=day2, machine_ids=None) == []


# ---- the summary against a plain Python oracle ------------------------------------------------

BASE = 1_747_612_800_000_000  # 2025-05-19T00:00:00Z, a Monday
NAMES = {1: "Cell 7", 2: "Bender", 3: "Press"}  # by name, Bender < Cell 7 < Press

events_st = st.lists(st.tuples(
    st.sampled_from([1, 2, 3]),
    st.integers(0, 5 * DAY),  # start, from BASE
    st.none() | st.integers(0, 6 * 3600 * S),  # duration; None: still open
), max_size=40)


def _oracle(events: list[tuple[int, int, int | None]], from_us: int, to_us: int,
            machine_ids: list[int] | None) -> list[DaySummary]:
    days: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0, 0])
    for machine, start, duration in events:
        if not from_us <= start < to_us or (machine_ids is not None and machine not in machine_ids):
            continue
        date = dt.datetime.fromtimestamp(start / S, dt.UTC).date().isoformat()
        days[date, machine][0] += 1
        days[date, machine][1] += duration or 0
    return [DaySummary(date=date, machine_id=m, machine=NAMES[m], events_count=n,
                       total_cycle_us=total)
            for (date, m), (n, total) in sorted(days.items(),
                                                key=lambda kv: (kv[0][0], NAMES[kv[0][1]]))]


def test_summary_matches_a_simple_oracle(tmp_path: Path) -> None:
    con = open_database(tmp_path / "oracle.duckdb")
    ensure_station_machine(con, station_id="cell-7", display_name=NAMES[1], now_us=BASE)
    add_machine(con, name="bender", display_name=NAMES[2], now_us=BASE)
    add_machine(con, name="press", display_name=NAMES[3], now_us=BASE)

    @settings(max_examples=80, deadline=None)
    @given(events=events_st, bounds=st.tuples(st.integers(-DAY, 6 * DAY),
                                              st.integers(-DAY, 7 * DAY)),
           machine_ids=st.none() | st.lists(st.sampled_from([1, 2, 3, 4]), max_size=3))
    def check(events: list[tuple[int, int, int | None]], bounds: tuple[int, int],
              machine_ids: list[int] | None) -> None:
        con.execute("DELETE FROM step_events")
        for n, (machine, start, duration) in enumerate(events):
            start_us = BASE + start
            con.execute(
                "INSERT INTO step_events (machine_id, step_id, start_us, end_us, source, "
                "created_us, updated_us) VALUES (?, 1, ?, ?, 'api', ?, ?)",
                [machine, start_us, None if duration is None else start_us + duration, n, n])
        from_us, to_us = (BASE + b for b in bounds)
        got = step_event_summary(con, from_us=from_us, to_us=to_us, machine_ids=machine_ids)
        shifted = [(m, BASE + s, d) for m, s, d in events]
        assert got == _oracle(shifted, from_us, to_us, machine_ids)

    try:
        check()
    finally:
        con.close()
