"""Print jobs and label templates in DuckDB: stored rows, legal state changes, listings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from state.connection import open_database
from state.errors import DuplicateError, TransitionError
from state.migrate import migrate
from state.printing import (
    JOB_TRANSITIONS,
    UNFINISHED,
    JobState,
    PrintJob,
    count_jobs,
    delete_template,
    get_job,
    get_template,
    insert_job,
    insert_template,
    list_jobs,
    list_templates,
    save_template,
    unfinished_jobs,
    update_job,
)

ZPL = b"^XA^FO10,10^FDx^FS^XZ\n"


@pytest.fixture
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect(":memory:")
    migrate(connection)
    yield connection
    connection.close()


def new_job(con: duckdb.DuckDBPyConnection, printer: str = "p1", now: int = 1) -> PrintJob:
    return insert_job(con, printer=printer, template="default", code="(01)09506000134352",
                      fields={"part": "A-1"}, zpl=ZPL, labels=1, requested_by="op", now_us=now)


def test_a_job_is_stored_with_every_byte_and_updated_in_place(
        con: duckdb.DuckDBPyConnection) -> None:
    job = new_job(con)
    assert job.state is JobState.QUEUED and job.counter_before is None
    assert get_job(con, job.id) == job
    job = update_job(con, job, now_us=2, counter_before=41)
    job = update_job(con, job, now_us=3, state=JobState.SENT, attempts=1)
    done = update_job(con, job, now_us=4, state=JobState.DONE, counter_after=42)
    stored = get_job(con, job.id)
    assert stored == done and stored is not None
    assert (stored.zpl, stored.fields, stored.counter_before, stored.counter_after) == (
        ZPL, {"part": "A-1"}, 41, 42)
    assert (stored.updated_us, stored.done_us) == (4, 4)


def test_only_legal_state_changes_are_written(con: duckdb.DuckDBPyConnection) -> None:
    job = update_job(con, new_job(con), now_us=2, state=JobState.DONE)
    with pytest.raises(TransitionError, match="done -> held"):
        update_job(con, job, now_us=3, state=JobState.HELD)
    other = new_job(con)
    update_job(con, other, now_us=2, state=JobState.HELD, reason="paused")
    with pytest.raises(TransitionError, match="no longer queued"):
        update_job(con, other, now_us=3, state=JobState.SENT)  # a stale copy
    with pytest.raises(ValueError, match="cannot change zpl"):
        update_job(con, other, now_us=3, zpl=b"^XA^XZ")
    assert get_job(con, job.id).state is JobState.DONE  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def shared_con() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect(":memory:")
    migrate(connection)
    yield connection
    connection.close()


@settings(max_examples=60, deadline=None)
@given(steps=st.lists(st.sampled_from(list(JobState)), max_size=8))
def test_the_stored_state_follows_the_transition_table(
        shared_con: duckdb.DuckDBPyConnection, steps: list[JobState]) -> None:
    job = new_job(shared_con)
    for step in steps:
        allowed = step == job.state or step in JOB_TRANSITIONS[job.state]
        try:
            job = update_job(shared_con, job, now_us=2, state=step)
        except TransitionError:
            assert not allowed
        else:
            assert allowed
        assert get_job(shared_con, job.id).state is job.state  # type: ignore[union-attr]
    assert (job.done_us is None) == (job.state in UNFINISHED)


def test_unfinished_jobs_come_back_in_print_order_per_printer(
        con: duckdb.DuckDBPyConnection) -> None:
    first, second, third = new_job(con), new_job(con), new_job(con)
    new_job(con, printer="p2")
    update_job(con, second, now_us=5, state=JobState.DONE)
    update_job(con, third, now_us=5, state=JobState.HELD, reason="paper out")
    assert [j.id for j in unfinished_jobs(con, "p1")] == [first.id, third.id]
    counts = count_jobs(con, "p1")
    assert (counts[JobState.QUEUED], counts[JobState.HELD], counts[JobState.DONE]) == (1, 1, 1)
    assert counts[JobState.FAILED] == 0


def test_job_listings_filter_by_state_and_page_newest_first(
        con: duckdb.DuckDBPyConnection) -> None:
    ids = [new_job(con, now=n).id for n in range(5)]
    update_job(con, get_job(con, ids[1]), now_us=9, state=JobState.DONE)  # type: ignore[arg-type]
    assert [j.id for j in list_jobs(con, "p1", limit=2)] == [ids[4], ids[3]]
    assert [j.id for j in list_jobs(con, "p1", before_id=ids[3], limit=2)] == [ids[2], ids[1]]
    assert [j.id for j in list_jobs(con, "p1", state=JobState.DONE)] == [ids[1]]
    assert list_jobs(con, "p2") == []
    with pytest.raises(ValueError, match="limit"):
        list_jobs(con, "p1", limit=5000)


def test_templates_are_created_replaced_and_deleted_per_printer(
        con: duckdb.DuckDBPyConnection) -> None:
    created = insert_template(con, "p1", "box", "^XA^XZ", by="eng", now_us=1)
    with pytest.raises(DuplicateError):
        insert_template(con, "p1", "box", "^XA^XZ", by="eng", now_us=2)
    insert_template(con, "p2", "box", "^XA^FDother^FS^XZ", by="eng", now_us=2)
    replaced, was_new = save_template(con, "p1", "box", "^XA^FDnew^FS^XZ", by="admin", now_us=3)
    assert not was_new and replaced.created_us == created.created_us == 1
    assert (replaced.updated_us, replaced.updated_by) == (3, "admin")
    assert get_template(con, "p1", "box") == replaced
    _, was_new = save_template(con, "p1", "bag", "^XA^XZ", by=None, now_us=4)
    assert was_new and [t.name for t in list_templates(con, "p1")] == ["bag", "box"]
    assert delete_template(con, "p1", "box") and not delete_template(con, "p1", "box")
    assert get_template(con, "p1", "box") is None
    assert get_template(con, "p2", "box") is not None  # another printer's is left alone


def test_jobs_and_templates_survive_reopening_the_file(tmp_path: Path) -> None:
    path = tmp_path / "takt.duckdb"
    con = open_database(path)
    job = update_job(con, new_job(con), now_us=2, counter_before=7, state=JobState.HELD,
                     reason="paused")
    save_template(con, "p1", "box", "^XA^XZ", by=None, now_us=2)
    con.close()
    con = open_database(path)
    try:
        assert unfinished_jobs(con, "p1") == [job]
        assert get_template(con, "p1", "box") is not None
    finally:
        con.close()
