"""The printer actor against the ZPL printer simulator: confirmed jobs, held jobs, lost links,
restarts, and templates."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pykka
import pytest

from actors.health import HealthState
from actors.printer import PrinterActor
from actors.printer_messages import (
    GetPrinterStatus,
    InvalidTemplate,
    ListPrintJobs,
    PrintLabel,
    PutTemplate,
    TemplateExists,
    TemplateNotFound,
    TestPrinter,
)
from actors.runtime import Runtime, call
from controller.clock import VirtualClock
from controller.config import PrinterConfig, parse_config
from drivers.zpl.gs1 import gs1_element_string
from sim.zpl_printer import DropPoint, ZplPrinterSimulator
from state.connection import open_database
from state.printing import JobState, PrintJob, unfinished_jobs
from tests.actors.probe import Probe
from tests.actors.settle import settle

CODE = "(01)09506000134352(10)LOT-7(21)SN0001"
LABEL = """^XA
^FO30,30^A0N,30,30^FDPart {{part}}^FS
^FO30,80^BXN,6,200,,,,_^FD{{code|gs1}}^FS
^XZ
"""


def config(port: int, **extra: Any) -> PrinterConfig:
    settings = {"status_poll_ms": 50, "confirm_timeout_ms": 1000, **extra}
    lines = "".join(f"{k} = {v}\n" for k, v in settings.items())
    text = f'[station]\nid = "t"\nname = "t"\n[[printers]]\nname = "p1"\nport = {port}\n{lines}'
    return parse_config(text, "t.toml").printers[0]



@pytest.fixture
def printer() -> Iterator[ZplPrinterSimulator]:
    with ZplPrinterSimulator(port=0, label_count=500) as sim:
        yield sim


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "takt.duckdb"


@pytest.fixture
def database(db_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    con = open_database(db_path)
    yield con
    pykka.ActorRegistry.stop_all(block=True, timeout=10)  # no cursor may outlive the file
    con.close()


def start(runtime: Runtime, database: duckdb.DuckDBPyConnection, sim: ZplPrinterSimulator,
          **extra: Any) -> Any:
    return PrinterActor.start(runtime, "printer:p1", config(sim.port, **extra), database)


def jobs(runtime: Runtime, ref: Any) -> list[PrintJob]:
    return list(reversed(call(runtime, ref, ListPrintJobs())))


def job_states(runtime: Runtime, ref: Any) -> list[str]:
    return [job.state.value for job in jobs(runtime, ref)]


def watch(runtime: Runtime) -> Any:
    probe = Probe.start(runtime, "watch")
    runtime.bus.subscribe_actor(["device.printer.*"], probe)
    return probe


def published_states(probe: Any) -> list[tuple[int, str]]:
    return [(e.data["job"], e.data["state"]) for e in probe.proxy().events.get()
            if e.topic == "device.printer.p1.job"]


def test_a_job_is_stored_sent_and_confirmed_with_the_code_on_the_label(
        runtime: Runtime, vclock: VirtualClock, database: duckdb.DuckDBPyConnection,
        printer: ZplPrinterSimulator) -> None:
    events = watch(runtime)
    ref = start(runtime, database, printer)
    call(runtime, ref, PutTemplate(name="part", body=LABEL))
    accepted = call(runtime, ref, PrintLabel(code=CODE, fields={"part": "PUMP-7"},
                                             template="part", by="tester"))
    assert accepted.labels == 1
    settle(runtime, vclock, lambda: job_states(runtime, ref) == ["done"])
    (label,) = printer.labels
    text, matrix = label.fields
    assert text.text == "Part PUMP-7"
    assert matrix.gs1 and matrix.text == gs1_element_string(CODE)
    (job,) = jobs(runtime, ref)
    assert (job.counter_before, job.counter_after, job.attempts) == (500, 501, 1)
    assert job.code == CODE and job.requested_by == "tester"
    assert published_states(events) == [(accepted.job, "queued"), (accepted.job, "done")]
    assert all(e.durable for e in events.proxy().events.get() if e.topic.endswith(".job"))


def test_the_builtin_default_template_prints_the_code_as_gs1_datamatrix(
        runtime: Runtime, vclock: VirtualClock, database: duckdb.DuckDBPyConnection,
        printer: ZplPrinterSimulator) -> None:
    ref = start(runtime, database, printer)
    call(runtime, ref, PrintLabel(code="]d2" + gs1_element_string(CODE)))
    settle(runtime, vclock, lambda: len(printer.labels) == 1)
    assert printer.labels[0].fields[0].text == gs1_element_string(CODE)
    with pytest.raises(ValueError, match="not allowed in GS1 data"):
        call(runtime, ref, PrintLabel(code="not gs1 data"))
    with pytest.raises(ValueError, match="needs one"):
        call(runtime, ref, PrintLabel())
    assert job_states(runtime, ref) == ["done"]  # refused requests store nothing


def test_a_paused_printer_holds_the_job_and_prints_it_once_when_resumed(
        runtime: Runtime, vclock: VirtualClock, database: duckdb.DuckDBPyConnection,
        printer: ZplPrinterSimulator) -> None:
    events = watch(runtime)
    printer.paused = True
    ref = start(runtime, database, printer)
    first = call(runtime, ref, PrintLabel(code=CODE)).job
    second = call(runtime, ref, PrintLabel(code="(01)09506000134352(21)SN0002")).job
    settle(runtime, vclock, lambda: job_states(runtime, ref) == ["held", "held"])
    assert jobs(runtime, ref)[0].reason == "paused"
    status = call(runtime, ref, GetPrinterStatus())
    assert status.paused and not status.ready and status.queue.held == 2
    vclock.advance(1.0)  # many polls while paused: still nothing goes out
    assert runtime.wait_idle(5)
    assert printer.labels == [] and printer.formats_received == 0

    printer.paused = False
    settle(runtime, vclock, lambda: job_states(runtime, ref) == ["done", "done"])
    vclock.advance(0.5)
    assert runtime.wait_idle(5)
    assert [label.number for label in printer.labels] == [501, 502]
    assert printer.formats_received == 2
    assert [s for j, s in published_states(events) if j == first] == ["queued", "held", "queued",
                                                                       "done"]
    assert published_states(events)[-1] == (second, "done")


def test_a_link_lost_before_the_job_ends_resends_it_once(
        runtime: Runtime, vclock: VirtualClock, database: duckdb.DuckDBPyConnection,
        printer: ZplPrinterSimulator) -> None:
    ref = start(runtime, database, printer)
    settle(runtime, vclock, lambda: printer.connections == 1)
    printer.drop_connection_mid_job = DropPoint.BEFORE_END
    call(runtime, ref, PrintLabel(code=CODE))
    settle(runtime, vclock, lambda: job_states(runtime, ref) == ["done"])
    assert len(printer.labels) == 1 and printer.discarded_formats == 1
    (job,) = jobs(runtime, ref)
    assert job.attempts == 2 and job.counter_before == 500


def test_a_link_lost_after_the_job_was_printed_does_not_print_it_again(
        runtime: Runtime, vclock: VirtualClock, database: duckdb.DuckDBPyConnection,
        printer: ZplPrinterSimulator) -> None:
    ref = start(runtime, database, printer)
    settle(runtime, vclock, lambda: printer.connections == 1)
    printer.drop_connection_mid_job = DropPoint.AFTER_END
    call(runtime, ref, PrintLabel(code=CODE))
    settle(runtime, vclock, lambda: job_states(runtime, ref) == ["done"])
    vclock.advance(0.5)
    assert runtime.wait_idle(5)
    assert len(printer.labels) == 1 and printer.formats_received == 1
    assert jobs(runtime, ref)[0].counter_after == 501


def test_a_job_cut_after_its_first_label_is_reported_partial_not_reprinted(
        runtime: Runtime, vclock: VirtualClock, database: duckdb.DuckDBPyConnection,
        printer: ZplPrinterSimulator) -> None:
    ref = start(runtime, database, printer)
    two = "^XA^FO10,10^FDone {{x}}^FS^XZ\n^XA^FO10,10^FDtwo {{x}}^FS^XZ\n"
    call(runtime, ref, PutTemplate(name="two", body=two))
    settle(runtime, vclock, lambda: printer.connections == 1)
    printer.drop_connection_mid_job = DropPoint.AFTER_END  # after the first format
    call(runtime, ref, PrintLabel(template="two", fields={"x": "A"}))
    call(runtime, ref, PrintLabel(code=CODE))  # the next job still prints
    settle(runtime, vclock, lambda: job_states(runtime, ref) == ["partial", "done"])
    assert [label.fields[0].text for label in printer.labels[:1]] == ["one A"]
    assert len(printer.labels) == 2 and "1 of 2" in (jobs(runtime, ref)[0].reason or "")


def test_an_offline_printer_keeps_the_job_until_it_is_back(
        runtime: Runtime, vclock: VirtualClock, database: duckdb.DuckDBPyConnection,
        printer: ZplPrinterSimulator) -> None:
    ref = start(runtime, database, printer)
    settle(runtime, vclock, lambda: printer.connections == 1)
    printer.stop()
    call(runtime, ref, PrintLabel(code=CODE))
    settle(runtime, vclock, lambda: job_states(runtime, ref) == ["held"])
    assert jobs(runtime, ref)[0].reason.startswith("printer offline")
    assert runtime.health.state("printer:p1") == HealthState.DOWN
    test = call(runtime, ref, TestPrinter())
    assert not test.ok and not test.connected and test.error
    printer.start()
    settle(runtime, vclock, lambda: job_states(runtime, ref) == ["done"])
    assert len(printer.labels) == 1
    assert runtime.health.state("printer:p1") == HealthState.UP
    test = call(runtime, ref, TestPrinter())
    assert test.ok and test.ready and printer.formats_received == 1  # the test printed nothing


def test_a_printer_that_never_answers_blocks_neither_requests_nor_stop(
        runtime: Runtime, database: duckdb.DuckDBPyConnection) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(5)
        port = server.getsockname()[1]
        ref = PrinterActor.start(runtime, "printer:p1", config(port, timeout_ms=20_000),
                                 database)
        peer, _ = server.accept()  # connected; its ~HS question is never answered
        with peer:
            job = call(runtime, ref, PrintLabel(code=CODE), timeout=3).job
            status = call(runtime, ref, GetPrinterStatus(), timeout=3)
            assert status.connection == "connected" and status.queue.pending == 1
            ref.stop(block=True, timeout=3)  # the link's 20 s wait does not hold it
    (stored,) = unfinished_jobs(database.cursor(), "p1")
    assert stored.id == job and stored.state is JobState.QUEUED and stored.counter_before is None


def test_a_printer_that_never_accepts_does_not_hold_up_stop(
        runtime: Runtime, database: duckdb.DuckDBPyConnection) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        port = server.getsockname()[1]
        # This connection fills the backlog: the printer's connect now waits for its timeout.
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            ref = PrinterActor.start(runtime, "printer:p1", config(port, timeout_ms=10_000),
                                     database)
            call(runtime, ref, PrintLabel(code=CODE), timeout=3)
            assert call(runtime, ref, GetPrinterStatus(), timeout=3).connection == "connecting"
            ref.stop(block=True, timeout=3)


def test_a_restarted_takt_resumes_a_held_job_from_the_table(
        runtime: Runtime, vclock: VirtualClock, db_path: Path,
        printer: ZplPrinterSimulator) -> None:
    con = open_database(db_path)
    printer.paused = True
    ref = start(runtime, con, printer)
    job = call(runtime, ref, PrintLabel(code=CODE)).job
    settle(runtime, vclock, lambda: job_states(runtime, ref) == ["held"])
    ref.stop()
    con.close()

    con = open_database(db_path)  # as a new Takt process would
    try:
        printer.paused = False
        ref = start(runtime, con, printer)
        settle(runtime, vclock, lambda: job_states(runtime, ref) == ["done"])
        vclock.advance(0.5)
        assert runtime.wait_idle(5)
        assert len(printer.labels) == 1 and jobs(runtime, ref)[0].id == job
    finally:
        ref.stop()
        con.close()


def test_a_job_in_a_slow_printer_is_waited_for_not_sent_again(
        runtime: Runtime, vclock: VirtualClock, database: duckdb.DuckDBPyConnection,
        printer: ZplPrinterSimulator) -> None:
    printer.hold = True  # formats wait in the buffer though the printer reports no problem
    ref = start(runtime, database, printer, confirm_timeout_ms=200)
    call(runtime, ref, PrintLabel(code=CODE))
    settle(runtime, vclock, lambda: job_states(runtime, ref) == ["sent"])
    settle(runtime, vclock, lambda: "not confirmed" in (jobs(runtime, ref)[0].reason or ""))
    assert printer.formats_received == 1 and printer.labels == []
    printer.hold = False
    settle(runtime, vclock, lambda: job_states(runtime, ref) == ["done"])
    assert printer.formats_received == 1 and len(printer.labels) == 1


def test_templates_are_checked_when_written(
        runtime: Runtime, database: duckdb.DuckDBPyConnection,
        printer: ZplPrinterSimulator) -> None:
    ref = start(runtime, database, printer)
    bad = {
        "^XA^FO{{x}},10^FDa^FS^XZ": "outside field data",
        "^XA^FO10,10^FD{{code|gs1}}^FS^XZ": "needs a ^BX quality 200",
        "^XA^FO10,10^FD{{x}}^FS": "^XZ is missing",
        "^XA^FO10,10^FD{{x y}}^FS^XZ": "malformed placeholder",
        "~HS": "prints no label",
        "^XA^PQ5000^XZ": "at most",
    }
    for body, reason in bad.items():
        with pytest.raises(InvalidTemplate, match=reason.replace("^", r"\^")):
            call(runtime, ref, PutTemplate(name="t", body=body))
    with pytest.raises(InvalidTemplate, match="template name"):
        call(runtime, ref, PutTemplate(name="a/b", body=LABEL))
    view, created = call(runtime, ref, PutTemplate(name="t", body=LABEL, create=True))
    assert created and view.placeholders == ["code", "part"] and not view.builtin
    with pytest.raises(TemplateExists):
        call(runtime, ref, PutTemplate(name="t", body=LABEL, create=True))
    with pytest.raises(TemplateNotFound):
        call(runtime, ref, PrintLabel(code=CODE, template="nope"))
    with pytest.raises(ValueError, match="missing field"):
        call(runtime, ref, PrintLabel(code=CODE, template="t"))
    with pytest.raises(ValueError, match="unknown field"):
        call(runtime, ref, PrintLabel(code=CODE, template="t", fields={"part": "1", "typo": "2"}))
    assert call(runtime, ref, ListPrintJobs()) == []
    assert call(runtime, ref, ListPrintJobs(state=JobState.DONE)) == []
