"""The PLC actor over the TCP_SOCKET line protocol, against the line PLC simulator."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from actors.health import HealthState
from actors.plc import PlcActor, ReadSignals, WriteSignal
from actors.runtime import Runtime, call
from actors.supervisor import ChildSpec, Supervisor
from controller.clock import VirtualClock
from controller.config import PlcConfig, parse_config
from controller.supervision import Backoff, RestartIntensity
from drivers.errors import ExceptionResponse
from sim.line_plc import LinePlcSimulator
from tests.actors.probe import Probe
from tests.actors.settle import settle as wait_for

CONFIG = """
[station]
id = "t"
name = "t"

[[plcs]]
name = "press"
protocol = "TCP_SOCKET"
port = {port}
poll_interval_ms = 100
timeout_ms = 1000

  [[plcs.bindings]]
  name = "part_present"
  key = "PartPresent"
  type = "bool"
  [[plcs.bindings]]
  name = "force"
  key = "Force"
  type = "float64"
  scale = 0.5
  [[plcs.bindings]]
  name = "release"
  key = "Release"
  type = "bool"
  direction = "out"
  [[plcs.bindings]]
  name = "locked"
  key = "Locked"
  type = "bool"
  direction = "out"
"""


@pytest.fixture
def sim() -> Iterator[LinePlcSimulator]:
    s = LinePlcSimulator(signals={"PartPresent": "0", "Force": "10.0", "Release": "0",
                                  "Locked": "0", "Other": "1"},
                         writable=("Release",))
    s.start()
    yield s
    s.stop()


def config(port: int) -> PlcConfig:
    return parse_config(CONFIG.format(port=port), "t.toml").plcs[0]


def settle(runtime: Runtime, vclock: VirtualClock, seconds: float = 0.0,
           until: Callable[[], bool] | None = None) -> None:
    """Wait for `until` (pushed lines arrive on real sockets), then advance `seconds`."""
    if until is not None:
        wait_for(runtime, vclock, until)
    if seconds:
        vclock.advance(seconds)
        assert runtime.wait_idle(5)


def values(runtime: Runtime, ref: Any) -> dict[str, Any]:
    info = call(runtime, ref, ReadSignals())
    return {name: s.value for name, s in info.signals.items()}


def test_pushed_lines_become_scaled_signals_and_writes_are_echoed(
        runtime: Runtime, vclock: VirtualClock, sim: LinePlcSimulator) -> None:
    ref = PlcActor.start(runtime, "plc:press", config(sim.port))
    settle(runtime, vclock, until=lambda: values(runtime, ref)["force"] == 5.0)
    sim.set("PartPresent", "1")
    settle(runtime, vclock, until=lambda: values(runtime, ref)["part_present"] is True)
    assert call(runtime, ref, WriteSignal(signal="release", value=True)) is True
    assert sim.get("Release") == "1"
    with pytest.raises(ExceptionResponse, match="not writable"):
        call(runtime, ref, WriteSignal(signal="locked", value=True))
    assert sim.get("Locked") == "0"


def test_malformed_lines_are_counted_and_good_lines_keep_flowing(
        runtime: Runtime, vclock: VirtualClock, sim: LinePlcSimulator) -> None:
    ref = PlcActor.start(runtime, "plc:press", config(sim.port))
    settle(runtime, vclock, until=lambda: values(runtime, ref)["force"] == 5.0)
    sim.send_raw(b"garbage without equals\nForce=abc\n")
    sim.set("Force", "30")

    def counted() -> bool:
        info = call(runtime, ref, ReadSignals())
        return info.counters.malformed_frames == 2 and info.signals["force"].value == 15.0

    settle(runtime, vclock, until=counted)
    assert runtime.health.state("plc:press") == HealthState.UP


def test_a_silent_plc_is_a_lost_link_and_comes_back(
        runtime: Runtime, vclock: VirtualClock, sim: LinePlcSimulator) -> None:
    events = Probe.start(runtime, "watch")
    runtime.bus.subscribe_actor(["device.plc.*"], events)
    Supervisor.start(runtime, "devices", [ChildSpec.of(PlcActor, "plc:press", config(sim.port))],
                     intensity=RestartIntensity(100, 60.0),
                     backoff=Backoff(min_s=0.5, max_s=0.5, jitter=0.0, stable_s=30.0))
    settle(runtime, vclock, until=lambda: runtime.health.state("plc:press") == HealthState.UP)
    sim.silent = True
    settle(runtime, vclock, 0.1, until=lambda: runtime.health.state("plc:press")
           == HealthState.DOWN)
    assert "snapshot" in (runtime.health.component("plc:press").last_error or "")
    sim.silent = False
    sim.set("PartPresent", "1")
    settle(runtime, vclock, 0.6)
    settle(runtime, vclock, until=lambda: runtime.health.state("plc:press") == HealthState.UP)
    settle(runtime, vclock, until=lambda: any(
        e.data == {"signal": "part_present", "value": True, "previous": None}
        for e in events.proxy().events.get()))
