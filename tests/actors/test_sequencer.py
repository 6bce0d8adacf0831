"""The sequencer actor: a whole assembly coached from bus facts and operator commands, records
written as it goes, the OUTPUT step and the release written to a real Modbus PLC and read back,
refusals that change nothing, and a restart that resumes at the same step.

Device facts (tightening results, PLC inputs, scans, predictions) are published on the bus as
the device actors publish them: their actors are tested against their simulators elsewhere;
here the contract is the topic and its data.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pykka
import pytest

from actors.bus import Event
from actors.plc import PlcActor
from actors.runtime import Runtime, call
from actors.sequencer import SequencerActor
from actors.sequencer_messages import (
    CoachingRefused,
    ConfirmStep,
    FlushRecords,
    GetCoaching,
    InterruptCoaching,
    PauseCoaching,
    StartCoaching,
)
from controller.clock import VirtualClock
from controller.config import StationConfig, parse_config
from drivers.modbus.codec import make_spec
from sim.assemblies import CONTACTOR, install
from sim.modbus_plc import ModbusPlcSimulator
from state import records
from state.connection import open_database
from state.operators import add_operator, get_operator
from state.step_events import ensure_station_machine, step_event_summary
from tests.actors.probe import Probe
from tests.actors.settle import settle

LAMP = make_spec("coil", 3, "bool")
RELEASE = make_spec("coil", 4, "bool")

STATION = """
[station]
id = "cell-7"
name = "Cell 7"

[[plcs]]
name = "line1"
port = {port}
poll_interval_ms = 50

  [[plcs.bindings]]
  name = "present"
  kind = "discrete_input"
  address = 0
  type = "bool"

  [[plcs.bindings]]
  name = "lamp"
  kind = "coil"
  address = 3
  type = "bool"
  direction = "out"

  [[plcs.bindings]]
  name = "release"
  kind = "coil"
  address = 4
  type = "bool"
  direction = "out"

