"""The wrench actor against the Open Protocol controller simulator, over loopback: results as
evidence, Takt's own limits, tool interlock, psets, sequences, bad frames, loss and reconnect."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pykka
import pytest

from actors.bus import Event
from actors.health import HealthState
from actors.runtime import Runtime, call
from actors.supervisor import ChildSpec, Supervisor
from actors.wrench import WrenchActor, probe_controller
from actors.wrench_messages import (
    CancelTightening,
    ClearState,
    ConfigureProgram,
    ConnectWrench,
    ControllerRefused,
    DisableWrench,
    DisconnectWrench,
    EnableWrench,
    GetPrograms,
    GetWrenchState,
    GetWrenchStatus,
    ListTightenings,
    LockWrench,
    SelectPset,
    SetSequence,
    TestWrench,
    UnlockWrench,
    WrenchDisconnected,
    WrenchLocked,
    WrenchStatus,
)
from controller.clock import VirtualClock
from controller.config import WrenchConfig, parse_config
from controller.config_check import ConfigError
from controller.events import Category, Severity, classify
from controller.supervision import Backoff, RestartIntensity
from controller.wrench_config import WrenchPset
from drivers.openprotocol.mids import Mid
from sim.openprotocol_controller import MalformedKind, OpenProtocolControllerSim
from state.connection import open_database
from state.tightening import get_tightening
from tests.actors.probe import Probe
from tests.actors.settle import settle

# Takt's pset 1 is narrower than the simulator's (9-11 N·m): 9.5-10.5 N·m, 30-90 degrees.
PSETS = """
[[wrenches.psets]]
number = 1
name = "M6 cover"
torque_min_nm = 9.5
torque_max_nm = 10.5
torque_target_nm = 10.0
angle_min = 30
angle_max = 90
"""


def config(port: int, psets: str = PSETS, **extra: Any) -> WrenchConfig:
    settings = {"timeout_ms": 1000, **extra}
    lines = "".join(f"{k} = {v}\n" for k, v in settings.items())
    text = (f'[station]\nid = "t"\nname = "t"\n[[wrenches]]\nname = "w1"\nport = {port}\n'
            f"{lines}{psets}")
    return parse_config(text, "t.toml").wrenches[0]


@pytest.fixture
def controller() -> Iterator[OpenProtocolControllerSim]:
    with OpenProtocolControllerSim(port=0, torque_stddev_cnm=0.0, angle_stddev=0.0) as sim:
        yield sim


@pytest.fixture
def database(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    con = open_database(tmp_path / "takt.duckdb")
    yield con
    pykka.ActorRegistry.stop_all(block=True, timeout=10)  # no cursor may outlive the file
    con.close()


def start(runtime: Runtime, database: duckdb.DuckDBPyConnection, port: int,
          **extra: Any) -> Any:
    return WrenchActor.start(runtime, "wrench:w1", config(port, **extra), database)


def status(runtime: Runtime, ref: Any) -> WrenchStatus:
    return call(runtime, ref, GetWrenchStatus())  # type: ignore[no-any-return]


def watch(runtime: Runtime) -> Any:
    probe = Probe.start(runtime, "watch")
    runtime.bus.subscribe_actor(["device.wrench.*", "input.wrench.*"], probe)
    return probe


def seen(probe: Any, topic: str) -> list[Event]:
    return [e for e in probe.proxy().events.get() if e.topic == topic]


def supervised(runtime: Runtime, cfg: WrenchConfig, database: duckdb.DuckDBPyConnection) -> Any:
    return Supervisor.start(runtime, "devices",
                            [ChildSpec.of(WrenchActor, "wrench:w1", cfg, database)],
                            intensity=RestartIntensity(100, 60.0),
                            backoff=Backoff(min_s=0.2, max_s=0.5, jitter=0.0, stable_s=30.0))


def test_on_start_it_subscribes_selects_the_default_pset_and_enables_the_tool(
        runtime: Runtime, vclock: VirtualClock, controller: OpenProtocolControllerSim,
        database: duckdb.DuckDBPyConnection) -> None:
    controller.tighten()  # before anyone listens: nobody hears of it
    events = watch(runtime)
    ref = start(runtime, database, controller.port, default_pset=2)
    settle(runtime, vclock, lambda: controller.subscribers == 1)
    assert controller.received(Mid.RESULT_SUBSCRIBE) == 1
    assert controller.selected_pset == 2 and controller.tool_enabled
    s = status(runtime, ref)
    assert (s.state, s.connection, s.selected_pset, s.results) == ("UP", "connected", 2, 0)
    assert s.controller is not None and s.controller.controller_name == "Takt sim controller"
    assert s.controller.revision == 1  # asked for 3, stepped down to what the controller has
    assert seen(events, "device.wrench.w1.state")[-1].data["connection"] == "connected"


def test_a_result_is_stored_as_evidence_then_published_durable(
        runtime: Runtime, vclock: VirtualClock, controller: OpenProtocolControllerSim,
        database: duckdb.DuckDBPyConnection) -> None:
    events = watch(runtime)
    ref = start(runtime, database, controller.port)
    settle(runtime, vclock, lambda: controller.subscribers == 1)
    controller.set_vin("VIN-0001")
    sent = controller.tighten(ok=True)
    assert sent is not None
    settle(runtime, vclock, lambda: status(runtime, ref).results == 1)

    (event,) = seen(events, "device.wrench.w1.result")
    assert event.durable
    data = event.data
    assert (data["wrench"], data["tightening_id"], data["pset"], data["vin"]) == (
        "w1", sent.tightening_id, 1, "VIN-0001")
    assert data["ok"] and data["controller_ok"] and data["takt_ok"] and data["flag"] is None
    assert data["torque_nm"] == 10.0 and data["angle"] == 60
    assert (data["torque_min_nm"], data["torque_max_nm"]) == (9.0, 11.0)  # the controller's
    assert data["takt_limits"] == {"torque_min_nm": 9.5, "torque_max_nm": 10.5,
                                   "angle_min": 30, "angle_max": 90}
    row = get_tightening(database.cursor(), data["id"])  # the row the event points at
    assert row is not None and row.torque_cnm == sent.torque_cnm == 1000
    assert row.controller_time == sent.timestamp and row.batch_counter == sent.batch_counter
    # The decoded frame is what crossed the input boundary (and what a replay feeds back).
    assert [e.data for e in seen(events, "input.wrench.w1")] == [sent]
    assert status(runtime, ref).last_result is not None


def test_nok_results_count_and_journal_as_warnings_and_takt_flags_its_own_limits(
        runtime: Runtime, vclock: VirtualClock, database: duckdb.DuckDBPyConnection) -> None:
    # The controller tightens to 10.80 N·m: OK by its limits (9-11), not by Takt's (9.5-10.5).
    with OpenProtocolControllerSim(port=0, torque_mean_cnm=1080, torque_stddev_cnm=0.0,
                                   angle_stddev=0.0) as sim:
        events = watch(runtime)
        ref = start(runtime, database, sim.port)
        settle(runtime, vclock, lambda: sim.subscribers == 1)
        sim.tighten()
        sim.tighten(ok=False)
        settle(runtime, vclock, lambda: status(runtime, ref).results == 2)
        s = status(runtime, ref)
        page = call(runtime, ref, ListTightenings(ok=False))
    assert (s.ok, s.nok, s.flagged) == (0, 2, 1)
    flagged, nok = (e.data for e in seen(events, "device.wrench.w1.result"))
    assert flagged["controller_ok"] and not flagged["ok"] and flagged["takt_ok"] is False
    assert "10.80 N·m is above 10.50" in flagged["flag"]
    assert not nok["controller_ok"] and nok["flag"] is None
    for event in seen(events, "device.wrench.w1.result"):
        entry = classify(event.topic, event.source, event.data)
        assert entry is not None
        assert (entry.severity, entry.category) == (Severity.WARNING, Category.WRENCH)
    assert "above 10.50" in (classify("device.wrench.w1.result", "", flagged) or _no()).message
    assert [t.id for t in page.items] == [nok["id"], flagged["id"]]  # newest first


def _no() -> Any:
    raise AssertionError("no journal entry")


def test_pset_selection_and_a_refused_pset(
        runtime: Runtime, vclock: VirtualClock, controller: OpenProtocolControllerSim,
        database: duckdb.DuckDBPyConnection) -> None:
    ref = start(runtime, database, controller.port)
    state = call(runtime, ref, SelectPset(2))
    assert controller.selected_pset == 2 and state.selected_pset == 2
    with pytest.raises(ControllerRefused, match="error 02") as refused:
        call(runtime, ref, SelectPset(7))
    assert refused.value.error == 2
    assert controller.selected_pset == 2
    s = status(runtime, ref)
    assert s.state == "UP" and s.selected_pset == 2 and "error 02" in (s.error or "")
    with pytest.raises(ValueError, match=r"outside 0\.\.999"):
        call(runtime, ref, SelectPset(1000))


def test_disable_lock_and_unlock_keep_the_tool_off_until_enabled(
        runtime: Runtime, vclock: VirtualClock, controller: OpenProtocolControllerSim,
        database: duckdb.DuckDBPyConnection) -> None:
    ref = start(runtime, database, controller.port)
    call(runtime, ref, DisableWrench())
    assert not controller.tool_enabled and controller.tighten() is None
    call(runtime, ref, EnableWrench(program_nr=2))
    assert controller.tool_enabled and controller.selected_pset == 2

    state = call(runtime, ref, LockWrench())
    assert state.locked and not state.tool_enabled and not controller.tool_enabled
    with pytest.raises(WrenchLocked):
        call(runtime, ref, EnableWrench())
    assert not controller.tool_enabled
    call(runtime, ref, UnlockWrench())
    assert not controller.tool_enabled  # unlocking does not start the tool
    call(runtime, ref, EnableWrench())
    assert controller.tighten() is not None
    call(runtime, ref, CancelTightening())
    assert not controller.tool_enabled and controller.tighten() is None
    call(runtime, ref, EnableWrench())  # the next enable resumes
    assert controller.tool_enabled
    settle(runtime, vclock, lambda: status(runtime, ref).results == 1)


def test_a_dropped_link_reconnects_resubscribes_and_keeps_the_lock(
        runtime: Runtime, vclock: VirtualClock, controller: OpenProtocolControllerSim,
        database: duckdb.DuckDBPyConnection) -> None:
    supervised(runtime, config(controller.port), database)
    settle(runtime, vclock, lambda: runtime.health.state("wrench:w1") == HealthState.UP)
    call(runtime, runtime.directory.get("wrench:w1"), LockWrench())
    controller.drop_link()
    settle(runtime, vclock, lambda: controller.received(Mid.RESULT_SUBSCRIBE) == 2
           and runtime.health.state("wrench:w1") == HealthState.UP)
    assert runtime.health.component("wrench:w1").restarts == 1
    assert not controller.tool_enabled  # a new session, and the tool is still locked
    ref = runtime.directory.get("wrench:w1")
    call(runtime, ref, UnlockWrench())
    call(runtime, ref, EnableWrench())
    controller.tighten(ok=True)
    settle(runtime, vclock, lambda: status(runtime, runtime.directory.get("wrench:w1")
                                           ).results == 1)

    controller.stop()  # the controller is gone: DOWN, and commands fail at once
    settle(runtime, vclock, lambda: runtime.health.state("wrench:w1") == HealthState.DOWN)
    controller.start()
    settle(runtime, vclock, lambda: runtime.health.state("wrench:w1") == HealthState.UP
           and controller.subscribers == 1)


def test_malformed_frames_are_counted_and_results_keep_flowing(
        runtime: Runtime, vclock: VirtualClock, controller: OpenProtocolControllerSim,
        database: duckdb.DuckDBPyConnection) -> None:
    ref = start(runtime, database, controller.port)
    settle(runtime, vclock, lambda: controller.subscribers == 1)
    controller.send_malformed(MalformedKind.BAD_LENGTH)
    controller.send_malformed(MalformedKind.BAD_RESULT)
    controller.tighten(ok=True)
    settle(runtime, vclock, lambda: status(runtime, ref).results == 1)
    s = status(runtime, ref)
    assert s.malformed == 2 and s.state == "UP" and s.link is not None and s.link.malformed == 2
    assert "w1" in (s.error or "")  # the report names the device
    call(runtime, ref, ClearState())
    assert call(runtime, ref, GetWrenchState()).error is None


def test_keep_alives_hold_the_link_and_a_silent_controller_is_lost(
        runtime: Runtime, vclock: VirtualClock, controller: OpenProtocolControllerSim,
        database: duckdb.DuckDBPyConnection) -> None:
    # Short enough for a quick test, long enough that a loaded machine does not delay an echo
    # past the silence limit (two keep-alive periods) while the controller is fine.
    start(runtime, database, controller.port, keepalive_ms=300)
    settle(runtime, vclock, lambda: controller.received(Mid.KEEP_ALIVE) >= 3)
    assert runtime.health.state("wrench:w1") == HealthState.UP
    controller.go_silent()
    settle(runtime, vclock, lambda: runtime.health.state("wrench:w1") == HealthState.DOWN)
    assert "nothing received" in (runtime.health.component("wrench:w1").last_error or "")


def test_a_sequence_counts_ok_results_and_clear_restarts_it(
        runtime: Runtime, vclock: VirtualClock, controller: OpenProtocolControllerSim,
        database: duckdb.DuckDBPyConnection) -> None:
    events = watch(runtime)
    ref = start(runtime, database, controller.port)
    call(runtime, ref, SetSequence(pset=1, size=0))  # none expected: no batch to size
    assert controller.received(Mid.SET_BATCH_SIZE) == 0
    call(runtime, ref, SetSequence(pset=1, size=2))
    # The controller counts the same batch (its pset 1 had a batch of 4).
    assert controller.pset(1).batch_size == 2 and controller.selected_pset == 1
    controller.tighten(ok=True)
    controller.tighten(ok=False)  # a NOK does not count
    controller.tighten(ok=True)
    settle(runtime, vclock, lambda: status(runtime, ref).results == 3)
    s = status(runtime, ref)
    assert (s.sequence.pset, s.sequence.size, s.sequence.counter, s.sequence.complete) == (
        1, 2, 2, True)
    assert s.error is None
    results = [e.data for e in seen(events, "device.wrench.w1.result")]
    assert [(r["batch_size"], r["batch_counter"], r["batch_status"]) for r in results] == [
        (2, 1, "nok"), (2, 1, "nok"), (2, s.sequence.counter, "ok")]
    (batch,) = seen(events, "device.wrench.w1.batch")
    assert batch.durable and batch.data["complete"] and batch.data["size"] == 2
    entry = classify(batch.topic, batch.source, batch.data)
    assert entry is not None and entry.severity is Severity.INFO

    state = call(runtime, ref, ClearState())
    assert state.sequence.counter == 0 and state.last_result is None and state.results == 3
    pykka.ActorRegistry.stop_all(block=True, timeout=10)  # a restart forgets nothing
    ref = start(runtime, database, controller.port)
    s = status(runtime, ref)
    assert s.last_result is None and s.sequence.size == 2 and s.results == 3 and s.nok == 1
    assert controller.received(Mid.SET_BATCH_SIZE) == 2  # sent again on connect


def test_a_rebooted_controller_gets_the_batch_size_back(
        runtime: Runtime, vclock: VirtualClock, controller: OpenProtocolControllerSim,
        database: duckdb.DuckDBPyConnection) -> None:
    events = watch(runtime)
    supervised(runtime, config(controller.port), database)
    settle(runtime, vclock, lambda: runtime.health.state("wrench:w1") == HealthState.UP)
    call(runtime, runtime.directory.get("wrench:w1"), SetSequence(pset=1, size=2))
    assert controller.pset(1).batch_size == 2
    port = controller.port
    controller.stop()
    settle(runtime, vclock, lambda: runtime.health.state("wrench:w1") == HealthState.DOWN)
    # A new controller on the same address: what the old one was told is gone.
    with OpenProtocolControllerSim(port=port, torque_stddev_cnm=0.0, angle_stddev=0.0) as new:
        assert new.pset(1).batch_size == 4
        settle(runtime, vclock, lambda: runtime.health.state("wrench:w1") == HealthState.UP
               and new.subscribers == 1)
        assert new.selected_pset == 1 and new.pset(1).batch_size == 2
        new.tighten(ok=True)
        new.tighten(ok=True)
        ref = runtime.directory.get("wrench:w1")
        settle(runtime, vclock, lambda: status(runtime, ref).results == 2)
        s = status(runtime, ref)
    assert (s.sequence.counter, s.sequence.complete, s.error) == (2, True, None)
    results = [e.data for e in seen(events, "device.wrench.w1.result")]
    assert [(r["batch_counter"], r["batch_status"]) for r in results] == [(1, "nok"), (2, "ok")]


@pytest.mark.parametrize(("revision", "size", "error"), [(None, 2, "error 99"),
                                                         (1, 150, "error 97")],
                         ids=["no-mid-0019", "no-revision-2"])
def test_a_refused_batch_size_is_noted_and_takt_still_counts_the_sequence(
        runtime: Runtime, vclock: VirtualClock, database: duckdb.DuckDBPyConnection,
        revision: int | None, size: int, error: str) -> None:
    with OpenProtocolControllerSim(port=0, batch_size_revision=revision, torque_stddev_cnm=0.0,
                                   angle_stddev=0.0) as sim:
        ref = start(runtime, database, sim.port)
        state = call(runtime, ref, SetSequence(pset=1, size=size))
        assert (state.sequence.pset, state.sequence.size, state.sequence.counter) == (1, size, 0)
        assert f"batch size {size} of pset 1 refused" in (state.error or "")
        assert error in (state.error or "")
        assert sim.selected_pset == 1 and sim.pset(1).batch_size == 4  # its own, unchanged
        sim.tighten(ok=True)
        sim.tighten(ok=True)
        settle(runtime, vclock, lambda: status(runtime, ref).results == 2)
        s = status(runtime, ref)
    assert s.state == "UP" and s.sequence.counter == 2 and s.sequence.complete == (size == 2)
    assert s.last_result is not None and s.last_result.batch_size == 4


def test_programs_are_checked_stored_and_survive_a_restart(
        runtime: Runtime, vclock: VirtualClock, controller: OpenProtocolControllerSim,
        database: duckdb.DuckDBPyConnection) -> None:
    ref = start(runtime, database, controller.port)
    program = WrenchPset(number=2, name="M8", torque_min_nm=24.0, torque_max_nm=26.0,
                         torque_target_nm=25.0, batch_size=3)
    view = call(runtime, ref, ConfigureProgram(program=program, by="eng"))
    assert (view.source, view.updated_by) == ("stored", "eng")
    with pytest.raises(ConfigError, match="torque_target_nm"):
        call(runtime, ref, ConfigureProgram(program=WrenchPset(
            number=3, torque_min_nm=5.0, torque_max_nm=4.0, torque_target_nm=4.5)))
    pykka.ActorRegistry.stop_all(block=True, timeout=10)
    ref = start(runtime, database, controller.port)
    views = call(runtime, ref, GetPrograms())
    assert [(v.number, v.source) for v in views] == [(1, "config"), (2, "stored")]
    state = call(runtime, ref, SelectPset(2))  # the stored batch size sizes the sequence
    assert (state.sequence.pset, state.sequence.size) == (2, 3)
    assert controller.pset(2).batch_size == 3  # and the controller's batch


def test_disconnect_ends_the_session_until_connect(
        runtime: Runtime, vclock: VirtualClock, controller: OpenProtocolControllerSim,
        database: duckdb.DuckDBPyConnection) -> None:
    ref = start(runtime, database, controller.port)
    test = call(runtime, ref, TestWrench())  # a subscription round trip that changes nothing
    assert test.ok and test.connected and controller.subscribers == 1
    state = call(runtime, ref, DisconnectWrench(by="op"))
    assert state.connection == "disconnected"
    assert controller.received(Mid.COMMUNICATION_STOP) == 1
    settle(runtime, vclock, lambda: controller.connections == 0)
    assert runtime.health.state("wrench:w1") == HealthState.DOWN
    with pytest.raises(WrenchDisconnected, match="disconnected on request by op"):
        call(runtime, ref, EnableWrench())
    assert call(runtime, ref, ConnectWrench()).connection == "connected"
    assert controller.received(Mid.RESULT_SUBSCRIBE) == 3 and controller.subscribers == 1
    assert runtime.health.state("wrench:w1") == HealthState.UP


def test_discovery_probes_tell_a_busy_controller_from_an_absent_one(
        runtime: Runtime, vclock: VirtualClock, controller: OpenProtocolControllerSim,
        database: duckdb.DuckDBPyConnection) -> None:
    found = probe_controller("127.0.0.1", controller.port, 1.0)
    assert (found.reachable, found.controller_name) == (True, "Takt sim controller")
    assert controller.received(Mid.COMMUNICATION_STOP) == 1  # the probe ends its session
    start(runtime, database, controller.port)
    settle(runtime, vclock, lambda: controller.sessions == 1)
    busy = probe_controller("127.0.0.1", controller.port, 1.0)  # its one client is Takt
    assert busy.reachable and busy.controller_name is None and "error 96" in (busy.detail or "")
    assert controller.sessions == 1 and runtime.health.state("wrench:w1") == HealthState.UP
    controller.stop()
    gone = probe_controller("127.0.0.1", controller.port, 0.2)
    assert not gone.reachable and "cannot connect" in (gone.detail or "")
