"""The robot controller simulator over loopback: raw HTTP (httpx, sockets) and WebSocket."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import trio
from trio_websocket import open_websocket_url

from drivers.robot.client import RobotStream
from drivers.robot.messages import (
    AlertMessage,
    DeviceInfo,
    MotionState,
    StateMessage,
    StreamMessage,
)
from sim.robot import RobotDevice, RobotSim
from tests.waiting import wait_for


@pytest.fixture
def sim() -> Iterator[RobotSim]:
    with RobotSim(realtime=False) as simulator:
        yield simulator


# Shared so each test's client does not load the CA bundle again.
TLS = httpx.create_ssl_context()


@pytest.fixture
def http(sim: RobotSim) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim.base_url, timeout=2.0, verify=TLS) as client:
        yield client


def call(
    http: httpx.Client, method: str, path: str, body: Any = None, **kwargs: Any
) -> tuple[int, dict[str, Any]]:
    """Status and decoded envelope of one request."""
    content = None if body is None else json.dumps(body)
    reply = http.request(method, path, content=content, **kwargs)
    envelope = reply.json()
    assert set(envelope) == {"code", "status", "message", "data"}
    assert envelope["code"] == reply.status_code
    assert envelope["status"] == ("success" if reply.is_success else "error")
    return reply.status_code, envelope


def ok(http: httpx.Client, method: str, path: str, body: Any = None) -> Any:
    status, envelope = call(http, method, path, body)
    assert status == 200, envelope
    return envelope["data"]


def step_until(sim: RobotSim, motion: MotionState, dt: float = 0.1, limit_s: float = 120.0) -> None:
    """Step robot time until the robot's motion is `motion`."""
    spent = 0.0
    while sim.state().motion is not motion:
        assert spent < limit_s, f"never {motion}"
        sim.step(dt)
        spent += dt


class Collector:
    """RobotStream callbacks that keep what they are told."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.messages: list[StreamMessage] = []
        self.lost: list[str] = []
        self.malformed: list[str] = []

    def on_message(self, message: StreamMessage) -> None:
        with self.lock:
            self.messages.append(message)

    def on_lost(self, reason: str) -> None:
        with self.lock:
            self.lost.append(reason)

    def on_malformed(self, reason: str) -> None:
        with self.lock:
            self.malformed.append(reason)

    def of(self, kind: type[StreamMessage]) -> list[Any]:
        with self.lock:
            return [m for m in self.messages if isinstance(m, kind)]

    def open(self, sim: RobotSim) -> RobotStream:
        stream = RobotStream(
            sim.ws_url,
            on_message=self.on_message,
            on_lost=self.on_lost,
            on_malformed=self.on_malformed,
        )
        stream.connect()
        return stream


class WebhookReceiver:
    """A tiny HTTP server that keeps every JSON body POSTed to it."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                receiver.bodies.append(json.loads(self.rfile.read(length)))
                reply = b'{"message": "Alert sent successfully.", "acknowledged": true}'
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/alerts"

    def __enter__(self) -> WebhookReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- HTTP shape --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/device",
        "/state",
        "/settings",
        "/logs/activity",
        "/logs/connectivity",
        "/logs/location",
        "/logs/battery",
        "/logs/system",
        "/maps",
        "/maps/active",
        "/maps/map-1",
        "/maps/map-1/waypoints",
        "/alerts",
        "/alerts/webhook",
    ],
)
def test_every_read_route_answers_with_an_envelope(http: httpx.Client, path: str) -> None:
    status, envelope = call(http, "GET", path)
    assert status == 200
    assert envelope["data"] is not None


