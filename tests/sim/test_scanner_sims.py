"""The scanner simulators, spoken to with plain sockets and ptys as an integrator's tool would."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from biip import parse

from drivers.scanner.codec import (
    GS,
    DmccStatus,
    Framing,
    Terminator,
    encode_command,
    encode_response,
    xor_checksum,
)
from sim.ptypair import PtyPair
from sim.scanner import (
    DEMO_GTIN,
    TcpScannerSimulator,
    demo_codes,
    gtin_check_digit,
    iter_demo_codes,
)
from sim.serial_scanner import SerialScannerSimulator
from tests.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]


class RawPeer:
    """A bare TCP connection that sends bytes and collects everything received."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.received = b""
        self.closed = False

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_until(self, done: Callable[[bytes], bool], timeout_s: float = 5.0) -> bytes:
        deadline = time.monotonic() + timeout_s
        while not done(self.received):
            if self.closed or time.monotonic() > deadline:
                pytest.fail(f"no such reply; got {self.received!r}")
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            if not data:
                self.closed = True
            self.received += data
        return self.received

    def read_eof(self) -> bool:
        self.sock.settimeout(5)
        try:
            while data := self.sock.recv(65536):
                self.received += data
        except ConnectionResetError:
            pass
        self.closed = True
        return True

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def make_sim() -> Iterator[Callable[..., TcpScannerSimulator]]:
    sims: list[TcpScannerSimulator] = []

    def make(**kwargs: object) -> TcpScannerSimulator:
        sim = TcpScannerSimulator(**kwargs)  # type: ignore[arg-type]
        sim.start()
        sims.append(sim)
        return sim

    yield make
    for sim in sims:
        sim.stop()


@pytest.fixture
def connect() -> Iterator[Callable[[TcpScannerSimulator], RawPeer]]:
    peers: list[tuple[TcpScannerSimulator, RawPeer]] = []

    def make(sim: TcpScannerSimulator) -> RawPeer:
        peer = RawPeer(sim.port)
        peers.append((sim, peer))
        open_peers = [p for s, p in peers if s is sim and not p.closed]
        wait_for(lambda: sim.connections == len(open_peers))
        return peer

    yield make
    for _, peer in peers:
        peer.close()


# --- demo codes ----------------------------------------------------------------------------


def test_gtin_check_digit_matches_known_gtins() -> None:
    assert gtin_check_digit("400638133393") == "1"  # EAN-13 4006381333931
    assert gtin_check_digit("0001234560001") == "2"  # GTIN-14 00012345600012
    assert gtin_check_digit(DEMO_GTIN[:-1]) == DEMO_GTIN[-1]
    with pytest.raises(ValueError, match="digits"):
        gtin_check_digit("12a")


@pytest.mark.parametrize("crypto_ais", [("93",), ("91", "92"), ("91", "92", "93")])
def test_demo_codes_are_valid_gs1_datamatrix_with_unique_serials(
    crypto_ais: tuple[str, ...],
) -> None:
    codes = demo_codes(500, crypto_ais=crypto_ais)
    serials = set()
    for code in codes:
        assert code.startswith(b"]d2")
        assert code.count(bytes([GS])) == len(crypto_ais)
        result = parse(code.decode("latin-1"))
        assert result.symbology_identifier is not None
        assert result.symbology_identifier.value == "]d2"
        assert result.gs1_message is not None, result.gs1_message_error
        assert result.gtin_error is None
        values = {e.ai.ai: e.value for e in result.gs1_message.element_strings}
        assert list(values) == ["01", "21", *crypto_ais]
        assert values["01"] == DEMO_GTIN
        assert len(values["21"]) == 13
        assert len(values.get("93", "abcd")) == 4
        assert len(values.get("91", "abcd")) == 4
        assert len(values.get("92", "x" * 44)) == 44
        serials.add(values["21"])
    assert len(serials) == 500
    # Deterministic: the same index always gives the same code.
    assert demo_codes(3, start=498, crypto_ais=crypto_ais) == codes[497:500]


