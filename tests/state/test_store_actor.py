"""The store actor against a real database file: acks after commit, grouping, bad rows, journal."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import msgspec
import pyarrow as pa
import pykka
import pytest
import trio

from actors.bridge import ask
from actors.health import HealthState
from actors.runtime import ActorUnavailable, Request, Runtime, call, tell
from actors.store import CommitFailed, Flush, StoreActor, Write
from controller.clock import VirtualClock
from state.connection import open_database, open_reader
from state.errors import ConstraintError, DuplicateError, StateError
from state.journal import JournalRow, append_journal, read_journal
from state.probe import ProbeRow, read_probe_writes
from state.tables import TableSpec, register_table


class NotATable(msgspec.Struct, frozen=True, kw_only=True):
    """A row type no table is registered for."""

    writer: int


class Unmigrated(msgspec.Struct, frozen=True, kw_only=True):
    """Rows of a table registered in code whose migration never ran: every commit of it fails."""

    key: str


register_table(TableSpec(table="test_store_unmigrated", row_type=Unmigrated,
                         schema=pa.schema([("key", pa.string())])))


class Pending:
    """A request sent with `tell` from the test thread, so mailbox order is the order sent."""

    def __init__(self, runtime: Runtime, ref: pykka.ActorRef[Any], message: Any) -> None:
        self._done = threading.Event()
        self._box: tuple[Any, BaseException | None] = (None, None)
        tell(runtime, ref, Request(message, self._reply))

    def _reply(self, result: Any, error: BaseException | None) -> None:
        self._box = (result, error)
        self._done.set()

    def get(self, timeout: float = 10.0) -> Any:
        """The answer, or the actor's error raised here, as `call` would."""
        assert self._done.wait(timeout), "the store never answered"
        result, error = self._box
        if error is not None:
            raise error
        return result


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    con = open_database(tmp_path / "station.duckdb")
    yield con
    con.close()


@pytest.fixture
def store(runtime: Runtime, con: duckdb.DuckDBPyConnection) -> Iterator[pykka.ActorRef[Any]]:
    ref = StoreActor.start(runtime, "store", con)
    yield ref
    if ref.is_alive():
        ref.stop(block=True, timeout=10)  # before `con` closes under it


def _probe(writer: int, n: int) -> ProbeRow:
    return ProbeRow(writer=writer, n=n, ts_us=1000 * writer + n)


def _hold_store(runtime: Runtime, store: pykka.ActorRef[Any]) -> threading.Event:
    """Block the store's thread inside an ack; what is sent meanwhile queues up as one group.

    Returns the event that lets it go on. (Writer 99 is the holder's: keep it out of asserts.)
    """
    entered, release = threading.Event(), threading.Event()

    def reply(result: Any, error: BaseException | None) -> None:
        entered.set()
        release.wait(30)

    tell(runtime, store, Request(Write(rows=[_probe(99, 1)]), reply))
    assert entered.wait(10)
    return release


def _wait_mailbox(runtime: Runtime, depth: int) -> None:
    """Until the store's mailbox holds `depth` messages (sent from other threads)."""
    for _ in range(1000):
        if runtime.health.snapshot()["store"].mailbox >= depth:
            return
        time.sleep(0.01)
    raise AssertionError(f"the store's mailbox never reached {depth}")


def _batch_histogram(runtime: Runtime) -> dict[str, float]:
    samples = runtime.metrics.store_batch_rows.collect()[0].samples
    return {s.name.removeprefix("takt_store_batch_rows") + s.labels.get("le", ""): s.value
            for s in samples}


def test_a_write_is_acked_only_once_another_cursor_can_read_it(
    runtime: Runtime, con: duckdb.DuckDBPyConnection, store: pykka.ActorRef[Any]
) -> None:
    reader = open_reader(con)
    seen_at_ack: list[Any] = []
    acked = threading.Event()

    def reply(result: Any, error: BaseException | None) -> None:
        # Runs on the store's thread at the moment of the ack: the commit must be done by now.
        seen_at_ack.append((result, error, read_probe_writes(reader)))
        acked.set()

    rows = [_probe(1, 1), _probe(1, 2), _probe(1, 3)]
    tell(runtime, store, Request(Write(rows=rows), reply))
    assert acked.wait(10)
    assert seen_at_ack == [(3, None, rows)]


