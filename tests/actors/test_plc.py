"""The PLC actor against the Modbus simulator over real Modbus TCP, on virtual time."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pykka
import pytest

from actors.health import HealthState
from actors.plc import NotWritable, PlcActor, ReadSignals, SignalInput, UnknownSignal, WriteSignal
from actors.runtime import Runtime, call
from actors.supervisor import ChildSpec, Supervisor
from controller.clock import VirtualClock
from controller.config import PlcConfig, parse_config
from controller.supervision import Backoff, RestartIntensity
from drivers.modbus.codec import make_spec
from sim.modbus_plc import ModbusPlcSimulator
from tests.actors.probe import Probe

BINDINGS = """
[station]
id = "t"
name = "t"

[[plcs]]
name = "line1"
port = {port}
poll_interval_ms = 50
timeout_ms = 2000           # generous: a loaded CI machine must not look like a dead PLC

  [[plcs.bindings]]
  name = "part_present"
  kind = "coil"
  address = 0
  type = "bool"
  durable = true

  [[plcs.bindings]]
  name = "counter"
  kind = "holding_register"
  address = 0
  type = "uint16"

  [[plcs.bindings]]
  name = "temperature"
  kind = "holding_register"
  address = 10
  type = "float32"
  word_order = "little"

  [[plcs.bindings]]
  name = "release"
  kind = "coil"
  address = 8
  type = "bool"
  direction = "out"

  [[plcs.bindings]]
  name = "setpoint"
  kind = "holding_register"
  address = 100
  type = "int16"
  direction = "out"
  scale = 0.1
{extra}
"""

COUNTER = make_spec("holding_register", 0, "uint16")
PART = make_spec("coil", 0, "bool")


@pytest.fixture
def sim() -> Iterator[ModbusPlcSimulator]:
    s = ModbusPlcSimulator(port=0, size=1000)
    s.start()
    yield s
    s.stop()


def plc_config(port: int, extra: str = "") -> PlcConfig:
    return parse_config(BINDINGS.format(port=port, extra=extra), "t.toml").plcs[0]


def watch(runtime: Runtime, pattern: str) -> pykka.ActorRef[Any]:
    ref = Probe.start(runtime, f"watch:{pattern}")
    runtime.bus.subscribe_actor([pattern], ref)
    return ref


def seen(ref: pykka.ActorRef[Any]) -> list[Any]:
    return [(e.topic, e.data) for e in ref.proxy().events.get()]


def poll(runtime: Runtime, vclock: VirtualClock, times: int = 1) -> None:
    for _ in range(times):
        assert runtime.wait_idle(5)
        vclock.advance(0.05)
    assert runtime.wait_idle(5)


def test_first_poll_publishes_every_signal_then_only_changes(
    runtime: Runtime, vclock: VirtualClock, sim: ModbusPlcSimulator
) -> None:
    sim.set_value(COUNTER, 7)
    signals = watch(runtime, "device.plc.*")
    inputs = watch(runtime, "input.plc.*")
    PlcActor.start(runtime, "plc:line1", plc_config(sim.port))
    poll(runtime, vclock, 0)
    first = {d["signal"]: d["value"] for _, d in seen(signals)}
    assert first == {"part_present": False, "counter": 7, "temperature": 0.0,
                     "release": False, "setpoint": 0.0}
    poll(runtime, vclock, 3)
    assert len(seen(signals)) == 5  # nothing changed, nothing published
    sim.set_value(COUNTER, 8)
    poll(runtime, vclock)
    assert seen(signals)[-1] == ("device.plc.line1.signal",
                                 {"signal": "counter", "value": 8, "previous": 7})
    # Every change crossed the input boundary first, as the recorder will see it.
    assert seen(inputs)[-1] == ("input.plc.line1", SignalInput(signal="counter", value=8))


def test_durable_bindings_are_marked_durable(
    runtime: Runtime, vclock: VirtualClock, sim: ModbusPlcSimulator
) -> None:
    signals = watch(runtime, "device.plc.*")
    PlcActor.start(runtime, "plc:line1", plc_config(sim.port))
    sim.set_value(PART, True)
    poll(runtime, vclock)
    durable = {e.data["signal"] for e in signals.proxy().events.get() if e.durable}
    assert durable == {"part_present"}


def test_writes_reach_the_plc_and_bad_writes_change_nothing(
    runtime: Runtime, vclock: VirtualClock, sim: ModbusPlcSimulator
) -> None:
    ref = PlcActor.start(runtime, "plc:line1", plc_config(sim.port))
    assert call(runtime, ref, WriteSignal(signal="release", value=True)) is True
    assert sim.get_value(make_spec("coil", 8, "bool")) is True
    call(runtime, ref, WriteSignal(signal="setpoint", value=-12.3))
    setpoint = make_spec("holding_register", 100, "int16", scale=0.1)
    assert sim.get_value(setpoint) == pytest.approx(-12.3)
    with pytest.raises(NotWritable, match=r"line1\.counter is an input"):
        call(runtime, ref, WriteSignal(signal="counter", value=1))
    with pytest.raises(UnknownSignal, match="no signal 'nope'"):
        call(runtime, ref, WriteSignal(signal="nope", value=1))
    with pytest.raises(ValueError, match="setpoint"):
        call(runtime, ref, WriteSignal(signal="setpoint", value=99999))
    assert sim.get_value(setpoint) == pytest.approx(-12.3)
    poll(runtime, vclock)
    info = call(runtime, ref, ReadSignals())
    assert info.signals["release"].value is True
    assert runtime.health.state("plc:line1") == HealthState.UP


def test_malformed_answers_are_counted_and_the_actor_stays_up(
    runtime: Runtime, vclock: VirtualClock, sim: ModbusPlcSimulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    beyond = """
  [[plcs.bindings]]
  name = "ghost"
  kind = "holding_register"
  address = 5000
  type = "uint16"
