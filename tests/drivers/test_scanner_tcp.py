"""Scanners over TCP on loopback: TcpScanner against the reader simulator (and a scripted
raw reader), ModbusScanner against the Modbus PLC simulator's registers."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.errors import DeviceUnavailable
from drivers.modbus.codec import RegisterKind
from drivers.modbus.transport import ModbusTcpTransport
from drivers.scanner.codec import (
    CommandDecoder,
    DmccCommand,
    DmccStatus,
    Framing,
    Terminator,
    encode_response,
    quote_argument,
)
from drivers.scanner.link import CommandRefused, CommandTimeout
from drivers.scanner.modbus import ModbusScanner, ResultRegisters, pack_code, unpack_code
from drivers.scanner.tcp import TcpScanner
from sim.modbus_plc import ModbusPlcSimulator
from sim.scanner import TcpScannerSimulator, demo_codes
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
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def make_scanner(recorder: Recorder) -> Iterator[Callable[..., TcpScanner]]:
    scanners: list[TcpScanner] = []

    def make(port: int, *, framing: Framing | None = None, timeout_s: float = 2.0) -> TcpScanner:
        scanner = TcpScanner(
            "127.0.0.1",
            port,
            on_read=recorder.on_read,
            on_malformed=recorder.on_malformed,
            on_lost=recorder.on_lost,
            on_no_read=recorder.on_no_read,
            framing=framing,
            timeout_s=timeout_s,
            name="scanner:station1",
        )
        scanners.append(scanner)
        return scanner

    yield make
    for scanner in scanners:
        scanner.close()


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


def connected(sim: TcpScannerSimulator, scanner: TcpScanner) -> TcpScanner:
    scanner.connect()
    wait_for(lambda: sim.connections == 1)
    return scanner


# --- reads ---------------------------------------------------------------------------------


def test_free_running_codes_arrive_in_order_byte_exact(
    make_sim: Callable[..., TcpScannerSimulator],
    make_scanner: Callable[..., TcpScanner],
    recorder: Recorder,
) -> None:
    sim = make_sim()
    scanner = connected(sim, make_scanner(sim.port))
    codes = demo_codes(200, crypto_ais=("91", "92", "93"))
    for code in codes:
        sim.emit(code)
    wait_for(lambda: len(recorder.reads) == len(codes))
    assert recorder.reads == codes  # GS separators and the ]d2 prefix intact
    stats = scanner.statistics()
    assert (stats.reads, stats.no_reads, stats.malformed, stats.connected) == (200, 0, 0, True)
    assert recorder.lost == []


@pytest.mark.parametrize(
    "framing",
    [Framing(terminator=Terminator.CR), Framing(terminator=Terminator.LF), Framing(stx_etx=True)],
    ids=["cr", "lf", "stx-etx"],
)
def test_other_result_framings(
    framing: Framing,
    make_sim: Callable[..., TcpScannerSimulator],
    make_scanner: Callable[..., TcpScanner],
    recorder: Recorder,
) -> None:
    sim = make_sim(framing=framing, extended=True)
    scanner = connected(sim, make_scanner(sim.port, framing=framing))
    codes = demo_codes(5)
    for code in codes:
        sim.emit(code)
    # DMCC answers end in CR LF whatever the result framing; they must not leak into reads.
    assert scanner.command("GET DEVICE.NAME").data == b"takt-sim"
    sim.emit(b"LAST")
    wait_for(lambda: len(recorder.reads) == 6)
    assert recorder.reads == [*codes, b"LAST"]
    assert recorder.malformed == []


def test_triggered_reads_one_code_per_trigger_then_no_read(
    make_sim: Callable[..., TcpScannerSimulator],
    make_scanner: Callable[..., TcpScanner],
    recorder: Recorder,
) -> None:
    sim = make_sim(mode="triggered")
    scanner = connected(sim, make_scanner(sim.port))
    first, second = demo_codes(2)
    sim.emit(first)
    sim.emit(second)
    assert recorder.reads == []  # a triggered reader sends nothing by itself
    scanner.trigger()
    wait_for(lambda: len(recorder.reads) == 1)
    assert recorder.reads == [first]
    scanner.trigger()
    wait_for(lambda: len(recorder.reads) == 2)
    scanner.trigger()
    wait_for(lambda: recorder.no_reads == 1)
    assert recorder.reads == [first, second]
    assert sim.triggers == 3
    assert sim.commands == ["TRIGGER ON"] * 3
    assert scanner.statistics().no_reads == 1


def test_trigger_off_ends_a_read_on_a_reader_that_sends_no_no_read(
    make_sim: Callable[..., TcpScannerSimulator],
    make_scanner: Callable[..., TcpScanner],
    recorder: Recorder,
) -> None:
    sim = make_sim(mode="triggered", answer_no_read=False)
    scanner = connected(sim, make_scanner(sim.port))
    scanner.trigger()
    scanner.trigger_off()
    wait_for(lambda: sim.commands == ["TRIGGER ON", "TRIGGER OFF"])
    sim.emit(b"A1")
    scanner.trigger()
    wait_for(lambda: recorder.reads == [b"A1"])
    assert recorder.no_reads == 0


def test_malformed_and_overlong_input_is_counted_while_good_codes_flow(
    make_sim: Callable[..., TcpScannerSimulator],
    make_scanner: Callable[..., TcpScanner],
    recorder: Recorder,
) -> None:
    sim = make_sim()
    scanner = connected(sim, make_scanner(sim.port, framing=Framing(max_length=64)))
    sim.emit(b"GOOD-1")
    sim.send_raw(b"Z" * 5000 + b"\r\n")  # overlong, in many TCP segments
    sim.emit(b"GOOD-2")
    sim.send_raw(b"||garbage[\r\n")  # looks like a DMCC answer, is not
    sim.send_raw(b"GOOD-3\r\n")
    wait_for(lambda: len(recorder.reads) == 3)
    assert recorder.reads == [b"GOOD-1", b"GOOD-2", b"GOOD-3"]
    assert len(recorder.malformed) == 2
    assert "scanner:station1" in recorder.malformed[0]
    assert "longer than 64 bytes" in recorder.malformed[0]
    assert "not a DMCC answer" in recorder.malformed[1]
    assert scanner.statistics().malformed == 2
    assert scanner.connected


def test_failing_callback_does_not_stop_the_reader(
    make_sim: Callable[..., TcpScannerSimulator],
) -> None:
    sim = make_sim()
    seen: list[bytes] = []

    def on_read(code: bytes) -> None:
        seen.append(code)
        raise RuntimeError("owner bug")

    scanner = TcpScanner("127.0.0.1", sim.port, on_read=on_read, on_malformed=print, on_lost=print)
    try:
        connected(sim, scanner)
        sim.emit(b"A1")
        sim.emit(b"B2")
        wait_for(lambda: seen == [b"A1", b"B2"])
        assert scanner.connected
    finally:
        scanner.close()


# --- link loss -----------------------------------------------------------------------------


def test_simulator_stop_reports_lost_once_and_restart_reconnects(
    make_sim: Callable[..., TcpScannerSimulator],
    make_scanner: Callable[..., TcpScanner],
    recorder: Recorder,
) -> None:
    sim = make_sim()
    scanner = connected(sim, make_scanner(sim.port))
    sim.stop()
    wait_for(lambda: recorder.lost != [])
    assert recorder.lost == ["connection closed by the reader"]
    assert not scanner.connected
    assert scanner.statistics().lost_reason == "connection closed by the reader"
    with pytest.raises(DeviceUnavailable, match="link lost"):
        scanner.trigger()
    with pytest.raises(DeviceUnavailable, match="cannot connect"):
        scanner.connect()

    sim.start()
    connected(sim, scanner)
    sim.emit(b"AFTER-RESTART")
    wait_for(lambda: recorder.reads == [b"AFTER-RESTART"])
    assert scanner.statistics().reads == 1  # counters are per connection
    assert recorder.lost == ["connection closed by the reader"]


def test_reader_reboot_drops_the_link(
    make_sim: Callable[..., TcpScannerSimulator],
    make_scanner: Callable[..., TcpScanner],
    recorder: Recorder,
) -> None:
    sim = make_sim()
    scanner = connected(sim, make_scanner(sim.port))
    sim.drop_clients()
    wait_for(lambda: len(recorder.lost) == 1)
    connected(sim, scanner)
    sim.emit(b"X1")
    wait_for(lambda: recorder.reads == [b"X1"])


def test_connect_failure_and_close_semantics(
    make_sim: Callable[..., TcpScannerSimulator],
    make_scanner: Callable[..., TcpScanner],
    recorder: Recorder,
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free_port = probe.getsockname()[1]
    where = r"scanner:station1 127\.0\.0\.1:\d+"
    with pytest.raises(DeviceUnavailable, match=where + ": cannot connect"):
        make_scanner(free_port).connect()

    sim = make_sim()
    scanner = connected(sim, make_scanner(sim.port))
    with pytest.raises(RuntimeError, match="already connected"):
        scanner.connect()
    scanner.close()
    scanner.close()
    wait_for(lambda: sim.connections == 0)
    assert not scanner.connected
    assert recorder.lost == []  # close() is not a loss
    with pytest.raises(DeviceUnavailable, match="not connected"):
        scanner.trigger()


# --- DMCC commands -------------------------------------------------------------------------


def test_command_answers_in_extended_mode(
    make_sim: Callable[..., TcpScannerSimulator],
    make_scanner: Callable[..., TcpScanner],
) -> None:
    sim = make_sim(extended=True)
    scanner = connected(sim, make_scanner(sim.port))
    assert scanner.command("GET DEVICE.TYPE").text == "DataMan 370 (simulated)"
    assert scanner.command(f"SET DEVICE.NAME {quote_argument('line 4')}").data == b""
    assert scanner.command("get device.name").text == "line 4"
    with pytest.raises(CommandRefused, match="COMMAND_INVALID") as refused:
        scanner.command("GET NO.SUCH-PARAMETER")
    assert refused.value.response.status == DmccStatus.COMMAND_INVALID
    with pytest.raises(CommandRefused, match="PARAMETER_REJECTED"):
        scanner.command("SET DEVICE.TYPE X")
    with pytest.raises(ValueError, match="printable ASCII"):
        scanner.command("GET\nDEVICE.TYPE")
    assert scanner.connected
    assert scanner.statistics().answers == 5


def test_silent_reader_times_out_commands_but_keeps_reading(
    make_sim: Callable[..., TcpScannerSimulator],
    make_scanner: Callable[..., TcpScanner],
    recorder: Recorder,
) -> None:
    sim = make_sim()  # DataMan default: silent response mode
    scanner = connected(sim, make_scanner(sim.port))
    with pytest.raises(CommandTimeout, match="extended response mode"):
        scanner.command("GET DEVICE.TYPE", timeout_s=0.2)
    sim.emit(b"STILL-READING")
    wait_for(lambda: recorder.reads == [b"STILL-READING"])
    assert scanner.connected
    # The documented switch: sent without waiting, as a silent reader does not answer it.
    scanner.send_command("SET COM.DMCC-RESPONSE 1")
    assert scanner.command("GET COM.DMCC-RESPONSE").text == "1"


def test_close_while_a_command_waits_fails_it_at_once(
    make_sim: Callable[..., TcpScannerSimulator],
    make_scanner: Callable[..., TcpScanner],
) -> None:
    sim = make_sim()
    scanner = connected(sim, make_scanner(sim.port))
    errors: list[Exception] = []

    def ask() -> None:
        try:
            scanner.command("GET DEVICE.TYPE", timeout_s=30)
        except Exception as exc:
            errors.append(exc)

    thread = threading.Thread(target=ask)
    thread.start()
    wait_for(lambda: sim.commands == ["GET DEVICE.TYPE"])
    scanner.close()
    thread.join(5)
    assert not thread.is_alive()
    assert len(errors) == 1
    assert isinstance(errors[0], DeviceUnavailable)
    assert "closed while waiting" in str(errors[0])


def test_link_loss_while_a_command_waits_fails_it(
    make_sim: Callable[..., TcpScannerSimulator],
    make_scanner: Callable[..., TcpScanner],
) -> None:
    sim = make_sim()
    scanner = connected(sim, make_scanner(sim.port))
    errors: list[Exception] = []

    def ask() -> None:
        try:
            scanner.command("GET DEVICE.TYPE", timeout_s=30)
        except Exception as exc:
            errors.append(exc)

    thread = threading.Thread(target=ask)
    thread.start()
    wait_for(lambda: sim.commands == ["GET DEVICE.TYPE"])
    sim.stop()
    thread.join(5)
    assert [type(e) for e in errors] == [DeviceUnavailable]
    assert "link lost" in str(errors[0])


class ScriptedReader:
    """A bare TCP reader that answers each command with a stale answer first, then its own."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.received: list[DmccCommand] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        sock, _ = self._listener.accept()
        decoder = CommandDecoder()
        with sock:
            while data := sock.recv(4096):
                for command in decoder.feed(data):
                    assert isinstance(command, DmccCommand)
                    self.received.append(command)
                    own = command.command_id
                    assert own is not None
                    sock.sendall(encode_response(0, b"stale", command_id=own + 1000))
                    sock.sendall(encode_response(1, b"UNSOLICITED-READ"))
                    sock.sendall(encode_response(0, b"mine", command_id=own))

    def close(self) -> None:
        self._listener.close()


