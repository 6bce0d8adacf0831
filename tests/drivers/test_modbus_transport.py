"""ModbusTcpTransport against the PLC simulator and against misbehaving servers, on loopback."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from drivers.errors import DeviceUnavailable, FrameError
from drivers.modbus.codec import RegisterKind, extract, make_spec, plan_reads
from drivers.modbus.transport import ModbusTcpTransport, ModbusTransport
from sim.modbus_plc import ModbusPlcSimulator

HR = RegisterKind.HOLDING_REGISTER
IR = RegisterKind.INPUT_REGISTER
COIL = RegisterKind.COIL
DI = RegisterKind.DISCRETE_INPUT
SIZE = 200


@pytest.fixture
def sim() -> Iterator[ModbusPlcSimulator]:
    simulator = ModbusPlcSimulator(size=SIZE)
    simulator.start()
    yield simulator
    simulator.stop()


@pytest.fixture
def transport(sim: ModbusPlcSimulator) -> Iterator[ModbusTcpTransport]:
    client = ModbusTcpTransport("127.0.0.1", sim.port, timeout_s=2.0)
    client.connect()
    yield client
    client.close()


@pytest.mark.parametrize("kind", [HR, IR])
def test_reads_registers_the_plc_set(
    sim: ModbusPlcSimulator, transport: ModbusTcpTransport, kind: RegisterKind
) -> None:
    sim.set_registers(kind, 10, [1, 0xFFFF, 0x1234])
    assert transport.read(kind, 9, 5) == [0, 1, 0xFFFF, 0x1234, 0]
    assert transport.read(kind, SIZE - 1, 1) == [0]


@pytest.mark.parametrize("kind", [COIL, DI])
def test_reads_bits_the_plc_set(
    sim: ModbusPlcSimulator, transport: ModbusTcpTransport, kind: RegisterKind
) -> None:
    sim.set_bits(kind, 13, [True, False, True, True])
    # 11 bits straddle a 16-bit word and are not a whole number of bytes.
    assert transport.read(kind, 10, 11) == [False] * 3 + [True, False, True, True] + [False] * 4
    assert transport.read(kind, 15, 1) == [True]


def test_client_writes_land_in_the_plc_bank(
    sim: ModbusPlcSimulator, transport: ModbusTcpTransport
) -> None:
    transport.write_registers(20, [7, 0, 65535])
    transport.write_coils(30, [True, False, True])
    assert sim.get_registers(HR, 19, 5) == [0, 7, 0, 65535, 0]
    assert sim.get_bits(COIL, 29, 5) == [False, True, False, True, False]
    assert transport.read(HR, 20, 3) == [7, 0, 65535]
    assert sim.get_registers(IR, 20, 3) == [0, 0, 0]  # the tables are separate


def test_typed_values_survive_codec_wire_and_back(
    sim: ModbusPlcSimulator, transport: ModbusTcpTransport
) -> None:
    tags = {
        make_spec("input_register", 0, "float32", word_order="little"): -12.5,
        make_spec("input_register", 2, "int32"): -70000,
        make_spec("input_register", 8, "string", count=4, byte_order="little"): "SN-042",
        make_spec("holding_register", 100, "uint16", scale=0.1): 6553.5,
        make_spec("coil", 40, "bool"): True,
        make_spec("discrete_input", 199, "bool"): True,
    }
    for spec, value in tags.items():
        sim.set_value(spec, value)
    blocks = plan_reads(tags)
    values = {block: transport.read(block.kind, block.address, block.count) for block in blocks}
    for spec, expected in tags.items():
        block = next(b for b in blocks if b.kind is spec.kind and b.address <= spec.address < b.end)
        assert extract(spec, block, values[block]) == pytest.approx(expected)


def test_address_beyond_the_bank_is_a_frame_error_and_keeps_the_link(
    transport: ModbusTcpTransport,
) -> None:
    with pytest.raises(FrameError, match=r"function 3 at address 199.*ILLEGAL_ADDRESS"):
        transport.read(HR, SIZE - 1, 2)
    with pytest.raises(FrameError, match="function 16 at address 200"):
        transport.write_registers(SIZE, [1])
    with pytest.raises(FrameError, match="function 1 at address 300"):
        transport.read(COIL, 300, 1)
    assert transport.connected
    assert transport.read(HR, 0, 1) == [0]


def test_wrong_unit_is_refused_with_an_exception_response(sim: ModbusPlcSimulator) -> None:
    other = ModbusTcpTransport("127.0.0.1", sim.port, unit=2, timeout_s=2.0)
    other.connect()
    try:
        with pytest.raises(FrameError, match="unit 2"):
            other.read(HR, 0, 1)
    finally:
        other.close()


def test_stopped_plc_is_unavailable_on_read_and_on_connect(
    sim: ModbusPlcSimulator, transport: ModbusTcpTransport
) -> None:
    assert isinstance(transport, ModbusTransport)
    sim.stop()
    with pytest.raises(DeviceUnavailable, match=f"127.0.0.1:{sim.port}"):
        transport.read(HR, 0, 1)
    assert not transport.connected
    with pytest.raises(DeviceUnavailable, match=f"127.0.0.1:{sim.port}.*refused"):
        transport.connect()


def test_reconnects_only_when_told_after_plc_restart(
    sim: ModbusPlcSimulator, transport: ModbusTcpTransport
) -> None:
    port = sim.port
    sim.stop()
    with pytest.raises(DeviceUnavailable):
        transport.read(HR, 0, 1)
    assert sim.start() == port
    sim.set_registers(HR, 5, [42])
    # No silent redial inside the library: the supervisor decides when to reconnect.
    with pytest.raises(DeviceUnavailable, match="not connected"):
        transport.read(HR, 5, 1)
    transport.connect()
    assert transport.read(HR, 5, 1) == [42]


def test_invalid_arguments_fail_before_any_io(transport: ModbusTcpTransport) -> None:
    with pytest.raises(ValueError, match="count"):
        transport.read(HR, 0, 126)
    with pytest.raises(ValueError, match="count"):
        transport.read(COIL, 0, 0)
    with pytest.raises(ValueError, match="outside"):
        transport.read(HR, 65535, 2)
    with pytest.raises(ValueError, match=r"0\.\.65535"):
        transport.write_registers(0, [70000])
    assert transport.read(HR, 0, 1) == [0]


# --- servers that misbehave -----------------------------------------------------------------


@contextmanager
def raw_server(reply: Callable[[bytes], bytes | None]) -> Iterator[int]:
    """A one-connection TCP server answering each request frame with reply(frame)."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            while not stop.is_set():
                request = conn.recv(260)
                if not request:
                    return
                answer = reply(request)
                if answer is not None:
                    conn.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        listener.close()
        thread.join(5)


