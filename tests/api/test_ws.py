"""/ws: auth, subscribe, snapshot then events, and bad messages that change nothing."""

from __future__ import annotations

import json
from typing import Any

import trio

from controller.boot import Station
from drivers.modbus.codec import make_spec
from sim.modbus_plc import ModbusPlcSimulator
from tests.api.conftest import login

PART = make_spec("coil", 0, "bool")


async def receive(ws: Any, timeout: float = 5.0) -> dict[str, Any]:
    with trio.fail_after(timeout):
        return json.loads(await ws.receive())


async def receive_until(ws: Any, type_: str, timeout: float = 5.0) -> dict[str, Any]:
    with trio.fail_after(timeout):
        while True:
            msg = await receive(ws)
            if msg["type"] == type_:
                return msg


async def test_subscribe_gets_snapshot_then_plc_changes(
    client: Any, station: Station, plc_sim: ModbusPlcSimulator
) -> None:
    token = await login(client, "admin", station.admin_password or "")
    async with client.websocket(f"/ws?token={token}") as ws:
        ready = await receive(ws)
        assert ready["type"] == "ready" and ready["data"]["principal"] == "admin"
        await ws.send(json.dumps({"subscribe": ["device.plc.*"]}))
        snap = await receive_until(ws, "snapshot")
        assert snap["data"]["patterns"] == ["device.plc.*"]
        assert set(snap) == {"type", "seq", "ts", "data"}
        plc_sim.set_value(PART, True)
        event = await receive_until(ws, "bus")
        assert event["topic"] == "device.plc.line1.signal"
        assert event["data"] == {"signal": "part_present", "value": True, "previous": False}
        assert event["seq"] > snap["seq"]
        assert event["ts"].endswith("Z")


async def test_token_as_first_message(client: Any, station: Station) -> None:
    token = await login(client, "admin", station.admin_password or "")
    async with client.websocket("/ws") as ws:
        await ws.send(json.dumps({"subscribe": ["x.*"]}))
        err = await receive(ws)
        assert err["type"] == "error" and "authenticate first" in err["data"]["detail"]
        await ws.send(json.dumps({"token": token}))
        assert (await receive(ws))["type"] == "ready"


async def test_bad_token_closes_with_policy_violation(client: Any) -> None:
    async with client.websocket("/ws?token=forged") as ws:
        err = await receive(ws)
        assert err["type"] == "error" and "invalid token" in err["data"]["detail"]


async def test_malformed_messages_get_errors_and_change_nothing(
    client: Any, station: Station
) -> None:
    token = await login(client, "admin", station.admin_password or "")
    async with client.websocket(f"/ws?token={token}") as ws:
        await receive(ws)
        await ws.send(json.dumps({"subscribe": ["health.*"]}))
        await receive_until(ws, "snapshot")
        bad = [
            "{not json",
            json.dumps({"subscribe": []}),
            json.dumps({"subscribe": ["a b"]}),
            json.dumps({"subscribe": ["devices.plc.*"]}),  # unknown topic root
            json.dumps({"subscribe": "device.*"}),
            json.dumps({"subscribe": ["x"], "token": "t"}),
            json.dumps({"unknown": 1}),
            json.dumps([1, 2]),
        ]
        for text in bad:
            await ws.send(text)
            msg = await receive(ws)
            assert msg["type"] == "error", text
            assert msg["data"]["detail"]
        # The earlier subscription still stands: a health event still arrives.
        station.runtime.bus.publish("health.probe", {"state": "DOWN"})
        event = await receive_until(ws, "bus")
        assert event["topic"] == "health.probe"


async def test_unknown_topic_is_named_in_the_error(client: Any, station: Station) -> None:
    token = await login(client, "admin", station.admin_password or "")
    async with client.websocket(f"/ws?token={token}") as ws:
        await receive(ws)
        await ws.send(json.dumps({"subscribe": ["plc.*"]}))
        err = await receive(ws)
        assert err["type"] == "error"
        assert "unknown topic 'plc.*'" in err["data"]["detail"]
        assert "device.*" in err["data"]["detail"]
