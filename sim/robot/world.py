"""The simulated robot's body: pose, motion toward a goal, battery, docking and privacy.

Pure and time-driven: nothing here reads a clock. `advance(dt)` moves the world on by dt
seconds and returns what happened (arrived, docked, battery low...), so the same calls
always give the same result. The base turns in place toward the next path point, drives
straight to it, and at the goal turns to the goal's yaw.
"""

from __future__ import annotations

import itertools
import math

import msgspec

from drivers.robot.messages import Goal, GoalKind, MotionState, Pose, Reason
from sim.robot.maps import MapStore
from sim.robot.planner import Point, wrap_angle
from sim.robot.refused import Refused

__all__ = [
    "Arrived",
    "BatteryDepleted",
    "BatteryLow",
    "BatteryModel",
    "Docked",
    "GoalFailed",
    "MotionLimits",
    "PrivacyEnded",
    "RobotWorld",
    "WorldEvent",
]


class MotionLimits(msgspec.Struct, frozen=True, kw_only=True):
    """How the base moves."""

    max_speed_mps: float = 0.6
    max_turn_rps: float = 1.5
    position_tolerance_m: float = 0.005
    yaw_tolerance_rad: float = 0.005
    # Turn in place until the heading error is this small, then drive (and snap the heading).
    heading_tolerance_rad: float = 0.05
    radius_m: float = 0.25
    # advance() integrates in steps no longer than this while a goal runs.
    max_substep_s: float = 0.05


class BatteryModel(msgspec.Struct, frozen=True, kw_only=True):
    """How the battery drains and charges, in percentage points per second."""

    idle_drain_pct_s: float = 0.002
    moving_drain_pct_s: float = 0.02
    charge_pct_s: float = 0.5
    low_pct: float = 20.0
    # The low-battery alert fires once, then again only after charging back above this.
    rearm_pct: float = 25.0
    # Below this only `dock` is accepted.
    refuse_goals_below_pct: float = 15.0


class Arrived(msgspec.Struct, frozen=True):
    """A location or waypoint goal was reached."""

    goal: Goal


class Docked(msgspec.Struct, frozen=True):
    """A dock goal was reached; the robot charges."""

    goal: Goal


class GoalFailed(msgspec.Struct, frozen=True):
    """A goal was abandoned (the battery ran out)."""

    goal: Goal
    reason: Reason


class BatteryLow(msgspec.Struct, frozen=True):
    """The battery fell below the low threshold."""

    battery_pct: float


class BatteryDepleted(msgspec.Struct, frozen=True):
    """The battery is empty; the robot cannot move."""


class PrivacyEnded(msgspec.Struct, frozen=True):
    """A timed privacy mode ran out."""


WorldEvent = Arrived | Docked | GoalFailed | BatteryLow | BatteryDepleted | PrivacyEnded

_MOVING = (MotionState.NAVIGATING, MotionState.DOCKING)


