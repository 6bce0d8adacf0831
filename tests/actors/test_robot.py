"""The robot actor against the robot controller simulator, over loopback HTTP and WebSocket:
state and goals from the stream, alerts stored once, telemetry copied, refusals, bad input,
loss and reconnect."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pykka
import pytest

from actors.bus import Event
from actors.health import HealthState
from actors.robot import RobotActor, webhook_base_url
from actors.robot_messages import (
    CopyTelemetry,
    GetRobotStatus,
    ReceiveAlert,
    RobotCall,
    RobotStatus,
    WebhookKeyRefused,
)
from actors.runtime import ActorUnavailable, Runtime, call
from actors.supervisor import ChildSpec, Supervisor
from controller.clock import VirtualClock
from controller.config import RobotConfig, parse_config
from controller.events import Category, Severity, classify
from controller.supervision import Backoff, RestartIntensity
from drivers.robot.client import RobotRefused
from drivers.robot.messages import Alert, GoalAccepted, MotionState
from sim.robot import RobotSim
from state.connection import open_database
from state.robots import count_alerts, list_logs
from tests.actors.probe import Probe
from tests.actors.settle import settle


def config(port: int, **extra: Any) -> RobotConfig:
    settings = {"timeout_ms": 1000, "telemetry_interval_s": 600, **extra}
    lines = "".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in settings.items())
    text = (f'[station]\nid = "t"\nname = "t"\n[[robots]]\nname = "r1"\n'
            f'url = "http://127.0.0.1:{port}"\n{lines}')
    return parse_config(text, "t.toml").robots[0]


@pytest.fixture
def robot() -> Iterator[RobotSim]:
    with RobotSim(realtime=False) as sim:
        yield sim


@pytest.fixture
def database(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    con = open_database(tmp_path / "takt.duckdb")
    yield con
    pykka.ActorRegistry.stop_all(block=True, timeout=10)  # no cursor may outlive the file
    con.close()


def start(runtime: Runtime, database: duckdb.DuckDBPyConnection, port: int,
          **extra: Any) -> Any:
    ref = RobotActor.start(runtime, "robot:r1", config(port, **extra), database)
    call(runtime, ref, GetRobotStatus())  # answered once on_start has connected
    return ref


def status(runtime: Runtime, ref: Any = None) -> RobotStatus:
    """The actor's status; by the supervisor's directory unless its ref is given."""
    ref = ref if ref is not None else runtime.directory.get("robot:r1")
    return call(runtime, ref, GetRobotStatus())  # type: ignore[no-any-return]


def watch(runtime: Runtime) -> Any:
    probe = Probe.start(runtime, "watch")
    runtime.bus.subscribe_actor(["device.robot.*"], probe)
    return probe


def seen(probe: Any, topic: str) -> list[Event]:
    return [e for e in probe.proxy().events.get() if e.topic == topic]


def supervised(runtime: Runtime, cfg: RobotConfig, database: duckdb.DuckDBPyConnection) -> Any:
    return Supervisor.start(runtime, "devices",
                            [ChildSpec.of(RobotActor, "robot:r1", cfg, database)],
                            intensity=RestartIntensity(100, 60.0),
                            backoff=Backoff(min_s=0.2, max_s=0.5, jitter=0.0, stable_s=30.0))


def test_on_start_it_knows_the_robot_and_follows_a_goal_to_its_outcome(
        runtime: Runtime, vclock: VirtualClock, robot: RobotSim,
        database: duckdb.DuckDBPyConnection) -> None:
    events = watch(runtime)
    ref = start(runtime, database, robot.port)
    s = status(runtime, ref)
    assert s.device is not None and s.device.device_id == robot.inspect(lambda d: d.device_id)
    assert s.state is not None and s.state.motion in (MotionState.IDLE, MotionState.DOCKED)
    assert s.active_map is not None and {w.name for w in s.active_map.waypoints} >= {"pick"}
    assert runtime.health.state("robot:r1") == HealthState.UP

    accepted = call(runtime, ref, RobotCall(method="go_to_waypoint", args={"name": "pick"}))
    assert isinstance(accepted, GoalAccepted) and accepted.goal.waypoint == "pick"
    # Robot time passes only in step(); the stream brings each tick's state to the actor.
    for _ in range(400):
        robot.step(0.25)
        if robot.state().motion is MotionState.ARRIVED:
            break
    settle(runtime, vclock, lambda: bool(seen(events, "device.robot.r1.goal")))
    goal = seen(events, "device.robot.r1.goal")
    assert [e.data["outcome"] for e in goal] == ["arrived"]
    assert goal[0].durable and goal[0].data["goal"]["waypoint"] == "pick"
    target = goal[0].data["goal"]["target"]
    assert abs(goal[0].data["pose"]["x"] - target["x"]) < 0.1
    assert status(runtime, ref).goal_outcomes == {"arrived": 1}
    states = seen(events, "device.robot.r1.state")
    assert {e.data["motion"] for e in states} >= {"navigating", "arrived"}
    # The frames an HMI draws with are published too, for the /ws/robots relay.
    for topic in ("tf", "odom", "goal_pose"):
        assert seen(events, f"device.robot.r1.{topic}"), topic
    assert classify("device.robot.r1.goal", None, goal[0].data) is None  # routine


def test_a_refused_command_says_why_and_leaves_the_actor_up(
        runtime: Runtime, vclock: VirtualClock, robot: RobotSim,
        database: duckdb.DuckDBPyConnection) -> None:
    ref = start(runtime, database, robot.port)
    with pytest.raises(RobotRefused) as refused:
        call(runtime, ref, RobotCall(method="go_to_location", args={"x": 400.0, "y": 1.0}))
    assert refused.value.reason == "outside_map" and refused.value.code == 422
    with pytest.raises(RobotRefused) as unknown:
        call(runtime, ref, RobotCall(method="go_to_waypoint", args={"name": "nowhere"}))
    assert unknown.value.reason == "unknown_waypoint"
    with pytest.raises(ValueError, match="no robot call"):
        call(runtime, ref, RobotCall(method="close"))  # only the robot's routes are callable
    assert robot.state().goal is None  # nothing moved
    assert runtime.health.state("robot:r1") == HealthState.UP
    volume = call(runtime, ref, RobotCall(method="set_volume", args={"level": 35}))
    assert volume.volume == 35 and robot.inspect(lambda d: d.volume) == 35


def test_an_alert_is_stored_once_whichever_way_it_comes_and_journaled(
        runtime: Runtime, vclock: VirtualClock, robot: RobotSim,
        database: duckdb.DuckDBPyConnection) -> None:
    events = watch(runtime)
    ref = start(runtime, database, robot.port)
    alert = robot.raise_alert(2, "Bumper pressed", "the front bumper touched something")
    settle(runtime, vclock, lambda: bool(seen(events, "device.robot.r1.alert")))
    # The same alert again, as the webhook would post it: acknowledged, not stored twice.
    again = call(runtime, ref, ReceiveAlert(alert=alert, key=None))
    assert again.acknowledged and not again.new
    assert count_alerts(database.cursor(), "r1") == 1
    published = seen(events, "device.robot.r1.alert")
    assert len(published) == 1 and published[0].durable
    assert published[0].data["uuid"] == alert.uuid and published[0].data["via"] == "stream"
    entry = classify(published[0].topic, None, published[0].data)
    assert entry is not None and entry.category is Category.ROBOT
    assert entry.severity is Severity.ERROR and "Bumper pressed" in entry.message
    assert status(runtime, ref).alerts_received == 1

    forged = Alert(**{**_fields(alert), "uuid": "f0f0f0f0-0000-4000-8000-000000000000"})
    with pytest.raises(WebhookKeyRefused):
        call(runtime, ref, ReceiveAlert(alert=forged, key="not-the-key"))
    other = Alert(**{**_fields(forged), "device_id": "someone-else"})
    with pytest.raises(ValueError, match="someone-else"):
        call(runtime, ref, ReceiveAlert(alert=other, key=None))
    assert count_alerts(database.cursor(), "r1") == 1  # neither was stored


def _fields(alert: Alert) -> dict[str, Any]:
    return {f: getattr(alert, f) for f in alert.__struct_fields__}


def test_alerts_raised_while_takt_was_away_are_fetched_on_connect(
        runtime: Runtime, vclock: VirtualClock, robot: RobotSim,
        database: duckdb.DuckDBPyConnection) -> None:
    first = robot.raise_alert(3, "Lidar dirty", "clean the lidar window")
    second = robot.raise_alert(5, "Map updated", "waypoints changed")
    events = watch(runtime)
    start(runtime, database, robot.port)
    settle(runtime, vclock, lambda: len(seen(events, "device.robot.r1.alert")) == 2)
    alerts = seen(events, "device.robot.r1.alert")
    assert [e.data["uuid"] for e in alerts] == [first.uuid, second.uuid]  # oldest first
    assert {e.data["via"] for e in alerts} == {"backfill"}


def test_telemetry_is_copied_into_the_store_once_and_read_back_newest_first(
        runtime: Runtime, vclock: VirtualClock, robot: RobotSim,
        database: duckdb.DuckDBPyConnection) -> None:
    ref = start(runtime, database, robot.port)  # the first copy runs on connect
    call(runtime, ref, RobotCall(method="go_to_location", args={"x": 3.0, "y": 1.5}))
    for _ in range(40):
        robot.step(0.5)
    copied = call(runtime, ref, CopyTelemetry())
    assert copied.copied["location"] > 0 and copied.copied["activity"] > 0
    assert copied.overrun == []
    con = database.cursor()
    stored = list_logs(con, "r1", "location", 500)
    on_robot = [e.log_id for e in robot.inspect(lambda d: d.logs.latest("location", 500))]
    assert sorted(e["log_id"] for e in stored) == sorted(on_robot)
    assert [e["log_id"] for e in stored] == sorted((e["log_id"] for e in stored), reverse=True)
    again = call(runtime, ref, CopyTelemetry())
    assert sum(again.copied.values()) == 0  # nothing new: nothing copied twice
    assert len(list_logs(con, "r1", "location", 500)) == len(stored)
    assert status(runtime, ref).telemetry_copied == sum(
        len(list_logs(con, "r1", kind, 500))
        for kind in ("activity", "connectivity", "location", "battery", "system"))


def test_malformed_stream_messages_are_counted_and_the_stream_goes_on(
        runtime: Runtime, vclock: VirtualClock, robot: RobotSim,
        database: duckdb.DuckDBPyConnection, caplog: pytest.LogCaptureFixture) -> None:
    ref = start(runtime, database, robot.port)
    settle(runtime, vclock, lambda: robot.ws_clients == 1)
    robot.push_raw("{not json")
    robot.push_raw('{"topic": "state", "seq": 99999, "ts": "x", "data": {}}')
    settle(runtime, vclock, lambda: status(runtime, ref).malformed == 2)
    assert "robot r1" in caplog.text
    robot.set_battery(50.0)
    settle(runtime, vclock, lambda: (s := status(runtime, ref).state) is not None
           and round(s.battery_pct) == 50)
    assert runtime.health.state("robot:r1") == HealthState.UP


def test_an_offline_robot_fails_commands_at_once_and_is_reconnected(
        runtime: Runtime, vclock: VirtualClock, robot: RobotSim,
        database: duckdb.DuckDBPyConnection) -> None:
    supervised(runtime, config(robot.port), database)
    settle(runtime, vclock, lambda: runtime.health.state("robot:r1") == HealthState.UP)
    robot.go_offline()
    settle(runtime, vclock, lambda: runtime.health.state("robot:r1") == HealthState.DOWN)
    with pytest.raises(ActorUnavailable):  # never queued for a robot that is not there
        call(runtime, runtime.directory.get("robot:r1"), RobotCall(method="dock"))
    robot.raise_alert(1, "Emergency stop", "the e-stop was pressed")  # while Takt is away
    robot.go_online()
    settle(runtime, vclock, lambda: runtime.health.state("robot:r1") == HealthState.UP
           and robot.ws_clients == 1)
    assert status(runtime).alerts_received == 1  # fetched on reconnect
    assert runtime.health.component("robot:r1").restarts >= 1


def test_a_silent_stream_is_a_lost_link(runtime: Runtime, vclock: VirtualClock,
                                         database: duckdb.DuckDBPyConnection) -> None:
    # Pings every 30 s: the actor's 1 s silence limit passes first.
    with RobotSim(realtime=False, ws_ping_s=30.0) as quiet:
        start(runtime, database, quiet.port, silence_timeout_s=1.0)
        settle(runtime, vclock, lambda: runtime.health.state("robot:r1") == HealthState.DOWN)
    assert "stream lost" in (runtime.health.component("robot:r1").last_error or "")


def test_the_webhook_points_at_takt_with_a_secret_key(
        runtime: Runtime, vclock: VirtualClock, robot: RobotSim,
        database: duckdb.DuckDBPyConnection) -> None:
    cfg = config(robot.port)
    assert webhook_base_url(cfg, "0.0.0.0", 8080) == "http://127.0.0.1:8080"
    ref = RobotActor.start(runtime, "robot:r1", cfg, database,
                           webhook_base="http://127.0.0.1:8080")
    call(runtime, ref, GetRobotStatus())
    url = robot.inspect(lambda d: d.webhook_url)
    assert url is not None and url.startswith("http://127.0.0.1:8080/api/v1/robots/r1/alerts?key=")
    assert status(runtime, ref).webhook_url == "http://127.0.0.1:8080/api/v1/robots/r1/alerts"
    key = url.partition("key=")[2]
    alert = robot.raise_alert(4, "Door open", "the cell door is open")
    received = call(runtime, ref, ReceiveAlert(alert=alert, key=key))
    assert received.acknowledged