[coaching]
release_control = true
[coaching.release]
plc = "line1"
signal = "release"
"""


@pytest.fixture
def plc() -> Iterator[ModbusPlcSimulator]:
    sim = ModbusPlcSimulator(port=0, size=100)
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def config(plc: ModbusPlcSimulator) -> StationConfig:
    return parse_config(STATION.format(port=plc.port), "t.toml")


@pytest.fixture
def database(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    con = open_database(tmp_path / "takt.duckdb")
    yield con
    pykka.ActorRegistry.stop_all(block=True, timeout=10)
    con.close()


@pytest.fixture
def assembly_id(database: duckdb.DuckDBPyConnection) -> int:
    return install(database.cursor(), CONTACTOR, now_us=1)


def start(runtime: Runtime, config: StationConfig, database: duckdb.DuckDBPyConnection) -> Any:
    ref = SequencerActor.start(runtime, "sequencer", config.coaching, database,
                               station_id=config.station.id, machine=config.station.name)
    runtime.directory.set("sequencer", ref)
    call(runtime, ref, GetCoaching())
    return ref


def plc_actor(runtime: Runtime, config: StationConfig) -> None:
    runtime.directory.set("plc:line1", PlcActor.start(runtime, "plc:line1", config.plcs[0]))


def watch(runtime: Runtime) -> Any:
    probe = Probe.start(runtime, "watch")
    runtime.bus.subscribe_actor(["coaching.*"], probe)
    return probe


def emitted(probe: Any, kind: str) -> list[Event]:
    return [e for e in probe.proxy().events.get() if e.topic == f"coaching.{kind}"]


def fact(runtime: Runtime, topic: str, data: dict[str, Any]) -> None:
    runtime.bus.publish(topic, data, source="test")


def complete(runtime: Runtime, vclock: VirtualClock, ref: Any, index: int) -> None:
    """What the devices and the operator do to complete step `index` of CONTACTOR."""
    if index == 0:
        for frame in ("f1", "f2"):
            fact(runtime, "vision.cam1.prediction",
                 {"label": "contactor", "confidence": 0.93, "frame_id": frame})
    elif index in (1, 5):
        fact(runtime, "device.scanner.hand.read",
             {"code": "C1234", "scanner": "hand", "role": "COACHING"})
        if index == 5:
            fact(runtime, "vision.cam1.ocr", {"text": "OK-42", "frame_id": "f9"})
    elif index == 2:
        for n in (1, 2):
            fact(runtime, "device.wrench.w1.result", {"id": n, "pset": 1, "ok": True})
    elif index == 3:
        fact(runtime, "device.plc.line1.signal", {"signal": "present", "value": True})
    elif index == 4:
        return  # the OUTPUT step completes by itself once the PLC has the lamp on
    elif index == 6:
        vclock.advance(2.5)  # the dwell
    elif index == 7:
        call(runtime, ref, ConfirmStep(by="ana"))


def step_of(runtime: Runtime, ref: Any) -> int | None:
    return call(runtime, ref, GetCoaching()).step_index  # type: ignore[no-any-return]


def test_a_whole_assembly_is_coached_recorded_and_the_part_released(
        runtime: Runtime, vclock: VirtualClock, config: StationConfig, plc: ModbusPlcSimulator,
        database: duckdb.DuckDBPyConnection, assembly_id: int) -> None:
    plc_actor(runtime, config)
    events = watch(runtime)
    con = database.cursor()
    ensure_station_machine(con, station_id="cell-7", display_name="Cell 7", now_us=1)
    ana = add_operator(con, first_name="Ana", last_name="Ruiz", role="operator", now_us=1)
    ref = start(runtime, config, database)
    view = call(runtime, ref, StartCoaching(assembly_id=assembly_id, operator_id=ana.id,
                                            work_order="WO-1", part_serial="P-1"))
    assert (view.phase, view.step_index, view.steps) == ("step_active", 0, 8)
    record_id = view.assembly_record_id
    for index in range(8):
        settle(runtime, vclock, lambda i=index: (step_of(runtime, ref) or 99) >= i)
        complete(runtime, vclock, ref, index)
    settle(runtime, vclock, lambda: call(runtime, ref, GetCoaching()).phase == "complete")
    assert plc.get_value(LAMP) is True  # the OUTPUT step wrote it, read it back
    settle(runtime, vclock, lambda: plc.get_value(RELEASE) is True)  # released: OK record

    row = records.get_record(con, record_id)
    assert (row.outcome, row.released, row.operator_id, row.work_order) == ("ok", True, ana.id,
                                                                            "WO-1")
    assert get_operator(con, ana.id).num_records == 1
    steps = records.step_records(con, record_id)
    assert [s.step_index for s in steps] == list(range(8)) and all(s.ok for s in steps)
    assert steps[2].evidence == '["1","2"]'  # the tightening ids
    assert steps[6].cycle_s is not None and steps[6].cycle_s >= 2.0  # the dwell
    assert [e.data["step_index"] for e in emitted(events, "step_advance")] == list(range(8))
    done = emitted(events, "assembly_complete")
    assert done[0].durable and done[0].data["outcome"] == "ok" and done[0].data["released"]
    assert done[0].data["assembly_record_id"] == record_id
    assert len(emitted(events, "prediction")) == 2
    # Every coached step is a step event of the station's machine (seed 004).
    days = step_event_summary(con, from_us=0, to_us=2**62, machine_ids=[1])
    assert sum(d.events_count for d in days) == 8 and days[0].machine == "Cell 7"
    cycle_us = sum(round(s.ended_us - s.started_us) for s in steps)
    assert sum(d.total_cycle_us for d in days) == cycle_us


def test_commands_that_do_not_fit_are_refused_and_change_nothing(
        runtime: Runtime, vclock: VirtualClock, config: StationConfig,
        database: duckdb.DuckDBPyConnection, assembly_id: int) -> None:
    ref = start(runtime, config, database)
    with pytest.raises(CoachingRefused, match="no assembly 99"):
        call(runtime, ref, StartCoaching(assembly_id=99))
    with pytest.raises(CoachingRefused, match="nothing to interrupt"):
        call(runtime, ref, InterruptCoaching(reason="x"))
    first = call(runtime, ref, StartCoaching(assembly_id=assembly_id))
    with pytest.raises(CoachingRefused, match="a coaching session is active"):
        call(runtime, ref, StartCoaching(assembly_id=assembly_id))
    with pytest.raises(CoachingRefused, match="not the current one"):
        call(runtime, ref, PauseCoaching(assembly_record_id=first.assembly_record_id + 5))
    assert call(runtime, ref, GetCoaching()) == first
    con = database.cursor()
    assert len(records.list_records(con)) == 1  # the refused start wrote no record


def test_low_battery_pauses_and_power_back_resumes(
        runtime: Runtime, vclock: VirtualClock, config: StationConfig,
        database: duckdb.DuckDBPyConnection, assembly_id: int) -> None:
    ref = start(runtime, config, database)
    call(runtime, ref, StartCoaching(assembly_id=assembly_id))
    fact(runtime, "device.ups.cabinet.power", {"state": "low_battery", "pause_coaching": True})
    settle(runtime, vclock, lambda: call(runtime, ref, GetCoaching()).phase == "paused")
    complete(runtime, vclock, ref, 0)  # the operator works on: nothing counts while paused
    runtime.wait_idle(5)
    assert call(runtime, ref, GetCoaching()).step_index == 0
    fact(runtime, "device.ups.cabinet.power", {"state": "online", "resume": True})
    settle(runtime, vclock, lambda: call(runtime, ref, GetCoaching()).phase == "step_active")
    complete(runtime, vclock, ref, 0)
    settle(runtime, vclock, lambda: step_of(runtime, ref) == 1)


def test_a_restarted_sequencer_resumes_the_open_record_at_its_step(
        runtime: Runtime, vclock: VirtualClock, config: StationConfig,
        database: duckdb.DuckDBPyConnection, assembly_id: int) -> None:
    ref = start(runtime, config, database)
    record_id = call(runtime, ref, StartCoaching(assembly_id=assembly_id)).assembly_record_id
    for index in range(3):
        complete(runtime, vclock, ref, index)
        settle(runtime, vclock, lambda i=index: step_of(runtime, ref) == i + 1)
    fact(runtime, "device.wrench.w1.result", {"id": 9, "pset": 1, "ok": True})  # not step 3's
    ref.stop()  # killed mid-step 3

    events = watch(runtime)
    again = start(runtime, config, database)
    view = call(runtime, again, GetCoaching())
    assert (view.phase, view.assembly_record_id, view.step_index) == ("step_active",
                                                                      record_id, 3)
    assert view.variables == {"part": "C1234"}  # captured in step 1, before the restart
    assert [e.data["step_index"] for e in emitted(events, "step_advance")] == [3]
    complete(runtime, vclock, again, 3)
    settle(runtime, vclock, lambda: step_of(runtime, again) == 4)
    assert call(runtime, again, FlushRecords()) == 0  # the writer runs behind the messages
    steps = records.step_records(database.cursor(), record_id)
    assert [s.step_index for s in steps] == [0, 1, 2, 3, 4]  # no second row for step 3