def test_demo_codes_take_a_13_digit_gtin_and_refuse_bad_ones() -> None:
    [code] = demo_codes(1, gtin="0460701234567")
    assert code.startswith(b"]d201" + DEMO_GTIN.encode())
    with pytest.raises(ValueError, match="wrong check digit"):
        demo_codes(1, gtin="04607012345670")
    with pytest.raises(ValueError, match="13 or 14 digits"):
        iter_demo_codes("123")
    with pytest.raises(ValueError, match="crypto_ais"):
        iter_demo_codes(crypto_ais=("94",))
    assert demo_codes(0) == []


# --- TCP simulator ---------------------------------------------------------------------------


def test_free_running_codes_go_to_every_client(
    make_sim: Callable[..., TcpScannerSimulator], connect: Callable[[TcpScannerSimulator], RawPeer]
) -> None:
    sim = make_sim()
    first, second = connect(sim), connect(sim)
    codes = demo_codes(3)
    for code in codes:
        sim.emit(code)
    wire = b"".join(code + b"\r\n" for code in codes)
    for peer in (first, second):
        assert peer.read_until(lambda got: len(got) >= len(wire)) == wire


def test_stx_etx_and_cr_framing_on_the_wire(
    make_sim: Callable[..., TcpScannerSimulator], connect: Callable[[TcpScannerSimulator], RawPeer]
) -> None:
    stx = make_sim(framing=Framing(stx_etx=True))
    cr = make_sim(framing=Framing(terminator=Terminator.CR))
    stx_peer, cr_peer = connect(stx), connect(cr)
    stx.emit(b"A1")
    cr.emit(b"A1")
    assert stx_peer.read_until(lambda got: len(got) >= 4) == b"\x02A1\x03"
    assert cr_peer.read_until(lambda got: len(got) >= 3) == b"A1\r"
    with pytest.raises(ValueError, match="STX or ETX"):
        stx.emit(b"bad\x03code")


def test_triggered_reader_answers_trigger_on_with_the_next_code_or_noread(
    make_sim: Callable[..., TcpScannerSimulator], connect: Callable[[TcpScannerSimulator], RawPeer]
) -> None:
    sim = make_sim(mode="triggered")
    peer = connect(sim)
    sim.emit(b"Q1")
    sim.emit(b"Q2")
    assert sim.model.queued == 2
    peer.send(b"||>TRIGGER ON\r\n")
    assert peer.read_until(lambda got: got.endswith(b"\n")) == b"Q1\r\n"
    peer.send(b"||>trigger on\r\n||>TRIGGER ON\r\n")  # case-insensitive, as DMCC is
    assert peer.read_until(lambda got: got.count(b"\n") == 3) == b"Q1\r\nQ2\r\nNOREAD\r\n"
    assert sim.triggers == 3


def test_triggered_reader_draws_from_its_code_source_when_the_queue_is_empty(
    make_sim: Callable[..., TcpScannerSimulator], connect: Callable[[TcpScannerSimulator], RawPeer]
) -> None:
    sim = make_sim(mode="triggered", code_source=iter_demo_codes(), answer_no_read=False)
    peer = connect(sim)
    peer.send(b"||>TRIGGER ON\r\n||>TRIGGER ON\r\n")
    received = peer.read_until(lambda got: got.count(b"\n") == 2)
    assert received.split(b"\r\n")[:2] == demo_codes(2)


def test_dmcc_silent_by_default_then_extended_answers_echo_the_header(
    make_sim: Callable[..., TcpScannerSimulator], connect: Callable[[TcpScannerSimulator], RawPeer]
) -> None:
    sim = make_sim(mode="triggered")
    peer = connect(sim)
    sim.emit(b"MARK")
    # Silent mode answers nothing, not even the switch to extended mode: the first bytes
    # back are the trigger's acknowledgement, then the triggered code.
    peer.send(b"||>GET DEVICE.TYPE\r\n||>SET COM.DMCC-RESPONSE 1\r\n||>TRIGGER ON\r\n")
    assert peer.read_until(lambda got: got.count(b"\n") == 2) == b"||[0]\r\nMARK\r\n"
    peer.received = b""
    peer.send(encode_command("GET DEVICE.TYPE", command_id=7))
    assert peer.read_until(lambda got: got.endswith(b"\n")) == (
        b"||0:7[0]DataMan 370 (simulated)\r\n"
    )
    peer.received = b""
    peer.send(b"||>GET NOPE\r\n||>SET COM.DMCC-RESPONSE 9\r\n||>SET DEVICE.TYPE X\r\n")
    assert peer.read_until(lambda got: got.count(b"\n") == 3) == (
        b"||[101]\r\n||[102]\r\n||[104]\r\n"
    )
    assert sim.commands[:2] == ["GET DEVICE.TYPE", "SET COM.DMCC-RESPONSE 1"]