def test_device_and_state_describe_a_docked_robot(http: httpx.Client) -> None:
    device = ok(http, "GET", "/device")
    assert device["device_id"] and device["serial_number"] and 0 <= device["battery_health"] <= 100
    state = ok(http, "GET", "/state")
    assert state["motion"] == "docked" and state["docked"] is True
    assert state["active_map_id"] == "map-1"


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "reason"),
    [
        ("GET", "/nowhere", None, 404, "not_found"),
        ("GET", "/logs/dreams", None, 404, "not_found"),
        ("GET", "/logs/activity?no_of_logs=0", None, 400, "bad_request"),
        ("GET", "/logs/activity?no_of_logs=many", None, 400, "bad_request"),
        ("POST", "/commands/go_to_location", "{not json", 400, "bad_request"),
        ("POST", "/commands/go_to_location", {"x": 1.0}, 422, "invalid"),
        ("POST", "/commands/go_to_location", {"x": 1, "y": 1, "z": 1}, 422, "invalid"),
        ("POST", "/commands/go_to_location", {"x": 1e300, "y": 1}, 422, "invalid"),
        ("POST", "/commands/go_to_location", {"x": 30.0, "y": 1.0}, 422, "outside_map"),
        ("POST", "/commands/go_to_location", {"x": 6.0, "y": 4.0}, 422, "unreachable"),
        ("POST", "/commands/go_to_waypoint", {"name": ""}, 422, "invalid"),
        ("POST", "/commands/go_to_waypoint", {"name": "nope"}, 404, "unknown_waypoint"),
        ("POST", "/commands/volume", {"volume_level": 101}, 422, "invalid"),
        ("POST", "/commands/volume", {}, 422, "invalid"),
        ("POST", "/commands/body_light", {"color": "red"}, 422, "invalid"),
        ("POST", "/commands/camera_head", {"pan": 0, "tilt": 90}, 422, "invalid"),
        ("POST", "/commands/capture_media", {"kind": "video"}, 422, "invalid"),
        ("PATCH", "/settings", {"display_brightness": -1}, 422, "invalid"),
        ("GET", "/maps/map-9", None, 404, "unknown_map"),
        ("PUT", "/maps/active", {"map_id": "map-9"}, 404, "unknown_map"),
        ("DELETE", "/maps/map-1", None, 409, "map_active"),
        ("DELETE", "/maps/map-1/waypoints/ghost", None, 404, "unknown_waypoint"),
        ("POST", "/mapping/stop", {"action": "cancel"}, 409, "not_mapping"),
        ("POST", "/mapping/stop", {"action": "save"}, 422, "invalid"),
        ("PUT", "/alerts/webhook", {"url": "ftp://x"}, 422, "invalid"),
        ("GET", "/ws", None, 426, "upgrade_required"),
    ],
)
def test_bad_requests_get_an_error_envelope_and_change_nothing(
    http: httpx.Client, method: str, path: str, body: Any, status: int, reason: str
) -> None:
    before = ok(http, "GET", "/state")
    content = body if isinstance(body, str) else None
    reply = http.request(method, path, content=content, json=None if content else body)
    envelope = reply.json()
    assert (reply.status_code, envelope["code"], envelope["status"]) == (status, status, "error")
    assert envelope["data"]["reason"] == reason
    assert envelope["message"]
    assert ok(http, "GET", "/state") == before


def test_a_wrong_method_is_405_with_the_allowed_ones(http: httpx.Client) -> None:
    reply = http.delete("/settings")
    assert reply.status_code == 405
    assert set(reply.headers["allow"].split(", ")) == {"GET", "PATCH"}


def test_an_oversized_body_is_refused(http: httpx.Client) -> None:
    status, envelope = call(http, "PUT", "/maps/map-1/waypoints", {"pad": "x" * 70_000})
    assert (status, envelope["data"]["reason"]) == (413, "too_large")


def test_garbage_instead_of_http_gets_400_and_a_close(sim: RobotSim) -> None:
    with socket.create_connection(("127.0.0.1", sim.port), timeout=2.0) as sock:
        sock.sendall(b"HELLO ROBOT\r\n\r\n")
        received = b""
        while chunk := sock.recv(4096):
            received += chunk
    assert received.startswith(b"HTTP/1.1 400 ")
    assert b'"reason":"bad_request"' in received


