"""ModbusRtuTransport against the RTU PLC simulator over a real pty pair, with line faults."""

from __future__ import annotations

import select
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymodbus.framer import FramerRTU
from pymodbus.pdu import DecodePDU, ModbusPDU
from pymodbus.pdu import ExceptionResponse as ExceptionPdu
from pymodbus.pdu.bit_message import ReadCoilsResponse
from pymodbus.pdu.register_message import (
    ReadHoldingRegistersResponse,
    WriteMultipleRegistersResponse,
)

from drivers.errors import DeviceUnavailable, FrameError
from drivers.modbus.codec import RegisterKind, make_spec
from drivers.modbus.transport import ModbusRtuTransport, ModbusTransport, find_rtu_frame
from sim.modbus_plc import DEMO_TAGS
from sim.modbus_rtu_plc import ModbusRtuPlcSimulator
from sim.ptypair import PtyPair

HR = RegisterKind.HOLDING_REGISTER
IR = RegisterKind.INPUT_REGISTER
COIL = RegisterKind.COIL
DI = RegisterKind.DISCRETE_INPUT
SIZE = 200
REPO = Path(__file__).resolve().parents[2]

words = st.integers(0, 0xFFFF)
garbage = st.binary(min_size=1, max_size=64)


@pytest.fixture
def pair() -> Iterator[PtyPair]:
    with PtyPair() as started:
        yield started


@pytest.fixture
def sim(pair: PtyPair) -> Iterator[ModbusRtuPlcSimulator]:
    with ModbusRtuPlcSimulator(pair.b_path, size=SIZE) as simulator:
        yield simulator


@pytest.fixture
def transport(pair: PtyPair, sim: ModbusRtuPlcSimulator) -> Iterator[ModbusRtuTransport]:
    client = ModbusRtuTransport(pair.a_path, timeout_s=2.0)
    client.connect()
    yield client
    client.close()


def flip_last_byte(chunk: bytes) -> bytes:
    return chunk[:-1] + bytes([chunk[-1] ^ 0xFF])


# --- reading and writing every table ---------------------------------------------------------


@pytest.mark.parametrize("kind", [HR, IR])
def test_reads_registers_the_plc_set(
    sim: ModbusRtuPlcSimulator, transport: ModbusRtuTransport, kind: RegisterKind
) -> None:
    assert isinstance(transport, ModbusTransport)
    sim.set_registers(kind, 10, [1, 0xFFFF, 0x1234])
    assert transport.read(kind, 9, 5) == [0, 1, 0xFFFF, 0x1234, 0]
    assert transport.read(kind, SIZE - 1, 1) == [0]


@pytest.mark.parametrize("kind", [COIL, DI])
def test_reads_bits_the_plc_set(
    sim: ModbusRtuPlcSimulator, transport: ModbusRtuTransport, kind: RegisterKind
) -> None:
    sim.set_bits(kind, 13, [True, False, True, True])
    assert transport.read(kind, 10, 11) == [False] * 3 + [True, False, True, True] + [False] * 4
    assert transport.read(kind, 15, 1) == [True]


def test_client_writes_land_in_the_plc_tables(
    sim: ModbusRtuPlcSimulator, transport: ModbusRtuTransport
) -> None:
    transport.write_registers(20, [7, 0, 65535])
    transport.write_coils(30, [True, False, True])
    assert sim.get_registers(HR, 19, 5) == [0, 7, 0, 65535, 0]
    assert sim.get_bits(COIL, 29, 5) == [False, True, False, True, False]
    assert sim.get_registers(IR, 20, 3) == [0, 0, 0]
    assert sim.get_bits(DI, 30, 3) == [False, False, False]


def test_typed_values_cross_the_serial_line(
    sim: ModbusRtuPlcSimulator, transport: ModbusRtuTransport
) -> None:
    spec = make_spec("input_register", 4, "float32")
    sim.set_value(spec, -12.5)
    assert transport.read(IR, 4, 2) == sim.get_registers(IR, 4, 2)
    transport.write_registers(0, sim.get_registers(IR, 4, 2))
    assert sim.get_value(make_spec("holding_register", 0, "float32")) == -12.5


