"""SerialScanner against the serial reader simulator over a linked pty pair."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest

from drivers.errors import DeviceUnavailable
from drivers.scanner.codec import Framing, Terminator
from drivers.scanner.serial import SerialScanner
from sim.ptypair import PtyPair
from sim.scanner import demo_codes
from sim.serial_scanner import SerialScannerSimulator
from tests.waiting import wait_for


class Recorder:
    """The callbacks a scanner actor would pass, recording what they were told."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reads: list[bytes] = []
        self.no_reads = 0
        self.lost: list[str] = []
        self.malformed: list[str] = []

    def on_read(self, code: bytes) -> None:
        with self._lock:
            self.reads.append(code)

    def on_no_read(self) -> None:
        with self._lock:
            self.no_reads += 1

    def on_lost(self, reason: str) -> None:
        with self._lock:
            self.lost.append(reason)

    def on_malformed(self, report: str) -> None:
        with self._lock:
            self.malformed.append(report)


@pytest.fixture
def pair() -> Iterator[PtyPair]:
    with PtyPair() as linked:
        yield linked


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def make_scanner(recorder: Recorder) -> Iterator[Callable[..., SerialScanner]]:
    scanners: list[SerialScanner] = []

    def make(path: str, **kwargs: object) -> SerialScanner:
        scanner = SerialScanner(
            path,
            on_read=recorder.on_read,
            on_malformed=recorder.on_malformed,
            on_lost=recorder.on_lost,
            on_no_read=recorder.on_no_read,
            name="scanner:bench",
            **kwargs,  # type: ignore[arg-type]
        )
        scanners.append(scanner)
        return scanner

    yield make
    for scanner in scanners:
        scanner.close()


@pytest.fixture
def make_sim(pair: PtyPair) -> Iterator[Callable[..., SerialScannerSimulator]]:
    sims: list[SerialScannerSimulator] = []

    def make(**kwargs: object) -> SerialScannerSimulator:
        sim = SerialScannerSimulator(pair.b_path, **kwargs)  # type: ignore[arg-type]
        sim.start()
        sims.append(sim)
        return sim

    yield make
    for sim in sims:
        sim.stop()


def test_free_running_codes_arrive_in_order(
    pair: PtyPair,
    make_sim: Callable[..., SerialScannerSimulator],
    make_scanner: Callable[..., SerialScanner],
    recorder: Recorder,
) -> None:
    sim = make_sim()
    scanner = make_scanner(pair.a_path)
    scanner.connect()
    codes = demo_codes(100, crypto_ais=("91", "92", "93"))
    for code in codes:
        sim.emit(code)
    wait_for(lambda: len(recorder.reads) == len(codes))
    assert recorder.reads == codes
    assert scanner.statistics().reads == 100
    assert recorder.malformed == []


def test_cr_terminated_reader_with_dmcc_answers(
    pair: PtyPair,
    make_sim: Callable[..., SerialScannerSimulator],
    make_scanner: Callable[..., SerialScanner],
    recorder: Recorder,
) -> None:
    framing = Framing(terminator=Terminator.CR)
    sim = make_sim(framing=framing, mode="triggered", extended=True)
    scanner = make_scanner(pair.a_path, framing=framing)
    scanner.connect()
    [code] = demo_codes(1)
    sim.emit(code)
    assert scanner.command("GET DEVICE.TYPE").text == "DataMan 370 (simulated)"
    scanner.trigger()
    wait_for(lambda: recorder.reads == [code])
    scanner.trigger()
    wait_for(lambda: recorder.no_reads == 1)
    assert sim.commands == ["GET DEVICE.TYPE", "TRIGGER ON", "TRIGGER ON"]
    assert recorder.malformed == []


