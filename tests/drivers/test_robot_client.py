"""RobotClient and RobotStream against the robot simulator over loopback, and the messages."""

from __future__ import annotations

import json
import math
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.errors import DeviceUnavailable, FrameError
from drivers.robot.client import RobotClient, RobotRefused, RobotStream
from drivers.robot.messages import (
    ActivityLog,
    Alert,
    AlertMessage,
    BatteryLog,
    ConnectivityLog,
    DeviceInfo,
    Goal,
    GoalAccepted,
    GoalKind,
    GoalPoseMessage,
    GoToLocation,
    LocationLog,
    LogKind,
    MapInfo,
    MapMessage,
    MotionState,
    OdomMessage,
    Pose,
    RobotState,
    Settings,
    SettingsPatch,
    StateMessage,
    StreamMessage,
    SystemLog,
    TfMessage,
    Waypoint,
    decode_stream_message,
    encode,
    validate,
)
from sim.robot import RobotSim
from tests.waiting import wait_for


class Recorder:
    """The callbacks a robot actor would pass, keeping what they are told."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.messages: list[StreamMessage] = []
        self.lost: list[str] = []
        self.malformed: list[str] = []

    def on_message(self, message: StreamMessage) -> None:
        with self._lock:
            self.messages.append(message)

    def on_lost(self, reason: str) -> None:
        with self._lock:
            self.lost.append(reason)

    def on_malformed(self, reason: str) -> None:
        with self._lock:
            self.malformed.append(reason)

    def states(self) -> list[RobotState]:
        with self._lock:
            return [m.data for m in self.messages if isinstance(m, StateMessage)]


@pytest.fixture
def sim() -> Iterator[RobotSim]:
    with RobotSim(realtime=False) as simulator:
        yield simulator


@pytest.fixture
def client(sim: RobotSim) -> Iterator[RobotClient]:
    with RobotClient(sim.base_url, timeout_s=2.0, name="takt-test") as robot:
        yield robot


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def open_stream(client: RobotClient, recorder: Recorder, **kwargs: Any) -> RobotStream:
    return client.stream(
        on_message=recorder.on_message,
        on_lost=recorder.on_lost,
        on_malformed=recorder.on_malformed,
        **kwargs,
    )


def step_until(sim: RobotSim, motion: MotionState, dt: float = 0.1, limit_s: float = 120.0) -> None:
    spent = 0.0
    while sim.state().motion is not motion:
        assert spent < limit_s, f"never {motion}"
        sim.step(dt)
        spent += dt


# --- resources ---------------------------------------------------------------------------


def test_device_state_and_settings_are_typed(client: RobotClient) -> None:
    device = client.device_info()
    assert isinstance(device, DeviceInfo) and device.model and device.serial_number
    state = client.state()
    assert isinstance(state, RobotState)
    assert state.motion is MotionState.DOCKED and state.docked and state.battery_pct == 100.0
    settings_ = client.settings()
    assert isinstance(settings_, Settings) and settings_.device_id == device.device_id


def test_settings_update_changes_only_what_is_given(client: RobotClient) -> None:
    before = client.settings()
    after = client.update_settings(volume=12, status_light_brightness=90)
    assert (after.volume, after.status_light_brightness) == (12, 90)
    assert after.display_brightness == before.display_brightness
    assert after.last_device_settings_changed_by == "takt-test"
    assert client.settings() == after


def test_goal_commands_round_trip(sim: RobotSim, client: RobotClient) -> None:
    accepted = client.go_to_location(4.0, 1.5, math.pi / 2)
    assert isinstance(accepted, GoalAccepted)
    assert accepted.goal.kind is GoalKind.LOCATION
    assert accepted.goal.target == Pose(x=4.0, y=1.5, yaw=math.pi / 2)
    assert client.state().goal == accepted.goal
    sim.step(1.0)
    assert client.cancel_go_to_location().canceled is True
    assert client.state().motion is MotionState.CANCELED
    waypoint = client.go_to_waypoint("inspect")
    assert waypoint.goal.waypoint == "inspect" and waypoint.estimated_time_s > 0
    step_until(sim, MotionState.ARRIVED)
    dock = client.dock()
    assert dock.goal.kind is GoalKind.DOCK
    sim.step(1.0)
    assert client.cancel_dock().canceled is True
    assert client.cancel_dock().canceled is False
    client.dock()
    step_until(sim, MotionState.DOCKED)
    assert client.state().docked


def test_device_commands_round_trip(client: RobotClient) -> None:
    light = client.body_light("#0af", brightness=40, animation="breathe", strip_number=2)
    assert (light.color, light.brightness, light.animation, light.strip_number) == (
        "#0AF",
        40,
        "breathe",
        2,
    )
    assert client.set_volume(30).volume == 30
    assert client.set_volume(adjustment="decrease").volume == 20
    assert client.set_display_brightness(55).display_brightness == 55
    assert client.set_display_brightness(adjustment="increase").display_brightness == 65
    head = client.camera_head(pan=120.0, tilt=-10.0)
    assert (head.pan, head.tilt) == (120.0, -10.0)
    photo = client.capture_media("photo")
    video = client.capture_media("video", duration_s=3.5)
    assert photo.media_id != video.media_id and video.duration_s == 3.5
    privacy = client.privacy(True, duration_s=120)
    assert privacy.privacy_status and privacy.until is not None
    assert client.privacy(False).privacy_status is False


def test_logs_are_typed_per_kind(sim: RobotSim, client: RobotClient) -> None:
    client.go_to_location(3.0, 1.0)
    sim.step(12.0)
    stream = client.stream(on_message=lambda _m: None)
    stream.close()
    activity = client.activity_logs(5)
    assert activity and all(isinstance(e, ActivityLog) for e in activity)
    assert activity[0].triggered_by in ("takt-test", "robot")
    assert all(isinstance(e, LocationLog) for e in client.location_logs(5))
    assert all(isinstance(e, BatteryLog) for e in client.battery_logs(5))
    assert all(isinstance(e, SystemLog) for e in client.system_logs(5))
    wait_for(lambda: len(client.connectivity_logs(5)) == 2)
    assert all(isinstance(e, ConnectivityLog) for e in client.connectivity_logs(5))
    generic = client.logs("location", 3)
    assert [e.log_id for e in generic] == [e.log_id for e in client.location_logs(3)]
    for kind in LogKind:
        assert len(client.logs(kind, 1)) == 1


def test_maps_waypoints_and_mapping_round_trip(client: RobotClient) -> None:
    maps = client.maps()
    assert [m.map_id for m in maps] == ["map-1"] and isinstance(maps[0], MapInfo)
    assert client.active_map() == client.map("map-1")
    result = client.upsert_waypoints(
        "map-1", [Waypoint(name="Cell A", x=2.0, y=6.0, yaw=0.5), Waypoint(name="pick", x=9, y=6)]
    )
    assert (result.inserted, result.updated) == (1, 1)
    names = {w.name for w in client.waypoints("map-1")}
    assert {"Cell A", "pick", "place", "inspect"} == names
    assert client.delete_waypoint("map-1", "Cell A").name == "Cell A"
    assert "Cell A" not in {w.name for w in client.map("map-1").waypoints}
    assert client.update_map("map-1", name="hall 2").updated == ["map_name"]
    session = client.start_mapping("autonomous")
    assert client.state().mapping
    saved = client.stop_mapping("save", "hall 3")
    assert saved.map_id == session.map_id
    activated = client.activate_map(session.map_id)
    assert activated.map_id == session.map_id
    assert client.active_map().map_name == "hall 3"
    client.activate_map("map-1")
    assert client.delete_map(session.map_id).waypoints_deleted == 0
    assert [m.map_name for m in client.maps()] == ["hall 2"]


def test_alert_webhook_and_alert_list(sim: RobotSim, client: RobotClient) -> None:
    assert client.alert_webhook() is None
    assert client.set_alert_webhook("http://127.0.0.1:9/hook") == "http://127.0.0.1:9/hook"
    assert client.alert_webhook() == "http://127.0.0.1:9/hook"
    assert client.set_alert_webhook(None) is None
    sim.raise_alert(5, "Note", "just so you know")
    sim.raise_alert(1, "E-stop", "emergency stop pressed")
    alerts = client.alerts()
    assert [(a.severity, a.header) for a in alerts] == [(1, "E-stop"), (5, "Note")]
    assert all(isinstance(a, Alert) for a in alerts)


# --- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "code", "reason"),
    [
        (lambda c: c.go_to_location(50.0, 1.0), 422, "outside_map"),
        (lambda c: c.go_to_location(6.0, 4.0), 422, "unreachable"),
        (lambda c: c.go_to_waypoint("nowhere"), 404, "unknown_waypoint"),
        (lambda c: c.map("map-9"), 404, "unknown_map"),
        (lambda c: c.delete_map("map-1"), 409, "map_active"),
        (lambda c: c.delete_waypoint("map-1", "ghost"), 404, "unknown_waypoint"),
        (lambda c: c.stop_mapping("cancel"), 409, "not_mapping"),
        (lambda c: c.logs("battery", 501), 400, "bad_request"),
    ],
)
def test_refusals_raise_robot_refused(
    client: RobotClient, command: Callable[[RobotClient], object], code: int, reason: str
) -> None:
    with pytest.raises(RobotRefused) as refused:
        command(client)
    assert (refused.value.code, refused.value.reason) == (code, reason)
    assert refused.value.message
    assert client.statistics().refused == 1


def test_privacy_refusal_carries_reason(client: RobotClient) -> None:
    client.privacy(True)
    with pytest.raises(RobotRefused) as refused:
        client.capture_media("photo")
    assert (refused.value.code, refused.value.reason) == (409, "privacy_active")


@pytest.mark.parametrize(
    "command",
    [
        lambda c: c.go_to_location(math.inf, 1.0),
        lambda c: c.go_to_location(1.0, math.nan),
        lambda c: c.go_to_location(1.0, 1.0, 100.0),
        lambda c: c.go_to_waypoint(""),
        lambda c: c.go_to_waypoint(" padded "),
        lambda c: c.set_volume(101),
        lambda c: c.set_volume(),
        lambda c: c.update_settings(display_brightness=-5),
        lambda c: c.body_light("red"),
        lambda c: c.body_light("#fff\n"),
        lambda c: c.body_light("#fff", animation="disco"),
        lambda c: c.camera_head(0.0, 90.0),
        lambda c: c.capture_media("video"),
        lambda c: c.capture_media("audio"),
        lambda c: c.privacy(False, duration_s=5),
        lambda c: c.stop_mapping("save"),
        lambda c: c.set_alert_webhook("not a url"),
        lambda c: c.upsert_waypoints("map-1", []),
        lambda c: c.update_map("map-1"),
        lambda c: c.logs("dreams"),
    ],
)
def test_invalid_arguments_fail_before_anything_is_sent(
    sim: RobotSim, client: RobotClient, command: Callable[[RobotClient], object]
) -> None:
    with pytest.raises(ValueError):
        command(client)
    assert sim.statistics().requests == 0


def test_an_offline_robot_is_unavailable_until_it_is_back(sim: RobotSim) -> None:
    with RobotClient(sim.base_url, timeout_s=0.5) as client:
        client.state()
        sim.go_offline()
        with pytest.raises(DeviceUnavailable):
            client.state()
        sim.go_online()
        assert client.state().docked
        assert client.statistics().unavailable == 1


def test_nothing_listening_is_unavailable() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with (
        RobotClient(f"http://127.0.0.1:{port}", timeout_s=0.5) as client,
        pytest.raises(DeviceUnavailable),
    ):
        client.device_info()


def test_a_robot_that_never_answers_times_out_as_unavailable() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # accepted by the kernel, never answered
        port = silent.getsockname()[1]
        client = RobotClient(f"http://127.0.0.1:{port}", timeout_s=0.2)
        with client, pytest.raises(DeviceUnavailable, match="in time"):
            client.state()


class FakeController:
    """An HTTP server answering every request with a fixed status and body."""

    def __init__(self, status: int, body: bytes) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(status)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    def __enter__(self) -> str:
        self.thread.start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, b"<html>robot dashboard</html>"),
        (200, b'{"pose": {"x": 1}}'),  # no envelope
        (200, b'{"code": 200, "status": "success", "message": "ok", "data": {"x": "far"}}'),
        (502, b"Bad Gateway"),
        (200, b'{"code": 200, "status": "success", "message": "ok", "data": {"pose": '),
    ],
)
def test_a_reply_that_is_not_the_expected_json_is_a_frame_error(status: int, body: bytes) -> None:
    with FakeController(status, body) as url, RobotClient(url, timeout_s=1.0) as client:
        with pytest.raises(FrameError):
            client.state()
        assert client.statistics().malformed == 1


def test_an_error_envelope_without_reason_is_still_refused() -> None:
    body = b'{"code": 500, "status": "error", "message": "robot brain fault", "data": null}'
    with (
        FakeController(500, body) as url,
        RobotClient(url) as client,
        pytest.raises(RobotRefused) as refused,
    ):
        client.state()
    assert (refused.value.code, refused.value.reason) == (500, "")
    assert refused.value.message == "robot brain fault"


# --- stream ------------------------------------------------------------------------------


def test_stream_delivers_snapshot_pose_updates_and_arrival(
    sim: RobotSim, client: RobotClient, recorder: Recorder
) -> None:
    with open_stream(client, recorder) as stream:
        wait_for(lambda: len(recorder.messages) >= 5)
        kinds = [type(m) for m in recorder.messages[:5]]
        assert kinds == [StateMessage, MapMessage, GoalPoseMessage, TfMessage, OdomMessage]
        goal = client.go_to_location(3.0, 2.0, 1.0).goal
        wait_for(lambda: any(isinstance(m, GoalPoseMessage) and m.data == goal
                             for m in recorder.messages))  # fmt: skip
        step_until(sim, MotionState.ARRIVED, dt=0.25)
        wait_for(lambda: recorder.states()[-1].motion is MotionState.ARRIVED)
        xs = [s.pose.x for s in recorder.states() if s.motion is MotionState.NAVIGATING]
        assert len(xs) > 5 and xs[-1] > xs[0]
        assert recorder.states()[-1].pose == Pose(x=3.0, y=2.0, yaw=1.0)
        stats = stream.statistics()
        assert stats.connected and stats.messages == len(recorder.messages) and stats.gaps == 0
    assert recorder.lost == []


def test_malformed_messages_are_counted_and_the_stream_goes_on(
    sim: RobotSim, client: RobotClient, recorder: Recorder
) -> None:
    with open_stream(client, recorder) as stream:
        wait_for(lambda: len(recorder.messages) >= 5)
        sim.push_raw("garbage")
        sim.push_raw('{"topic": "state", "seq": 7}')  # missing ts and data
        sim.push_raw('{"topic": "weather", "seq": 8, "ts": "2025-01-01T00:00:00Z", "data": {}}')
        sim.push_raw(json.dumps({"topic": "odom", "seq": 9, "ts": "2025-01-01T00:00:00Z",
                                 "data": {"frame_id": "odom", "child_frame_id": "b",
                                          "pose": {"x": 1e300, "y": 0}, "linear_speed": 0,
                                          "angular_speed": 0}}))  # fmt: skip
        wait_for(lambda: len(recorder.malformed) == 4)
        count = len(recorder.messages)
        sim.raise_alert(3, "still here", "the stream survived")
        wait_for(lambda: len(recorder.messages) == count + 1)
        assert isinstance(recorder.messages[-1], AlertMessage)
        assert stream.statistics().malformed == 4 and stream.connected
    assert "garbage" in recorder.malformed[0]


def test_a_seq_gap_is_counted_and_a_snapshot_can_be_asked_for(
    sim: RobotSim, client: RobotClient, recorder: Recorder
) -> None:
    with open_stream(client, recorder) as stream:
        wait_for(lambda: len(recorder.messages) >= 5)
        last = recorder.messages[-1]
        jumped = msgspec.structs.replace(last, seq=last.seq + 10)
        sim.push_raw(encode(jumped).decode())
        wait_for(lambda: stream.statistics().gaps == 9)
        count = len(recorder.messages)
        stream.request_snapshot()
        wait_for(lambda: len(recorder.messages) >= count + 5)
        assert isinstance(recorder.messages[count], StateMessage)


def test_the_stream_is_lost_when_the_robot_drops_it_and_can_reconnect(
    sim: RobotSim, client: RobotClient, recorder: Recorder
) -> None:
    stream = open_stream(client, recorder)
    wait_for(lambda: sim.ws_clients == 1)
    sim.drop_ws_clients()
    wait_for(lambda: len(recorder.lost) == 1)
    assert not stream.connected and stream.statistics().lost_reason == recorder.lost[0]
    with pytest.raises(DeviceUnavailable):
        stream.request_snapshot()
    stream.connect()
    wait_for(lambda: sim.ws_clients == 1)
    sim.go_offline()
    wait_for(lambda: len(recorder.lost) == 2)
    with pytest.raises(DeviceUnavailable):
        stream.connect()
    stream.close()


def test_close_is_idempotent_and_reports_no_loss(
    sim: RobotSim, client: RobotClient, recorder: Recorder
) -> None:
    stream = open_stream(client, recorder)
    wait_for(lambda: sim.ws_clients == 1)
    stream.close()
    stream.close()
    wait_for(lambda: sim.ws_clients == 0)
    assert not stream.connected and recorder.lost == []


def test_a_silent_robot_is_declared_lost(recorder: Recorder) -> None:
    with RobotSim(realtime=False, ws_ping_s=60.0) as quiet, RobotClient(quiet.base_url) as client:
        stream = open_stream(client, recorder, silence_timeout_s=0.3)
        wait_for(lambda: len(recorder.lost) == 1)
        assert "silent" in recorder.lost[0]
        stream.close()


def test_a_stream_to_nothing_or_to_plain_http_is_unavailable(sim: RobotSim) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    nowhere = RobotStream(f"ws://127.0.0.1:{port}/ws", on_message=lambda _m: None)
    with pytest.raises(DeviceUnavailable):
        nowhere.connect()
    not_ws = RobotStream(f"ws://127.0.0.1:{sim.port}/state", on_message=lambda _m: None)
    with pytest.raises(DeviceUnavailable, match="refused"):
        not_ws.connect()


# --- messages ----------------------------------------------------------------------------

_coords = st.floats(-100.0, 100.0, allow_nan=False)
_yaws = st.floats(-math.pi, math.pi, exclude_max=True)
_poses = st.builds(Pose, x=_coords, y=_coords, yaw=_yaws)
_goals = st.builds(
    Goal,
    goal_id=st.text(min_size=1, max_size=10),
    kind=st.sampled_from(GoalKind),
    target=_poses,
    waypoint=st.none() | st.text(min_size=1, max_size=10),
)
_states = st.builds(
    RobotState,
    pose=_poses,
    motion=st.sampled_from(MotionState),
    goal=st.none() | _goals,
    battery_pct=st.floats(0.0, 100.0),
    charging=st.booleans(),
    docked=st.booleans(),
    privacy=st.booleans(),
    mapping=st.booleans(),
    active_map_id=st.text(min_size=1, max_size=10),
    linear_speed=st.floats(-2.0, 2.0),
    angular_speed=st.floats(-3.0, 3.0),
)
_stamps = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
_messages = st.one_of(
    st.builds(StateMessage, seq=st.integers(1, 2**40), ts=_stamps, data=_states),
    st.builds(GoalPoseMessage, seq=st.integers(1, 2**40), ts=_stamps, data=st.none() | _goals),
)


@settings(max_examples=200)
@given(message=_messages)
def test_stream_messages_round_trip(message: StreamMessage) -> None:
    assert decode_stream_message(encode(message)) == message


@settings(max_examples=300)
@given(raw=st.binary(max_size=200))
def test_any_bytes_decode_or_raise_frame_error(raw: bytes) -> None:
    try:
        decode_stream_message(raw)
    except FrameError:
        pass


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300)
@given(
    topic=st.sampled_from(["state", "alert", "tf", "odom", "map", "goal_pose", "other"]),
    seq=st.integers(-5, 10) | st.text(max_size=3),
    data=_json,
)
def test_any_json_message_decodes_or_raises_frame_error(
    topic: str, seq: object, data: object
) -> None:
    raw = json.dumps({"topic": topic, "seq": seq, "ts": "2025-01-01T00:00:00Z", "data": data})
    try:
        message = decode_stream_message(raw)
    except FrameError:
        return
    assert message.seq >= 1


@given(x=st.floats(), y=st.floats(), yaw=st.floats())
def test_coordinates_must_be_finite_and_in_range(x: float, y: float, yaw: float) -> None:
    ok = all(math.isfinite(v) and abs(v) <= 10_000 for v in (x, y)) and abs(yaw) <= 2 * math.pi
    try:
        validate(GoToLocation(x=x, y=y, yaw=yaw))
    except ValueError:
        assert not ok
    else:
        assert ok


@given(level=st.integers(-1000, 1000))
def test_percentages_are_0_to_100(level: int) -> None:
    try:
        validate(SettingsPatch(volume=level))
    except ValueError:
        assert not 0 <= level <= 100
    else:
        assert 0 <= level <= 100


@given(name=st.text(max_size=70))
def test_names_are_non_empty_unpadded_and_path_safe(name: str) -> None:
    try:
        validate(Waypoint(name=name, x=1.0, y=1.0))
    except ValueError:
        assert (
            not name
            or len(name) > 64
            or name != name.strip()
            or "/" in name
            or any(ord(c) < 0x20 for c in name)
            or name[0].isspace()
            or name[-1].isspace()
        )
    else:
        assert name and len(name) <= 64 and "/" not in name
        assert not name[0].isspace() and not name[-1].isspace()


def test_a_ping_read_just_before_our_close_is_not_answered_and_breaks_nothing() -> None:
    """The race behind an "Exception in thread takt-ws-reader": close() sends our close on its
    thread while the reader holds a ping it read just before; the pong is dropped quietly."""
    import wsproto
    import wsproto.events as wse

    from drivers.robot.client import _Link

    ours, theirs = socket.socketpair()
    with ours, theirs:
        client = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
        server = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
        server.receive_data(client.send(wse.Request(host="robot", target="/ws")))
        request = next(e for e in server.events() if isinstance(e, wse.Request))
        client.receive_data(server.send(wse.AcceptConnection()))
        assert [type(e) for e in client.events()] == [wse.AcceptConnection]
        assert request.target == "/ws"
        link = _Link(ours, client)
        assert link.send(wse.CloseConnection(code=1000))  # close() on another thread
        assert link.send(wse.Ping(payload=b"takt").response()) is False
        server.receive_data(theirs.recv(1024))
        assert [type(e) for e in server.events()] == [wse.CloseConnection]  # no pong after it
