"""The ZPL printer simulator, spoken to with plain sockets as a label tool would."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from drivers.zpl.codec import Field
from drivers.zpl.gs1 import GS, gs1_datamatrix
from drivers.zpl.status import (
    HOST_STATUS_QUERY,
    LABEL_COUNT_QUERY,
    PrinterStatus,
    ReplyReader,
    parse_host_status_frames,
)
from drivers.zpl.template import LabelTemplate
from sim.zpl_printer import DropPoint, ZplPrinterSimulator
from tests.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]


class Peer:
    """A bare TCP connection to the printer that sends ZPL and reads answers."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.replies = ReplyReader()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def status(self) -> PrinterStatus:
        self.send(HOST_STATUS_QUERY)
        while (frames := self.replies.take_frames(3)) is None:
            self._read()
        return parse_host_status_frames(frames)

    def getvar(self, query: bytes = LABEL_COUNT_QUERY) -> str:
        self.send(query)
        while (value := self.replies.take_quoted()) is None:
            self._read()
        return value

    def closed_by_printer(self) -> bool:
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def _read(self) -> None:
        data = self.sock.recv(4096)
        if not data:
            pytest.fail("printer closed the connection")
        self.replies.feed(data)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def sim() -> Iterator[ZplPrinterSimulator]:
    simulator = ZplPrinterSimulator(label_count=41)
    simulator.start()
    yield simulator
    simulator.stop()


@pytest.fixture
def connect(sim: ZplPrinterSimulator) -> Iterator[Callable[[], Peer]]:
    peers: list[Peer] = []

    def make() -> Peer:
        peers.append(Peer(sim.port))
        return peers[-1]

    yield make
    for peer in peers:
        peer.close()


LABEL = LabelTemplate(
    "^XA^FO10,10^A0N,30,30^FD{{name}}^FS^FO10,60^BXN,5,200,,,,_^FD{{code|gs1}}^FS^PQ2^XZ"
)


def test_prints_formats_with_decoded_fields_and_counts_labels(
    sim: ZplPrinterSimulator, connect: Callable[[], Peer]
) -> None:
    peer = connect()
    peer.send(LABEL.render({"name": "Grüße ^~", "code": "(01)09506000134352(10)L_1(21)S"}))
    peer.send(b"^XA^FO1,1" + gs1_datamatrix("0109506000134352").encode() + b"^XZ")
    assert peer.getvar() == "44"
    element_string = "0109506000134352" + "10L_1" + GS + "21S"
    first = (Field(text="Grüße ^~"), Field(text=element_string, barcode="BX", gs1=True))
    second = (Field(text="0109506000134352", barcode="BX", gs1=True),)
    assert [(label.number, label.fields) for label in sim.labels] == [
        (42, first),
        (43, first),
        (44, second),
    ]
    assert sim.label_count == 44
    assert peer.getvar(b'! U1 getvar "no.such.var"\r\n') == "?"


def test_status_answer_reports_each_switch(
    sim: ZplPrinterSimulator, connect: Callable[[], Peer]
) -> None:
    peer = connect()
    assert peer.status().ready
    sim.paper_out, sim.head_open = True, True
    assert peer.status().problems == ("paper out", "head open")
    sim.paper_out, sim.head_open, sim.paused, sim.ribbon_out = False, False, True, True
    assert peer.status().problems == ("paused", "ribbon out")


def test_a_paused_printer_buffers_jobs_and_prints_them_when_resumed(
    sim: ZplPrinterSimulator, connect: Callable[[], Peer]
) -> None:
    peer = connect()
    sim.paused = True
    peer.send(b"^XA^FDa^FS^PQ3^XZ^XA^FDb^FS^XZ")
    status = peer.status()
    assert (status.formats_in_buffer, status.labels_remaining) == (2, 4)
    assert sim.labels == []
    sim.paused = False
    assert [label.fields[0].text for label in sim.labels] == ["a", "a", "a", "b"]
    assert peer.status().idle


def test_paper_out_prevents_printing_until_media_is_loaded(
    sim: ZplPrinterSimulator, connect: Callable[[], Peer]
) -> None:
    peer = connect()
    sim.paper_out = True
    peer.send(b"^XA^FDwaiting^FS^XZ")
    assert peer.getvar() == "41"
    assert sim.formats_in_buffer == 1
    sim.paper_out = False
    assert peer.getvar() == "42"


def test_pause_resume_and_cancel_commands(
    sim: ZplPrinterSimulator, connect: Callable[[], Peer]
) -> None:
    peer = connect()
    peer.send(b"~PP^XA^FDkept^FS^XZ")
    assert peer.status().paused
    peer.send(b"~PS")
    assert peer.getvar() == "42"
    peer.send(b"~PP^XA^FDcancelled^FS^XZ~JA~PS")
    assert peer.getvar() == "42"
    assert [label.fields[0].text for label in sim.labels] == ["kept"]
    assert sim.discarded_formats == 1


def test_a_partial_format_is_reported_and_never_printed(
    sim: ZplPrinterSimulator, connect: Callable[[], Peer]
) -> None:
    sender, watcher = connect(), connect()
    sender.send(b"^XA^FO1,1^FDhalf")
    wait_for(lambda: watcher.status().partial_format)
    sender.close()
    wait_for(lambda: sim.discarded_formats == 1)
    assert not watcher.status().partial_format
    assert sim.labels == []


def test_drop_before_end_loses_the_format(
    sim: ZplPrinterSimulator, connect: Callable[[], Peer]
) -> None:
    sim.drop_connection_mid_job = DropPoint.BEFORE_END
    peer = connect()
    peer.send(b"^XA^FDlost^FS^XZ")
    assert peer.closed_by_printer()
    wait_for(lambda: sim.discarded_formats == 1)
    assert sim.labels == []
    assert sim.drop_connection_mid_job is None  # one shot
    again = connect()
    again.send(b"^XA^FDprinted^FS^XZ")
    assert again.getvar() == "42"


def test_drop_after_end_prints_then_closes(
    sim: ZplPrinterSimulator, connect: Callable[[], Peer]
) -> None:
    sim.drop_connection_mid_job = DropPoint.AFTER_END
    peer = connect()
    peer.send(b"^XA^FDtaken^FS^XZ")
    assert peer.closed_by_printer()
    assert [label.fields[0].text for label in sim.labels] == ["taken"]
    assert sim.label_count == 42


def test_junk_is_counted_and_huge_quantities_refused(
    sim: ZplPrinterSimulator, connect: Callable[[], Peer]
) -> None:
    peer = connect()
    peer.send(b"hello\x00^XA^FDmany^FS^PQ20000^XZ")
    assert peer.getvar() == "41"
    assert sim.formats_received == 1
    assert sim.ignored_bytes == 6
    assert sim.refused_formats == 1
    assert sim.labels == []


def test_restart_keeps_labels_and_counter_on_the_same_port(
    sim: ZplPrinterSimulator, connect: Callable[[], Peer]
) -> None:
    peer = connect()
    peer.send(b"^XA^FDbefore^FS^XZ")
    assert peer.getvar() == "42"
    port = sim.port
    sim.stop()
    assert peer.closed_by_printer()
    assert sim.start() == port
    assert connect().getvar() == "42"
    assert len(sim.labels) == 1


def test_cli_says_ready_and_serves() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "sim.zpl_printer", "--port", "0", "--label-count", "7"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("READY ")
        peer = Peer(int(line.split()[1]))
        assert peer.getvar() == "7"
        assert peer.status().ready
        peer.close()
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