class RobotWorld:
    """One robot on the maps of a MapStore; starts docked at the active map's dock."""

    def __init__(
        self,
        maps: MapStore,
        *,
        battery_pct: float = 100.0,
        limits: MotionLimits | None = None,
        battery: BatteryModel | None = None,
    ) -> None:
        limits = MotionLimits() if limits is None else limits
        battery = BatteryModel() if battery is None else battery
        self.maps = maps
        self.limits = limits
        self.battery_model = battery
        self.time_s = 0.0
        dock = maps.active.dock
        self.pose = Pose(x=dock.x, y=dock.y, yaw=wrap_angle(dock.yaw))
        self.motion = MotionState.DOCKED
        self.docked = True
        self.goal: Goal | None = None
        self.last_goal: Goal | None = None
        self.linear_speed = 0.0
        self.angular_speed = 0.0
        self.battery_pct = _clamp_pct(battery_pct)
        self._low_armed = self.battery_pct >= battery.low_pct
        self._empty_armed = self.battery_pct > 0.0
        self.privacy = False
        self.privacy_until_s: float | None = None
        self._path: list[Point] = []
        self._goal_ids = itertools.count(1)

    # --- what is going on ------------------------------------------------------------------

    @property
    def charging(self) -> bool:
        """Docked and not yet full."""
        return self.docked and self.battery_pct < 100.0

    @property
    def moving(self) -> bool:
        """A goal is being pursued."""
        return self.goal is not None

    # --- goals -----------------------------------------------------------------------------

    def go_to(self, x: float, y: float, yaw: float, *, waypoint: str | None = None) -> Goal:
        """Head for (x, y, yaw) on the active map, replacing any goal; leaves the dock."""
        self._check_battery(for_dock=False)
        free = self.maps.active_free
        if not free.inside((x, y)):
            raise Refused(Reason.OUTSIDE_MAP, f"({x}, {y}) is off map {self.maps.active.map_id!r}")
        path = free.plan((self.pose.x, self.pose.y), (x, y))
        if path is None:
            raise Refused(Reason.UNREACHABLE, f"no path to ({x}, {y})")
        kind = GoalKind.LOCATION if waypoint is None else GoalKind.WAYPOINT
        self.docked = False
        target = Pose(x=float(x), y=float(y), yaw=wrap_angle(float(yaw)))
        return self._start(kind, target, path, waypoint)

    def go_to_waypoint(self, name: str) -> Goal:
        """Head for a waypoint of the active map."""
        waypoint = self.maps.active.waypoint(name)
        if waypoint is None:
            raise Refused(Reason.UNKNOWN_WAYPOINT, f"the active map has no waypoint {name!r}")
        return self.go_to(waypoint.x, waypoint.y, waypoint.yaw, waypoint=name)

    def dock(self) -> Goal:
        """Head for the active map's dock; accepted (nothing moves) when already docked."""
        self._check_battery(for_dock=True)
        dock = self.maps.active.dock
        target = Pose(x=dock.x, y=dock.y, yaw=wrap_angle(dock.yaw))
        if self.docked:
            self._stop(MotionState.DOCKED)
            return Goal(goal_id=self._next_goal_id(), kind=GoalKind.DOCK, target=target)
        path = self.maps.active_free.plan((self.pose.x, self.pose.y), (dock.x, dock.y))
        if path is None:
            raise Refused(Reason.UNREACHABLE, "no path to the dock")
        return self._start(GoalKind.DOCK, target, path, None)

    def cancel_goal(self) -> bool:
        """Stop a location or waypoint goal; False if none was running."""
        if self.goal is None or self.goal.kind is GoalKind.DOCK:
            return False
        self._stop(MotionState.CANCELED)
        return True

    def cancel_dock(self) -> bool:
        """Stop a dock goal; False if the robot was not docking."""
        if self.goal is None or self.goal.kind is not GoalKind.DOCK:
            return False
        self._stop(MotionState.CANCELED)
        return True

    def estimated_time_s(self) -> float:
        """Seconds to reach the current goal at full speed (0 with no goal)."""
        if self.goal is None:
            return 0.0
        lim = self.limits
        here, yaw, total = (self.pose.x, self.pose.y), self.pose.yaw, 0.0
        for point in self._path:
            heading = math.atan2(point[1] - here[1], point[0] - here[0])
            total += abs(wrap_angle(heading - yaw)) / lim.max_turn_rps
            total += math.dist(here, point) / lim.max_speed_mps
            here, yaw = point, heading
        return total + abs(wrap_angle(self.goal.target.yaw - yaw)) / lim.max_turn_rps

    def activate_map(self, map_id: str) -> Pose:
        """Switch maps when not moving; the robot re-localises at the new dock if it must."""
        if self.goal is not None:
            raise Refused(Reason.BUSY, "cannot switch maps while moving; cancel first")
        stored = self.maps.activate(map_id)
        if not self.maps.active_free.is_free((self.pose.x, self.pose.y)):
            dock = stored.dock
            self.pose = Pose(x=dock.x, y=dock.y, yaw=wrap_angle(dock.yaw))
            self.docked = True
            self.motion = MotionState.DOCKED
        return self.pose

    # --- battery and privacy ---------------------------------------------------------------

    def set_battery(self, pct: float) -> list[WorldEvent]:
        """Force the charge level (a fault switch); returns the events it causes."""
        if not math.isfinite(pct):
            raise ValueError("battery percentage must be finite")
        self.battery_pct = _clamp_pct(pct)
        if self.battery_pct >= self.battery_model.rearm_pct:
            self._low_armed = True
        events: list[WorldEvent] = []
        self._battery_events(events)
        return events

    def enable_privacy(self, duration_s: float | None) -> None:
        """Privacy on, until disabled (duration_s None) or for duration_s seconds."""
        self.privacy = True
        self.privacy_until_s = None if duration_s is None else self.time_s + duration_s

    def disable_privacy(self) -> None:
        """Privacy off."""
        self.privacy = False
        self.privacy_until_s = None

    # --- time ------------------------------------------------------------------------------

    def advance(self, dt: float) -> list[WorldEvent]:
        """Move the world on by dt seconds; returns what happened, in order."""
        if not (math.isfinite(dt) and dt >= 0.0):
            raise ValueError(f"dt must be finite and >= 0, got {dt}")
        events: list[WorldEvent] = []
        remaining = dt
        while remaining > 0.0:
            if self.goal is None:
                # At rest nothing depends on the step size, so the rest goes in one step.
                step = remaining
                self.linear_speed = self.angular_speed = 0.0
            else:
                step = min(remaining, self.limits.max_substep_s)
                self._move(step, events)
            was_moving = self.goal is not None or self.linear_speed or self.angular_speed
            self._privacy_clock(step, events)
            self._battery_clock(step, moving=bool(was_moving), events=events)
            self.time_s += step
            remaining -= step
        return events

    # --- inside ----------------------------------------------------------------------------

    def _check_battery(self, *, for_dock: bool) -> None:
        if self.battery_pct <= 0.0:
            raise Refused(Reason.BATTERY_EMPTY, "the battery is empty")
        limit = self.battery_model.refuse_goals_below_pct
        if not for_dock and self.battery_pct < limit:
            raise Refused(
                Reason.BATTERY_LOW,
                f"battery {self.battery_pct:.1f}% is below {limit:g}%; only dock is accepted",
            )

    def _next_goal_id(self) -> str:
        return f"goal-{next(self._goal_ids)}"

    def _start(self, kind: GoalKind, target: Pose, path: list[Point], waypoint: str | None) -> Goal:
        goal = Goal(goal_id=self._next_goal_id(), kind=kind, target=target, waypoint=waypoint)
        self.goal = self.last_goal = goal
        self._path = path
        self.motion = MotionState.DOCKING if kind is GoalKind.DOCK else MotionState.NAVIGATING
        return goal

    def _stop(self, motion: MotionState) -> None:
        self.goal = None
        self._path = []
        self.motion = motion
        self.linear_speed = self.angular_speed = 0.0

    def _turn_toward(self, target_yaw: float, dt: float) -> float:
        """Turn at most the turn rate toward target_yaw; returns the error left."""
        error = wrap_angle(target_yaw - self.pose.yaw)
        limit = self.limits.max_turn_rps * dt
        turn = max(-limit, min(limit, error))
        self.pose = Pose(x=self.pose.x, y=self.pose.y, yaw=wrap_angle(self.pose.yaw + turn))
        self.linear_speed, self.angular_speed = 0.0, turn / dt
        return error - turn

    def _move(self, dt: float, events: list[WorldEvent]) -> None:
        goal = self.goal
        assert goal is not None
        lim = self.limits
        if self._path:
            tx, ty = self._path[0]
            dx, dy = tx - self.pose.x, ty - self.pose.y
            dist = math.hypot(dx, dy)
            if dist <= lim.position_tolerance_m:
                self.pose = Pose(x=tx, y=ty, yaw=self.pose.yaw)
                self._path.pop(0)
                return
            heading = math.atan2(dy, dx)
            if abs(wrap_angle(heading - self.pose.yaw)) > lim.heading_tolerance_rad:
                self._turn_toward(heading, dt)
                return
            step = min(dist, lim.max_speed_mps * dt)
            if step >= dist:
                x, y = tx, ty
                self._path.pop(0)
            else:
                x, y = self.pose.x + dx / dist * step, self.pose.y + dy / dist * step
            self.pose = Pose(x=x, y=y, yaw=wrap_angle(heading))
            self.linear_speed, self.angular_speed = step / dt, 0.0
            return
        if abs(self._turn_toward(goal.target.yaw, dt)) > lim.yaw_tolerance_rad:
            return
        self.pose = Pose(x=goal.target.x, y=goal.target.y, yaw=goal.target.yaw)
        if goal.kind is GoalKind.DOCK:
            self.docked = True
            self._stop(MotionState.DOCKED)
            events.append(Docked(goal))
        else:
            self._stop(MotionState.ARRIVED)
            events.append(Arrived(goal))

    def _privacy_clock(self, dt: float, events: list[WorldEvent]) -> None:
        until = self.privacy_until_s
        if self.privacy and until is not None and self.time_s + dt >= until:
            self.disable_privacy()
            events.append(PrivacyEnded())

    def _battery_clock(self, dt: float, *, moving: bool, events: list[WorldEvent]) -> None:
        model = self.battery_model
        if self.docked and not moving:
            self.battery_pct = min(100.0, self.battery_pct + model.charge_pct_s * dt)
        else:
            drain = model.idle_drain_pct_s + (model.moving_drain_pct_s if moving else 0.0)
            self.battery_pct = max(0.0, self.battery_pct - drain * dt)
        if self.battery_pct >= model.rearm_pct:
            self._low_armed = True
        if self.battery_pct > 0.0:
            self._empty_armed = True
        self._battery_events(events)

    def _battery_events(self, events: list[WorldEvent]) -> None:
        if self._low_armed and self.battery_pct < self.battery_model.low_pct:
            self._low_armed = False
            events.append(BatteryLow(self.battery_pct))
        if self._empty_armed and self.battery_pct <= 0.0:
            self._empty_armed = False
            goal = self.goal
            if goal is not None:
                self._stop(MotionState.FAILED)
                events.append(GoalFailed(goal, Reason.BATTERY_EMPTY))
            events.append(BatteryDepleted())


def _clamp_pct(pct: float) -> float:
    return max(0.0, min(100.0, pct))