"""
    ref = PlcActor.start(runtime, "plc:line1", plc_config(sim.port, beyond))
    poll(runtime, vclock, 2)
    info = call(runtime, ref, ReadSignals())
    # The first read and two polls: the unit answers an exception for a missing address.
    assert (info.counters.exception_responses, info.counters.malformed_frames) == (3, 0)
    assert info.signals["counter"].value == 0  # the other blocks are still read
    assert runtime.health.state("plc:line1") == HealthState.UP
    assert any("exception response from line1" in r.getMessage() for r in caplog.records)


def test_lost_plc_goes_down_reconnects_with_backoff_and_republishes(
    runtime: Runtime, vclock: VirtualClock, sim: ModbusPlcSimulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="takt.health")
    signals = watch(runtime, "device.plc.*")
    Supervisor.start(
        runtime, "devices", [ChildSpec.of(PlcActor, "plc:line1", plc_config(sim.port))],
        intensity=RestartIntensity(100, 60.0),
        backoff=Backoff(min_s=0.5, max_s=2.0, jitter=0.0, stable_s=30.0),
    )
    poll(runtime, vclock)
    assert runtime.health.state("plc:line1") == HealthState.UP
    sim.stop()
    vclock.run_until_idle(runtime.wait_idle, until_us=vclock.now_us() + 10_000_000)
    assert runtime.health.state("plc:line1") == HealthState.DOWN
    restarts_while_down = runtime.health.snapshot()["plc:line1"].restarts
    assert restarts_while_down >= 4  # 0.5 + 1 + 2 + 2 + ... within 10 s
    sim.start()  # same port, registers zeroed
    sim.set_value(COUNTER, 42)
    vclock.run_until_idle(runtime.wait_idle, until_us=vclock.now_us() + 2_100_000)
    assert runtime.health.state("plc:line1") == HealthState.UP
    republished = {d["signal"]: d["value"] for _, d in seen(signals)[-5:]}
    assert republished == {"part_present": False, "counter": 42, "temperature": 0.0,
                           "release": False, "setpoint": 0.0}
    messages = [r.getMessage() for r in caplog.records if r.name == "takt.health"]
    assert sum("plc:line1 unavailable" in m for m in messages) == 1
    assert sum("plc:line1 back" in m for m in messages) == 1


def test_replay_inputs_drive_the_actor_without_a_plc(
    runtime: Runtime, vclock: VirtualClock
) -> None:
    signals = watch(runtime, "device.plc.*")
    ref = PlcActor.start(runtime, "plc:line1", plc_config(1), poll=False)
    call(runtime, ref, SignalInput(signal="counter", value=3))
    call(runtime, ref, SignalInput(signal="counter", value=4))
    assert runtime.wait_idle(5)
    assert [d["value"] for _, d in seen(signals)] == [3, 4]
