"""The Modbus PLC simulator: its register bank, scripts, shutdown, and the process form."""

from __future__ import annotations

import math
import select
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from drivers.errors import DeviceUnavailable
from drivers.modbus.codec import RegisterKind, make_spec
from drivers.modbus.transport import ModbusTcpTransport
from sim.modbus_plc import DEMO_TAGS, ModbusPlcSimulator, Script, demo_script
from tests.waiting import wait_for

HR = RegisterKind.HOLDING_REGISTER
IR = RegisterKind.INPUT_REGISTER
COIL = RegisterKind.COIL
DI = RegisterKind.DISCRETE_INPUT
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def sim() -> Iterator[ModbusPlcSimulator]:
    simulator = ModbusPlcSimulator(size=100)
    simulator.start()
    yield simulator
    simulator.stop()


def script_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "modbus-plc-script"]


def test_tables_are_separate_and_start_zeroed(sim: ModbusPlcSimulator) -> None:
    sim.set_registers(HR, 5, [1, 2])
    sim.set_registers(IR, 5, [3])
    sim.set_bits(COIL, 99, [True])
    sim.set_bits(DI, 0, [True, True])
    assert sim.get_registers(HR, 4, 3) == [0, 1, 2]
    assert sim.get_registers(IR, 4, 3) == [0, 3, 0]
    assert sim.get_bits(COIL, 98, 2) == [False, True]
    assert sim.get_bits(DI, 0, 3) == [True, True, False]
    assert sim.get_bits(COIL, 0, 2) == [False, False]


def test_typed_values_round_trip_through_the_bank(sim: ModbusPlcSimulator) -> None:
    values = {
        make_spec("holding_register", 0, "float32", byte_order="little"): 21.25,
        make_spec("holding_register", 2, "int32", word_order="little"): -2,
        make_spec("input_register", 4, "string", count=3): "ABCDE",
        make_spec("input_register", 7, "int16", scale=0.5): -3.5,
        make_spec("discrete_input", 3, "bool"): True,
    }
    for spec, value in values.items():
        sim.set_value(spec, value)
    assert {spec: sim.get_value(spec) for spec in values} == values
    assert sim.get_registers(HR, 2, 2) == [0xFFFE, 0xFFFF]


def test_bank_rejects_bad_access(sim: ModbusPlcSimulator) -> None:
    with pytest.raises(ValueError, match="outside the bank"):
        sim.set_registers(HR, 99, [1, 2])
    with pytest.raises(ValueError, match="outside the bank"):
        sim.get_registers(IR, -1, 1)
    with pytest.raises(ValueError, match="not a register table"):
        sim.get_registers(COIL, 0, 1)
    with pytest.raises(ValueError, match="not a bit table"):
        sim.set_bits(HR, 0, [True])
    with pytest.raises(ValueError, match=r"0\.\.65535"):
        sim.set_registers(HR, 0, [65536])
    sim.stop()
    with pytest.raises(RuntimeError, match="not running"):
        sim.get_registers(HR, 0, 1)


def test_port_zero_binds_a_distinct_free_port_each_time() -> None:
    first, second = ModbusPlcSimulator(), ModbusPlcSimulator()
    try:
        ports = {first.start(), second.start()}
        assert len(ports) == 2
        assert 0 not in ports
        assert {first.port, second.port} == ports
    finally:
        first.stop()
        second.stop()


def test_busy_port_fails_start_with_oserror(sim: ModbusPlcSimulator) -> None:
    # SO_REUSEADDR does not allow two listeners on one port.
    with pytest.raises(OSError, match=f"127.0.0.1:{sim.port}"):
        ModbusPlcSimulator(port=sim.port).start()


def test_stop_closes_client_connections(sim: ModbusPlcSimulator) -> None:
    with socket.create_connection(("127.0.0.1", sim.port), timeout=10) as client:
        sim.stop()
        try:
            assert client.recv(1) == b""  # orderly close
        except ConnectionResetError:
            pass  # closed before it was accepted: the kernel resets it
    assert not sim.running
    sim.stop()  # idempotent