def test_exception_answer_is_a_frame_error_and_keeps_the_link(
    transport: ModbusRtuTransport,
) -> None:
    with pytest.raises(FrameError, match=r"function 3 at address 199.*ILLEGAL_ADDRESS"):
        transport.read(HR, SIZE - 1, 2)
    with pytest.raises(FrameError, match="function 15 at address 300"):
        transport.write_coils(300, [True])
    assert transport.connected
    assert transport.read(HR, 0, 1) == [0]


# --- RTU framing over the pty: what is set is what is read ---------------------------------


def test_random_words_and_bits_read_back_identically(
    sim: ModbusRtuPlcSimulator, transport: ModbusRtuTransport
) -> None:
    @settings(max_examples=40, deadline=None)
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        kind = data.draw(st.sampled_from([HR, IR, COIL, DI]))
        if kind.is_bit:
            bits = data.draw(st.lists(st.booleans(), min_size=1, max_size=SIZE))
            address = data.draw(st.integers(0, SIZE - len(bits)))
            sim.set_bits(kind, address, bits)
            assert transport.read(kind, address, len(bits)) == bits
        else:
            values = data.draw(st.lists(words, min_size=1, max_size=125))
            address = data.draw(st.integers(0, SIZE - len(values)))
            sim.set_registers(kind, address, values)
            assert transport.read(kind, address, len(values)) == values

    check()


def test_random_client_writes_are_what_the_plc_holds(
    sim: ModbusRtuPlcSimulator, transport: ModbusRtuTransport
) -> None:
    @settings(max_examples=30, deadline=None)
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        values = data.draw(st.lists(words, min_size=1, max_size=123))
        address = data.draw(st.integers(0, SIZE - len(values)))
        transport.write_registers(address, values)
        assert sim.get_registers(HR, address, len(values)) == values
        bits = data.draw(st.lists(st.booleans(), min_size=1, max_size=SIZE))
        address = data.draw(st.integers(0, SIZE - len(bits)))
        transport.write_coils(address, bits)
        assert sim.get_bits(COIL, address, len(bits)) == bits

    check()


# --- a noisy line -----------------------------------------------------------------------------


def test_garbage_on_the_line_never_breaks_the_link(
    pair: PtyPair, sim: ModbusRtuPlcSimulator, transport: ModbusRtuTransport
) -> None:
    sim.set_registers(HR, 0, [11, 12, 13])
    sim.set_bits(COIL, 0, [True, False, True])
    faults = {
        # Glued to the frame in the same burst, as a pty (no baud timing) delivers it.
        "before answer": lambda noise: pair.tamper_next_to_a(lambda c: noise + c),
        "after answer": lambda noise: pair.tamper_next_to_a(lambda c: c + noise),
        "before request": lambda noise: pair.tamper_next_to_b(lambda c: noise + c),
        # Written straight onto the line ahead of the request, racing with it.
        "toward client": pair.inject_to_a,
        "toward plc": pair.inject_to_b,
        # Nothing but noise comes back.
        "instead of answer": lambda noise: pair.tamper_next_to_a(lambda _c: noise),
    }
    outcomes: Counter[str] = Counter()

    @settings(max_examples=50, deadline=None)
    @given(fault=st.sampled_from(sorted(faults)), noise=garbage)
    def check(fault: str, noise: bytes) -> None:
        faults[fault](noise)
        if fault == "instead of answer":
            with pytest.raises(FrameError, match="no valid frame"):
                transport.read(HR, 0, 3)
        else:
            try:
                assert transport.read(HR, 0, 3) == [11, 12, 13]
                outcomes["answer"] += 1
            except FrameError:
                outcomes["frame error"] += 1
        # Whatever happened, the next request gets its own answer.
        assert transport.read(COIL, 0, 3) == [True, False, True]

    check()
    # Noise is found and skipped, not just survived: requests behind noise get their answer.
    assert outcomes["answer"] > outcomes["frame error"]


def test_corrupt_crc_answer_is_a_frame_error_and_the_link_stays_usable(
    pair: PtyPair, sim: ModbusRtuPlcSimulator, transport: ModbusRtuTransport
) -> None:
    sim.set_registers(IR, 2, [42])
    pair.tamper_next_to_a(flip_last_byte)
    with pytest.raises(FrameError, match=r"rtu .* function 4 at address 2: no valid frame"):
        transport.read(IR, 2, 1)
    assert transport.connected
    assert transport.read(IR, 2, 1) == [42]
    pair.tamper_next_to_a(flip_last_byte)
    with pytest.raises(FrameError, match="function 16 at address 5"):
        transport.write_registers(5, [9])
    assert sim.get_registers(HR, 5, 1) == [9]  # the write itself arrived
    transport.write_registers(6, [10])
    assert transport.read(HR, 5, 2) == [9, 10]


