"""The PLC actor over Modbus RTU: real RTU framing over a pty pair to the serial simulator."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from actors.health import HealthState
from actors.plc import PlcActor, ReadSignals, WriteSignal
from actors.runtime import Runtime, call
from controller.clock import VirtualClock
from controller.config import PlcConfig, parse_config
from drivers.modbus.codec import make_spec
from sim.modbus_rtu_plc import ModbusRtuPlcSimulator
from sim.ptypair import PtyPair

CONFIG = """
[station]
id = "t"
name = "t"

[[plcs]]
name = "press"
protocol = "MODBUS_RTU"
unit = 7
poll_interval_ms = 50
timeout_ms = 2000

  [plcs.serial]
  device = "{device}"
  baudrate = 115200
  parity = "E"

  [[plcs.bindings]]
  name = "part_present"
  kind = "discrete_input"
  address = 3
  type = "bool"
  [[plcs.bindings]]
  name = "force"
  kind = "input_register"
  address = 20
  type = "float32"
  word_order = "little"
  [[plcs.bindings]]
  name = "recipe"
  kind = "holding_register"
  address = 40
  type = "string"
  count = 4
  direction = "out"
"""

FORCE = make_spec("input_register", 20, "float32", word_order="little")
PART = make_spec("discrete_input", 3, "bool")
RECIPE = make_spec("holding_register", 40, "string", count=4)


@pytest.fixture
def line() -> Iterator[tuple[PtyPair, ModbusRtuPlcSimulator]]:
    with PtyPair() as pair, ModbusRtuPlcSimulator(pair.b_path, unit=7, baudrate=115200) as sim:
        yield pair, sim


def config(device: str) -> PlcConfig:
    return parse_config(CONFIG.format(device=device), "t.toml").plcs[0]


def poll(runtime: Runtime, vclock: VirtualClock, times: int = 1) -> None:
    for _ in range(times):
        assert runtime.wait_idle(5)
        vclock.advance(0.05)
    assert runtime.wait_idle(5)


def test_reads_and_writes_over_rtu(runtime: Runtime, vclock: VirtualClock,
                                   line: tuple[PtyPair, ModbusRtuPlcSimulator]) -> None:
    pair, sim = line
    sim.set_value(FORCE, 812.5)
    sim.set_value(PART, True)
    ref = PlcActor.start(runtime, "plc:press", config(pair.a_path))
    poll(runtime, vclock)
    info = call(runtime, ref, ReadSignals())
    assert (info.signals["force"].value, info.signals["part_present"].value) == (812.5, True)
    assert info.address == f"{pair.a_path} unit 7"
    call(runtime, ref, WriteSignal(signal="recipe", value="HX-2"))
    assert sim.get_value(RECIPE) == "HX-2"


def test_line_noise_is_counted_and_the_link_stays_up(
        runtime: Runtime, vclock: VirtualClock,
        line: tuple[PtyPair, ModbusRtuPlcSimulator]) -> None:
    pair, sim = line
    ref = PlcActor.start(runtime, "plc:press", config(pair.a_path))
    poll(runtime, vclock)
    # Corrupt the next answer on its way to Takt: its CRC no longer matches.
    pair.tamper_next_to_a(lambda chunk: chunk[:-1] + bytes([chunk[-1] ^ 0xFF]))
    poll(runtime, vclock, 2)
    sim.set_value(FORCE, 1.5)
    poll(runtime, vclock, 2)
    info = call(runtime, ref, ReadSignals())
    assert info.counters.malformed_frames == 1
    assert info.signals["force"].value == 1.5
    assert runtime.health.state("plc:press") == HealthState.UP