def test_answers_are_matched_by_command_id(
    make_scanner: Callable[..., TcpScanner], recorder: Recorder
) -> None:
    reader = ScriptedReader()
    try:
        scanner = make_scanner(reader.port)
        scanner.connect()
        assert scanner.command("GET DEVICE.TYPE").data == b"mine"
        assert scanner.command("GET DEVICE.NAME").data == b"mine"
        ids = [command.command_id for command in reader.received]
        assert len(set(ids)) == 2
        # A read string in an answer header is a read, whatever else is going on.
        wait_for(lambda: recorder.reads == [b"UNSOLICITED-READ"] * 2)
        assert scanner.statistics().answers == 4
    finally:
        reader.close()


# --- Modbus TCP result registers -------------------------------------------------------------

HR = RegisterKind.HOLDING_REGISTER


@pytest.fixture
def plc() -> Iterator[ModbusPlcSimulator]:
    simulator = ModbusPlcSimulator(size=1000)
    simulator.start()
    yield simulator
    simulator.stop()


@pytest.fixture
def make_modbus_scanner(
    recorder: Recorder,
) -> Iterator[Callable[..., ModbusScanner]]:
    scanners: list[ModbusScanner] = []

    def make(port: int, registers: ResultRegisters | None = None) -> ModbusScanner:
        scanner = ModbusScanner(
            ModbusTcpTransport("127.0.0.1", port, timeout_s=2.0),
            on_read=recorder.on_read,
            on_malformed=recorder.on_malformed,
            on_lost=recorder.on_lost,
            on_no_read=recorder.on_no_read,
            registers=registers,
            poll_interval_s=0.005,
            name="scanner:modbus",
        )
        scanners.append(scanner)
        return scanner

    yield make
    for scanner in scanners:
        scanner.close()