async def test_concurrent_writers_share_commits_and_all_are_stored(
    runtime: Runtime, con: duckdb.DuckDBPyConnection, store: pykka.ActorRef[Any]
) -> None:
    threads, tasks, writes = 4, 40, 25

    def thread_writer(writer: int) -> None:
        for n in range(1, writes + 1):
            assert call(runtime, store, Write(rows=[_probe(writer, n)]), timeout=30) == 1

    async def task_writer(writer: int) -> None:
        for n in range(1, writes + 1):
            assert await ask(runtime, store, Write(rows=[_probe(writer, n)]), timeout=30) == 1

    async with trio.open_nursery() as nursery:
        for writer in range(1, threads + 1):
            nursery.start_soon(trio.to_thread.run_sync, thread_writer, writer)
        for writer in range(threads + 1, threads + tasks + 1):
            nursery.start_soon(task_writer, writer)

    total = (threads + tasks) * writes
    stored = read_probe_writes(open_reader(con))
    assert stored == [_probe(w, n) for w in range(1, threads + tasks + 1)
                      for n in range(1, writes + 1)]
    batches = _batch_histogram(runtime)
    assert batches["_sum"] == total
    # One row per write: fewer commits than writes means writers shared transactions.
    assert batches["_count"] < total
    assert batches["_bucket1.0"] < batches["_count"], "no commit held more than one writer"