def test_checksummed_commands_get_checksummed_answers_and_bad_ones_103(
    make_sim: Callable[..., TcpScannerSimulator], connect: Callable[[TcpScannerSimulator], RawPeer]
) -> None:
    sim = make_sim(extended=True)
    peer = connect(sim)
    peer.send(encode_command("GET DEVICE.NAME", command_id=3, checksum=True))
    answer = peer.read_until(lambda got: got.endswith(b"\n"))
    assert answer == encode_response(0, b"takt-sim", command_id=3, checksum=True)
    assert answer[-3] == xor_checksum(answer[:-3])
    peer.received = b""
    good = encode_command("GET DEVICE.NAME", command_id=3, checksum=True)
    peer.send(good[:-3] + bytes([good[-3] ^ 0x20]) + b"\r\n")
    assert peer.read_until(lambda got: got.endswith(b"\n")) == b"||[103]\r\n"
    assert sim.malformed == 1


def test_non_dmcc_input_is_counted_and_ignored(
    make_sim: Callable[..., TcpScannerSimulator], connect: Callable[[TcpScannerSimulator], RawPeer]
) -> None:
    sim = make_sim(extended=True)
    peer = connect(sim)
    peer.send(b"hello\r\n" + b"x" * 10_000 + b"\r\n||>GET DEVICE.NAME\r\n")
    assert peer.read_until(lambda got: got.endswith(b"\n")) == b"||[0]takt-sim\r\n"
    assert sim.malformed == 2


def test_fault_switches(
    make_sim: Callable[..., TcpScannerSimulator], connect: Callable[[TcpScannerSimulator], RawPeer]
) -> None:
    sim = make_sim(extended=True)
    peer = connect(sim)
    sim.silent = True
    sim.emit(b"LOST")
    peer.send(b"||>GET DEVICE.NAME\r\n")
    wait_for(lambda: sim.ignored == 1)  # read and dropped while silent, not answered later
    sim.send_raw(b"\xffgarbage\r\n")  # still sent while silent
    assert peer.read_until(lambda got: got.endswith(b"\n")) == b"\xffgarbage\r\n"
    sim.silent = False
    sim.emit(b"BACK")
    assert peer.read_until(lambda got: got.endswith(b"BACK\r\n")) == b"\xffgarbage\r\nBACK\r\n"
    sim.drop_clients()
    assert peer.read_eof()
    assert sim.running
    wait_for(lambda: sim.connections == 0)


def test_stop_closes_clients_and_start_reuses_the_port(
    make_sim: Callable[..., TcpScannerSimulator], connect: Callable[[TcpScannerSimulator], RawPeer]
) -> None:
    sim = make_sim(mode="triggered", extended=True)
    peer = connect(sim)
    port = sim.port
    peer.send(b'||>SET DEVICE.NAME "kept"\r\n')
    peer.read_until(lambda got: got.endswith(b"\n"))
    sim.stop()
    assert peer.read_eof()
    assert not sim.running
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5)
    sim.stop()
    assert sim.start() == port
    again = connect(sim)
    again.send(b"||>GET DEVICE.NAME\r\n")
    assert again.read_until(lambda got: got.endswith(b"\n")) == b"||[0]kept\r\n"


def test_start_twice_and_port_in_use() -> None:
    with TcpScannerSimulator() as sim:
        with pytest.raises(RuntimeError, match="already running"):
            sim.start()
        with pytest.raises(OSError, match="cannot listen"):
            TcpScannerSimulator(port=sim.port).start()
    with pytest.raises(ValueError, match="mode"):
        TcpScannerSimulator(mode="sometimes")  # type: ignore[arg-type]


# --- serial simulator -------------------------------------------------------------------------


