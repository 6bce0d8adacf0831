"""The robot simulator's pure parts: motion, battery, docking, privacy, maps, planner, logs."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.robot.messages import GoalKind, LogKind, MotionState, Pose, Reason, Waypoint
from sim.robot.maps import MapStore, StoredMap, demo_map
from sim.robot.planner import Box, FreeSpace, wrap_angle
from sim.robot.refused import Refused
from sim.robot.telemetry import TelemetryLog
from sim.robot.world import (
    Arrived,
    BatteryDepleted,
    BatteryLow,
    BatteryModel,
    Docked,
    GoalFailed,
    PrivacyEnded,
    RobotWorld,
    WorldEvent,
)

BENCH = Box(5.0, 3.0, 7.0, 5.0)  # the demo map's obstacle
_T0 = datetime(2025, 1, 1, tzinfo=UTC)


def new_world(**kwargs: object) -> RobotWorld:
    return RobotWorld(MapStore([demo_map()]), **kwargs)  # type: ignore[arg-type]


def run_until_idle(world: RobotWorld, dt: float = 0.1, limit_s: float = 300.0) -> list[WorldEvent]:
    """Advance until the goal is over; fail if it never ends."""
    events: list[WorldEvent] = []
    while world.goal is not None:
        assert world.time_s < limit_s, "the goal never ended"
        events += world.advance(dt)
    return events


# --- motion ------------------------------------------------------------------------------


def test_goal_is_reached_within_tolerance_and_reported_once() -> None:
    world = new_world()
    goal = world.go_to(10.0, 2.0, 1.0)
    assert world.motion is MotionState.NAVIGATING and not world.docked
    events = run_until_idle(world)
    assert events == [Arrived(goal)]
    assert world.motion is MotionState.ARRIVED
    assert math.dist((world.pose.x, world.pose.y), (10.0, 2.0)) <= world.limits.position_tolerance_m
    assert abs(wrap_angle(world.pose.yaw - 1.0)) <= world.limits.yaw_tolerance_rad
    # Arrived holds; more time changes nothing.
    before = world.pose
    assert world.advance(5.0) == []
    assert world.pose == before and world.motion is MotionState.ARRIVED


def test_speed_and_turn_rate_are_respected() -> None:
    world = new_world()
    world.go_to(10.0, 1.0, 0.0)  # straight along +x from the dock at (1, 1)
    previous = world.pose
    for _ in range(50):
        world.advance(0.05)
        moved = math.dist((previous.x, previous.y), (world.pose.x, world.pose.y))
        turned = abs(wrap_angle(world.pose.yaw - previous.yaw))
        assert moved <= world.limits.max_speed_mps * 0.05 + 1e-9
        assert turned <= world.limits.max_turn_rps * 0.05 + world.limits.heading_tolerance_rad
        previous = world.pose
    # 2.5 s at 0.6 m/s: about 1.5 m along x.
    assert world.pose.x == pytest.approx(2.5, abs=0.05)


def test_the_path_goes_around_an_obstacle() -> None:
    world = new_world()
    grown = BENCH.grown(world.limits.radius_m)
    world.go_to(11.0, 4.0, 0.0)  # straight there would cross the bench
    assert grown.crosses((1.0, 1.0), (11.0, 4.0))
    while world.goal is not None:
        world.advance(0.05)
        assert not grown.contains((world.pose.x, world.pose.y))
    assert (world.pose.x, world.pose.y) == pytest.approx((11.0, 4.0), abs=0.01)


def test_yaw_wraps_and_turns_the_short_way() -> None:
    world = new_world()
    world.go_to(2.0, 1.0, 3.0)
    run_until_idle(world)
    assert world.pose.yaw == pytest.approx(3.0, abs=0.01)
    # From +3.0 to -3.0 is 0.28 rad through pi, not 6 rad the long way round.
    world.go_to(2.0, 1.0, -3.0)
    short_turn_s = (2 * math.pi - 6.0) / world.limits.max_turn_rps
    world.advance(short_turn_s + 0.2)
    assert world.motion is MotionState.ARRIVED
    assert world.pose.yaw == pytest.approx(-3.0, abs=0.01)
    # A goal yaw beyond pi is reported wrapped into [-pi, pi).
    goal = world.go_to(2.0, 1.0, 1.5 * math.pi)
    assert goal.target.yaw == pytest.approx(-0.5 * math.pi)
    run_until_idle(world)
    assert -math.pi <= world.pose.yaw < math.pi
    assert world.pose.yaw == pytest.approx(-0.5 * math.pi, abs=0.01)


def test_waypoint_goal_carries_its_name() -> None:
    world = new_world()
    goal = world.go_to_waypoint("place")
    assert goal.kind is GoalKind.WAYPOINT and goal.waypoint == "place"
    run_until_idle(world)
    assert (world.pose.x, world.pose.y) == pytest.approx((10.0, 1.5), abs=0.01)


def test_cancel_stops_the_robot_where_it_is() -> None:
    world = new_world()
    assert world.cancel_goal() is False  # nothing to cancel
    world.go_to(10.0, 1.0, 0.0)
    world.advance(2.0)
    assert world.cancel_goal() is True
    assert world.motion is MotionState.CANCELED and world.goal is None
    stopped = world.pose
    assert world.advance(3.0) == []
    assert world.pose == stopped
    assert world.linear_speed == 0.0


def test_docking_goes_to_the_dock_and_charges() -> None:
    world = new_world()
    world.go_to(6.0, 1.5, 0.0)
    run_until_idle(world)
    assert world.cancel_dock() is False  # not docking
    goal = world.dock()
    assert goal.kind is GoalKind.DOCK and world.motion is MotionState.DOCKING
    assert world.cancel_goal() is False  # cancel_go_to does not cancel docking
    events = run_until_idle(world)
    assert events == [Docked(goal)]
    assert world.docked and world.motion is MotionState.DOCKED
    dock = world.maps.active.dock
    assert (world.pose.x, world.pose.y) == pytest.approx((dock.x, dock.y), abs=0.01)
    world.set_battery(50.0)
    assert world.charging
    world.advance(10.0)
    assert world.battery_pct == pytest.approx(50.0 + 10.0 * world.battery_model.charge_pct_s)
    world.advance(1000.0)
    assert world.battery_pct == 100.0 and not world.charging


def test_cancel_dock_stops_docking() -> None:
    world = new_world()
    world.go_to(6.0, 1.5, 0.0)
    run_until_idle(world)
    world.dock()
    world.advance(1.0)
    assert world.cancel_dock() is True
    assert world.motion is MotionState.CANCELED and not world.docked


def test_a_new_goal_leaves_the_dock() -> None:
    world = new_world()
    assert world.docked
    world.go_to(3.0, 1.0, 0.0)
    assert not world.docked and not world.charging


# --- battery -----------------------------------------------------------------------------


def test_battery_drains_faster_moving_than_idle() -> None:
    idle, moving = new_world(), new_world()
    for w in (idle, moving):
        w.go_to(1.5, 1.0, 0.0)
        run_until_idle(w)
        w.set_battery(90.0)
    moving.go_to(11.0, 1.0, 0.0)
    idle.advance(10.0)
    moving.advance(10.0)
    model = idle.battery_model
    assert idle.battery_pct == pytest.approx(90.0 - 10.0 * model.idle_drain_pct_s)
    assert moving.battery_pct == pytest.approx(
        90.0 - 10.0 * (model.idle_drain_pct_s + model.moving_drain_pct_s), abs=1e-6
    )


def test_low_battery_is_reported_once_and_again_after_recharging() -> None:
    world = new_world(battery=BatteryModel(idle_drain_pct_s=1.0))
    world.go_to(2.0, 1.0, 0.0)
    run_until_idle(world)
    world.set_battery(21.0)
    events = world.advance(2.0)
    assert [type(e) for e in events] == [BatteryLow]
    assert world.advance(2.0) == []  # still low, not reported again
    assert world.set_battery(30.0) == []
    assert [type(e) for e in world.set_battery(10.0)] == [BatteryLow]


def test_low_battery_refuses_goals_except_dock() -> None:
    world = new_world()
    world.go_to(3.0, 1.0, 0.0)
    run_until_idle(world)
    world.set_battery(world.battery_model.refuse_goals_below_pct - 1.0)
    with pytest.raises(Refused) as refused:
        world.go_to(4.0, 1.0, 0.0)
    assert refused.value.reason is Reason.BATTERY_LOW
    with pytest.raises(Refused):
        world.go_to_waypoint("pick")
    world.dock()  # still accepted
    assert world.motion is MotionState.DOCKING


def test_empty_battery_stops_the_robot_and_refuses_even_docking() -> None:
    world = new_world()
    goal = world.go_to(10.0, 1.0, 0.0)
    world.advance(1.0)
    events = world.set_battery(0.0)
    assert events == [BatteryLow(0.0), GoalFailed(goal, Reason.BATTERY_EMPTY), BatteryDepleted()]
    assert world.motion is MotionState.FAILED
    with pytest.raises(Refused) as refused:
        world.dock()
    assert refused.value.reason is Reason.BATTERY_EMPTY


# --- refusals ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("x", "y", "reason"),
    [
        (20.0, 1.0, Reason.OUTSIDE_MAP),
        (-1.0, 4.0, Reason.OUTSIDE_MAP),
        (12.0, 4.0, Reason.OUTSIDE_MAP),  # on the edge: the robot's body would stick out
        (math.inf, 1.0, Reason.OUTSIDE_MAP),
        (math.nan, 1.0, Reason.OUTSIDE_MAP),
        (6.0, 4.0, Reason.UNREACHABLE),  # inside the bench
    ],
)
def test_bad_goals_are_refused_and_change_nothing(x: float, y: float, reason: Reason) -> None:
    world = new_world()
    with pytest.raises(Refused) as refused:
        world.go_to(x, y, 0.0)
    assert refused.value.reason is reason
    assert world.goal is None and world.docked and world.motion is MotionState.DOCKED


def test_a_walled_in_goal_is_unreachable() -> None:
    walls = (Box(6.0, 2.0, 10.0, 2.5), Box(6.0, 5.5, 10.0, 6.0), Box(6.0, 2.0, 6.5, 6.0),
             Box(9.5, 2.0, 10.0, 6.0))  # fmt: skip
    room = StoredMap(map_id="m", name="room", width_m=12.0, height_m=8.0, obstacles=walls,
                     dock=Pose(x=1.0, y=1.0))  # fmt: skip
    world = RobotWorld(MapStore([room]))
    with pytest.raises(Refused) as refused:
        world.go_to(8.0, 4.0, 0.0)
    assert refused.value.reason is Reason.UNREACHABLE


def test_unknown_waypoint_is_refused() -> None:
    with pytest.raises(Refused) as refused:
        new_world().go_to_waypoint("nowhere")
    assert refused.value.reason is Reason.UNKNOWN_WAYPOINT


# --- privacy -----------------------------------------------------------------------------


def test_timed_privacy_ends_by_itself() -> None:
    world = new_world()
    world.enable_privacy(30.0)
    assert world.advance(29.0) == [] and world.privacy
    assert world.advance(2.0) == [PrivacyEnded()]
    assert not world.privacy
    world.enable_privacy(None)
    world.advance(10_000.0)
    assert world.privacy


# --- maps --------------------------------------------------------------------------------


def test_switching_maps_is_refused_while_moving_and_relocalises_if_needed() -> None:
    small = StoredMap(map_id="small", name="small", width_m=3.0, height_m=3.0,
                      dock=Pose(x=2.0, y=2.0, yaw=1.0))  # fmt: skip
    store = MapStore([demo_map(), small])
    world = RobotWorld(store)
    world.go_to(10.0, 6.0, 0.0)
    with pytest.raises(Refused) as refused:
        world.activate_map("small")
    assert refused.value.reason is Reason.BUSY
    run_until_idle(world)
    pose = world.activate_map("small")  # (10, 6) is off the small map: back to its dock
    assert (pose.x, pose.y, pose.yaw) == (2.0, 2.0, 1.0)
    assert store.active.map_id == "small" and world.docked


def test_waypoint_upsert_counts_and_is_all_or_nothing() -> None:
    store = MapStore([demo_map()])
    inserted, updated = store.upsert_waypoints(
        "map-1", [Waypoint(name="a", x=1.0, y=6.0), Waypoint(name="pick", x=9.0, y=6.0)], now_s=5.0
    )
    assert (inserted, updated) == (1, 1)
    assert store.active.waypoint("pick") == Waypoint(name="pick", x=9.0, y=6.0)
    assert store.active.modified_s == 5.0
    before = store.active
    with pytest.raises(Refused) as refused:
        store.upsert_waypoints(
            "map-1",
            [Waypoint(name="b", x=2.0, y=2.0), Waypoint(name="c", x=30.0, y=2.0)],
            now_s=6.0,
        )
    assert refused.value.reason is Reason.OUTSIDE_MAP
    assert store.active == before
    with pytest.raises(Refused) as refused:
        store.upsert_waypoints("map-1", [Waypoint(name="b", x=6.0, y=4.0)], now_s=6.0)
    assert refused.value.reason is Reason.UNREACHABLE


def test_the_active_map_cannot_be_deleted() -> None:
    store = MapStore([demo_map(), demo_map("map-2", "spare")])
    with pytest.raises(Refused) as refused:
        store.delete("map-1")
    assert refused.value.reason is Reason.MAP_ACTIVE
    assert store.delete("map-2") == 3
    with pytest.raises(Refused) as refused:
        store.get("map-2")
    assert refused.value.reason is Reason.UNKNOWN_MAP


def test_a_map_whose_dock_is_blocked_is_rejected() -> None:
    bad = StoredMap(map_id="x", name="x", width_m=5.0, height_m=5.0,
                    obstacles=(Box(0.0, 0.0, 2.0, 2.0),), dock=Pose(x=1.0, y=1.0))  # fmt: skip
    with pytest.raises(ValueError, match="dock"):
        MapStore([bad])


# --- planner -----------------------------------------------------------------------------


def test_segment_crossing_and_touching() -> None:
    box = Box(0.0, 0.0, 1.0, 1.0)
    assert box.crosses((-1.0, 0.5), (2.0, 0.5))
    assert not box.crosses((-1.0, 1.0), (2.0, 1.0))  # along an edge
    assert not box.crosses((-1.0, 2.0), (2.0, 1.5))
    assert box.crosses((0.5, 0.5), (0.6, 0.6))  # wholly inside


@settings(max_examples=150, deadline=None)
@given(
    start=st.tuples(st.floats(0.3, 11.7), st.floats(0.3, 7.7)),
    goal=st.tuples(st.floats(0.3, 11.7), st.floats(0.3, 7.7)),
)
def test_planned_paths_are_free_end_at_the_goal_and_stay_on_the_map(
    start: tuple[float, float], goal: tuple[float, float]
) -> None:
    free = FreeSpace(12.0, 8.0, [BENCH, Box(1.0, 5.0, 3.0, 5.5)], radius=0.25)
    if not free.is_free(start):
        return
    path = free.plan(start, goal)
    if not free.is_free(goal):
        assert path is None
        return
    assert path is not None and path[-1] == goal
    here = start
    for point in path:
        assert free.inside(point) and free.is_free(point)
        assert free.segment_free(here, point)
        here = point


# --- telemetry ---------------------------------------------------------------------------


def test_logs_are_bounded_newest_first_with_rising_ids() -> None:
    logs = TelemetryLog(capacity=3)
    for i in range(5):
        logs.add(
            LogKind.SYSTEM,
            device_id="d",
            recorded_at=_T0,
            cpu_usage_percent=float(i),
            memory_usage_mb=1,
            system_load_avg=0.1,
            cpu_temperature=40.0,
            power_state="idle",
        )
    latest = logs.latest(LogKind.SYSTEM, 10)
    assert [e.log_id for e in latest] == [5, 4, 3]
    assert logs.dropped[LogKind.SYSTEM] == 2
    assert logs.latest(LogKind.ACTIVITY, 10) == []


# --- property ----------------------------------------------------------------------------

_points = st.tuples(st.floats(-3.0, 15.0), st.floats(-3.0, 11.0), st.floats(-7.0, 7.0))
_ops = st.one_of(
    st.tuples(st.just("go"), _points),
    st.tuples(st.just("waypoint"), st.sampled_from(["pick", "place", "inspect", "nope"])),
    st.tuples(st.just("dock"), st.none()),
    st.tuples(st.just("cancel"), st.none()),
    st.tuples(st.just("cancel_dock"), st.none()),
    st.tuples(st.just("advance"), st.floats(0.0, 8.0)),
    st.tuples(st.just("battery"), st.floats(-10.0, 110.0)),
)


@settings(max_examples=120, deadline=None)
@given(ops=st.lists(_ops, max_size=25))
def test_any_commands_keep_the_robot_finite_on_the_map_and_the_battery_in_range(
    ops: list[tuple[str, object]],
) -> None:
    world = new_world()
    free = world.maps.active_free
    for op, arg in ops:
        try:
            if op == "go":
                x, y, yaw = arg  # type: ignore[misc]
                world.go_to(x, y, yaw)
            elif op == "waypoint":
                world.go_to_waypoint(arg)  # type: ignore[arg-type]
            elif op == "dock":
                world.dock()
            elif op == "cancel":
                world.cancel_goal()
            elif op == "cancel_dock":
                world.cancel_dock()
            elif op == "advance":
                world.advance(arg)  # type: ignore[arg-type]
            else:
                world.set_battery(arg)  # type: ignore[arg-type]
        except Refused:
            pass
        pose = world.pose
        assert all(math.isfinite(v) for v in (pose.x, pose.y, pose.yaw))
        assert free.is_free((pose.x, pose.y))
        assert 0.0 <= pose.x <= 12.0 and 0.0 <= pose.y <= 8.0
        assert -math.pi <= pose.yaw < math.pi
        assert 0.0 <= world.battery_pct <= 100.0
        assert (world.goal is None) == (
            world.motion not in (MotionState.NAVIGATING, MotionState.DOCKING)
        )


def test_the_same_commands_give_the_same_world() -> None:
    def run() -> tuple[Pose, float]:
        world = new_world()
        world.go_to_waypoint("pick")
        world.advance(7.3)
        world.go_to(3.0, 6.0, 2.0)
        world.advance(12.1)
        return world.pose, world.battery_pct

    assert run() == run()


@given(angle=st.floats(-1e6, 1e6))
def test_wrap_angle_lands_in_range_and_keeps_the_direction(angle: float) -> None:
    wrapped = wrap_angle(angle)
    assert -math.pi <= wrapped < math.pi
    assert math.cos(wrapped) == pytest.approx(math.cos(angle), abs=1e-6)
    assert math.sin(wrapped) == pytest.approx(math.sin(angle), abs=1e-6)
