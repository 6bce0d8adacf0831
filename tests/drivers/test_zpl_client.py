"""ZplPrinterClient over real sockets against the printer simulator (and two bad printers)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from drivers.errors import DeviceUnavailable, FrameError
from drivers.zpl.client import (
    JobInterrupted,
    PartiallyPrinted,
    PrinterNotReady,
    ZplPrinterClient,
)
from drivers.zpl.template import LabelTemplate
from sim.zpl_printer import DropPoint, ZplPrinterSimulator
from tests.waiting import wait_for

TEMPLATE = LabelTemplate("^XA^FO20,20^A0N,30,30^FD{{serial}}^FS^XZ")
TWO = LabelTemplate("^XA^FO20,20^A0N,30,30^FD{{serial}}^FS^PQ2^XZ")


@pytest.fixture
def sim() -> Iterator[ZplPrinterSimulator]:
    simulator = ZplPrinterSimulator(label_count=500)
    simulator.start()
    yield simulator
    simulator.stop()


@pytest.fixture
def client(sim: ZplPrinterSimulator) -> Iterator[ZplPrinterClient]:
    printer = ZplPrinterClient("127.0.0.1", sim.port, timeout_s=2.0, poll_interval_s=0.01)
    printer.connect()
    yield printer
    printer.close()


def texts(sim: ZplPrinterSimulator) -> list[str]:
    return [label.fields[0].text for label in sim.labels]


def test_a_job_is_confirmed_once_its_labels_are_counted(
    sim: ZplPrinterSimulator, client: ZplPrinterClient
) -> None:
    result = client.print_job(TWO.render({"serial": "SN-1 ^XZ ü"}), 2)
    assert result.confirmed
    assert result.sent
    assert (result.counter_before, result.counter_after) == (500, 502)
    assert texts(sim) == ["SN-1 ^XZ ü", "SN-1 ^XZ ü"]
    assert [label.number for label in sim.labels] == [501, 502]
    assert client.label_count() == 502


@pytest.mark.parametrize(
    ("switch", "condition"),
    [
        ("paper_out", "paper out"),
        ("paused", "paused"),
        ("head_open", "head open"),
        ("ribbon_out", "ribbon out"),
    ],
)
def test_status_flags_and_refusal_with_nothing_sent(
    sim: ZplPrinterSimulator, client: ZplPrinterClient, switch: str, condition: str
) -> None:
    setattr(sim, switch, True)
    assert getattr(client.status(), switch) is True
    with pytest.raises(PrinterNotReady, match=condition) as refused:
        client.print_job(TEMPLATE.render({"serial": "A"}), 1)
    assert refused.value.conditions == (condition,)
    client.status()  # answered in order, so the simulator has seen all the client sent
    assert sim.formats_received == 0
    setattr(sim, switch, False)
    assert client.print_job(TEMPLATE.render({"serial": "A"}), 1).confirmed
    assert texts(sim) == ["A"]


def test_not_confirmed_until_the_printer_has_printed(
    sim: ZplPrinterSimulator, client: ZplPrinterClient
) -> None:
    sim.hold = True
    with ThreadPoolExecutor(1) as pool:
        job = pool.submit(client.print_job, TEMPLATE.render({"serial": "slow"}), 1)
        wait_for(lambda: sim.formats_in_buffer == 1)
        queries = sim.queries
        wait_for(lambda: sim.queries >= queries + 4)  # the client keeps asking
        assert not job.done()
        assert sim.labels == []
        sim.hold = False
        result = job.result(timeout=5)
    assert result.confirmed
    assert texts(sim) == ["slow"]


def test_a_job_that_does_not_come_out_in_time_is_not_confirmed(
    sim: ZplPrinterSimulator, client: ZplPrinterClient
) -> None:
    sim.hold = True
    zpl = TEMPLATE.render({"serial": "late"})
    result = client.print_job(zpl, 1, confirm_timeout_s=0.2)
    assert not result.confirmed
    assert result.sent
    assert result.status.formats_in_buffer == 1
    sim.hold = False
    retry = client.print_job(zpl, 1, counter_before=result.counter_before)
    assert retry.confirmed
    assert not retry.sent
    assert texts(sim) == ["late"]


def test_link_lost_after_the_printer_took_the_job_retry_does_not_reprint(
    sim: ZplPrinterSimulator, client: ZplPrinterClient
) -> None:
    zpl = TWO.render({"serial": "once"})
    sim.drop_connection_mid_job = DropPoint.AFTER_END
    with pytest.raises(JobInterrupted) as lost:
        client.print_job(zpl, 2)
    assert isinstance(lost.value, DeviceUnavailable)
    assert lost.value.sent
    assert lost.value.counter_before == 500
    assert not client.connected
    client.connect()
    retry = client.print_job(zpl, 2, counter_before=lost.value.counter_before)
    assert retry.confirmed
    assert not retry.sent
    assert texts(sim) == ["once", "once"]
    assert sim.formats_received == 1


def test_link_lost_before_the_job_ended_retry_prints_it_once(
    sim: ZplPrinterSimulator, client: ZplPrinterClient
) -> None:
    zpl = TEMPLATE.render({"serial": "cut"})
    sim.drop_connection_mid_job = DropPoint.BEFORE_END
    with pytest.raises(JobInterrupted) as lost:
        client.print_job(zpl, 1)
    wait_for(lambda: sim.discarded_formats == 1)
    assert sim.labels == []
    client.connect()
    retry = client.print_job(zpl, 1, counter_before=lost.value.counter_before)
    assert retry.confirmed
    assert retry.sent
    assert texts(sim) == ["cut"]


def test_retry_waits_for_the_job_still_in_the_printer(
    sim: ZplPrinterSimulator, client: ZplPrinterClient
) -> None:
    zpl = TEMPLATE.render({"serial": "queued"})
    sim.hold = True
    sim.drop_connection_mid_job = DropPoint.AFTER_END
    with pytest.raises(JobInterrupted) as lost:
        client.print_job(zpl, 1)
    client.connect()
    with ThreadPoolExecutor(1) as pool:
        queries = sim.queries
        retry = pool.submit(client.print_job, zpl, 1, counter_before=lost.value.counter_before)
        wait_for(lambda: sim.queries >= queries + 6)
        assert not retry.done()
        sim.hold = False
        result = retry.result(timeout=5)
    assert result.confirmed
    assert not result.sent
    assert sim.formats_received == 1
    assert texts(sim) == ["queued"]


def test_retry_of_a_job_printed_while_the_printer_is_now_paused_is_confirmed(
    sim: ZplPrinterSimulator, client: ZplPrinterClient
) -> None:
    zpl = TEMPLATE.render({"serial": "done"})
    sim.drop_connection_mid_job = DropPoint.AFTER_END
    with pytest.raises(JobInterrupted) as lost:
        client.print_job(zpl, 1)
    sim.paused = True
    client.connect()
    assert client.print_job(zpl, 1, counter_before=lost.value.counter_before).confirmed
    assert texts(sim) == ["done"]


def test_a_partly_printed_job_is_not_reprinted_silently(
    sim: ZplPrinterSimulator, client: ZplPrinterClient
) -> None:
    with pytest.raises(PartiallyPrinted) as partial:
        client.print_job(TWO.render({"serial": "x"}), 2, counter_before=499)
    assert (partial.value.printed, partial.value.labels) == (1, 2)
    assert sim.formats_received == 0


def test_jobs_that_cannot_be_confirmed_are_refused_before_sending(
    sim: ZplPrinterSimulator, client: ZplPrinterClient
) -> None:
    with pytest.raises(ValueError, match="prints 2 label"):
        client.print_job(TWO.render({"serial": "x"}), 1)
    with pytest.raises(ValueError, match="end with"):
        client.print_job(b"^XA^FDx^FS^XZ^XA^FDy", 1)
    client.status()
    assert sim.formats_received == 0


def test_printer_restart_loses_the_link_and_a_reconnect_finds_it(
    sim: ZplPrinterSimulator, client: ZplPrinterClient
) -> None:
    sim.stop()
    with pytest.raises(DeviceUnavailable):
        client.status()
    with pytest.raises(DeviceUnavailable, match="link lost"):
        client.label_count()
    sim.start()
    client.connect()
    assert client.label_count() == 500


def test_unreachable_printer() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    printer = ZplPrinterClient("127.0.0.1", port, timeout_s=1.0)
    with pytest.raises(DeviceUnavailable, match="cannot connect"):
        printer.connect()
    with pytest.raises(DeviceUnavailable, match="not connected"):
        printer.status()


class BadPrinter:
    """A TCP server that answers every request with fixed bytes (or never)."""

    def __init__(self, answer: bytes | None) -> None:
        self.answer = answer
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        self.conns.append(conn)
        while data := _recv(conn):
            if self.answer is not None and data:
                conn.sendall(self.answer)

    def close(self) -> None:
        self.listener.close()
        for conn in self.conns:
            conn.close()
        self.thread.join(5)


def _recv(conn: socket.socket) -> bytes:
    try:
        return conn.recv(4096)
    except OSError:
        return b""


@pytest.fixture
def bad_printer() -> Iterator[Callable[[bytes | None], BadPrinter]]:
    made: list[BadPrinter] = []

    def make(answer: bytes | None) -> BadPrinter:
        made.append(BadPrinter(answer))
        return made[-1]

    yield make
    for printer in made:
        printer.close()


def test_a_silent_printer_times_out(bad_printer: Callable[[bytes | None], BadPrinter]) -> None:
    server = bad_printer(None)
    printer = ZplPrinterClient("127.0.0.1", server.port, timeout_s=0.2)
    printer.connect()
    with pytest.raises(DeviceUnavailable, match=r"no ~HS answer within 0\.2 s"):
        printer.status()
    assert not printer.connected
    printer.close()


def test_a_garbled_answer_is_a_frame_error_and_drops_the_link(
    bad_printer: Callable[[bytes | None], BadPrinter],
) -> None:
    server = bad_printer(b"garbage\r\n")
    printer = ZplPrinterClient("127.0.0.1", server.port, timeout_s=1.0)
    printer.connect()
    with pytest.raises(FrameError, match="malformed ~HS answer"):
        printer.status()
    assert printer.malformed == 1
    with pytest.raises(DeviceUnavailable, match="link lost: malformed"):
        printer.status()
    printer.close()


def test_a_printer_without_a_label_counter_cannot_confirm(
    bad_printer: Callable[[bytes | None], BadPrinter],
) -> None:
    server = bad_printer(b'"?"')
    printer = ZplPrinterClient("127.0.0.1", server.port, timeout_s=1.0)
    printer.connect()
    with pytest.raises(FrameError, match="no label count"):
        printer.label_count()
    printer.close()
