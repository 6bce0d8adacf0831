"""The Modbus gateway against a real pymodbus client on loopback, on virtual time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pykka
import pytest
from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ConnectionException

from actors.gateway_modbus import GatewayStatus, GetStatus, ModbusGateway
from actors.health import HealthState
from actors.runtime import Runtime, call
from controller.clock import VirtualClock
from controller.station_state import StationState
from drivers.modbus.codec import decode, make_spec
from drivers.modbus.gateway_map import REGISTER_COUNT, decode_registers
from tests.actors.probe import Probe
from tests.waiting import wait_for

STATION = "line1"
INSPECTION = f"inspection.{STATION}.result"
COACHING = f"coaching.{STATION}.state"


def start_gateway(runtime: Runtime, **kw: Any) -> tuple[pykka.ActorRef[Any], GatewayStatus]:
    ref = ModbusGateway.start(runtime, "gateway:modbus", station_id=STATION, port=0, **kw)
    return ref, call(runtime, ref, GetStatus())


@pytest.fixture
def gateway(runtime: Runtime) -> tuple[pykka.ActorRef[Any], GatewayStatus]:
    return start_gateway(runtime)


@pytest.fixture
def plc(gateway: tuple[pykka.ActorRef[Any], GatewayStatus]) -> Iterator[ModbusTcpClient]:
    client = ModbusTcpClient("127.0.0.1", port=gateway[1].port, timeout=2, retries=0)
    assert client.connect()
    yield client
    client.close()


def registers(plc: ModbusTcpClient, holding: bool = False) -> list[int]:
    read = plc.read_holding_registers if holding else plc.read_input_registers
    reply = read(0, count=REGISTER_COUNT, device_id=1)
    assert not reply.isError(), reply
    return list(reply.registers)


def watch(runtime: Runtime, pattern: str) -> pykka.ActorRef[Any]:
    ref = Probe.start(runtime, f"watch:{pattern}")
    runtime.bus.subscribe_actor([pattern], ref)
    return ref


def seen(ref: pykka.ActorRef[Any]) -> list[Any]:
    return [e.data for e in ref.proxy().events.get()]


def inspection(decision: str, ts_us: int, confidence: float = 0.5) -> dict[str, Any]:
    return {"decision": decision, "confidence": confidence, "objects_found": 3,
            "cycle_time_ms": 18.25, "ts_us": ts_us}


def test_a_plc_reads_the_station_state_at_the_documented_addresses(
    runtime: Runtime, vclock: VirtualClock, plc: ModbusTcpClient
) -> None:
    now = vclock.now_us()
    runtime.bus.publish(INSPECTION, inspection("pass", now - 2_000_000))
    runtime.bus.publish(INSPECTION, inspection("fail", now - 1_000_000))
    runtime.bus.publish(INSPECTION, inspection("pass", now, confidence=0.75))
    runtime.bus.publish(COACHING, {"assembly": "PUMP-7", "step": 2, "step_state": "active",
                                   "release_allowed": True})
    assert runtime.wait_idle(5)
    words = registers(plc)
    assert StationState(**decode_registers(words)) == StationState(
        last_decision="pass", last_confidence=0.75, objects_found=3, cycle_time_ms=18.25,
        pass_count=2, fail_count=1, uncertain_count=0,
        pass_rate_1h=pytest.approx(200 / 3, rel=1e-6),  # float32 on the wire
        last_inspection_us=now // 1000 * 1000, system_status="healthy",
        current_assembly="PUMP-7", current_step=2, step_state="active",
        release_allowed=True, heartbeat=0,
    )
    # The holding registers mirror the same layout for FC 3-only clients.
    assert registers(plc, holding=True) == words
    # Spot checks straight at the documented addresses, decoded with the plain codec.
    count = plc.read_input_registers(6, count=2, device_id=1).registers
    assert decode(make_spec("input_register", 6, "uint32"), count) == 2
    assert plc.read_input_registers(0, count=1, device_id=1).registers == [1]  # pass
    assert plc.read_discrete_inputs(0, count=3, device_id=1).bits[:3] == [True, True, False]


def test_coil_writes_enter_takt_once_per_change_in_order(
    runtime: Runtime, gateway: tuple[pykka.ActorRef[Any], GatewayStatus],
    plc: ModbusTcpClient,
) -> None:
    inputs = watch(runtime, "input.gateway.modbus")
    assert not plc.write_coil(0, True, device_id=1).isError()
    assert not plc.write_coil(0, True, device_id=1).isError()  # rewritten: no change
    assert not plc.write_coils(0, [True, True, True], device_id=1).isError()
    assert not plc.write_coil(1, False, device_id=1).isError()
    assert runtime.wait_idle(5)
    assert seen(inputs) == [
        {"signal": "part_present", "value": True},
        {"signal": "request", "value": True},
        {"signal": "reset", "value": True},
        {"signal": "request", "value": False},
    ]
    assert plc.read_coils(0, count=3, device_id=1).bits[:3] == [True, False, True]
    status = call(runtime, gateway[0], GetStatus())
    assert (status.writes_received, status.inputs_published, status.writes_refused) == (4, 4, 0)


def test_writes_to_state_or_unmapped_addresses_are_refused_and_change_nothing(
    runtime: Runtime, gateway: tuple[pykka.ActorRef[Any], GatewayStatus],
    plc: ModbusTcpClient,
) -> None:
    inputs = watch(runtime, "input.gateway.modbus")
    before = registers(plc, holding=True)
    refused = [
        plc.write_register(0, 2, device_id=1),  # LastDecision (holding mirror)
        plc.write_registers(6, [0, 99], device_id=1),  # PassCount
        plc.write_coil(3, True, device_id=1),  # beyond the input coils
        plc.write_coils(2, [True, True], device_id=1),  # crosses the end: all refused
        plc.write_register(REGISTER_COUNT, 1, device_id=1),  # past the map
    ]
    assert [r.isError() for r in refused] == [True] * 5
    assert {r.exception_code for r in refused} == {2}  # illegal data address
    assert runtime.wait_idle(5)
    assert seen(inputs) == []
    assert registers(plc, holding=True) == before
    assert plc.read_coils(0, count=3, device_id=1).bits[:3] == [False, False, False]
    status = call(runtime, gateway[0], GetStatus())
    assert (status.writes_received, status.writes_refused) == (0, 5)


def test_reads_outside_the_map_and_other_units_get_exceptions(plc: ModbusTcpClient) -> None:
    assert plc.read_input_registers(REGISTER_COUNT, count=1).exception_code == 2
    assert plc.read_holding_registers(0, count=REGISTER_COUNT + 1).exception_code == 2
    assert plc.read_coils(16, count=1).exception_code == 2
    assert plc.read_input_registers(0, count=1, device_id=2).exception_code == 4
    assert not plc.read_holding_registers(0, count=REGISTER_COUNT).isError()


def test_heartbeat_and_life_bit_advance_with_the_clock(
    runtime: Runtime, vclock: VirtualClock, plc: ModbusTcpClient
) -> None:
    assert registers(plc)[21] == 0
    for beat in (1, 2, 3):
        vclock.advance(1.0)
        assert runtime.wait_idle(5)
        assert registers(plc)[21] == beat
        assert plc.read_discrete_inputs(2, count=1, device_id=1).bits[0] is (beat % 2 == 1)


def test_pass_rate_ages_out_on_the_heartbeat(runtime: Runtime, vclock: VirtualClock) -> None:
    _, status = start_gateway(runtime, heartbeat_s=60.0)
    runtime.bus.publish(INSPECTION, inspection("pass", vclock.now_us()))
    assert runtime.wait_idle(5)
    with ModbusTcpClient("127.0.0.1", port=status.port, timeout=2, retries=0) as plc:
        rate = make_spec("input_register", 12, "float32")
        assert decode(rate, plc.read_input_registers(12, count=2).registers) == 100.0
        vclock.run_until_idle(runtime.wait_idle, until_us=vclock.now_us() + 61 * 60_000_000)
        assert decode(rate, plc.read_input_registers(12, count=2).registers) == 0.0
        assert plc.read_input_registers(6, count=2).registers == [0, 1]  # the count stays


def test_system_status_follows_component_health(
    runtime: Runtime, plc: ModbusTcpClient
) -> None:
    assert registers(plc)[18] == 1  # healthy
    runtime.health.register("camera:top", critical=True)
    runtime.health.set_state("camera:top", HealthState.DOWN, "lost")
    assert runtime.wait_idle(5)
    assert registers(plc)[18] == 3  # unhealthy
    assert plc.read_discrete_inputs(1, count=1, device_id=1).bits[0] is False
    runtime.health.set_state("camera:top", HealthState.UP)
    assert runtime.wait_idle(5)
    assert registers(plc)[18] == 1


def test_a_gateway_started_later_shows_the_current_coaching_state(runtime: Runtime) -> None:
    runtime.bus.publish(COACHING, {"assembly": "VALVE", "step": 0, "step_state": "active",
                                   "release_allowed": False})
    _, status = start_gateway(runtime)
    with ModbusTcpClient("127.0.0.1", port=status.port, timeout=2, retries=0) as plc:
        state = decode_registers(registers(plc))
    assert (state["current_assembly"], state["current_step"], state["step_state"]) == (
        "VALVE", 0, "active")


def test_bad_events_are_counted_and_change_nothing(
    runtime: Runtime, gateway: tuple[pykka.ActorRef[Any], GatewayStatus],
    plc: ModbusTcpClient, caplog: pytest.LogCaptureFixture,
) -> None:
    before = registers(plc)
    runtime.bus.publish(INSPECTION, {"decision": "pass", "confidence": 7})
    runtime.bus.publish(COACHING, "not a state")
    assert runtime.wait_idle(5)
    assert registers(plc) == before
    assert call(runtime, gateway[0], GetStatus()).bad_events == 2
    assert runtime.health.state("gateway:modbus") == HealthState.UP
    assert any("confidence" in r.getMessage() for r in caplog.records)


def test_status_reports_the_bound_port_and_connected_clients(
    runtime: Runtime, gateway: tuple[pykka.ActorRef[Any], GatewayStatus]
) -> None:
    ref, status = gateway
    assert status.running and status.enabled and status.port > 0
    assert status.endpoint == f"modbus-tcp://127.0.0.1:{status.port}"
    assert status.clients == 0
    with ModbusTcpClient("127.0.0.1", port=status.port, timeout=2, retries=0) as client:
        assert client.connect()
        wait_for(lambda: call(runtime, ref, GetStatus()).clients == 1)
    wait_for(lambda: call(runtime, ref, GetStatus()).clients == 0)


def test_a_port_in_use_fails_the_start_with_a_clear_error(
    runtime: Runtime, gateway: tuple[pykka.ActorRef[Any], GatewayStatus]
) -> None:
    port = gateway[1].port
    ModbusGateway.start(runtime, "gateway:modbus2", station_id=STATION, port=port)
    assert runtime.wait_idle(5)
    health = runtime.health.component("gateway:modbus2")
    assert health.state == HealthState.DOWN
    assert f"cannot listen on 127.0.0.1:{port}" in (health.last_error or "")
    assert "in use" in (health.last_error or "")


def test_stop_closes_clients_and_frees_the_port(
    runtime: Runtime, gateway: tuple[pykka.ActorRef[Any], GatewayStatus],
    plc: ModbusTcpClient,
) -> None:
    ref, status = gateway
    ref.stop()
    with pytest.raises(ConnectionException):
        plc.read_input_registers(0, count=1)
    with ModbusTcpClient("127.0.0.1", port=status.port, timeout=1, retries=0) as late:
        assert not late.connect()
    # The same port binds again at once (a supervisor restart).
    again = ModbusGateway.start(runtime, "gateway:modbus", station_id=STATION,
                                port=status.port)
    assert call(runtime, again, GetStatus()).port == status.port
