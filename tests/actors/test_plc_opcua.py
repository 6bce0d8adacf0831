"""The PLC actor over OPC-UA (asyncua client) against the OPC-UA PLC simulator."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from actors.health import HealthState
from actors.plc import Browse, PlcActor, ReadSignals, WriteSignal
from actors.runtime import Runtime, call
from actors.supervisor import ChildSpec, Supervisor
from controller.clock import VirtualClock
from controller.config import PlcConfig, parse_config
from controller.supervision import Backoff, RestartIntensity
from drivers.errors import ExceptionResponse
from sim.opcua_plc import OpcuaPlcSimulator
from tests.actors.probe import Probe
from tests.actors.settle import settle

CONFIG = """
[station]
id = "t"
name = "t"

[[plcs]]
name = "cell"
protocol = "OPC_UA"
endpoint = "{endpoint}"
poll_interval_ms = 100
timeout_ms = 2000

  [[plcs.bindings]]
  name = "part_present"
  node = "{ns};s=Line1.PartPresent"
  type = "bool"
  durable = true
  [[plcs.bindings]]
  name = "temperature"
  node = "{ns};s=Line1.Temperature"
  type = "float64"
  deadband_type = "absolute"
  deadband = 0.5
  [[plcs.bindings]]
  name = "speed"
  node = "{ns};s=Line1.Speed"
  type = "int32"
  mode = "poll"
  scale = 0.1
  [[plcs.bindings]]
  name = "release"
  node = "{ns};s=Line1.Release"
  type = "bool"
  direction = "out"
  [[plcs.bindings]]
  name = "door_lock"
  node = "{ns};s=Line1.DoorClosed"
  type = "bool"
  direction = "out"
{extra}
"""


@pytest.fixture(scope="module")
def sim() -> Iterator[OpcuaPlcSimulator]:
    s = OpcuaPlcSimulator(port=0)
    s.start()
    yield s
    s.stop()


def config(sim: OpcuaPlcSimulator, extra: str = "") -> PlcConfig:
    text = CONFIG.format(endpoint=sim.endpoint, ns=f"ns={sim.namespace_index}", extra=extra)
    return parse_config(text, "t.toml").plcs[0]



def signal_values(runtime: Runtime, ref: Any) -> dict[str, Any]:
    info = call(runtime, ref, ReadSignals())
    return {name: s.value for name, s in info.signals.items()}


def test_subscriptions_polls_deadband_and_writes(
        runtime: Runtime, vclock: VirtualClock, sim: OpcuaPlcSimulator) -> None:
    sim.set("PartPresent", False)
    sim.set("Temperature", 24.0)
    sim.set("Speed", 1234)
    events = Probe.start(runtime, "watch")
    runtime.bus.subscribe_actor(["device.plc.cell.signal"], events)
    ref = PlcActor.start(runtime, "plc:cell", config(sim))
    settle(runtime, vclock, lambda: signal_values(runtime, ref)["speed"] == pytest.approx(123.4))
    assert signal_values(runtime, ref)["temperature"] == 24.0
    sim.set("PartPresent", True)
    settle(runtime, vclock, lambda: signal_values(runtime, ref)["part_present"] is True)
    sim.set("Temperature", 24.2)  # inside the deadband: no notification
    sim.set("Temperature", 25.0)
    settle(runtime, vclock, lambda: signal_values(runtime, ref)["temperature"] == 25.0)
    temperatures = [e.data["value"] for e in events.proxy().events.get()
                    if e.data["signal"] == "temperature"]
    assert temperatures == [24.0, 25.0]
    assert call(runtime, ref, WriteSignal(signal="release", value=True)) is True
    assert sim.get("Release") is True
    with pytest.raises(ExceptionResponse):
        call(runtime, ref, WriteSignal(signal="door_lock", value=False))  # read-only node
    assert sim.get("DoorClosed") is True
    sim.set("Release", False)


def test_browse_lists_the_servers_variables_and_marks_the_bound_ones(
        runtime: Runtime, vclock: VirtualClock, sim: OpcuaPlcSimulator) -> None:
    ref = PlcActor.start(runtime, "plc:cell", config(sim))
    settle(runtime, vclock, lambda: runtime.health.state("plc:cell") == HealthState.UP)
    tags = {t.path.split("/")[-1]: t for t in call(runtime, ref, Browse())}
    assert len(tags) >= 30
    assert tags["PartPresent"].name == "part_present"
    assert tags["Release"].writable is True and tags["PartPresent"].writable is False


def test_unknown_nodes_keep_the_plc_down_with_the_reason(
        runtime: Runtime, vclock: VirtualClock, sim: OpcuaPlcSimulator) -> None:
    extra = f"""
  [[plcs.bindings]]
  name = "ghost"
  node = "ns={sim.namespace_index};s=Line1.NoSuchTag"
  type = "bool"
"""
    Supervisor.start(runtime, "devices",
                     [ChildSpec.of(PlcActor, "plc:cell", config(sim, extra))],
                     intensity=RestartIntensity(100, 60.0),
                     backoff=Backoff(min_s=5.0, max_s=5.0, jitter=0.0, stable_s=30.0))
    settle(runtime, vclock, lambda: runtime.health.state("plc:cell") == HealthState.DOWN)
    error = runtime.health.component("plc:cell").last_error or ""
    assert "unknown nodes" in error and "ghost" in error


def test_a_restarted_server_gets_its_subscriptions_back(
        runtime: Runtime, vclock: VirtualClock) -> None:
    with OpcuaPlcSimulator(port=0) as own:
        events = Probe.start(runtime, "watch")
        runtime.bus.subscribe_actor(["device.plc.cell.signal"], events)
        Supervisor.start(runtime, "devices", [ChildSpec.of(PlcActor, "plc:cell", config(own))],
                         intensity=RestartIntensity(100, 60.0),
                         backoff=Backoff(min_s=0.2, max_s=0.5, jitter=0.0, stable_s=30.0))
        settle(runtime, vclock, lambda: runtime.health.state("plc:cell") == HealthState.UP)
        own.stop()
        settle(runtime, vclock, lambda: runtime.health.state("plc:cell") == HealthState.DOWN)
        own.start()  # same port; the PLC comes back with a part in the fixture
        own.set("PartPresent", True)
        settle(runtime, vclock, lambda: runtime.health.state("plc:cell") == HealthState.UP)
        settle(runtime, vclock, lambda: any(
            e.data["signal"] == "part_present" and e.data["value"] is True
            for e in events.proxy().events.get()))
        own.set("PartPresent", False)  # and the restored subscription delivers changes
        settle(runtime, vclock, lambda: [
            e.data["value"] for e in events.proxy().events.get()
            if e.data["signal"] == "part_present"][-1] is False)