def test_glued_duplicate_frames_do_not_shift_later_answers(
    pair: PtyPair, sim: ModbusRtuPlcSimulator, transport: ModbusRtuTransport
) -> None:
    sim.set_registers(HR, 0, [1, 2])
    sim.set_registers(IR, 0, [3, 4, 5])
    # A duplicated answer: the copy must not become the answer to the next request.
    pair.tamper_next_to_a(lambda chunk: chunk + chunk)
    assert transport.read(HR, 0, 2) == [1, 2]
    assert transport.read(IR, 0, 3) == [3, 4, 5]
    # A duplicated request: the PLC answers once, so the next answer is still in step.
    pair.tamper_next_to_b(lambda chunk: chunk + chunk)
    transport.write_registers(10, [77])
    assert transport.read(IR, 0, 3) == [3, 4, 5]
    assert transport.read(HR, 10, 1) == [77]


# --- answers a real device might send ------------------------------------------------------


def frame(pdu: ModbusPDU) -> bytes:
    return FramerRTU(DecodePDU(False)).buildFrame(pdu)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (ReadHoldingRegistersResponse(dev_id=1, registers=[5]), "1 registers"),
        (WriteMultipleRegistersResponse(dev_id=1, address=7, count=2), "answered function 16"),
        (ExceptionPdu(3, 9, device_id=1), r"exception 9 \(unknown\)"),
    ],
)
def test_malformed_answers_are_frame_errors(
    pair: PtyPair, transport: ModbusRtuTransport, answer: ModbusPDU, message: str
) -> None:
    pair.tamper_next_to_a(lambda _chunk: frame(answer))
    with pytest.raises(FrameError, match=f"function 3 at address 7: {message}"):
        transport.read(HR, 7, 2)
    assert transport.read(HR, 7, 2) == [0, 0]


def test_unknown_function_with_a_valid_crc_is_undecodable(
    pair: PtyPair, transport: ModbusRtuTransport
) -> None:
    body = bytes([1, 0x55, 1, 2])
    crc = FramerRTU.compute_CRC(body).to_bytes(2, "big")
    pair.tamper_next_to_a(lambda _chunk: body + crc)
    with pytest.raises(FrameError, match=r"undecodable response \(function 85\)"):
        transport.read(HR, 0, 1)
    assert transport.read(HR, 0, 1) == [0]


# --- a line that is gone -----------------------------------------------------------------------


def test_stopped_plc_is_unavailable_and_back_after_reconnect(
    pair: PtyPair, sim: ModbusRtuPlcSimulator
) -> None:
    client = ModbusRtuTransport(pair.a_path, timeout_s=0.3)
    client.connect()
    try:
        assert client.read(HR, 0, 1) == [0]
        sim.stop()
        with pytest.raises(DeviceUnavailable, match=r"no response to function 3 within 0\.3 s"):
            client.read(HR, 0, 1)
        # Silence leaves the line state unknown: the port is closed until connect() reopens it.
        assert not client.connected
        with pytest.raises(DeviceUnavailable, match="not connected"):
            client.read(HR, 0, 1)
        sim.start()
        sim.set_registers(HR, 0, [5])
        client.connect()
        assert client.read(HR, 0, 1) == [5]
    finally:
        client.close()


def test_other_unit_gets_no_answer(pair: PtyPair, sim: ModbusRtuPlcSimulator) -> None:
    client = ModbusRtuTransport(pair.a_path, unit=2, timeout_s=0.3)
    client.connect()
    try:
        with pytest.raises(DeviceUnavailable, match="unit 2: no response"):
            client.read(HR, 0, 1)
    finally:
        client.close()


def test_vanished_line_is_unavailable(pair: PtyPair, transport: ModbusRtuTransport) -> None:
    pair.stop()
    with pytest.raises(DeviceUnavailable, match="connection lost"):
        transport.read(HR, 0, 1)
    assert not transport.connected


