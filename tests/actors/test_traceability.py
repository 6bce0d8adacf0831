"""The traceability actor: scanner reads and API scans judged in groups, published in order,
stored once; ejects on a real Modbus PLC and batch labels on a real ZPL printer."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import msgspec
import pykka
import pytest

from actors.base import handles
from actors.bus import Event
from actors.plc import PlcActor
from actors.printer import PrinterActor
from actors.printer_messages import ListPrintJobs
from actors.runtime import Runtime, call, tell
from actors.trace_messages import CreateBatch, RecentScans, ScanCode
from actors.traceability import MAX_GROUP, TraceActor
from controller.batches import BatchKind
from controller.clock import VirtualClock
from controller.codes import CodeStatus, validate
from controller.config import StationConfig, parse_config
from controller.scanner_config import ScannerRole
from controller.trace_config import LabelRule, LabelsConfig, TraceabilityConfig
from drivers.modbus.codec import make_spec
from sim.modbus_plc import ModbusPlcSimulator
from sim.scanner import demo_codes
from sim.zpl_printer import ZplPrinterSimulator
from state.connection import open_database
from state.trace import ScanResult
from tests.actors.probe import Probe
from tests.actors.settle import settle

CODES = [c.decode("latin-1") for c in demo_codes(320)]
KEYS = [validate(c, "water").normalized for c in CODES]
REJECT = make_spec("coil", 10, "bool")

STATION = """
[station]
id = "t"
name = "t"

[[plcs]]
name = "line1"
port = {plc_port}
poll_interval_ms = 50
timeout_ms = 2000

  [[plcs.bindings]]
  name = "reject"
  kind = "coil"
  address = 10
  type = "bool"
  direction = "out"

[[printers]]
name = "labels"
port = {printer_port}
status_poll_ms = 50
confirm_timeout_ms = 1000

[traceability]
industry = "water"
line_id = "line-1"

[traceability.eject]
plc = "line1"
signal = "reject"

[traceability.labels.batch]
printer = "labels"
template = "batch"
"""


class Hold(msgspec.Struct, frozen=True):
    """Keep the actor busy until released, so that a test can fill its mailbox meanwhile."""

    entered: threading.Event
    release: threading.Event


class HeldTraceActor(TraceActor):
    """The traceability actor, plus the Hold message (nothing else changes)."""

    @handles(Hold)
    def _hold(self, msg: Hold) -> None:
        msg.entered.set()
        assert msg.release.wait(10)


@pytest.fixture
def database(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    con = open_database(tmp_path / "takt.duckdb")
    yield con
    pykka.ActorRegistry.stop_all(block=True, timeout=10)  # no cursor may outlive the file
    con.close()


@pytest.fixture
def reader(database: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection of the test's own: it sees only what the actor committed."""
    cursor = database.cursor()
    yield cursor
    cursor.close()


def trace_config(**kw: Any) -> TraceabilityConfig:
    return TraceabilityConfig(**{"industry": "water", "line_id": "line-1", **kw})


def start(runtime: Runtime, database: duckdb.DuckDBPyConnection,
          config: TraceabilityConfig | None = None) -> Any:
    ref = HeldTraceActor.start(runtime, "traceability", config or trace_config(), database)
    runtime.directory.set("traceability", ref)
    return ref


def watch(runtime: Runtime) -> Any:
    probe = Probe.start(runtime, "watch")
    runtime.bus.subscribe_actor(["trace.*"], probe)
    return probe


def events(probe: Any, prefix: str = "trace.") -> list[Event]:
    return [e for e in probe.proxy().events.get() if e.topic.startswith(prefix)]


def read(runtime: Runtime, code: str | None, role: str = "ADD", scanner: str = "line") -> None:
    runtime.bus.publish(f"device.scanner.{scanner}.read",
                        {"code": code, "role": role, "scanner": scanner},
                        source=f"scanner:{scanner}", durable=True)