def mbap(request: bytes, pdu: bytes) -> bytes:
    """Frame pdu as the answer to request (same transaction and unit id)."""
    tid, _, _, unit = struct.unpack(">HHHB", request[:7])
    return struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu


def test_silent_device_times_out_as_unavailable() -> None:
    with raw_server(lambda _request: None) as port:
        client = ModbusTcpTransport("127.0.0.1", port, timeout_s=0.2)
        client.connect()
        with pytest.raises(DeviceUnavailable, match=f"127.0.0.1:{port}.*no response to function 3"):
            client.read(HR, 0, 1)
        # The stream state is unknown after a timeout, so the link is dropped.
        assert not client.connected
        client.close()


@pytest.mark.parametrize(
    ("pdu", "message"),
    [
        (bytes([3, 2, 0, 1]), "1 registers"),  # asked for 2 registers, got 1
        (bytes([4, 4, 0, 1, 0, 2]), "answered function 4"),
        (bytes([0x55, 1, 2]), "undecodable"),
        (bytes([0x83, 0x09]), r"exception 9 \(unknown\)"),
    ],
)
def test_malformed_answers_are_frame_errors(pdu: bytes, message: str) -> None:
    with raw_server(lambda request: mbap(request, pdu)) as port:
        client = ModbusTcpTransport("127.0.0.1", port, timeout_s=2.0)
        client.connect()
        try:
            with pytest.raises(FrameError, match=f"function 3 at address 7: {message}"):
                client.read(HR, 7, 2)
        finally:
            client.close()


def test_short_bit_answer_is_a_frame_error() -> None:
    # 10 coils need two data bytes; one byte is malformed even though it decodes.
    with raw_server(lambda request: mbap(request, bytes([1, 1, 0xFF]))) as port:
        client = ModbusTcpTransport("127.0.0.1", port, timeout_s=2.0)
        client.connect()
        try:
            with pytest.raises(FrameError, match="8 bits"):
                client.read(COIL, 0, 10)
        finally:
            client.close()