def test_line_noise_is_counted_and_good_codes_still_read(
    pair: PtyPair,
    make_sim: Callable[..., SerialScannerSimulator],
    make_scanner: Callable[..., SerialScanner],
    recorder: Recorder,
) -> None:
    sim = make_sim(framing=Framing(stx_etx=True, max_length=64))
    scanner = make_scanner(pair.a_path, framing=Framing(stx_etx=True, max_length=64))
    scanner.connect()
    sim.emit(b"A1")
    wait_for(lambda: recorder.reads == [b"A1"])
    pair.inject_to_a(b"\x00\xff noise")  # bytes between frames
    # The next frame loses its ETX on the line, so the frame after it cuts it short.
    pair.tamper_next_to_a(lambda chunk: chunk.replace(b"\x03", b""))
    sim.emit(b"B2")
    wait_for(lambda: scanner.statistics().malformed == 1)
    sim.emit(b"C3")
    sim.send_raw(b"\x02" + b"Z" * 500 + b"\x03")
    sim.emit(b"D4")
    wait_for(lambda: b"D4" in recorder.reads)
    assert recorder.reads == [b"A1", b"C3", b"D4"]
    assert len(recorder.malformed) == 3
    assert "bytes outside a frame" in recorder.malformed[0]
    assert "frame cut short by STX: b'B2'" in recorder.malformed[1]
    assert "longer than 64 bytes" in recorder.malformed[2]
    assert all("scanner:bench" in report for report in recorder.malformed)


def test_reader_restart_on_the_same_line_needs_no_reconnect(
    pair: PtyPair,
    make_sim: Callable[..., SerialScannerSimulator],
    make_scanner: Callable[..., SerialScanner],
    recorder: Recorder,
) -> None:
    sim = make_sim()
    scanner = make_scanner(pair.a_path)
    scanner.connect()
    sim.stop()
    sim.start()
    sim.emit(b"AFTER-RESTART")
    wait_for(lambda: recorder.reads == [b"AFTER-RESTART"])
    assert scanner.connected  # a serial line has no connection to lose
    assert recorder.lost == []


def test_device_gone_reports_lost_once(
    pair: PtyPair,
    make_sim: Callable[..., SerialScannerSimulator],
    make_scanner: Callable[..., SerialScanner],
    recorder: Recorder,
) -> None:
    make_sim()
    path = pair.a_path
    scanner = make_scanner(path)
    scanner.connect()
    pair.stop()  # like unplugging a USB reader: the device node goes away
    wait_for(lambda: recorder.lost != [])
    assert recorder.lost == ["connection closed by the reader"]
    assert not scanner.connected
    with pytest.raises(DeviceUnavailable, match="link lost"):
        scanner.trigger()
    with pytest.raises(DeviceUnavailable, match="cannot open"):
        scanner.connect()

    # Plugged in again (new pty paths here): a new scanner reads at once.
    pair.start()
    sim = SerialScannerSimulator(pair.b_path)
    sim.start()
    try:
        again = make_scanner(pair.a_path)
        again.connect()
        sim.emit(b"BACK")
        wait_for(lambda: recorder.reads == [b"BACK"])
    finally:
        sim.stop()
    assert recorder.lost == ["connection closed by the reader"]


def test_open_failures_say_why(pair: PtyPair, make_scanner: Callable[..., SerialScanner]) -> None:
    with pytest.raises(DeviceUnavailable, match=r"scanner:bench /nonexistent/tty: cannot open"):
        make_scanner("/nonexistent/tty").connect()
    first = make_scanner(pair.a_path)
    first.connect()
    # Exclusive: a second client on the same port would steal bytes from the first.
    with pytest.raises(DeviceUnavailable, match="cannot open"):
        make_scanner(pair.a_path).connect()
    with pytest.raises(ValueError, match="parity"):
        make_scanner(pair.a_path, parity="X")
    with pytest.raises(ValueError, match="baudrate"):
        make_scanner(pair.a_path, baudrate=0)


def test_close_wakes_the_idle_reader_and_does_not_report_a_loss(
    pair: PtyPair,
    make_sim: Callable[..., SerialScannerSimulator],
    make_scanner: Callable[..., SerialScanner],
    recorder: Recorder,
) -> None:
    make_sim()
    scanner = make_scanner(pair.a_path)
    scanner.connect()
    scanner.close()
    scanner.close()
    assert not scanner.connected
    assert recorder.lost == []
    # The port is free again: the same client opens it anew.
    scanner.connect()
    assert scanner.connected
