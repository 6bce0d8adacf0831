"""The UPS actor against Debian's real upsd with the dummy-ups driver (tests/nut_server.py),
and against Takt's simulated UPS: power states published and journaled, the store flushed on
low battery, a lost upsd failing the actor."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from actors.health import HealthState
from actors.runtime import Runtime, call
from actors.store import StoreActor
from actors.ups import GetUpsStatus, NotSimulated, SimulatePower, TestUps, UpsActor
from controller.clock import VirtualClock
from controller.ups_config import UpsConfig
from state.connection import open_database
from tests.actors.probe import Probe
from tests.actors.settle import settle
from tests.nut_server import NutServer, running_nut

ONLINE = {"ups.status": "OL", "battery.charge": "100", "battery.runtime": "3600",
          "input.voltage": "230.0", "ups.load": "20"}


@pytest.fixture(scope="module")
def nut(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NutServer]:
    with running_nut(tmp_path_factory.mktemp("nut"), ups="cabinet", initial=ONLINE) as server:
        yield server


def config(port: int, **kw: Any) -> UpsConfig:
    return UpsConfig(name="wet", ups="cabinet", port=port, poll_interval_ms=200,
                     timeout_ms=1000, **kw)


def power_events(probe: Any) -> list[dict[str, Any]]:
    return [e.data for e in probe.proxy().events.get() if e.topic == "device.ups.wet.power"]


def test_power_states_are_published_and_low_battery_flushes_the_store(
        runtime: Runtime, vclock: VirtualClock, nut: NutServer, tmp_path: Path) -> None:
    database = open_database(tmp_path / "station.duckdb")
    store = StoreActor.start(runtime, "store", database)
    runtime.directory.set("store", store)
    probe = Probe.start(runtime, "watch")
    runtime.bus.subscribe_actor(["device.ups.*", "input.ups.*"], probe)
    ups = UpsActor.start(runtime, "ups", config(nut.port))
    settle(runtime, vclock, lambda: call(runtime, ups, GetUpsStatus()).polls >= 1)
    view = call(runtime, ups, GetUpsStatus())
    assert (view.state, view.flags, view.battery_charge, view.input_voltage) == (
        "online", ["OL"], 100.0, 230.0)
    assert [(e["state"], e["alert"]) for e in power_events(probe)] == [("online", False)]
    wal = tmp_path / "station.duckdb.wal"
    # Each change: written to dummy-ups's file, served by upsd once the driver rereads it,
    # then seen by Takt's next poll.

    nut.set_vars({"ups.status": "OB DISCHRG", "battery.charge": "80", "input.voltage": "0"})
    nut.wait_vars({"ups.status": "OB DISCHRG", "battery.charge": "80", "input.voltage": "0"})
    settle(runtime, vclock, lambda: call(runtime, ups, GetUpsStatus()).state == "on_battery")
    settle(runtime, vclock, lambda: wal.exists() and wal.stat().st_size > 0)  # journaled

    nut.set_vars({"ups.status": "OB DISCHRG LB", "battery.charge": "9"})
    nut.wait_vars({"ups.status": "OB DISCHRG LB", "battery.charge": "9"})
    settle(runtime, vclock, lambda: call(runtime, ups, GetUpsStatus()).state == "low_battery")
    # The store committed and checkpointed at once: nothing is left in the WAL.
    settle(runtime, vclock, lambda: not wal.exists() or wal.stat().st_size == 0)

    nut.set_vars({"ups.status": "OL CHRG", "battery.charge": "12", "input.voltage": "229"})
    nut.wait_vars({"ups.status": "OL CHRG", "battery.charge": "12", "input.voltage": "229"})
    settle(runtime, vclock, lambda: call(runtime, ups, GetUpsStatus()).state == "online")
    changes = [(e["previous"], e["state"], e["alert"], e["pause_coaching"], e["resume"])
               for e in power_events(probe)]
    assert changes[-3:] == [("online", "on_battery", True, False, False),
                            ("on_battery", "low_battery", True, True, False),
                            ("low_battery", "online", True, False, True)]
    low = power_events(probe)[-2]
    assert low["battery_charge"] == 9.0 and "LB" in low["flags"]
    # Every poll crossed the input boundary with the variables as upsd sent them.
    inputs = [e.data for e in probe.proxy().events.get() if e.topic == "input.ups.wet"]
    assert inputs and inputs[-1]["ups.status"] == "OL CHRG"
    result = call(runtime, ups, TestUps())
    assert result["ok"] is True and result["state"] == "online"
    with pytest.raises(NotSimulated):
        call(runtime, ups, SimulatePower(on_battery=True, battery_percent=50))
    nut.set_vars(ONLINE)  # as the next test expects it
    nut.wait_vars(ONLINE)


def test_an_unknown_ups_is_unknown_power_and_a_lost_upsd_fails_the_actor(
        runtime: Runtime, vclock: VirtualClock, tmp_path: Path) -> None:
    with running_nut(tmp_path, ups="cabinet", initial=ONLINE) as server:
        wrong = UpsActor.start(runtime, "ups:wrong", UpsConfig(
            name="wrong", ups="nosuch", port=server.port, poll_interval_ms=200))
        settle(runtime, vclock, lambda: call(runtime, wrong, GetUpsStatus()).errors >= 1)
        view = call(runtime, wrong, GetUpsStatus())
        assert view.state == "unknown" and "UNKNOWN-UPS" in (view.last_error or "")
        ups = UpsActor.start(runtime, "ups", config(server.port))
        settle(runtime, vclock, lambda: call(runtime, ups, GetUpsStatus()).polls >= 1)
        server.stop()
        settle(runtime, vclock, lambda: not ups.is_alive())
    assert runtime.health.component("ups").state is HealthState.DOWN
    assert "wet" in (runtime.health.component("ups").last_error or "")


def test_a_simulated_ups_switches_to_battery_and_back(
        runtime: Runtime, vclock: VirtualClock) -> None:
    probe = Probe.start(runtime, "watch")
    runtime.bus.subscribe_actor(["device.ups.*"], probe)
    ups = UpsActor.start(runtime, "ups", UpsConfig(name="wet", simulated=True,
                                                   low_battery_percent=25))
    settle(runtime, vclock, lambda: call(runtime, ups, GetUpsStatus()).polls >= 1)
    assert call(runtime, ups, GetUpsStatus()).state == "online"
    view = call(runtime, ups, SimulatePower(on_battery=True, battery_percent=60))
    assert (view.state, view.battery_charge) == ("on_battery", 60.0)
    view = call(runtime, ups, SimulatePower(on_battery=True, battery_percent=20))
    assert view.state == "low_battery"  # at or below low_battery_percent, before the UPS's LB
    view = call(runtime, ups, SimulatePower(on_battery=False))
    assert view.state == "online" and view.input_voltage == 230.0
    settle(runtime, vclock, lambda: len(power_events(probe)) == 4)
    # The first reading after start is published too (quietly: no alert), so HMIs know it.
    assert [(e["state"], e["alert"]) for e in power_events(probe)] == [
        ("online", False), ("on_battery", True), ("low_battery", True), ("online", True)]
    with pytest.raises(ValueError, match=r"0\.\.100"):
        call(runtime, ups, SimulatePower(on_battery=True, battery_percent=120))