def publish(
    plc: ModbusPlcSimulator, counter: int, code: bytes, regs: ResultRegisters | None = None
) -> None:
    """Store a result as the reader would; one write, so the client never sees it torn."""
    regs = regs or ResultRegisters()
    words = pack_code(code, low_byte_first=regs.low_byte_first)
    if regs.span[1] <= 125 and regs.data == regs.length + 1 == regs.counter + 2:
        plc.set_registers(regs.kind, regs.counter, [counter, len(code), *words])
    else:
        plc.set_registers(regs.kind, regs.length, [len(code)])
        if words:
            plc.set_registers(regs.kind, regs.data, words)
        plc.set_registers(regs.kind, regs.counter, [counter])


def test_modbus_scanner_reads_each_new_result_byte_exact(
    plc: ModbusPlcSimulator,
    make_modbus_scanner: Callable[..., ModbusScanner],
    recorder: Recorder,
) -> None:
    publish(plc, 41, b"OLD-RESULT")
    scanner = make_modbus_scanner(plc.port)
    scanner.connect()
    codes = [*demo_codes(20, crypto_ais=("91", "92", "93")), b"ODD"]
    for seen, code in enumerate(codes, start=1):
        publish(plc, 41 + seen, code)
        wait_for(lambda n=seen: len(recorder.reads) == n)
    # The result present at connect is old news; every later one arrives exactly once.
    assert recorder.reads == codes
    publish(plc, 42 + len(codes), b"")
    wait_for(lambda: recorder.no_reads == 1)
    stats = scanner.statistics()
    assert (stats.reads, stats.no_reads, stats.missed, stats.malformed) == (21, 1, 0, 0)