def test_requests_reuse_one_keep_alive_connection(sim: RobotSim, http: httpx.Client) -> None:
    for _ in range(20):
        ok(http, "GET", "/state")
    assert sim.connections == 1
    assert sim.statistics().requests == 20


# --- motion ------------------------------------------------------------------------------


def test_waypoint_run_pushes_pose_updates_and_arrived(sim: RobotSim, http: httpx.Client) -> None:
    seen = Collector()
    with seen.open(sim) as stream:
        wait_for(lambda: len(seen.of(StateMessage)) >= 1)  # the snapshot
        accepted = ok(http, "POST", "/commands/go_to_waypoint", {"name": "pick"})
        assert accepted["goal"]["waypoint"] == "pick" and accepted["estimated_time_s"] > 0
        step_until(sim, MotionState.ARRIVED, dt=0.2)
        wait_for(lambda: seen.of(StateMessage)[-1].data.motion is MotionState.ARRIVED)
        states = [m.data for m in seen.of(StateMessage)]
        moving = [s for s in states if s.motion is MotionState.NAVIGATING]
        assert len(moving) > 20  # a pose update every step on the way
        assert len({(s.pose.x, s.pose.y) for s in moving}) > 20
        final = states[-1]
        assert (final.pose.x, final.pose.y) == pytest.approx((10.0, 6.5), abs=0.01)
        assert final.goal is None
        seqs = [m.seq for m in seen.messages]
        assert seqs == list(range(1, len(seqs) + 1))
        assert stream.statistics().gaps == 0
    assert ok(http, "GET", "/state")["motion"] == "arrived"
    assert ok(http, "GET", "/logs/location?no_of_logs=1")[0]["movement_status"] == "arrived"


def test_cancel_stops_a_goal_and_a_second_cancel_finds_nothing(
    sim: RobotSim, http: httpx.Client
) -> None:
    ok(http, "POST", "/commands/go_to_location", {"x": 10.0, "y": 1.0, "yaw": 0.0})
    sim.step(3.0)
    assert ok(http, "POST", "/commands/cancel_go_to_location") == {"canceled": True}
    stopped = ok(http, "GET", "/state")
    sim.step(3.0)
    after = ok(http, "GET", "/state")
    assert after["motion"] == "canceled" and after["pose"] == stopped["pose"]
    assert ok(http, "POST", "/commands/cancel_go_to_location") == {"canceled": False}


def test_dock_cancel_dock_and_dock_again(sim: RobotSim, http: httpx.Client) -> None:
    ok(http, "POST", "/commands/go_to_location", {"x": 8.0, "y": 1.5})
    step_until(sim, MotionState.ARRIVED)
    assert ok(http, "POST", "/commands/dock")["goal"]["kind"] == "dock"
    sim.step(1.0)
    assert ok(http, "GET", "/state")["motion"] == "docking"
    assert ok(http, "POST", "/commands/cancel_dock") == {"canceled": True}
    assert ok(http, "GET", "/state")["motion"] == "canceled"
    ok(http, "POST", "/commands/dock")
    step_until(sim, MotionState.DOCKED)
    sim.set_battery(50.0)
    state = ok(http, "GET", "/state")
    assert state["docked"] and state["charging"]
    sim.step(10.0)
    assert ok(http, "GET", "/state")["battery_pct"] > 50.0


def test_real_time_ticker_moves_the_robot_without_steps() -> None:
    with RobotSim(tick_s=0.02) as sim, httpx.Client(base_url=sim.base_url, verify=TLS) as http:
        ok(http, "POST", "/commands/go_to_location", {"x": 1.3, "y": 1.0})
        wait_for(lambda: ok(http, "GET", "/state")["motion"] == "arrived")
        assert ok(http, "GET", "/state")["pose"]["x"] == pytest.approx(1.3, abs=0.01)


def test_low_battery_refuses_goals_but_docks(sim: RobotSim, http: httpx.Client) -> None:
    ok(http, "POST", "/commands/go_to_location", {"x": 4.0, "y": 1.0})
    step_until(sim, MotionState.ARRIVED)
    sim.set_battery(10.0)
    status, envelope = call(http, "POST", "/commands/go_to_waypoint", {"name": "pick"})
    assert (status, envelope["data"]["reason"]) == (409, "battery_low")
    ok(http, "POST", "/commands/dock")


