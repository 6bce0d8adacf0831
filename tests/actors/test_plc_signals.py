"""Heartbeat watchdog, four-phase handshakes and pulse counters of the PLC actor, against the
Modbus simulator over real Modbus TCP, on virtual time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pykka
import pytest

from actors.health import HealthState
from actors.plc import CompleteHandshake, PlcActor, ReadSignals, StartHandshake
from actors.runtime import Runtime, call
from actors.supervisor import ChildSpec, Supervisor
from controller.clock import VirtualClock
from controller.config import PlcConfig, parse_config
from controller.handshake import HandshakeBusy
from controller.supervision import Backoff, RestartIntensity
from drivers.modbus.codec import make_spec
from sim.modbus_plc import ModbusPlcSimulator
from tests.actors.probe import Probe

CONFIG = """
[station]
id = "t"
name = "t"

[[plcs]]
name = "cell"
port = {port}
poll_interval_ms = 50
timeout_ms = 2000

  [plcs.heartbeat]
  in_signal = "plc_beat"
  out_signal = "takt_beat"
  period_ms = 500
  stale_periods = 3

  [[plcs.handshakes]]
  name = "inspect"        # the PLC asks Takt to inspect a part
  role = "responder"
  request = "insp_req"
  ack = "insp_ack"
  done = "insp_done"
  data = ["insp_part"]
  result = ["insp_result"]
  timeout_ms = 1000

  [[plcs.handshakes]]
  name = "move"           # Takt asks the PLC to move the fixture
  role = "requester"
  request = "move_req"
  ack = "move_ack"
  done = "move_done"
  data = ["move_target"]
  result = ["move_position"]
  timeout_ms = 1000

  [[plcs.bindings]]
  name = "plc_beat"
  kind = "holding_register"
  address = 200
  type = "uint16"
  [[plcs.bindings]]
  name = "takt_beat"
  kind = "holding_register"
  address = 201
  type = "uint16"
  direction = "out"

  [[plcs.bindings]]
  name = "insp_req"
  kind = "coil"
  address = 20
  type = "bool"
  [[plcs.bindings]]
  name = "insp_ack"
  kind = "coil"
  address = 21
  type = "bool"
  direction = "out"
  [[plcs.bindings]]
  name = "insp_done"
  kind = "coil"
  address = 22
  type = "bool"
  direction = "out"
  [[plcs.bindings]]
  name = "insp_part"
  kind = "holding_register"
  address = 210
  type = "uint16"
  [[plcs.bindings]]
  name = "insp_result"
  kind = "holding_register"
  address = 211
  type = "uint16"
  direction = "out"

  [[plcs.bindings]]
  name = "move_req"
  kind = "coil"
  address = 30
  type = "bool"
  direction = "out"
  [[plcs.bindings]]
  name = "move_ack"
  kind = "coil"
  address = 31
  type = "bool"
  [[plcs.bindings]]
  name = "move_done"
  kind = "coil"
  address = 32
  type = "bool"
  [[plcs.bindings]]
  name = "move_target"
  kind = "holding_register"
  address = 220
  type = "uint16"
  direction = "out"
  [[plcs.bindings]]
  name = "move_position"
  kind = "holding_register"
  address = 221
  type = "uint16"

  [[plcs.bindings]]
  name = "part_pulse"
  kind = "coil"
  address = 40
  type = "bool"
  pulse_counter = "part_count"
  [[plcs.bindings]]
  name = "part_count"
  kind = "holding_register"
  address = 230
  type = "uint16"
"""

SPECS = {
    "plc_beat": make_spec("holding_register", 200, "uint16"),
    "takt_beat": make_spec("holding_register", 201, "uint16"),
    "insp_req": make_spec("coil", 20, "bool"),
    "insp_ack": make_spec("coil", 21, "bool"),
    "insp_done": make_spec("coil", 22, "bool"),
    "insp_part": make_spec("holding_register", 210, "uint16"),
    "insp_result": make_spec("holding_register", 211, "uint16"),
    "move_req": make_spec("coil", 30, "bool"),
    "move_ack": make_spec("coil", 31, "bool"),
    "move_done": make_spec("coil", 32, "bool"),
    "move_target": make_spec("holding_register", 220, "uint16"),
    "move_position": make_spec("holding_register", 221, "uint16"),
    "part_pulse": make_spec("coil", 40, "bool"),
    "part_count": make_spec("holding_register", 230, "uint16"),
}


@pytest.fixture
def sim() -> Iterator[ModbusPlcSimulator]:
    s = ModbusPlcSimulator(port=0, size=1000)
    s.start()
    yield s
    s.stop()


def config(port: int) -> PlcConfig:
    return parse_config(CONFIG.format(port=port), "t.toml").plcs[0]


class Line:
    """The test's view of the station: the simulated PLC, virtual time and the bus."""

    def __init__(self, runtime: Runtime, vclock: VirtualClock, sim: ModbusPlcSimulator) -> None:
        self.runtime, self.vclock, self.sim = runtime, vclock, sim
        self.beating = True  # the simulated PLC program counts its heartbeat up
        self.beat = 0
        self.events = Probe.start(runtime, "watch")
        runtime.bus.subscribe_actor(["device.plc.*.handshake", "device.plc.*.pulse_missed"],
                                    self.events)

    def plc(self, name: str) -> Any:
        return self.sim.get_value(SPECS[name])

    def set(self, name: str, value: Any) -> None:
        self.sim.set_value(SPECS[name], value)

    def run(self, seconds: float) -> None:
        """Advance virtual time in poll-sized steps, letting every actor settle in between."""
        for _ in range(round(seconds / 0.05)):
            if self.beating:
                self.beat += 1
                self.set("plc_beat", self.beat)
            assert self.runtime.wait_idle(5)
            self.vclock.advance(0.05)
        assert self.runtime.wait_idle(5)

    def reports(self, topic_end: str = "handshake") -> list[dict[str, Any]]:
        return [e.data for e in self.events.proxy().events.get() if e.topic.endswith(topic_end)]


