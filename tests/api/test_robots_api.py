"""/api/v1/robots and /ws/robots: a station driving the robot controller simulator over loopback
HTTP and WebSocket, as an integrator and an HMI would."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from api.app import create_app
from controller.boot import Station, start_station
from controller.config import parse_config
from drivers.robot.messages import MotionState
from sim.robot import RobotSim
from tests.api.conftest import admin, eventually, login

STATION = """
[station]
id = "robot-test"
name = "Robot test station"

[[robots]]
name = "r1"
url = "http://127.0.0.1:{port}"
timeout_ms = 1000
telemetry_interval_s = 600
webhook_base_url = "http://127.0.0.1:9"
"""


@pytest.fixture
def robot() -> Iterator[RobotSim]:
    with RobotSim(realtime=False) as sim:
        yield sim


@pytest.fixture
def station(tmp_path: Path, robot: RobotSim) -> Iterator[Station]:
    st = start_station(parse_config(STATION.format(port=robot.port), "t.toml"), tmp_path / "d")
    yield st
    st.stop()


@pytest.fixture
async def client(station: Station) -> AsyncIterator[Any]:
    app = create_app(station.runtime, station.config, station.token_secret)
    async with app.test_app() as test_app:
        yield test_app.test_client()


@pytest.fixture
async def auth(client: Any, station: Station) -> dict[str, str]:
    headers = await admin(client, station)

    async def up() -> bool:
        r = await client.get("/api/v1/robots/r1", headers=headers)
        return (await r.get_json())["state"] == "UP"

    await eventually(up)
    return headers


async def _json(response: Any) -> Any:
    return await response.get_json()


def drive(robot: RobotSim, until: MotionState, steps: int = 400) -> None:
    for _ in range(steps):
        robot.step(0.25)
        if robot.state().motion is until:
            return
    raise AssertionError(f"the robot never reached {until}")


async def test_status_and_identity_by_name_or_device_id(
        client: Any, auth: dict[str, str], robot: RobotSim) -> None:
    listed = await _json(await client.get("/api/v1/robots", headers=auth))
    assert [e["config"]["name"] for e in listed] == ["r1"]
    status = listed[0]["status"]
    device_id = robot.inspect(lambda d: d.device_id)
    assert status["device"]["device_id"] == device_id
    assert status["connection"] == "connected" and status["active_map"]["map_id"]
    by_id = await client.get(f"/api/v1/robots/{device_id}", headers=auth)
    assert by_id.status_code == 200 and (await _json(by_id))["config"]["name"] == "r1"
    missing = await client.get("/api/v1/robots/r9", headers=auth)
    assert missing.status_code == 404
    assert (await _json(missing))["detail"].startswith("no robot named 'r9'")
    device = await _json(await client.get("/api/v1/robots/r1/device", headers=auth))
    assert device["serial_number"].startswith("SIM-")


async def test_a_goal_is_accepted_followed_and_journaled(
        client: Any, auth: dict[str, str], robot: RobotSim) -> None:
    r = await client.post("/api/v1/robots/r1/commands/go_to_waypoint", headers=auth,
                          json={"name": "pick"})
    assert r.status_code == 200, await r.get_data()
    accepted = await _json(r)
    assert accepted["goal"]["waypoint"] == "pick" and accepted["estimated_time_s"] > 0
    drive(robot, MotionState.ARRIVED)

    async def arrived() -> Any:
        r = await client.get("/api/v1/robots/r1", headers=auth)
        status = (await _json(r))["status"]
        return status["goal_outcomes"].get("arrived") == 1 and status

    status = await eventually(arrived)
    assert status["state"]["motion"] == "arrived"
    live = await _json(await client.get("/api/v1/robots/r1/state", headers=auth))
    assert live["motion"] == "arrived"

    async def audited() -> Any:
        r = await client.get("/api/v1/events?category=audit", headers=auth)
        return [e for e in (await _json(r))["items"] if "go_to_waypoint" in e["message"]]

    assert await eventually(audited)


async def test_refusals_carry_the_robots_reason_and_change_nothing(
        client: Any, auth: dict[str, str], robot: RobotSim) -> None:
    r = await client.post("/api/v1/robots/r1/commands/go_to_location", headers=auth,
                          json={"x": 400.0, "y": 2.0})
    problem = await _json(r)
    assert r.status_code == 422 and problem["reason"] == "outside_map"
    assert "refused" in problem["detail"] and robot.state().goal is None
    r = await client.post("/api/v1/robots/r1/commands/go_to_waypoint", headers=auth,
                          json={"name": "nowhere"})
    assert r.status_code == 404 and (await _json(r))["reason"] == "unknown_waypoint"
    robot.set_battery(10.0)
    r = await client.post("/api/v1/robots/r1/commands/go_to_location", headers=auth,
                          json={"x": 3.0, "y": 2.0})
    assert r.status_code == 409 and (await _json(r))["reason"] == "battery_low"
    dock = await client.post("/api/v1/robots/r1/commands/dock", headers=auth)
    assert dock.status_code == 200  # docking is what a low battery still allows
    await client.post("/api/v1/robots/r1/commands/privacy", headers=auth,
                      json={"enabled": True, "duration_s": 60})
    r = await client.post("/api/v1/robots/r1/commands/capture_media", headers=auth,
                          json={"kind": "photo"})
    assert r.status_code == 409 and (await _json(r))["reason"] == "privacy_active"


@pytest.mark.parametrize(("path", "body", "field"), [
    ("commands/volume", {"volume_level": 150}, "volume_level"),
    ("commands/display_brightness", {"brightness_level": -1}, "brightness_level"),
    ("commands/body_light", {"color": "red"}, "color"),
    ("commands/body_light", {"color": "#12345"}, "color"),
    ("commands/body_light", {"color": "#fff", "brightness": 101}, "brightness"),
    ("commands/camera_head", {"pan": 200, "tilt": 0}, "pan"),
    ("commands/go_to_location", {"x": 1, "y": 1, "speed": 3}, "body"),
    ("commands/capture_media", {"kind": "video"}, "body"),
    ("commands/privacy", {"enabled": False, "duration_s": 5}, "body"),
    ("mapping/stop", {"action": "explode"}, "action"),
])
async def test_out_of_range_bodies_get_field_errors_and_reach_no_robot(
        client: Any, auth: dict[str, str], robot: RobotSim, path: str, body: dict[str, Any],
        field: str) -> None:
    before = robot.statistics().requests
    r = await client.post(f"/api/v1/robots/r1/{path}", headers=auth, json=body)
    problem = await _json(r)
    assert r.status_code == 422, problem
    assert problem["errors"][0]["field"] == field
    assert robot.statistics().requests == before  # the robot was never asked


async def test_settings_maps_waypoints_and_mapping(
        client: Any, auth: dict[str, str], robot: RobotSim) -> None:
    r = await client.patch("/api/v1/robots/r1/settings", headers=auth,
                           json={"volume": 20, "display_brightness": 40})
    assert (await _json(r))["volume"] == 20 and robot.inspect(lambda d: d.volume) == 20
    assert (await client.patch("/api/v1/robots/r1/settings", headers=auth,
                               json={})).status_code == 422
    active = await _json(await client.get("/api/v1/robots/r1/maps/active", headers=auth))
    map_id = active["map_id"]
    base = f"/api/v1/robots/r1/maps/{map_id}"
    r = await client.put(f"{base}/waypoints", headers=auth,
                         json={"waypoints": [{"name": "kitting", "x": 2.0, "y": 6.0}]})
    assert (await _json(r))["inserted"] == 1
    names = {w["name"] for w in await _json(await client.get(f"{base}/waypoints",
                                                                headers=auth))}
    assert "kitting" in names
    off_map = await client.put(f"{base}/waypoints", headers=auth,
                               json={"waypoints": [{"name": "far", "x": 50.0, "y": 1.0}]})
    assert off_map.status_code == 422 and (await _json(off_map))["reason"] == "outside_map"
    assert (await client.delete(f"{base}/waypoints/kitting", headers=auth)).status_code == 200
    r = await client.patch(base, headers=auth, json={"map_name": "Hall 3"})
    assert (await _json(r))["updated"] == ["map_name"]
    assert (await _json(await client.get(base, headers=auth)))["map_name"] == "Hall 3"
    r = await client.delete(base, headers=auth)
    assert r.status_code == 409 and (await _json(r))["reason"] == "map_active"

    session = await _json(await client.post("/api/v1/robots/r1/mapping/start", headers=auth,
                                            json={}))
    stopped = await _json(await client.post("/api/v1/robots/r1/mapping/stop", headers=auth,
                                            json={"action": "save", "name": "Hall 4"}))
    assert stopped["session_id"] == session["session_id"] and stopped["map_id"]
    maps = await _json(await client.get("/api/v1/robots/r1/maps", headers=auth))
    assert {m["map_name"] for m in maps} >= {"Hall 3", "Hall 4"}
    again = await client.post("/api/v1/robots/r1/mapping/stop", headers=auth,
                              json={"action": "cancel"})
    assert again.status_code == 409 and (await _json(again))["reason"] == "not_mapping"


async def test_telemetry_is_read_from_the_store(
        client: Any, auth: dict[str, str], robot: RobotSim) -> None:
    await client.post("/api/v1/robots/r1/commands/go_to_location", headers=auth,
                      json={"x": 3.0, "y": 1.5})
    drive(robot, MotionState.ARRIVED)
    copied = await _json(await client.post("/api/v1/robots/r1/telemetry/copy", headers=auth))
    assert copied["copied"]["location"] > 0
    logs = await _json(await client.get("/api/v1/robots/r1/logs/location?no_of_logs=3",
                                        headers=auth))
    assert len(logs) == 3 and [e["log_id"] for e in logs] == sorted(
        (e["log_id"] for e in logs), reverse=True)
    assert all(e["kind"] == "location" for e in logs)
    assert (await client.get("/api/v1/robots/r1/logs/weather", headers=auth)).status_code == 404
    assert (await client.get("/api/v1/robots/r1/logs/battery?no_of_logs=0",
                             headers=auth)).status_code == 400
    robot.go_offline()  # history stays readable while the robot is away
    r = await client.get("/api/v1/robots/r1/logs/location?no_of_logs=500", headers=auth)
    assert r.status_code == 200 and len(await _json(r)) >= 3


async def test_the_alert_webhook_takes_the_robots_key_and_stores_once(
        client: Any, auth: dict[str, str], robot: RobotSim) -> None:
    url = robot.inspect(lambda d: d.webhook_url)
    assert url is not None and url.startswith("http://127.0.0.1:9/api/v1/robots/r1/alerts?key=")
    path = url.removeprefix("http://127.0.0.1:9")
    alert = {"timestamp": "2026-11-21T10:00:00Z", "uuid": "095be615-a8ad-4c33-8e9c-c7612fbf6c9f",
             "source": "bumper", "severity": 2, "header": "Bumper pressed",
             "body": "front bumper", "action_required": "check the path"}
    for attempt in range(2):  # a retried delivery is acknowledged again, stored once
        r = await client.post(path, json=alert)
        assert r.status_code == 200
        assert await _json(r) == {"message": "Alert sent successfully.", "acknowledged": True,
                                  "new": attempt == 0}
    assert (await client.post("/api/v1/robots/r1/alerts?key=wrong", json=alert)
            ).status_code == 403
    assert (await client.post("/api/v1/robots/r1/alerts", json=alert)).status_code == 401
    bad = await client.post(path, json={**alert, "uuid": "1" * 32, "severity": 9})
    assert bad.status_code == 422 and (await _json(bad))["errors"][0]["field"] == "severity"
    by_user = await client.post("/api/v1/robots/r1/alerts", headers=auth,
                                json={**alert, "uuid": "2" * 32, "severity": 5})
    assert by_user.status_code == 200
    stored = await _json(await client.get("/api/v1/robots/r1/alerts?no_of_alerts=10",
                                          headers=auth))
    assert sorted(a["uuid"] for a in stored) == sorted([alert["uuid"], "2" * 32])
    critical = await _json(await client.get("/api/v1/robots/r1/alerts?max_severity=2",
                                            headers=auth))
    assert [a["uuid"] for a in critical] == [alert["uuid"]]

    async def journaled() -> Any:
        r = await client.get("/api/v1/events?category=robot", headers=auth)
        return (await _json(r))["items"]

    entries = await eventually(journaled)
    assert any("Bumper pressed" in e["message"] and e["severity"] == "error" for e in entries)


async def test_an_offline_robot_answers_503_at_once(
        client: Any, auth: dict[str, str], robot: RobotSim) -> None:
    robot.go_offline()

    async def down() -> bool:
        r = await client.get("/api/v1/robots/r1", headers=auth)
        return (await _json(r))["state"] == "DOWN"

    await eventually(down)
    r = await client.post("/api/v1/robots/r1/commands/dock", headers=auth)
    assert r.status_code == 503 and r.headers["Retry-After"]
    assert "nothing was sent" in (await _json(r))["detail"]
    robot.go_online()
    await eventually(lambda: _up(client, auth))
    r = await client.post("/api/v1/robots/r1/commands/dock", headers=auth)
    assert r.status_code == 200


async def _up(client: Any, auth: dict[str, str]) -> bool:
    r = await client.get("/api/v1/robots/r1", headers=auth)
    return (await _json(r))["state"] == "UP"


async def _receive(ws: Any, timeout: float = 5.0) -> dict[str, Any]:
    with trio.fail_after(timeout):
        return json.loads(await ws.receive())  # type: ignore[no-any-return]


async def _until(ws: Any, check: Any, timeout: float = 5.0) -> dict[str, Any]:
    with trio.fail_after(timeout):
        while True:
            msg = await _receive(ws)
            if check(msg):
                return msg


async def test_ws_relays_between_clients_of_the_robot_and_streams_its_frames(
        client: Any, station: Station, auth: dict[str, str], robot: RobotSim) -> None:
    token = await login(client, "admin", station.admin_password or "")
    device_id = robot.inspect(lambda d: d.device_id)
    async with client.websocket(f"/ws/robots/r1?token={token}") as a, \
            client.websocket(f"/ws/robots/{device_id}") as b:
        await b.send(json.dumps({"token": token}))
        for ws in (a, b):
            hello = await _receive(ws)
            assert hello == {"message": f"Websocket Connected Successfully to {device_id}."}
            snapshot = await _until(ws, lambda m: m.get("topic") == "state")
            assert snapshot["source"] == "robot" and "pose" in snapshot["data"]
        await a.send(json.dumps({"topic": "goal_pose", "data": {"x": 1.0, "y": 2.0}}))
        relayed = await _until(b, lambda m: m.get("source") == "client")
        assert relayed["topic"] == "goal_pose" and relayed["from"] == "admin"
        assert relayed["data"] == {"x": 1.0, "y": 2.0}
        await a.send(json.dumps({"topic": "cmd_vel", "data": {}}))
        error = await _until(a, lambda m: m.get("type") == "error")
        assert "not a relay message" in error["detail"]
        await a.send("{")
        assert (await _until(a, lambda m: m.get("type") == "error"))["type"] == "error"
        assert robot.state().goal is None  # a relayed goal_pose is not a command
        robot.set_battery(42.0)
        frame = await _until(a, lambda m: m.get("topic") == "state"
                             and round(m["data"]["battery_pct"]) == 42)
        assert frame["seq"] > snapshot["seq"]
        await b.send(json.dumps({"topic": "tf", "data": {"child_frame_id": "tool"}}))
        # The first client message a gets is b's: its own goal_pose never came back to it.
        echoed = await _until(a, lambda m: m.get("source") == "client")
        assert echoed["topic"] == "tf" and echoed["data"] == {"child_frame_id": "tool"}