# --- maps and mapping --------------------------------------------------------------------


def test_maps_and_waypoints_crud(sim: RobotSim, http: httpx.Client) -> None:
    assert [m["map_id"] for m in ok(http, "GET", "/maps")] == ["map-1"]
    upsert = {
        "waypoints": [
            {"name": "pick", "x": 9.0, "y": 6.0, "yaw": 1.0},
            {"name": "Bench 2", "x": 2.0, "y": 6.0, "description": "second bench"},
        ]
    }
    assert ok(http, "PUT", "/maps/map-1/waypoints", upsert) == {"inserted": 1, "updated": 1}
    waypoints = {w["name"]: w for w in ok(http, "GET", "/maps/map-1/waypoints")}
    assert waypoints["pick"]["x"] == 9.0 and waypoints["Bench 2"]["description"] == "second bench"
    deleted = ok(http, "DELETE", "/maps/map-1/waypoints/Bench%202")
    assert deleted == {"map_id": "map-1", "name": "Bench 2"}
    assert "Bench 2" not in {w["name"] for w in ok(http, "GET", "/maps/map-1")["waypoints"]}
    sim.step(5.0)
    renamed = ok(http, "PATCH", "/maps/map-1", {"map_name": "line 3"})
    assert renamed == {"map_id": "map-1", "updated": ["map_name"]}
    active = ok(http, "GET", "/maps/active")
    assert active["map_name"] == "line 3" and active["active_map"] is True
    assert active["last_modified_at"] > active["created_at"]


def test_mapping_save_creates_a_map_that_can_be_activated_and_deleted(
    sim: RobotSim, http: httpx.Client
) -> None:
    session = ok(http, "POST", "/mapping/start", {"mapping_mode": "autonomous"})
    assert ok(http, "GET", "/state")["mapping"] is True
    status, envelope = call(http, "POST", "/mapping/start", {})
    assert (status, envelope["data"]["reason"]) == (409, "mapping_active")
    stopped = ok(http, "POST", "/mapping/stop", {"action": "save", "name": "new hall"})
    assert stopped == {
        "session_id": session["session_id"],
        "action": "save",
        "map_id": session["map_id"],
    }
    maps = {m["map_id"]: m for m in ok(http, "GET", "/maps")}
    assert maps[session["map_id"]]["map_name"] == "new hall"
    assert maps[session["map_id"]]["active_map"] is False
    activated = ok(http, "PUT", "/maps/active", {"map_id": session["map_id"]})
    assert activated["map_id"] == session["map_id"]
    assert ok(http, "GET", "/state")["active_map_id"] == session["map_id"]
    ok(http, "PUT", "/maps/active", {"map_id": "map-1"})
    assert ok(http, "DELETE", f"/maps/{session['map_id']}")["map_id"] == session["map_id"]
    # Cancel discards the session's map.
    ok(http, "POST", "/mapping/start", {})
    assert ok(http, "POST", "/mapping/stop", {"action": "cancel"})["map_id"] is None
    assert len(ok(http, "GET", "/maps")) == 1


def test_switching_maps_while_moving_is_refused(sim: RobotSim, http: httpx.Client) -> None:
    ok(http, "POST", "/mapping/start", {})
    new_id = ok(http, "POST", "/mapping/stop", {"action": "save", "name": "b"})["map_id"]
    ok(http, "POST", "/commands/go_to_waypoint", {"name": "inspect"})
    status, envelope = call(http, "PUT", "/maps/active", {"map_id": new_id})
    assert (status, envelope["data"]["reason"]) == (409, "busy")


# --- settings, privacy, logs -------------------------------------------------------------