@contextmanager
def held(runtime: Runtime, ref: Any) -> Iterator[None]:
    """Everything sent inside the block waits in the actor's mailbox until the block ends."""
    hold = Hold(threading.Event(), threading.Event())
    tell(runtime, ref, hold)
    assert hold.entered.wait(5)
    try:
        yield
    finally:
        hold.release.set()


def stored(reader: duckdb.DuckDBPyConnection) -> dict[str, tuple[int, int | None]]:
    """Every stored code: (status, batch_id)."""
    rows = reader.execute("SELECT code, status, batch_id FROM codes").fetchall()
    return {code: (status, batch_id) for code, status, batch_id in rows}


def one(reader: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> Any:
    row = reader.execute(sql, params or []).fetchone()
    assert row is not None
    return row[0]


# ---- scans -------------------------------------------------------------------------------------


def test_a_burst_of_reads_is_judged_in_groups_published_in_order_and_stored_once(
        runtime: Runtime, database: duckdb.DuckDBPyConnection,
        reader: duckdb.DuckDBPyConnection) -> None:
    probe = watch(runtime)
    ref = start(runtime, database)
    # 300 reads: 280 codes and, after every 14th, one repeating a code read earlier.
    texts: list[str] = []
    for i in range(280):
        texts += [CODES[i], CODES[i // 14]] if i % 14 == 13 else [CODES[i]]
    firsts = {t: i for i, t in reversed(list(enumerate(texts)))}

    with held(runtime, ref):
        for text in texts:
            read(runtime, text)
    assert runtime.wait_idle(10)

    scans = events(probe, "trace.scan.")
    assert {e.topic for e in scans} == {"trace.scan.line"} and all(e.durable for e in scans)
    assert [e.data["raw"] for e in scans] == texts
    assert [e.data["source"] for e in scans] == ["scanner.line"] * 300
    assert [e.data["accepted"] for e in scans] == [firsts[t] == i for i, t in enumerate(texts)]
    refused = [e.data for e in scans if not e.data["accepted"]]
    assert len(refused) == 20 and all(d["duplicate"] and d["eject"] for d in refused)
    codes = stored(reader)
    assert sorted(codes) == sorted({validate(t, "water").normalized for t in texts})
    assert len(codes) == 280 and set(codes.values()) == {(int(CodeStatus.CREATED), None)}
    actor = ref.proxy()
    # One transaction per full group and one for the rest: not one per scan.
    assert actor.groups.get() == -(-300 // MAX_GROUP) == 2
    assert (actor.scans.get(), actor.refused.get()) == (300, 20)


def test_scans_judged_in_one_group_see_the_ones_before_them(
        runtime: Runtime, database: duckdb.DuckDBPyConnection,
        reader: duckdb.DuckDBPyConnection) -> None:
    probe = watch(runtime)
    ref = start(runtime, database, trace_config(auto_batch=3))
    scanned = [(CODES[0], "ADD"), (CODES[1], "ADD"), (CODES[2], "ADD"),  # a full batch
               (CODES[1], "REJECTION"),  # reopens it
               (CODES[3], "ADD"),  # fills it again
               (CODES[0], "REMOVE"),  # reopens it
               (CODES[1], "ADD"),  # a duplicate of a rejected code
               (CODES[4], "REJECTION")]  # never added

    with held(runtime, ref):
        for text, role in scanned:
            read(runtime, text, role, scanner=role.lower())
    assert runtime.wait_idle(10)

    results = [e.data for e in events(probe, "trace.scan.")]
    assert [(r["role"], r["accepted"]) for r in results] == [
        (role, ok) for (_, role), ok in zip(scanned, [True] * 6 + [False] * 2, strict=True)]
    assert [r["batch_completed"] for r in results[:6]] == [False, False, True, False, True,
                                                          False]
    assert results[6]["duplicate"] and results[7]["reason"] == "unknown code: it was never added"
    assert ref.proxy().groups.get() == 1
    batch_id = one(reader, "SELECT id FROM batches")
    assert stored(reader) == {KEYS[0]: (int(CodeStatus.CREATED), None),
                              KEYS[1]: (int(CodeStatus.REJECTED), None),
                              KEYS[2]: (int(CodeStatus.IN_BATCH), batch_id),
                              KEYS[3]: (int(CodeStatus.IN_BATCH), batch_id)}
    assert (one(reader, "SELECT status FROM batches"),
            one(reader, "SELECT member_count FROM batches")) == ("open", 2)


def test_an_api_scan_is_answered_with_its_result_once_committed(
        runtime: Runtime, database: duckdb.DuckDBPyConnection,
        reader: duckdb.DuckDBPyConnection) -> None:
    probe = watch(runtime)
    ref = start(runtime, database)

    result = call(runtime, ref, ScanCode(code=CODES[0]))

    assert isinstance(result, ScanResult)
    assert (result.accepted, result.source, result.role, result.code) == (
        True, "api", "ADD", KEYS[0])
    # Answered after the commit: another connection already sees the row.
    assert one(reader, "SELECT id FROM codes WHERE code = ?", [KEYS[0]]) == result.code_id
    again = call(runtime, ref, ScanCode(code=CODES[0]))
    assert (again.accepted, again.duplicate, again.eject) == (False, True, True)
    removed = call(runtime, ref, ScanCode(code=CODES[0], role=ScannerRole.REMOVE))
    assert (removed.accepted, removed.reason) == (False, "code is Created, not in a batch")
    assert runtime.wait_idle(5)
    assert [e.topic for e in events(probe, "trace.scan.")] == ["trace.scan.api"] * 3
    recent = call(runtime, ref, RecentScans(limit=2))
    assert [r.role for r in recent] == ["REMOVE", "ADD"] and recent[1].duplicate
    assert call(runtime, ref, RecentScans(source="scanner.line")) == []


def test_a_no_read_or_a_read_in_an_unknown_role_is_not_judged(
        runtime: Runtime, database: duckdb.DuckDBPyConnection,
        reader: duckdb.DuckDBPyConnection) -> None:
    probe = watch(runtime)
    ref = start(runtime, database)

    read(runtime, None)
    read(runtime, CODES[0], role="SHRED")
    read(runtime, CODES[1])
    assert runtime.wait_idle(5)

    assert [e.data["raw"] for e in events(probe, "trace.scan.")] == [CODES[1]]
    assert list(stored(reader)) == [KEYS[1]]
    assert ref.is_alive()


def test_a_group_that_fails_is_judged_again_one_scan_at_a_time(
        runtime: Runtime, database: duckdb.DuckDBPyConnection,
        reader: duckdb.DuckDBPyConnection) -> None:
    probe = watch(runtime)
    ref = start(runtime, database)
    assert call(runtime, ref, ScanCode(code=CODES[0])).accepted
    # Another writer holds an uncommitted change to that code: rejecting it now conflicts.
    other = database.cursor()
    other.execute("BEGIN TRANSACTION")
    other.execute("UPDATE codes SET updated_us = 1 WHERE code = ?", [KEYS[0]])
    try:
        with held(runtime, ref):
            read(runtime, CODES[1])
            read(runtime, CODES[0], role="REJECTION", scanner="reject")
            read(runtime, CODES[2])
        assert runtime.wait_idle(10)
    finally:
        other.execute("ROLLBACK")
        other.close()

    results = [e.data for e in events(probe, "trace.scan.")][1:]
    assert [r["accepted"] for r in results] == [True, False, True]
    assert results[1]["reason"].startswith("not stored:")
    assert sorted(stored(reader)) == sorted(KEYS[:3])  # the others were stored all the same
    assert stored(reader)[KEYS[0]][0] == int(CodeStatus.CREATED)
    assert ref.is_alive()
    retried = call(runtime, ref, ScanCode(code=CODES[0], role=ScannerRole.REJECTION))
    assert retried.accepted and retried.status == int(CodeStatus.REJECTED)


def test_reads_waiting_when_the_actor_stops_are_still_judged(
        runtime: Runtime, database: duckdb.DuckDBPyConnection,
        reader: duckdb.DuckDBPyConnection) -> None:
    probe = watch(runtime)
    ref = start(runtime, database)

    with held(runtime, ref):
        for text in CODES[:3]:
            read(runtime, text)
        stopped = ref.stop(block=False)
    stopped.get(timeout=10)

    assert sorted(stored(reader)) == sorted(KEYS[:3])
    assert [e.data["raw"] for e in events(probe, "trace.scan.")] == CODES[:3]


def test_the_reject_chute_confirms_what_the_line_ejected_once(
        runtime: Runtime, database: duckdb.DuckDBPyConnection,
        reader: duckdb.DuckDBPyConnection) -> None:
    ref = start(runtime, database)
    call(runtime, ref, CreateBatch(kind=BatchKind.PACKAGE, identifier="P-1"))
    ejected = call(runtime, ref, ScanCode(code=CODES[0], role=ScannerRole.PACKAGE))
    assert (ejected.accepted, ejected.eject) == (False, True)  # never added: pushed off

    feedback = ScanCode(code=CODES[0], role=ScannerRole.REJECTION_FEEDBACK)
    confirmed = call(runtime, ref, feedback)
    again = call(runtime, ref, feedback)
    stray = call(runtime, ref, ScanCode(code=CODES[1], role=ScannerRole.REJECTION_FEEDBACK))

    assert (confirmed.accepted, confirmed.effect, confirmed.alarm) == (
        True, "confirm_rejection", False)
    assert (again.accepted, again.alarm) == (False, True)  # confirmed already: no longer pending
    assert (stray.accepted, stray.alarm) == (False, True)
    assert stored(reader) == {}


def test_confirming_the_ejection_of_a_duplicate_leaves_the_genuine_code_in_its_batch(
        runtime: Runtime, database: duckdb.DuckDBPyConnection,
        reader: duckdb.DuckDBPyConnection) -> None:
    ref = start(runtime, database)
    made = call(runtime, ref, CreateBatch(capacity=10)).batch
    assert call(runtime, ref, ScanCode(code=CODES[0])).batch_id == made.id
    copy = call(runtime, ref, ScanCode(code=CODES[0]))  # a second item with the same code
    assert (copy.duplicate, copy.eject) == (True, True)

    confirmed = call(runtime, ref, ScanCode(code=CODES[0], role=ScannerRole.REJECTION_FEEDBACK))

    assert confirmed.accepted  # the copy reached the chute, as asked
    # The genuine item is still in its batch, and so must its code be.
    assert stored(reader)[KEYS[0]] == (int(CodeStatus.IN_BATCH), made.id)


# ---- the line: eject and labels ----------------------------------------------------------------


@pytest.fixture
def plc() -> Iterator[ModbusPlcSimulator]:
    sim = ModbusPlcSimulator(port=0, size=100)
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def printer() -> Iterator[ZplPrinterSimulator]:
    with ZplPrinterSimulator(port=0) as sim:
        yield sim


def station(plc_port: int = 1, printer_port: int = 1) -> StationConfig:
    return parse_config(STATION.format(plc_port=plc_port, printer_port=printer_port), "t.toml")


def test_a_refused_scan_sets_the_eject_output_on_the_plc(
        runtime: Runtime, vclock: VirtualClock, database: duckdb.DuckDBPyConnection,
        plc: ModbusPlcSimulator) -> None:
    config = station(plc_port=plc.port)
    runtime.directory.set("plc:line1", PlcActor.start(runtime, "plc:line1", config.plcs[0]))
    probe = watch(runtime)
    ref = start(runtime, database, config.traceability)

    read(runtime, CODES[0])
    settle(runtime, vclock, lambda: len(events(probe, "trace.scan.")) == 1)
    assert plc.get_value(REJECT) is False  # a good item stays on the line
    read(runtime, CODES[0])  # the same code again: a duplicate

    settle(runtime, vclock, lambda: plc.get_value(REJECT) is True)
    assert [e.data["eject"] for e in events(probe, "trace.scan.")] == [False, True]
    assert events(probe, "trace.eject") == []  # no trouble reported
    assert ref.is_alive()


def test_a_completed_batch_is_published_and_its_label_printed(
        runtime: Runtime, vclock: VirtualClock, database: duckdb.DuckDBPyConnection,
        printer: ZplPrinterSimulator) -> None:
    config = station(printer_port=printer.port)
    labels = PrinterActor.start(runtime, "printer:labels", config.printers[0], database)
    runtime.directory.set("printer:labels", labels)
    probe = watch(runtime)
    ref = start(runtime, database, config.traceability)
    made = call(runtime, ref, CreateBatch(name="Morning", capacity=2)).batch

    read(runtime, CODES[0])
    read(runtime, CODES[1])
    settle(runtime, vclock, lambda: len(printer.labels) == 1
           and len(events(probe, "trace.label.")) == 1)

    opened, complete = (e.data for e in events(probe, "trace.batch."))
    assert (opened["identifier"], opened["status"]) == (made.identifier, "open")
    assert (complete["identifier"], complete["status"], complete["count"]) == (
        made.identifier, "complete", 2)
    (label,) = events(probe, "trace.label.")
    assert label.topic == "trace.label.batch" and label.durable
    assert (label.data["identifier"], label.data["printer"], label.data["error"]) == (
        made.identifier, "labels", None)
    (job,) = call(runtime, labels, ListPrintJobs())
    assert label.data["job"] == job.id
    texts = [field.text for field in printer.labels[0].fields]
    assert f"batch {made.identifier}" in texts
    assert made.identifier in texts  # the bar code a BOX scanner reads back
    assert any(text.startswith("2 items") for text in texts)


def test_a_label_or_eject_the_line_cannot_take_is_reported_and_scanning_goes_on(
        runtime: Runtime, vclock: VirtualClock, database: duckdb.DuckDBPyConnection,
        reader: duckdb.DuckDBPyConnection) -> None:
    # Neither plc:line1 nor printer:labels is running.
    probe = watch(runtime)
    ref = start(runtime, database, station().traceability)
    made = call(runtime, ref, CreateBatch(capacity=1)).batch

    read(runtime, CODES[0])  # completes the batch
    read(runtime, "garbage")  # refused: eject
    read(runtime, CODES[1])
    settle(runtime, vclock, lambda: len(events(probe, "trace.scan.")) == 3)

    (label,) = events(probe, "trace.label.")
    assert (label.data["identifier"], label.data["job"]) == (made.identifier, None)
    assert "printer:labels is not running" in label.data["error"]
    (eject,) = events(probe, "trace.eject")
    assert "plc:line1 is not running" in eject.data["error"]
    assert [e.data["accepted"] for e in events(probe, "trace.scan.")] == [True, False, True]
    assert sorted(stored(reader)) == sorted(KEYS[:2])
    assert ref.is_alive()


def test_a_label_the_printer_refuses_is_reported_with_its_reason(
        runtime: Runtime, vclock: VirtualClock, database: duckdb.DuckDBPyConnection,
        printer: ZplPrinterSimulator) -> None:
    config = station(printer_port=printer.port)
    labels = PrinterActor.start(runtime, "printer:labels", config.printers[0], database)
    runtime.directory.set("printer:labels", labels)
    probe = watch(runtime)
    # The printer's `default` template prints its code as GS1 data: not a batch identifier.
    rule = LabelsConfig(batch=LabelRule(printer="labels", template="default"))
    ref = start(runtime, database, trace_config(labels=rule))
    call(runtime, ref, CreateBatch(capacity=1))

    read(runtime, CODES[0])
    settle(runtime, vclock, lambda: len(events(probe, "trace.label.")) == 1)

    (label,) = events(probe, "trace.label.")
    assert label.data["job"] is None and "GS1" in label.data["error"]
    assert printer.labels == [] and ref.is_alive() and labels.is_alive()
