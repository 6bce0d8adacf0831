"""/api/v1/wrenches and /api/v1/torque: wrenches configured over the API against the Open
Protocol controller simulator; commands, results, torque settings, refusals and a lost link."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from controller.boot import Station
from drivers.openprotocol.mids import Mid
from sim.openprotocol_controller import OpenProtocolControllerSim
from tests.api.conftest import admin, eventually

PSET_1 = {"number": 1, "name": "M6", "torque_min_nm": 9.5, "torque_max_nm": 10.5,
          "torque_target_nm": 10.0, "angle_min": 30, "angle_max": 90}


@pytest.fixture
def controller() -> Iterator[OpenProtocolControllerSim]:
    with OpenProtocolControllerSim(port=0, torque_stddev_cnm=0.0, angle_stddev=0.0) as sim:
        yield sim


async def put_wrench(client: Any, auth: dict[str, str], port: int, **extra: Any) -> Any:
    body = [{"name": "w1", "port": port, "timeout_ms": 1000, "model": "PF6000",
             "psets": [PSET_1], **extra}]
    response = await client.put("/api/v1/wrenches", headers=auth, json=body)
    assert response.status_code == 200, await response.get_data()
    return await response.get_json()


async def up(client: Any, auth: dict[str, str]) -> Any:
    async def check() -> Any:
        entry = await (await client.get("/api/v1/wrenches/w1/status", headers=auth)).get_json()
        return entry["state"] == "UP" and entry["status"]["connection"] == "connected" and entry

    return await eventually(check)


async def post(client: Any, auth: dict[str, str], path: str, body: Any = None) -> Any:
    if body is None:
        return await client.post(f"/api/v1/wrenches/w1/{path}", headers=auth)
    return await client.post(f"/api/v1/wrenches/w1/{path}", headers=auth, json=body)


async def test_commands_results_and_the_journal(
        controller: OpenProtocolControllerSim, client: Any, station: Station) -> None:
    auth = await admin(client, station)
    assert await (await client.get("/api/v1/wrenches", headers=auth)).get_json() == []
    applied = await put_wrench(client, auth, controller.port, default_pset=1)
    assert applied["started"] == ["wrench:w1"]
    entry = await up(client, auth)
    assert entry["config"]["model"] == "PF6000" and entry["status"]["controller"][
        "controller_name"] == "Takt sim controller"
    assert controller.subscribers == 1 and controller.selected_pset == 1

    r = await post(client, auth, "toggle", {"action": "disable"})
    assert r.status_code == 200 and (await r.get_json())["tool_enabled"] is False
    assert not controller.tool_enabled and controller.tighten() is None
    r = await post(client, auth, "toggle", {"action": "lock"})
    assert (await r.get_json())["locked"] is True
    r = await post(client, auth, "toggle", {"action": "enable", "program_nr": 2})
    assert r.status_code == 409 and "locked" in (await r.get_json())["detail"]
    assert not controller.tool_enabled
    await post(client, auth, "toggle", {"action": "unlock"})
    r = await post(client, auth, "toggle", {"action": "enable", "program_nr": 1})
    assert r.status_code == 200 and controller.tool_enabled
    r = await post(client, auth, "toggle", {"action": "enable", "program_nr": 9})
    assert r.status_code == 409 and "error 02" in (await r.get_json())["detail"]

    r = await post(client, auth, "sequence", {"program_nr": 1, "sequence_number": 2})
    assert (await r.get_json())["sequence"] == {"pset": 1, "size": 2, "counter": 0,
                                                 "complete": False}
    assert controller.pset(1).batch_size == 2  # the controller counts the same batch
    controller.tighten(ok=True)
    controller.tighten(ok=False)
    controller.tighten(ok=True)

    async def three() -> Any:
        state = await (await client.get("/api/v1/wrenches/w1/state", headers=auth)).get_json()
        return state["results"] == 3 and state

    state = await eventually(three)
    assert (state["ok"], state["nok"], state["sequence"]["complete"]) == (2, 1, True)
    assert state["last_result"]["ok"] is True and state["last_result"]["torque_nm"] == 10.0
    last = state["last_result"]
    assert (last["batch_size"], last["batch_counter"], last["batch_status"]) == (2, 2, "ok")

    page = await (await client.get("/api/v1/wrenches/w1/results?limit=2",
                                   headers=auth)).get_json()
    assert [t["ok"] for t in page["items"]] == [True, False] and page["next_cursor"]
    rest = await (await client.get(f"/api/v1/wrenches/w1/results?cursor={page['next_cursor']}",
                                   headers=auth)).get_json()
    assert len(rest["items"]) == 1 and rest["next_cursor"] is None
    noks = await (await client.get("/api/v1/wrenches/w1/results?ok=false",
                                   headers=auth)).get_json()
    assert [t["controller_ok"] for t in noks["items"]] == [False]

    async def journaled() -> Any:
        r = await client.get("/api/v1/events?category=wrench", headers=auth)
        return (await r.get_json())["items"]

    entries = await eventually(journaled)
    assert {e["severity"] for e in entries} <= {"warning", "info"}
    assert any(e["severity"] == "warning" and "NOK tightening" in e["message"] for e in entries)
    commands = await (await client.get("/api/v1/journal?topic=command.",
                                       headers=auth)).get_json()
    assert any(i["data"].get("toggle") == "lock" for i in commands["items"])

    state = await (await post(client, auth, "clear")).get_json()
    assert state["last_result"] is None and state["sequence"]["counter"] == 0
    state = await (await post(client, auth, "cancel")).get_json()
    assert state["tool_enabled"] is False and not controller.tool_enabled
    assert (await (await post(client, auth, "test")).get_json())["ok"] is True


async def test_a_controller_without_batch_support_still_runs_the_sequence(
        client: Any, station: Station) -> None:
    auth = await admin(client, station)
    with OpenProtocolControllerSim(port=0, batch_size_revision=None, torque_stddev_cnm=0.0,
                                   angle_stddev=0.0) as old:
        await put_wrench(client, auth, old.port)
        await up(client, auth)
        r = await post(client, auth, "sequence", {"program_nr": 1, "sequence_number": 2})
        assert r.status_code == 200, await r.get_data()
        state = await r.get_json()
        assert state["sequence"] == {"pset": 1, "size": 2, "counter": 0, "complete": False}
        assert "refused" in state["error"] and "error 99" in state["error"]
        assert old.received(Mid.SET_BATCH_SIZE) == 1 and old.pset(1).batch_size == 4
        old.tighten(ok=True)
        old.tighten(ok=True)

        async def counted() -> Any:
            state = await (await client.get("/api/v1/wrenches/w1/state", headers=auth)).get_json()
            return state["results"] == 2 and state

        state = await eventually(counted)
    assert state["sequence"]["counter"] == 2 and state["sequence"]["complete"] is True


async def test_torque_settings_and_programs(
        controller: OpenProtocolControllerSim, client: Any, station: Station) -> None:
    auth = await admin(client, station)
    await put_wrench(client, auth, controller.port)
    await up(client, auth)
    r = await post(client, auth, "program", {"program_nr": 2, "program": {
        "torque_min_nm": 24, "torque_max_nm": 26, "torque_target_nm": 25, "batch_size": 3}})
    assert r.status_code == 200, await r.get_data()
    assert (await r.get_json())["source"] == "stored"
    settings = await (await client.get("/api/v1/torque/settings", headers=auth)).get_json()
    (w1,) = settings["wrenches"]
    assert [(p["number"], p["source"]) for p in w1["psets"]] == [(1, "config"), (2, "stored")]

    body = {"wrenches": [{"wrench": "w1", "psets": [
        {"number": 1, "torque_min_nm": 9.0, "torque_max_nm": 11.0, "torque_target_nm": 10.0}]}]}
    r = await client.put("/api/v1/torque/settings", headers=auth, json=body)
    assert r.status_code == 200, await r.get_data()
    (w1,) = (await r.get_json())["wrenches"]
    assert [(p["number"], p["source"], p["torque_min_nm"]) for p in w1["psets"]] == [
        (1, "stored", 9.0)]  # pset 2 was stored, and is replaced by nothing

    bad = {"wrenches": [
        {"wrench": "w1", "psets": [
            {"number": 1, "torque_min_nm": 5, "torque_max_nm": 4, "torque_target_nm": 4.5},
            {"number": 1, "torque_min_nm": 1, "torque_max_nm": 2, "torque_target_nm": 1.5}]},
        {"wrench": "nope", "psets": []}]}
    r = await client.put("/api/v1/torque/settings", headers=auth, json=bad)
    assert r.status_code == 422
    fields = {e["field"] for e in (await r.get_json())["errors"]}
    assert fields == {"wrenches[0].psets[0].torque_target_nm", "wrenches[0].psets[1].number",
                      "wrenches[1].wrench"}
    r = await post(client, auth, "program", {"program_nr": 3, "program": {
        "torque_min_nm": 5, "torque_max_nm": 4, "torque_target_nm": 4.5}})
    assert r.status_code == 422
    assert [e["field"] for e in (await r.get_json())["errors"]] == ["program.torque_target_nm"]


async def test_unknown_wrenches_bad_bodies_and_bad_configs(
        controller: OpenProtocolControllerSim, client: Any, station: Station) -> None:
    auth = await admin(client, station)
    for method, path in [("get", "status"), ("get", "state"), ("get", "results"),
                         ("post", "connect"), ("post", "disconnect"), ("post", "clear"),
                         ("post", "cancel"), ("post", "test")]:
        r = await getattr(client, method)(f"/api/v1/wrenches/nope/{path}", headers=auth)
        assert r.status_code == 404, path
    r = await client.post("/api/v1/wrenches/nope/toggle", headers=auth, json={"action": "lock"})
    assert r.status_code == 404

    await put_wrench(client, auth, controller.port)
    await up(client, auth)
    for path, body in [("toggle", {"action": "explode"}), ("toggle", {"action": "enable",
                                                                      "program_nr": 1000}),
                       ("sequence", {"program_nr": 1, "sequence_number": -1}),
                       ("program", {"program_nr": 1}), ("toggle", {"action": "enable",
                                                                   "extra": 1})]:
        r = await post(client, auth, path, body)
        assert r.status_code == 422, (path, body)
        assert r.headers["Content-Type"] == "application/problem+json"
    r = await client.get("/api/v1/wrenches/w1/results?limit=0", headers=auth)
    assert r.status_code == 400

    body = [{"name": "a", "protocol": "PFCS"}, {"name": "b", "port": 4545},
            {"name": "c", "port": 4546, "psets": [PSET_1, PSET_1]}]
    r = await client.put("/api/v1/wrenches", headers=auth, json=body)
    assert r.status_code == 422
    errors = {e["field"]: e["message"] for e in (await r.get_json())["errors"]}
    assert "not supported" in errors["[0].protocol"]
    assert set(errors) == {"[0].protocol", "[1].port", "[2].psets[1].number"}
    r = await client.put("/api/v1/wrenches", headers=auth, json=[{"name": f"w{i}", "port": 5000 + i}
                                                                 for i in range(11)])
    assert [e["field"] for e in (await r.get_json())["errors"]] == ["[10]"]
    catalog = await (await client.get("/api/v1/catalog/wrenches", headers=auth)).get_json()
    assert catalog["protocols"][0] == {"protocol": "OPEN_PROTOCOL", "supported": True,
                                       "default_port": 4545}


async def test_a_lost_controller_is_503_then_reconnects_and_discovery(
        controller: OpenProtocolControllerSim, client: Any, station: Station) -> None:
    auth = await admin(client, station)
    with OpenProtocolControllerSim(port=0) as spare:
        spare_port = spare.port  # a port nobody listens on once the spare stops
    await put_wrench(client, auth, controller.port)
    await up(client, auth)
    listed = await (await client.get("/api/v1/wrenches/discover", headers=auth)).get_json()
    assert listed == [{"name": "w1", "address": f"127.0.0.1:{controller.port}", "enabled": True,
                       "state": "UP", "reachable": True,
                       "controller_name": "Takt sim controller", "detail": None}]

    r = await post(client, auth, "disconnect")
    assert (await r.get_json())["connection"] == "disconnected"
    r = await post(client, auth, "toggle", {"action": "enable"})
    assert r.status_code == 409
    r = await post(client, auth, "connect")
    assert r.status_code == 200 and controller.received(Mid.RESULT_SUBSCRIBE) == 2

    controller.stop()

    async def down() -> Any:
        entry = await (await client.get("/api/v1/wrenches/w1/status", headers=auth)).get_json()
        return entry["state"] == "DOWN" and entry["status"] is None and entry

    await eventually(down)
    for path, body in [("toggle", {"action": "disable"}), ("clear", None), ("cancel", None)]:
        r = await post(client, auth, path, body)  # also mid-retry: the start fails, so 503
        assert r.status_code == 503, path
        assert r.headers["Retry-After"] == "5"
    listed = await (await client.get("/api/v1/wrenches/discover?timeout_ms=200",
                                     headers=auth)).get_json()
    assert listed[0]["reachable"] is False

    controller.start()
    r = await post(client, auth, "connect")
    assert r.status_code in (200, 202)
    await up(client, auth)
    assert controller.subscribers == 1
    await put_wrench(client, auth, spare_port)  # nothing there: DOWN, and discovery says so
    await eventually(down)
    listed = await (await client.get("/api/v1/wrenches/discover?timeout_ms=200",
                                     headers=auth)).get_json()
    assert listed[0]["reachable"] is False and listed[0]["detail"]
