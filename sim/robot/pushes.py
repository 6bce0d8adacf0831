"""What the robot pushes on /ws: the snapshot, and only what changed since the last push.

Messages are built with seq 1; the server numbers them per connection as it sends them.
"""

from __future__ import annotations

import math
from datetime import datetime

from drivers.robot.messages import (
    Goal,
    GoalPoseMessage,
    MapInfo,
    MapMessage,
    Odometry,
    OdomMessage,
    Quaternion,
    RobotState,
    StateMessage,
    StreamMessage,
    TfMessage,
    Transform,
    Vector3,
)

__all__ = ["PushTracker", "motion_messages", "snapshot"]

HEARTBEAT_S = 1.0
"""At rest, state/tf/odom still go out this often (robot seconds)."""


def motion_messages(ts: datetime, state: RobotState) -> list[StreamMessage]:
    """The `tf` and `odom` messages of a state."""
    pose, half = state.pose, state.pose.yaw / 2.0
    transform = Transform(
        frame_id="map",
        child_frame_id="base_link",
        translation=Vector3(x=pose.x, y=pose.y, z=0.0),
        rotation=Quaternion(x=0.0, y=0.0, z=math.sin(half), w=math.cos(half)),
    )
    odometry = Odometry(
        frame_id="odom",
        child_frame_id="base_link",
        pose=pose,
        linear_speed=state.linear_speed,
        angular_speed=state.angular_speed,
    )
    return [TfMessage(seq=1, ts=ts, data=transform), OdomMessage(seq=1, ts=ts, data=odometry)]


def snapshot(ts: datetime, state: RobotState, active_map: MapInfo) -> list[StreamMessage]:
    """What a new client (or one asking after a gap) gets first."""
    return [
        StateMessage(seq=1, ts=ts, data=state),
        MapMessage(seq=1, ts=ts, data=active_map),
        GoalPoseMessage(seq=1, ts=ts, data=state.goal),
        *motion_messages(ts, state),
    ]


class PushTracker:
    """Remembers what was last pushed, so each call yields only the changes."""

    def __init__(self) -> None:
        self._key: tuple[object, ...] | None = None
        self._state_at = -math.inf
        self._goal: Goal | object | None = object()
        self._map: MapInfo | None = None

    def changes(
        self, ts: datetime, time_s: float, state: RobotState, active_map: MapInfo
    ) -> list[StreamMessage]:
        """Messages for what differs from the last call; state every call while moving."""
        out: list[StreamMessage] = []
        # Battery and speeds drift all the time; they ride on the heartbeat.
        key = (state.motion, state.goal, state.docked, state.charging, state.privacy,
               state.mapping, state.active_map_id, state.pose)  # fmt: skip
        moving = state.goal is not None
        if key != self._key or moving or time_s - self._state_at >= HEARTBEAT_S:
            out.append(StateMessage(seq=1, ts=ts, data=state))
            out.extend(motion_messages(ts, state))
            self._key, self._state_at = key, time_s
        if state.goal != self._goal:
            out.append(GoalPoseMessage(seq=1, ts=ts, data=state.goal))
            self._goal = state.goal
        if active_map != self._map:
            out.append(MapMessage(seq=1, ts=ts, data=active_map))
            self._map = active_map
        return out