def test_settings_follow_patches_and_commands(http: httpx.Client) -> None:
    patched = http.patch(
        "/settings",
        json={"status_light_brightness": 5, "volume": 70},
        headers={"x-client-name": "hmi-3"},
    ).json()["data"]
    assert patched["status_light_brightness"] == 5 and patched["volume"] == 70
    assert patched["last_device_settings_changed_by"] == "hmi-3"
    assert ok(http, "POST", "/commands/volume", {"adjustment": "increase"}) == {"volume": 80}
    ok(http, "POST", "/commands/display_brightness", {"brightness_level": 33})
    settings = ok(http, "GET", "/settings")
    assert (settings["volume"], settings["display_brightness"]) == (80, 33)
    light = ok(http, "POST", "/commands/body_light", {"color": "#00ff00", "animation": "blink"})
    assert light["color"] == "#00FF00" and light["animation"] == "blink"
    assert ok(http, "POST", "/commands/camera_head", {"pan": -45, "tilt": 10}) == {
        "pan": -45.0,
        "tilt": 10.0,
    }


def test_privacy_blocks_capture_until_it_expires(sim: RobotSim, http: httpx.Client) -> None:
    photo = ok(http, "POST", "/commands/capture_media", {"kind": "photo"})
    assert photo["path"].endswith(".jpg")
    privacy = ok(http, "POST", "/commands/privacy", {"enabled": True, "duration_s": 60})
    assert privacy["privacy_status"] is True and privacy["until"]
    assert ok(http, "GET", "/settings")["privacy_status"] is True
    status, envelope = call(http, "POST", "/commands/capture_media", {"kind": "photo"})
    assert (status, envelope["data"]["reason"]) == (409, "privacy_active")
    sim.step(59.0)
    status, _ = call(http, "POST", "/commands/capture_media", {"kind": "video", "duration_s": 5})
    assert status == 409
    sim.step(2.0)
    video = ok(http, "POST", "/commands/capture_media", {"kind": "video", "duration_s": 5})
    assert video["kind"] == "video" and video["duration_s"] == 5.0
    # Privacy through settings has no time limit; turning it off there works too.
    ok(http, "PATCH", "/settings", {"privacy_status": True})
    sim.step(3600.0)
    assert call(http, "POST", "/commands/capture_media", {"kind": "photo"})[0] == 409
    ok(http, "POST", "/commands/privacy", {"enabled": False})
    ok(http, "POST", "/commands/capture_media", {"kind": "photo"})


def test_logs_are_newest_first_and_limited(sim: RobotSim, http: httpx.Client) -> None:
    for level in (10, 20, 30):
        ok(http, "POST", "/commands/volume", {"volume_level": level})
    logs = ok(http, "GET", "/logs/activity?no_of_logs=2")
    assert [entry["description"] for entry in logs] == ["volume 30", "volume 20"]
    assert logs[0]["log_id"] == logs[1]["log_id"] + 1
    sim.step(25.0)
    battery = ok(http, "GET", "/logs/battery?no_of_logs=100")
    system = ok(http, "GET", "/logs/system?no_of_logs=100")
    assert len(battery) >= 2 and len(system) >= 2
    assert battery[0]["recorded_at"] > battery[-1]["recorded_at"]


# --- alerts ------------------------------------------------------------------------------


def test_alerts_reach_the_webhook_and_the_stream(sim: RobotSim, http: httpx.Client) -> None:
    seen = Collector()
    with WebhookReceiver() as receiver, seen.open(sim):
        assert ok(http, "PUT", "/alerts/webhook", {"url": receiver.url}) == {"url": receiver.url}
        alert = sim.raise_alert(2, "Bumper pressed", "front bumper hit something")
        wait_for(lambda: len(receiver.bodies) == 1)
        body = receiver.bodies[0]
        assert (body["severity"], body["header"], body["uuid"]) == (2, "Bumper pressed", alert.uuid)
        assert body["device_id"] == ok(http, "GET", "/device")["device_id"]
        # Low battery raises a severity 4 alert by itself.
        ok(http, "POST", "/commands/go_to_location", {"x": 3.0, "y": 1.0})
        step_until(sim, MotionState.ARRIVED)
        sim.set_battery(19.0)
        wait_for(lambda: len(receiver.bodies) == 2)
        assert (receiver.bodies[1]["severity"], receiver.bodies[1]["header"]) == (4, "Battery low")
        wait_for(lambda: len(seen.of(AlertMessage)) == 2)
        assert [m.data.severity for m in seen.of(AlertMessage)] == [2, 4]
        wait_for(lambda: sim.statistics().webhook.sent == 2)
    assert [a["severity"] for a in ok(http, "GET", "/alerts")] == [4, 2]