@pytest.fixture
def line(runtime: Runtime, vclock: VirtualClock, sim: ModbusPlcSimulator) -> Line:
    return Line(runtime, vclock, sim)


def start(line: Line) -> pykka.ActorRef[Any]:
    ref = PlcActor.start(line.runtime, "plc:cell", config(line.sim.port))
    line.run(0)
    return ref


def test_takt_counts_its_heartbeat_up_every_period(line: Line) -> None:
    start(line)
    first = line.plc("takt_beat")
    line.run(1.0)
    assert line.plc("takt_beat") == first + 2


def test_a_stale_plc_heartbeat_marks_the_plc_down_after_three_periods(line: Line) -> None:
    Supervisor.start(
        line.runtime, "devices", [ChildSpec.of(PlcActor, "plc:cell", config(line.sim.port))],
        intensity=RestartIntensity(100, 60.0),
        backoff=Backoff(min_s=10.0, max_s=10.0, jitter=0.0, stable_s=30.0),
    )
    line.run(3.0)  # a live PLC: the counter moves
    assert line.runtime.health.state("plc:cell") == HealthState.UP
    line.beating = False  # the PLC program stops
    line.run(1.4)  # less than 3 periods: still fine
    assert line.runtime.health.state("plc:cell") == HealthState.UP
    line.run(0.2)
    health = line.runtime.health.component("plc:cell")
    assert health.state == HealthState.DOWN
    assert "heartbeat counter stale" in (health.last_error or "")


def test_responder_handshake_data_before_flags_and_full_clear(line: Line) -> None:
    ref = start(line)
    line.set("insp_part", 4711)  # the PLC writes its data first ...
    line.set("insp_req", True)  # ... then raises request
    line.run(0.1)
    assert line.plc("insp_ack") is True
    requested = line.reports()[-1]
    assert (requested["event"], requested["data"]) == ("requested", {"insp_part": 4711})
    assert call(line.runtime, ref, CompleteHandshake(handshake="inspect",
                                                     result={"insp_result": 1})) == "done"
    assert (line.plc("insp_result"), line.plc("insp_done")) == (1, True)
    line.set("insp_req", False)  # the PLC took the result
    line.run(0.1)
    assert (line.plc("insp_ack"), line.plc("insp_done")) == (False, False)
    assert [r["event"] for r in line.reports()] == ["requested", "done", "cleared"]


def test_responder_reports_a_plc_that_never_clears_its_request(line: Line) -> None:
    ref = start(line)
    line.set("insp_req", True)
    line.run(0.1)
    call(line.runtime, ref, CompleteHandshake(handshake="inspect", result={"insp_result": 2}))
    line.run(1.5)  # the PLC stopped mid-handshake
    stalled = [r for r in line.reports() if r["event"] == "stalled"]
    assert len(stalled) == 1 and stalled[0]["waiting_for"] == "insp_req to drop"
    info = call(line.runtime, ref, ReadSignals())
    assert {h["name"]: h["stalled"] for h in info.handshakes}["inspect"] is True
    assert line.runtime.health.state("plc:cell") == HealthState.UP


def test_requester_handshake_runs_all_four_phases(line: Line) -> None:
    ref = start(line)
    assert call(line.runtime, ref, StartHandshake(handshake="move",
                                                  data={"move_target": 3})) == "requested"
    assert (line.plc("move_target"), line.plc("move_req")) == (3, True)
    line.set("move_ack", True)
    line.run(0.1)
    line.set("move_position", 3)  # the PLC writes its result before raising done
    line.set("move_done", True)
    line.run(0.1)
    assert line.plc("move_req") is False
    done = [r for r in line.reports() if r["event"] == "done"]
    assert done[0]["result"] == {"move_position": 3}
    line.set("move_ack", False)
    line.set("move_done", False)
    line.run(0.1)
    assert [r["event"] for r in line.reports()] == ["requested", "done", "cleared"]


def test_requester_times_out_when_the_plc_stops_mid_handshake(line: Line) -> None:
    ref = start(line)
    call(line.runtime, ref, StartHandshake(handshake="move", data={"move_target": 5}))
    line.set("move_ack", True)
    line.run(1.5)  # acked, but done never comes
    events = [r["event"] for r in line.reports()]
    assert events == ["requested", "timeout"]
    assert line.plc("move_req") is False  # the request is withdrawn, not left hanging
    with pytest.raises(HandshakeBusy, match="still holds ack"):
        call(line.runtime, ref, StartHandshake(handshake="move", data={}))
    line.set("move_ack", False)
    line.run(0.1)
    assert [r["event"] for r in line.reports()][-1] == "recovered"
    assert call(line.runtime, ref, StartHandshake(handshake="move", data={})) == "requested"


def test_a_pulse_shorter_than_the_poll_interval_is_reported(line: Line) -> None:
    ref = start(line)
    line.set("part_pulse", True)  # a pulse the poll sees
    line.set("part_count", 1)
    line.run(0.1)
    line.set("part_pulse", False)
    line.run(0.1)
    line.set("part_count", 3)  # two pulses came and went between two polls
    line.run(0.3)
    missed = line.reports("pulse_missed")
    assert [(m["signal"], m["missed"]) for m in missed] == [("part_pulse", 2)]
    info = call(line.runtime, ref, ReadSignals())
    assert info.counters.missed_pulses == 2
