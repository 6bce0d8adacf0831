"""PLC config over the API: PUT is checked, stored, applied in place and survives a restart."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import msgspec

from controller.boot import Station, start_station
from controller.config import parse_config
from drivers.modbus.codec import make_spec
from sim.modbus_plc import ModbusPlcSimulator
from sim.opcua_plc import OpcuaPlcSimulator
from tests.api.conftest import STATION, admin, eventually


def line2(port: int) -> dict[str, Any]:
    return {"name": "line2", "port": port, "poll_interval_ms": 20, "bindings": [
        {"name": "counter", "kind": "holding_register", "address": 0, "type": "uint16"}]}


async def plcs(client: Any, auth: dict[str, str]) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/plcs", headers=auth)
    assert response.status_code == 200
    return await response.get_json()


async def test_put_adds_a_plc_without_touching_the_running_one(
        client: Any, station: Station) -> None:
    auth = await admin(client, station)
    before = station.runtime.directory.get("plc:line1")
    current = [p["config"] for p in await plcs(client, auth)]
    with ModbusPlcSimulator(port=0) as other:
        other.set_value(make_spec("holding_register", 0, "uint16"), 77)
        response = await client.put("/api/v1/plcs", headers=auth,
                                    json=[*current, line2(other.port)])
        assert response.status_code == 200, await response.get_data()
        applied = await response.get_json()
        assert (applied["started"], applied["stopped"], applied["kept"]) == (
            ["plc:line2"], [], ["plc:line1"])
        assert station.runtime.directory.get("plc:line1") is before  # not restarted

        async def counter_seen() -> bool:
            listed = {p["name"]: p for p in await plcs(client, auth)}
            info = listed["line2"]["info"]
            return bool(info) and info["signals"]["counter"]["value"] == 77

        await eventually(counter_seen)


async def test_an_invalid_put_lists_every_problem_and_changes_nothing(
        client: Any, station: Station) -> None:
    auth = await admin(client, station)
    before = await plcs(client, auth)
    bad = copy.deepcopy([p["config"] for p in before])
    bad[0]["bindings"].append({"name": "ghost", "kind": "coil", "address": 0, "type": "bool"})
    bad[0]["bindings"].append({"name": "level", "kind": "coil", "address": 50,
                               "type": "float32", "colour": "red"})
    bad.append({"name": "cell", "protocol": "OPC_UA", "endpoint": "opc.tcp://h:4840",
                "bindings": [{"name": "x", "type": "bool", "node": "not a node"}]})
    response = await client.put("/api/v1/plcs", headers=auth, json=bad)
    assert response.status_code == 422
    assert response.content_type == "application/problem+json"
    errors = {e["field"]: e["message"] for e in (await response.get_json())["errors"]}
    assert "overlaps 'part_present'" in errors["[0].bindings[3].address"]
    assert "type must be bool" in errors["[0].bindings[4].type"]
    assert "unknown key 'colour'" in errors["[0].bindings[4].colour"]
    assert "not an OPC-UA NodeId" in errors["[1].bindings[0].node"]
    assert [p["config"] for p in await plcs(client, auth)] == [p["config"] for p in before]


async def test_binding_put_is_applied_and_survives_a_restart(
        client: Any, station: Station, tmp_path: Path, plc_sim: ModbusPlcSimulator) -> None:
    auth = await admin(client, station)
    response = await client.get("/api/v1/plc/bindings", headers=auth)
    (entry,) = await response.get_json()
    entry["bindings"].append({"name": "temperature", "kind": "holding_register",
                              "address": 10, "type": "float32", "scale": 1.0})
    plc_sim.set_value(make_spec("holding_register", 10, "float32"), 21.5)
    response = await client.put("/api/v1/plc/bindings", headers=auth, json=[entry])
    assert response.status_code == 200, await response.get_data()
    assert (await response.get_json())["started"] == ["plc:line1"]

    async def temperature() -> Any:
        (line1,) = await plcs(client, auth)
        return line1["info"] and line1["info"]["signals"]["temperature"]["value"]

    assert await eventually(temperature) == 21.5
    station.stop()
    config = parse_config(STATION.format(port=plc_sim.port), "test.toml")
    again = start_station(config, tmp_path / "data")  # same data dir, same file
    try:
        names = [b.name for b in again.config.plcs[0].bindings]
        assert "temperature" in names
    finally:
        again.stop()


async def test_bindings_put_reports_errors_at_the_body_position(
        client: Any, station: Station) -> None:
    auth = await admin(client, station)
    (entry,) = await (await client.get("/api/v1/plc/bindings", headers=auth)).get_json()
    body = [{"plc": "line1", "bindings": [
        {"name": "a", "kind": "holding_register", "address": 5, "type": "uint32"},
        {"name": "b", "kind": "holding_register", "address": 6, "type": "uint16"},
        *entry["bindings"]]}]
    response = await client.put("/api/v1/plc/bindings", headers=auth, json=body)
    assert response.status_code == 422
    fields = [e["field"] for e in (await response.get_json())["errors"]]
    assert fields == ["[0].bindings[1].address"]
    # Dropping signals a GPIO point uses is refused, with the GPIO key that needs them.
    response = await client.put("/api/v1/plc/bindings", headers=auth,
                                json=[{"plc": "line1", "bindings": []}])
    fields = [e["field"] for e in (await response.get_json())["errors"]]
    assert fields == ["gpio.buttons[0].signal", "gpio.leds[0].signal"]
    response = await client.put("/api/v1/plc/bindings", headers=auth,
                                json=[{"plc": "nope", "bindings": []}])
    assert response.status_code == 422


async def test_health_test_and_tags(client: Any, station: Station,
                                    plc_sim: ModbusPlcSimulator) -> None:
    auth = await admin(client, station)
    response = await client.get("/api/v1/plcs/line1/health", headers=auth)
    health = await response.get_json()
    assert health["state"] == "UP"
    assert health["info"]["counters"]["malformed_frames"] == 0
    response = await client.post("/api/v1/plcs/line1/test", headers=auth)
    result = await response.get_json()
    assert result["test"]["ok"] is True and result["test"]["signals_read"] == 1
    response = await client.get("/api/v1/plcs/line1/tags", headers=auth)
    tags = {t["name"]: t for t in await response.get_json()}
    assert tags["release"]["address"] == "coil 8" and tags["release"]["writable"] is True
    plc_sim.stop()

    async def down() -> bool:
        response = await client.get("/api/v1/plcs/line1/health", headers=auth)
        return (await response.get_json())["state"] == "DOWN"

    await eventually(down)
    response = await client.post("/api/v1/plcs/line1/test", headers=auth)
    result = await response.get_json()
    assert result["state"] == "DOWN" and result["last_error"]
    assert (await client.get("/api/v1/plcs/nope/health", headers=auth)).status_code == 404


async def test_gpio_buttons_follow_the_plc_and_leds_write_it(
        client: Any, station: Station, plc_sim: ModbusPlcSimulator) -> None:
    auth = await admin(client, station)
    plc_sim.set_value(make_spec("coil", 0, "bool"), True)

    async def pressed() -> bool:
        response = await client.get("/api/v1/gpio/status", headers=auth)
        status = await response.get_json()
        return {b["name"]: b["pressed"] for b in status["buttons"]}["start"] is True

    await eventually(pressed)
    response = await client.post("/api/v1/gpio/buttons/stop/test", headers=auth)
    assert (await response.get_json())["presses"] == 1
    response = await client.post("/api/v1/gpio/leds/ok/set", headers=auth, json={"on": True})
    assert response.status_code == 200 and (await response.get_json())["on"] is True
    assert plc_sim.get_value(make_spec("coil", 8, "bool")) is True
    response = await client.post("/api/v1/gpio/leds/fault/set", headers=auth, json={"on": True})
    assert (await response.get_json())["backend"] == "sim"
    assert (await client.post("/api/v1/gpio/leds/nope/set", headers=auth,
                              json={"on": True})).status_code == 404
    assert (await client.post("/api/v1/gpio/leds/ok/set", headers=auth,
                              json={"on": "yes"})).status_code == 422


async def test_opcua_status_when_the_server_is_off(client: Any, station: Station) -> None:
    auth = await admin(client, station)
    response = await client.get("/api/v1/opcua/status", headers=auth)
    assert msgspec.json.decode(await response.get_data()) == {
        "enabled": False, "running": False, "endpoint": "opc.tcp://127.0.0.1:4840/takt",
        "station_count": 0, "nodes": []}


async def test_opcua_bindings_are_checked_against_the_live_server(
        client: Any, station: Station) -> None:
    auth = await admin(client, station)
    current = [p["config"] for p in await plcs(client, auth)]
    with OpcuaPlcSimulator(port=0) as sim:
        ns = f"ns={sim.namespace_index}"
        cell = {"name": "cell", "protocol": "OPC_UA", "endpoint": sim.endpoint, "bindings": [
            {"name": "part", "node": f"{ns};s=Line1.PartPresent", "type": "bool"},
            {"name": "ghost", "node": f"{ns};s=Line1.NoSuchTag", "type": "bool"},
            {"name": "speed", "node": f"{ns};s=Line1.Speed", "type": "string"}]}
        response = await client.put("/api/v1/plcs", headers=auth, json=[*current, cell])
        assert response.status_code == 422
        errors = {e["field"]: e["message"] for e in (await response.get_json())["errors"]}
        assert set(errors) == {"[1].bindings[1].node", "[1].bindings[2].type"}
        assert "NoSuchTag" in errors["[1].bindings[1].node"]
        del cell["bindings"][1:]
        response = await client.put("/api/v1/plcs", headers=auth, json=[*current, cell])
        assert response.status_code == 200
        assert (await response.get_json())["unverified"] == []
    # With the server gone the config is still accepted, and the answer says it is unchecked.
    cell["bindings"].append({"name": "clamp", "node": f"{ns};s=Line1.ClampClosed",
                             "type": "bool"})
    response = await client.put("/api/v1/plcs", headers=auth, json=[*current, cell])
    assert response.status_code == 200
    (note,) = (await response.get_json())["unverified"]
    assert note.startswith("cell: ")


async def test_a_handshake_added_over_the_api_can_be_started(
        client: Any, station: Station, plc_sim: ModbusPlcSimulator) -> None:
    auth = await admin(client, station)
    (line1,) = [p["config"] for p in await plcs(client, auth)]
    line1["bindings"] += [
        {"name": "move_req", "kind": "coil", "address": 20, "type": "bool", "direction": "out"},
        {"name": "move_ack", "kind": "coil", "address": 21, "type": "bool"},
        {"name": "move_done", "kind": "coil", "address": 22, "type": "bool"},
        {"name": "move_to", "kind": "holding_register", "address": 120, "type": "uint16",
         "direction": "out"}]
    line1["handshakes"] = [{"name": "move", "role": "requester", "request": "move_req",
                            "ack": "move_ack", "done": "move_done", "data": ["move_to"]}]
    response = await client.put("/api/v1/plcs", headers=auth, json=[line1])
    assert response.status_code == 200, await response.get_data()

    async def start(values: dict[str, Any]) -> Any:
        async def answered() -> Any:
            r = await client.post("/api/v1/plcs/line1/handshakes/move/start", headers=auth,
                                  json={"values": values})
            return r if r.status_code != 503 else None  # the PLC is reconnecting

        return await eventually(answered)

    response = await start({"move_to": 7})
    assert (await response.get_json())["phase"] == "requested"
    assert plc_sim.get_value(make_spec("holding_register", 120, "uint16")) == 7
    assert plc_sim.get_value(make_spec("coil", 20, "bool")) is True
    assert (await start({"move_to": 8})).status_code == 409  # one at a time
    assert plc_sim.get_value(make_spec("holding_register", 120, "uint16")) == 7
    response = await client.post("/api/v1/plcs/line1/handshakes/nope/start", headers=auth,
                                 json={"values": {}})
    assert response.status_code == 404