def test_restart_serves_the_same_port(sim: ModbusPlcSimulator) -> None:
    port = sim.port
    sim.set_registers(HR, 0, [9])
    sim.stop()
    assert sim.start() == port
    # A restart is a cold start: the bank comes back zeroed.
    assert sim.get_registers(HR, 0, 1) == [0]


def test_script_rules_change_tags_until_stopped(sim: ModbusPlcSimulator) -> None:
    flag = make_spec("coil", 1, "bool")
    counter = make_spec("holding_register", 10, "int16")
    level = make_spec("input_register", 20, "float32")
    sim.set_value(counter, 32766)
    sim.set_value(level, 5.0)
    seen_flags: set[bool] = set()
    levels: set[float] = set()
    script = Script(sim).toggle(flag, 0.01).count_up(counter, 0.01).wander(level, 0.01, 4, 6)
    script.start()

    def observed() -> bool:
        seen_flags.add(bool(sim.get_value(flag)))
        levels.add(float(sim.get_value(level)))
        return len(seen_flags) == 2 and len(levels) > 3 and -32768 < sim.get_value(counter) < 0

    wait_for(observed)  # the int16 counter wrapped from 32767 to -32768 and counted on
    assert all(4.0 <= value <= 6.0 for value in levels)
    script.stop()
    assert not script_threads()


def test_scripts_end_with_the_simulator(sim: ModbusPlcSimulator) -> None:
    Script(sim).count_up(make_spec("holding_register", 0, "uint16"), 0.01).start()
    wait_for(lambda: sim.get_registers(HR, 0, 1)[0] > 0)
    sim.stop()
    assert not script_threads()


def test_script_rules_reject_tags_they_cannot_drive(sim: ModbusPlcSimulator) -> None:
    with pytest.raises(ValueError, match="integer"):
        Script(sim).count_up(make_spec("holding_register", 0, "float32"), 1.0)
    with pytest.raises(ValueError, match="scale"):
        Script(sim).count_up(make_spec("holding_register", 0, "int16", scale=0.1), 1.0)
    with pytest.raises(ValueError, match="period"):
        Script(sim).toggle(make_spec("coil", 0, "bool"), 0)


def test_demo_script_shows_live_signals(sim: ModbusPlcSimulator) -> None:
    script = demo_script(sim)
    try:
        wait_for(lambda: sim.get_value(DEMO_TAGS["cycle_counter"]) >= 2)
        wait_for(lambda: sim.get_value(DEMO_TAGS["part_present"]) is True)
        temperature = sim.get_value(DEMO_TAGS["temperature_c"])
        assert isinstance(temperature, float)
        assert 20.0 <= temperature <= 30.0
        assert not math.isclose(temperature, 24.0)  # it has wandered
    finally:
        script.stop()


# --- as a process ---------------------------------------------------------------------------


def start_process(*args: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "sim.modbus_plc", "--host", "127.0.0.1", "--port", "0", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    if not ready:
        proc.kill()
        pytest.fail("simulator process did not print READY")
    word, port = proc.stdout.readline().split()
    assert word == "READY"
    return proc, int(port)


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_process_serves_until_signalled(stop_signal: signal.Signals) -> None:
    proc, port = start_process("--demo", "--unit", "3")
    client = ModbusTcpTransport("127.0.0.1", port, unit=3, timeout_s=5.0)
    try:
        client.connect()
        counter = DEMO_TAGS["cycle_counter"]
        wait_for(lambda: client.read(counter.kind, counter.address, 1)[0] > 0)
        client.write_registers(50, [1234])
        assert client.read(HR, 50, 1) == [1234]
        proc.send_signal(stop_signal)
        assert proc.wait(timeout=30) == 0
        with pytest.raises(DeviceUnavailable):
            client.read(HR, 50, 1)
    finally:
        client.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()