def test_a_failed_webhook_delivery_is_counted_and_logged(sim: RobotSim, http: httpx.Client) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        dead_port = unused.getsockname()[1]
    ok(http, "PUT", "/alerts/webhook", {"url": f"http://127.0.0.1:{dead_port}/alerts"})
    sim.raise_alert(3, "Lidar dirty", "clean the lidar window")
    wait_for(lambda: sim.statistics().webhook.failed == 1)
    logs = ok(http, "GET", "/logs/connectivity?no_of_logs=5")
    assert any(entry["connection_status"] == "webhook_failed" for entry in logs)


# --- faults ------------------------------------------------------------------------------


def test_offline_refuses_connections_then_serves_on_the_same_port(sim: RobotSim) -> None:
    port = sim.port
    with httpx.Client(base_url=sim.base_url, timeout=1.0, verify=TLS) as http:
        ok(http, "GET", "/state")
        sim.go_offline()
        with pytest.raises(httpx.ConnectError):
            http.get("/state")
        sim.go_online()
        assert sim.port == port
        ok(http, "GET", "/state")


def test_drop_ws_clients_cuts_streams_but_not_http(sim: RobotSim, http: httpx.Client) -> None:
    seen = Collector()
    with seen.open(sim):
        wait_for(lambda: sim.ws_clients == 1)
        ok(http, "GET", "/state")
        sim.drop_ws_clients()
        wait_for(lambda: len(seen.lost) == 1)
        wait_for(lambda: sim.ws_clients == 0)
        ok(http, "GET", "/state")


# --- an independent WebSocket client -----------------------------------------------------


async def test_a_third_party_websocket_client_gets_snapshot_and_pushes(sim: RobotSim) -> None:
    with trio.fail_after(5):
        async with open_websocket_url(sim.ws_url) as ws:
            snapshot = [json.loads(await ws.get_message()) for _ in range(5)]
            assert [m["topic"] for m in snapshot] == ["state", "map", "goal_pose", "tf", "odom"]
            assert [m["seq"] for m in snapshot] == [1, 2, 3, 4, 5]
            assert snapshot[0]["data"]["motion"] == "docked"
            await ws.send_message('{"request": "snapshot"}')
            again = [json.loads(await ws.get_message()) for _ in range(5)]
            assert again[0]["topic"] == "state" and again[0]["seq"] == 6
            await ws.send_message("not a request")
            await ws.send_message('{"request": "snapshot"}')
            assert json.loads(await ws.get_message())["seq"] == 11
            assert sim.statistics().ws_bad_requests == 1
            async with httpx.AsyncClient(base_url=sim.base_url, verify=TLS) as http:
                await http.post("/commands/go_to_location", json={"x": 3.0, "y": 1.0})
            topics = set()
            while "goal_pose" not in topics:
                topics.add(json.loads(await ws.get_message())["topic"])


def test_a_simulator_bug_is_a_500_and_the_connection_lives_on() -> None:
    class BrokenDevice(RobotDevice):
        def device_info(self) -> DeviceInfo:
            raise RuntimeError("simulated bug")

    with (
        RobotSim(realtime=False, device=BrokenDevice()) as sim,
        httpx.Client(base_url=sim.base_url, verify=TLS) as http,
    ):
        status, envelope = call(http, "GET", "/device")
        assert (status, envelope["data"]["reason"]) == (500, "internal")
        assert ok(http, "GET", "/state")["docked"] is True
        assert sim.connections == 1