def test_modbus_scanner_counts_missed_results_and_bad_lengths(
    plc: ModbusPlcSimulator,
    make_modbus_scanner: Callable[..., ModbusScanner],
    recorder: Recorder,
) -> None:
    publish(plc, 65534, b"BASE")
    scanner = make_modbus_scanner(plc.port)
    scanner.connect()
    publish(plc, 2, b"AFTER-WRAP")  # 65535, 0 and 1 came and went between two polls
    wait_for(lambda: recorder.reads == [b"AFTER-WRAP"])
    assert scanner.statistics().missed == 3
    plc.set_registers(HR, 0, [3, 500])  # longer than the 128-byte block
    wait_for(lambda: len(recorder.malformed) == 1)
    assert "length 500 exceeds the 128-byte block" in recorder.malformed[0]
    assert "scanner:modbus" in recorder.malformed[0]
    publish(plc, 4, b"GOOD")
    wait_for(lambda: recorder.reads == [b"AFTER-WRAP", b"GOOD"])
    assert scanner.connected


def test_modbus_scanner_with_a_split_swapped_layout(
    plc: ModbusPlcSimulator,
    make_modbus_scanner: Callable[..., ModbusScanner],
    recorder: Recorder,
) -> None:
    regs = ResultRegisters(counter=10, length=11, data=500, data_registers=40, low_byte_first=True)
    scanner = make_modbus_scanner(plc.port, regs)
    scanner.connect()
    [code] = demo_codes(1)
    publish(plc, 1, code, regs)
    wait_for(lambda: recorder.reads == [code])