def test_duplicate_key_fails_only_its_writer_and_the_rest_of_the_group_commits(
    runtime: Runtime, con: duckdb.DuckDBPyConnection, store: pykka.ActorRef[Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert call(runtime, store, Write(rows=[_probe(1, 1)])) == 1
    caplog.set_level(logging.WARNING, logger="takt.actor.storeactor")
    release = _hold_store(runtime, store)

    # One group: a row clashing with a stored one (sent through `call` on a thread, as a
    # device actor's pump would), two writers of one key (the first one wins), a write that
    # repeats a key within itself, good writers around them, and a durable event.
    errors: list[BaseException] = []

    def clash_with_stored() -> None:
        try:
            call(runtime, store, Write(rows=[_probe(1, 2), _probe(1, 1)]), timeout=30)
        except BaseException as exc:
            errors.append(exc)

    clasher = threading.Thread(target=clash_with_stored)
    clasher.start()
    _wait_mailbox(runtime, 1)
    good_before = Pending(runtime, store, Write(rows=[_probe(2, 1), _probe(2, 2)]))
    first_of_key = Pending(runtime, store, Write(rows=[_probe(3, 1)]))
    second_of_key = Pending(runtime, store, Write(rows=[_probe(3, 1)]))
    event = runtime.bus.publish("probe.note", {"k": 1}, source="test", durable=True)
    repeats_itself = Pending(runtime, store, Write(rows=[_probe(4, 1), _probe(4, 1)]))
    good_after = Pending(runtime, store, Write(rows=[_probe(5, 1)]))
    _wait_mailbox(runtime, 7)
    release.set()
    clasher.join(30)

    assert [type(e) for e in errors] == [DuplicateError]
    assert good_before.get() == 2
    assert first_of_key.get() == 1
    with pytest.raises(DuplicateError):
        second_of_key.get()
    with pytest.raises(ConstraintError, match=r"(?i)duplicate key"):
        repeats_itself.get()
    assert good_after.get() == 1
    # They were one group, split after the constraint broke it.
    assert "committing 6 writers one by one" in caplog.text

    reader = open_reader(con)
    stored = [r for r in read_probe_writes(reader) if r.writer != 99]
    # Writer 1 keeps its first row as it was and none of the failed write (not even n=2).
    assert stored == [_probe(1, 1), _probe(2, 1), _probe(2, 2), _probe(3, 1), _probe(5, 1)]
    assert [r.seq for r in read_journal(reader)] == [event.seq]
    # And the store carries on.
    assert call(runtime, store, Write(rows=[_probe(1, 2)])) == 1


def test_durable_events_land_in_the_journal_and_others_do_not(
    runtime: Runtime, vclock: VirtualClock, con: duckdb.DuckDBPyConnection,
    store: pykka.ActorRef[Any],
) -> None:
    first = runtime.bus.publish(
        "scanner.read", {"code": "]C1ABC", "quality": 0.5}, source="scanner:1", durable=True
    )
    runtime.bus.publish("plc.tag", {"value": 7}, source="plc:1")  # live only, never journaled
    vclock.advance(1.25)
    second = runtime.bus.publish(
        "probe.row", _probe(7, 3), source="sequencer", durable=True  # a Struct payload
    )
    call(runtime, store, Flush())

    assert read_journal(open_reader(con)) == [
        JournalRow(seq=first.seq, ts_us=first.ts_us, topic="scanner.read", source="scanner:1",
                   payload='{"code":"]C1ABC","quality":0.5}'),
        JournalRow(seq=second.seq, ts_us=first.ts_us + 1_250_000, topic="probe.row",
                   source="sequencer", payload='{"writer":7,"n":3,"ts_us":7003}'),
    ]
    assert second.seq == first.seq + 2  # the live event took a seq but left no row


def test_rows_of_an_unregistered_type_are_refused_and_change_nothing(
    runtime: Runtime, con: duckdb.DuckDBPyConnection, store: pykka.ActorRef[Any]
) -> None:
    release = _hold_store(runtime, store)
    before = Pending(runtime, store, Write(rows=[_probe(1, 1)]))
    bad = Pending(runtime, store, Write(rows=[_probe(2, 1), NotATable(writer=2)]))
    after = Pending(runtime, store, Write(rows=[_probe(3, 1)]))
    release.set()

    with pytest.raises(TypeError, match="no table is registered for rows of type NotATable"):
        bad.get()
    assert before.get() == 1
    assert after.get() == 1
    stored = [r for r in read_probe_writes(open_reader(con)) if r.writer != 99]
    assert stored == [_probe(1, 1), _probe(3, 1)]  # nothing of the refused write
    with pytest.raises(TypeError, match="NotATable"):
        call(runtime, store, Write(rows=[NotATable(writer=4)]))


def test_a_write_of_no_rows_is_acked_at_once(
    runtime: Runtime, store: pykka.ActorRef[Any]
) -> None:
    assert call(runtime, store, Write(rows=[]), timeout=5) == 0


async def test_asks_fail_at_once_when_the_store_stops(
    runtime: Runtime, con: duckdb.DuckDBPyConnection, store: pykka.ActorRef[Any]
) -> None:
    release = _hold_store(runtime, store)
    queued_before_stop = Pending(runtime, store, Write(rows=[_probe(1, 1)]))
    store.stop(block=False)
    outcome: list[BaseException] = []

    async def writer_behind_the_stop() -> None:
        try:
            await ask(runtime, store, Write(rows=[_probe(2, 1)]), timeout=60)
        except BaseException as exc:
            outcome.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer_behind_the_stop)
        await trio.to_thread.run_sync(_wait_mailbox, runtime, 3)
        release.set()

    assert [type(e) for e in outcome] == [ActorUnavailable]  # not AskTimeout after 60 s
    assert queued_before_stop.get() == 1  # the stop committed what it had taken in
    with pytest.raises(ActorUnavailable):
        await ask(runtime, store, Write(rows=[_probe(3, 1)]), timeout=60)
    with pytest.raises(ActorUnavailable):
        call(runtime, store, Write(rows=[_probe(3, 1)]), timeout=60)
    assert [r for r in read_probe_writes(open_reader(con)) if r.writer != 99] == [_probe(1, 1)]


def test_a_durable_event_the_journal_refuses_costs_no_writer_its_ack(
    runtime: Runtime, con: duckdb.DuckDBPyConnection, store: pykka.ActorRef[Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A bus that did not resume after the journal's last seq (boot wires it to) reuses a key.
    taken = runtime.bus.last_seq + 2
    append_journal(con, [JournalRow(seq=taken, ts_us=1, topic="old", source=None, payload="{}")])
    release = _hold_store(runtime, store)
    before = Pending(runtime, store, Write(rows=[_probe(1, 1)]))
    ok_event = runtime.bus.publish("probe.note", {"i": 1}, source="test", durable=True)
    clash = runtime.bus.publish("probe.note", {"i": 2}, source="test", durable=True)
    after = Pending(runtime, store, Write(rows=[_probe(2, 1)]))
    assert clash.seq == taken
    release.set()

    assert before.get() == 1
    assert after.get() == 1
    reader = open_reader(con)
    assert [r.writer for r in read_probe_writes(reader) if r.writer != 99] == [1, 2]
    assert [(r.seq, r.topic) for r in read_journal(reader)] == [
        (ok_event.seq, "probe.note"), (taken, "old")
    ]
    assert f"durable event {taken}" in caplog.text  # lost, but never silently
    assert runtime.health.snapshot()["store"].errors == 1
    later = runtime.bus.publish("probe.note", {"i": 3}, source="test", durable=True)
    call(runtime, store, Flush())
    assert read_journal(reader, from_seq=later.seq)[0].payload == '{"i":3}'


def test_a_durable_event_that_cannot_be_encoded_is_counted_not_fatal(
    runtime: Runtime, con: duckdb.DuckDBPyConnection, store: pykka.ActorRef[Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    bad = runtime.bus.publish("camera.frame", {"frame": object()}, source="camera:1", durable=True)
    good = runtime.bus.publish("probe.note", {"i": 1}, source="test", durable=True)
    assert call(runtime, store, Write(rows=[_probe(1, 1)])) == 1
    call(runtime, store, Flush())

    assert [r.seq for r in read_journal(open_reader(con))] == [good.seq]
    assert f"durable event {bad.seq} (camera.frame from camera:1)" in caplog.text
    assert runtime.health.snapshot()["store"].errors == 1


def test_a_commit_that_fails_for_the_database_answers_every_writer_of_its_group(
    runtime: Runtime, con: duckdb.DuckDBPyConnection, store: pykka.ActorRef[Any],
) -> None:
    release = _hold_store(runtime, store)
    good = Pending(runtime, store, Write(rows=[_probe(1, 1)]))
    doomed = Pending(runtime, store, Write(rows=[Unmigrated(key="a")]))
    also_good = Pending(runtime, store, Write(rows=[_probe(2, 1)]))
    release.set()

    for pending in (good, doomed, also_good):
        with pytest.raises(CommitFailed, match="test_store_unmigrated"):
            pending.get()
    # The store fails (its supervisor restarts it) rather than retrying a poisoned group forever.
    assert runtime.wait_idle(10)
    assert runtime.health.snapshot()["store"].state is HealthState.DOWN
    assert store.actor_stopped.wait(10)
    assert [r for r in read_probe_writes(open_reader(con)) if r.writer != 99] == []


def test_a_flush_that_cannot_checkpoint_now_is_refused_and_the_store_carries_on(
    runtime: Runtime, con: duckdb.DuckDBPyConnection, store: pykka.ActorRef[Any],
) -> None:
    assert call(runtime, store, Write(rows=[_probe(1, 1)])) == 1
    other = con.cursor()  # another cursor's update is open: duckdb checkpoints only after it
    other.execute("BEGIN TRANSACTION")
    other.execute("UPDATE probe_writes SET ts_us = 0 WHERE writer = 1")
    with pytest.raises(StateError, match=r"(?i)checkpoint"):
        call(runtime, store, Flush())
    other.execute("ROLLBACK")

    assert call(runtime, store, Write(rows=[_probe(1, 2)])) == 1
    call(runtime, store, Flush())
    assert runtime.health.snapshot()["store"].state is HealthState.UP


class SlowStartingStore(StoreActor):
    """A store whose start takes a while (a slow disk): start() has returned, started() runs."""

    gate = threading.Event()

    def started(self) -> None:
        SlowStartingStore.gate.wait(10)
        super().started()


def test_durable_events_published_while_the_store_starts_are_journaled(
    runtime: Runtime, con: duckdb.DuckDBPyConnection,
) -> None:
    SlowStartingStore.gate.clear()
    ref = SlowStartingStore.start(runtime, "store", con)
    try:
        # Actors started after the store (the supervisor does not wait) publish at once.
        early = runtime.bus.publish("probe.note", {"i": 1}, source="plc:1", durable=True)
        SlowStartingStore.gate.set()
        call(runtime, ref, Flush())
        assert [r.seq for r in read_journal(open_reader(con))] == [early.seq]
    finally:
        ref.stop(block=True, timeout=10)