def test_missing_port_is_unavailable_naming_the_path(tmp_path: Path) -> None:
    path = str(tmp_path / "ttyUSB-missing")
    client = ModbusRtuTransport(path, timeout_s=0.3)
    with pytest.raises(DeviceUnavailable, match=f"cannot open {path}.*No such file"):
        client.connect()
    assert not client.connected
    with pytest.raises(OSError, match=f"cannot open serial port {path}"):
        ModbusRtuPlcSimulator(path).start()


def test_invalid_settings_fail_before_any_io(transport: ModbusRtuTransport) -> None:
    with pytest.raises(ValueError, match="unit"):
        ModbusRtuTransport("unused", unit=0)
    with pytest.raises(ValueError, match="parity"):
        ModbusRtuTransport("unused", parity="X")
    with pytest.raises(ValueError, match="count"):
        transport.read(HR, 0, 126)
    with pytest.raises(ValueError, match=r"0\.\.65535"):
        transport.write_registers(0, [70000])


# --- the frame hunter, without a line ------------------------------------------------------


@settings(max_examples=100)
@given(
    prefix=st.binary(max_size=40).map(lambda b: b.replace(b"\x01", b"")),
    suffix=st.binary(max_size=40),
    registers=st.lists(words, min_size=1, max_size=125),
)
def test_hunter_finds_an_answer_behind_noise(
    prefix: bytes, suffix: bytes, registers: list[int]
) -> None:
    answer = frame(ReadHoldingRegistersResponse(dev_id=1, registers=registers))
    line = prefix + answer + suffix
    assert find_rtu_frame(line, DecodePDU(False), unit=1) == (
        len(prefix),
        len(prefix) + len(answer),
    )
    # Any cut short of the whole frame is not a frame yet.
    cut = len(prefix) + len(answer) - 1
    assert find_rtu_frame(line[:cut], DecodePDU(False), unit=1) is None


@given(noise=st.binary(max_size=300))
def test_hunter_never_fails_on_noise(noise: bytes) -> None:
    span = find_rtu_frame(noise, DecodePDU(True))
    if span is not None:
        start, end = span
        assert 0 <= start < end <= len(noise)
        assert FramerRTU.check_CRC(
            noise[start : end - 2], int.from_bytes(noise[end - 2 : end], "big")
        )


def test_hunter_knows_exception_and_bit_answers() -> None:
    for pdu in (ExceptionPdu(2, 2, device_id=7), ReadCoilsResponse(dev_id=7, bits=[True] * 9)):
        answer = frame(pdu)
        assert find_rtu_frame(b"\x07\x07" + answer, DecodePDU(False), unit=7) == (
            2,
            2 + len(answer),
        )


# --- the simulator as a process ---------------------------------------------------------------


def start_process(*args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "sim.modbus_rtu_plc", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    if not select.select([proc.stdout], [], [], 30)[0]:
        proc.kill()
        pytest.fail("simulator process did not print READY")
    word, path = proc.stdout.readline().split()
    assert word == "READY"
    return proc, path


def stop_process(proc: subprocess.Popen[str]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()


def test_process_on_its_own_pty_serves_until_signalled() -> None:
    proc, path = start_process("--pty", "--demo", "--unit", "3")
    client = ModbusRtuTransport(path, unit=3, timeout_s=5.0)
    try:
        client.connect()
        temperature = DEMO_TAGS["temperature_c"]
        assert client.read(temperature.kind, temperature.address, 2) != [0, 0]
        client.write_registers(50, [1234])
        assert client.read(HR, 50, 1) == [1234]
        assert stop_process(proc) == 0
        # The process took its pty pair with it.
        with pytest.raises(DeviceUnavailable):
            client.read(HR, 50, 1)
    finally:
        client.close()
        stop_process(proc)


def test_process_serves_a_given_serial_device(pair: PtyPair, tmp_path: Path) -> None:
    proc, path = start_process("--serial", pair.b_path)
    client = ModbusRtuTransport(pair.a_path, timeout_s=5.0)
    try:
        assert path == pair.b_path
        client.connect()
        client.write_coils(7, [True])
        assert client.read(COIL, 7, 1) == [True]
    finally:
        client.close()
        assert stop_process(proc) == 0
    missing = str(tmp_path / "ttyS-missing")
    failed = subprocess.run(
        [sys.executable, "-m", "sim.modbus_rtu_plc", "--serial", missing],
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert failed.returncode == 1
    assert f"cannot open serial port {missing}" in failed.stderr