def test_modbus_scanner_link_loss_and_reconnect(
    plc: ModbusPlcSimulator,
    make_modbus_scanner: Callable[..., ModbusScanner],
    recorder: Recorder,
) -> None:
    scanner = make_modbus_scanner(plc.port)
    scanner.connect()
    plc.stop()
    wait_for(lambda: recorder.lost != [])
    assert len(recorder.lost) == 1
    assert not scanner.connected
    assert scanner.statistics().lost_reason == recorder.lost[0]
    plc.start()
    scanner.connect()
    publish(plc, 1, b"BACK")
    wait_for(lambda: recorder.reads == [b"BACK"])
    scanner.close()
    scanner.close()
    assert len(recorder.lost) == 1


def test_modbus_scanner_with_a_wrong_register_map(
    make_modbus_scanner: Callable[..., ModbusScanner], recorder: Recorder
) -> None:
    small = ModbusPlcSimulator(size=200)
    port = small.start()
    try:
        with pytest.raises(DeviceUnavailable, match="cannot read the result counter"):
            make_modbus_scanner(port, ResultRegisters(counter=300, length=1, data=2)).connect()
        beyond = ResultRegisters(counter=0, length=1, data=150, data_registers=100)
        scanner = make_modbus_scanner(port, beyond)
        scanner.connect()
        small.set_registers(HR, 0, [1])
        wait_for(lambda: recorder.lost != [])
        assert "device refused the result registers" in recorder.lost[0]
    finally:
        small.stop()


class TearingTransport:
    """A ModbusTransport whose counter moves on every read: no snapshot ever holds."""

    def __init__(self) -> None:
        self.counter = 0
        self.is_connected = False

    @property
    def connected(self) -> bool:
        return self.is_connected

    def connect(self) -> None:
        self.is_connected = True

    def close(self) -> None:
        self.is_connected = False

    def read(self, kind: RegisterKind, address: int, count: int) -> list[int]:
        if address == 0:
            self.counter += 1
            return [self.counter]
        return [4] if count == 1 else pack_code(b"ABCD") + [0] * (count - 2)

    def write_registers(self, address: int, words: object) -> None:
        raise AssertionError("a scanner never writes")

    def write_coils(self, address: int, bits: object) -> None:
        raise AssertionError("a scanner never writes")


def test_modbus_scanner_reports_a_result_that_keeps_changing_as_torn(recorder: Recorder) -> None:
    scanner = ModbusScanner(
        TearingTransport(),
        on_read=recorder.on_read,
        on_malformed=recorder.on_malformed,
        on_lost=recorder.on_lost,
        registers=ResultRegisters(counter=0, length=1, data=500),
        poll_interval_s=0.005,
    )
    scanner.connect()
    try:
        wait_for(lambda: recorder.malformed != [])
        assert "torn result" in recorder.malformed[0]
        assert recorder.reads == []
    finally:
        scanner.close()


@given(code=st.binary(max_size=246), low_byte_first=st.booleans())
def test_pack_and_unpack_round_trip(code: bytes, low_byte_first: bool) -> None:
    words = pack_code(code, low_byte_first=low_byte_first)
    assert len(words) == (len(code) + 1) // 2
    assert all(0 <= word <= 0xFFFF for word in words)
    assert unpack_code(words, len(code), low_byte_first=low_byte_first) == code


def test_pack_code_byte_order() -> None:
    assert pack_code(b"AB") == [0x4142]
    assert pack_code(b"ABC", low_byte_first=True) == [0x4241, 0x0043]


def test_result_registers_validation() -> None:
    with pytest.raises(ValueError, match="overlap"):
        ResultRegisters(counter=0, length=1, data=1)
    with pytest.raises(ValueError, match="data_registers"):
        ResultRegisters(data_registers=0)
    with pytest.raises(ValueError, match="holding or input"):
        ResultRegisters(kind=RegisterKind.COIL)
    with pytest.raises(ValueError, match="within"):
        ResultRegisters(data=65500, data_registers=100)
    assert ResultRegisters().span == (0, 66)
    assert ResultRegisters().max_length == 128
