"""The OPC-UA gateway against a real asyncua client on loopback.

asyncua takes seconds to build a server's standard address space, so one gateway serves
the whole module (actors are stopped at the module's end, not after each test) and the
tests look at changes relative to what they found.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Coroutine, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import msgspec
import pykka
import pytest
from asyncua import Client, ua
from asyncua.ua.uaerrors import BadTypeMismatch, BadUserAccessDenied

from actors.gateway_opcua import (
    GetOpcuaStatus,
    OpcuaGateway,
    OpcuaStatus,
    input_node_ids,
    state_node_ids,
)
from actors.health import HealthState
from actors.runtime import Runtime, call
from controller.clock import VirtualClock
from drivers.loop_thread import LoopThread
from tests.actors.probe import Probe
from tests.waiting import wait_for

STATION = "line1"  # the station the document's node table is written for
DOC = Path(__file__).resolve().parents[2] / "docs" / "plc-gateway.md"
INSPECTION = f"inspection.{STATION}.result"
COACHING = f"coaching.{STATION}.state"
T = TypeVar("T")


class Station(msgspec.Struct, kw_only=True):
    runtime: Runtime
    clock: VirtualClock
    gateway: pykka.ActorRef[Any]
    status: OpcuaStatus
    loop: LoopThread
    client: Client

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run(coro, 10)

    def node(self, name: str) -> Any:
        ids = {**state_node_ids(STATION), **input_node_ids(STATION)}
        return self.client.get_node(f"ns=2;s={ids.get(name, name)}")

    def read(self, name: str) -> Any:
        return self.run(self.read_async(name))

    async def read_async(self, name: str) -> Any:
        return await self.node(name).read_value()

    def wait_value(self, name: str, want: Any) -> None:
        wait_for(lambda: self.read(name) == want)


def running(runtime: Runtime, ref: pykka.ActorRef[Any]) -> OpcuaStatus:
    return wait_for(lambda: (s := call(runtime, ref, GetOpcuaStatus())).running and s, 60)


@pytest.fixture(autouse=True)
def _stop_all_actors() -> Iterator[None]:
    # Overrides the per-test stop of tests/conftest.py: the module's gateway must live on.
    yield


@pytest.fixture(scope="module")
def station() -> Iterator[Station]:
    clock = VirtualClock()
    runtime = Runtime(clock=clock)
    ref = OpcuaGateway.start(runtime, "gateway:opcua", station_id=STATION, port=0)
    status = running(runtime, ref)
    loop = LoopThread("opcua-test-client")
    loop.start()
    client = Client(status.endpoint, timeout=5)
    loop.run(client.connect(), 10)
    try:
        yield Station(runtime=runtime, clock=clock, gateway=ref, status=status, loop=loop,
                      client=client)
    finally:
        with contextlib.suppress(Exception):  # the last test stops the server under it
            loop.run(client.disconnect(), 10)
        loop.stop()
        pykka.ActorRegistry.stop_all(block=True, timeout=10)


@pytest.fixture
def inputs(station: Station) -> Iterator[pykka.ActorRef[Any]]:
    ref = Probe.start(station.runtime, "watch:opcua-inputs")
    sub = station.runtime.bus.subscribe_actor(["input.gateway.opcua"], ref)
    yield ref
    station.runtime.bus.unsubscribe(sub)
    ref.stop()


def inspection(decision: str, ts_us: int, confidence: float = 0.5) -> dict[str, Any]:
    return {"decision": decision, "confidence": confidence, "objects_found": 4,
            "cycle_time_ms": 21.5, "ts_us": ts_us}


def test_status_has_the_seed_shape_and_the_bound_port(station: Station) -> None:
    port = station.status.endpoint.rsplit(":", 1)[1].split("/")[0]
    assert int(port) > 0
    assert msgspec.to_builtins(call(station.runtime, station.gateway, GetOpcuaStatus())) == {
        "enabled": True,
        "running": True,
        "endpoint": f"opc.tcp://127.0.0.1:{port}/takt",
        "station_count": 1,
        "nodes": [f"station/{STATION}", "SystemStatus"],
    }
    assert station.runtime.health.state("gateway:opcua") == HealthState.UP


def test_the_address_space_is_where_the_document_says(station: Station) -> None:
    objects = station.client.nodes.objects
    leaf = station.run(objects.get_child(["2:Stations", f"2:{STATION}", "2:LastDecision"]))
    assert leaf.nodeid == ua.NodeId(f"Stations.{STATION}.LastDecision", 2)
    top = station.run(objects.get_child(["2:SystemStatus"]))
    assert top.nodeid.to_string() == "ns=2;s=SystemStatus"
    assert station.run(station.client.get_namespace_index("urn:takt:station")) == 2
    types = {name: station.run(station.node(name).read_data_type_as_variant_type())
             for name in ("LastDecision", "LastConfidence", "ObjectsFound", "PassCount",
                          "LastInspectionTime", "CurrentStep", "ReleaseAllowed", "Heartbeat",
                          "PartPresent")}
    document = DOC.read_text(encoding="utf-8")
    for identifier in {**state_node_ids(STATION), **input_node_ids(STATION)}.values():
        assert f"`ns=2;s={identifier}`" in document
    vt = ua.VariantType
    assert types == {
        "LastDecision": vt.String, "LastConfidence": vt.Double, "ObjectsFound": vt.Int32,
        "PassCount": vt.UInt32, "LastInspectionTime": vt.DateTime, "CurrentStep": vt.Int32,
        "ReleaseAllowed": vt.Boolean, "Heartbeat": vt.UInt16, "PartPresent": vt.Boolean,
    }


def test_a_client_reads_the_station_state(station: Station) -> None:
    passes, fails = station.read("PassCount"), station.read("FailCount")
    now = station.clock.now_us()
    station.runtime.bus.publish(INSPECTION, inspection("fail", now - 1_000_000))
    station.runtime.bus.publish(INSPECTION, inspection("pass", now, confidence=0.875))
    station.runtime.bus.publish(COACHING, {"assembly": "PUMP-7", "step": 3,
                                           "step_state": "paused", "release_allowed": True})
    when = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=now)
    station.wait_value("LastInspectionTime", when)
    station.wait_value("CurrentAssembly", "PUMP-7")
    assert station.read("LastDecision") == "pass"
    assert station.read("LastConfidence") == 0.875
    assert station.read("ObjectsFound") == 4
    assert station.read("CycleTimeMs") == 21.5
    assert (station.read("PassCount"), station.read("FailCount")) == (passes + 1, fails + 1)
    assert 0 < station.read("PassRate1h") < 100
    assert (station.read("CurrentStep"), station.read("StepState")) == (3, "paused")
    assert station.read("ReleaseAllowed") is True
    station.runtime.bus.publish(COACHING, {"assembly": None, "step": None,
                                           "step_state": "idle", "release_allowed": False})
    station.wait_value("CurrentStep", -1)
    assert station.read("CurrentAssembly") == ""


def test_a_subscriber_is_told_of_a_new_decision(station: Station) -> None:
    class Changes:
        def __init__(self) -> None:
            self.values: list[Any] = []

        def datachange_notification(self, node: Any, value: Any, data: Any) -> None:
            self.values.append(value)

    changes = Changes()
    sub = station.run(station.client.create_subscription(10, changes))
    station.run(sub.subscribe_data_change(station.node("LastDecision")))
    current = wait_for(lambda: changes.values)[-1]  # the initial notification
    new = "uncertain" if current != "uncertain" else "fail"
    station.runtime.bus.publish(INSPECTION, inspection(new, station.clock.now_us()))
    wait_for(lambda: changes.values[-1] == new)
    station.run(sub.delete())


def test_client_writes_to_inputs_enter_takt_once_per_change(
    station: Station, inputs: pykka.ActorRef[Any]
) -> None:
    part, request = station.node("PartPresent"), station.node("Request")
    station.run(part.write_value(True))
    station.run(part.write_value(True))  # the same value again is not news
    station.run(request.write_value(True))
    station.run(part.write_value(False))
    assert station.runtime.wait_idle(5)
    assert [e.data for e in inputs.proxy().events.get()] == [
        {"signal": "part_present", "value": True},
        {"signal": "request", "value": True},
        {"signal": "part_present", "value": False},
    ]
    assert station.read("Request") is True
    station.run(request.write_value(False))


def test_state_nodes_and_wrong_types_are_refused(
    station: Station, inputs: pykka.ActorRef[Any]
) -> None:
    before = station.read("LastDecision")
    with pytest.raises(BadUserAccessDenied):
        station.run(station.node("LastDecision").write_value("pass" if before != "pass"
                                                              else "fail"))
    with pytest.raises(BadUserAccessDenied):
        station.run(station.node("SystemStatus").write_value("healthy"))
    with pytest.raises(BadTypeMismatch):
        station.run(station.node("Reset").write_value(ua.Variant(1, ua.VariantType.Int32)))
    assert station.read("LastDecision") == before
    assert station.read("Reset") is False
    assert station.runtime.wait_idle(5)
    assert inputs.proxy().events.get() == []


def test_heartbeat_and_system_status_follow_the_station(station: Station) -> None:
    beat = station.read("Heartbeat")
    station.clock.advance(1.0)
    station.wait_value("Heartbeat", (beat + 1) % 65536)
    health = station.runtime.health
    health.register("camera:top", critical=True)
    health.set_state("camera:top", HealthState.DOWN, "lost")
    station.wait_value("SystemStatus", "unhealthy")
    assert station.run(station.client.get_node("ns=2;s=SystemStatus").read_value()) == \
        "unhealthy"
    health.set_state("camera:top", HealthState.UP)
    station.wait_value("SystemStatus", "healthy")


def test_a_port_in_use_fails_the_start_at_once_with_a_clear_error(station: Station) -> None:
    port = int(station.status.endpoint.rsplit(":", 1)[1].split("/")[0])
    OpcuaGateway.start(station.runtime, "gateway:opcua2", station_id=STATION, port=port)
    assert station.runtime.wait_idle(5)
    health = station.runtime.health.component("gateway:opcua2")
    assert health.state == HealthState.DOWN
    assert f"cannot listen on 127.0.0.1:{port}" in (health.last_error or "")
    assert "in use" in (health.last_error or "")


def test_a_port_taken_while_the_server_starts_fails_the_actor_clearly() -> None:
    runtime = Runtime(clock=VirtualClock())
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    OpcuaGateway.start(runtime, "gateway:opcua4", station_id="cell4", port=port)
    # The start checked the port was free; another program takes it before the server,
    # which spends a second or more building its address space, gets to bind it.
    with socket.socket() as squatter:
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        wait_for(lambda: runtime.health.state("gateway:opcua4") == HealthState.DOWN, 60)
    error = runtime.health.component("gateway:opcua4").last_error or ""
    assert error.startswith("OpcuaBindError: OPC-UA gateway cannot listen on")
    assert f"127.0.0.1:{port}" in error


def test_stop_closes_clients_and_frees_the_port_even_while_starting(station: Station) -> None:
    """Last in the module: it stops the module's gateway."""
    port = int(station.status.endpoint.rsplit(":", 1)[1].split("/")[0])
    station.gateway.stop()
    with pytest.raises(Exception):  # noqa: B017 - the connection is gone, however asyncua says it
        station.run(station.read_async("LastDecision"))
    refused = (ConnectionError, OSError, TimeoutError)
    with pytest.raises(refused):
        station.run(Client(station.status.endpoint, timeout=1).connect())
    # The port is free at once: a restart binds it. Stopped again while its server is
    # still being built, it leaves nothing behind either.
    again = OpcuaGateway.start(station.runtime, "gateway:opcua", station_id=STATION, port=port)
    assert station.runtime.wait_idle(5)
    assert station.runtime.health.component("gateway:opcua").last_error is None
    again.stop()
    with pytest.raises(refused):
        station.run(Client(station.status.endpoint, timeout=1).connect())