class RawTty:
    """The host end of a pty pair, opened without pyserial."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
        self.received = b""

    def send(self, data: bytes) -> None:
        os.write(self.fd, data)

    def read_until(self, done: Callable[[bytes], bool], timeout_s: float = 5.0) -> bytes:
        deadline = time.monotonic() + timeout_s
        while not done(self.received):
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"no such reply; got {self.received!r}")
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                self.received += os.read(self.fd, 4096)
        return self.received

    def close(self) -> None:
        os.close(self.fd)


@pytest.fixture
def pair() -> Iterator[PtyPair]:
    with PtyPair() as linked:
        yield linked


def test_serial_simulator_sends_codes_and_answers_triggers(pair: PtyPair) -> None:
    host = RawTty(pair.a_path)
    sim = SerialScannerSimulator(pair.b_path, mode="triggered", extended=True)
    sim.start()
    try:
        sim.emit(b"S1")
        host.send(b"||0:1>TRIGGER ON\r\n")
        assert host.read_until(lambda got: got.count(b"\n") == 2) == b"||0:1[0]\r\nS1\r\n"
        host.received = b""
        host.send(b"||>TRIGGER ON\r\n")
        assert host.read_until(lambda got: got.count(b"\n") == 2) == b"||[0]\r\nNOREAD\r\n"
        assert sim.triggers == 2
        sim.stop()
        sim.stop()
        sim.start()  # restartable, settings kept
        host.received = b""
        host.send(b"||>GET COM.DMCC-RESPONSE\r\n")
        assert host.read_until(lambda got: got.endswith(b"\n")) == b"||[0]1\r\n"
    finally:
        sim.stop()
        host.close()


def test_serial_simulator_free_running_and_open_failure(pair: PtyPair) -> None:
    host = RawTty(pair.a_path)
    sim = SerialScannerSimulator(pair.b_path, framing=Framing(terminator=Terminator.LF))
    sim.start()
    try:
        for code in demo_codes(3):
            sim.emit(code)
        sim.send_raw(b"\x00")
        wire = b"".join(code + b"\n" for code in demo_codes(3)) + b"\x00"
        assert host.read_until(lambda got: len(got) >= len(wire)) == wire
        with pytest.raises(RuntimeError, match="already running"):
            sim.start()
    finally:
        sim.stop()
        host.close()
    with pytest.raises(OSError, match="cannot open serial port /nonexistent/tty"):
        SerialScannerSimulator("/nonexistent/tty").start()


# --- processes ---------------------------------------------------------------------------------


def start_process(module: str, *args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", module, *args], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    if not ready:
        proc.kill()
        pytest.fail("simulator process did not print READY")
    word, address = proc.stdout.readline().split()
    assert word == "READY"
    return proc, address


def stop_process(proc: subprocess.Popen[str]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()


def test_process_free_running_demo_sends_valid_codes() -> None:
    proc, port = start_process("sim.scanner", "--port", "0", "--demo")
    peer = RawPeer(int(port))
    try:
        line = peer.read_until(lambda got: got.endswith(b"\r\n"), timeout_s=10)
        result = parse(line[:-2].decode("latin-1"))
        assert result.gs1_message is not None
        assert result.gtin_error is None
        assert stop_process(proc) == 0
        assert peer.read_eof()
    finally:
        peer.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_process_triggered_demo_answers_each_trigger_with_a_new_code() -> None:
    proc, port = start_process("sim.scanner", "--port", "0", "--triggered", "--demo")
    peer = RawPeer(int(port))
    try:
        peer.send(b"||>TRIGGER ON\r\n||>TRIGGER ON\r\n")
        received = peer.read_until(lambda got: got.count(b"\n") == 2)
        assert received.split(b"\r\n")[:2] == demo_codes(2)
        assert stop_process(proc) == 0
    finally:
        peer.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serial_process_serves_a_pty_pair() -> None:
    proc, path = start_process("sim.serial_scanner", "--pty", "--triggered", "--demo")
    host = RawTty(path)
    try:
        host.send(b"||>TRIGGER ON\r\n")
        assert host.read_until(lambda got: got.endswith(b"\n")) == demo_codes(1)[0] + b"\r\n"
        assert stop_process(proc) == 0
    finally:
        host.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_process_refuses_a_port_in_use() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        result = subprocess.run(
            [sys.executable, "-m", "sim.scanner", "--port", str(taken.getsockname()[1])],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert result.returncode == 1
    assert "cannot listen" in result.stderr


def test_dmcc_status_names_used_by_the_simulator() -> None:
    assert int(DmccStatus.CHECKSUM_INCORRECT) == 103
