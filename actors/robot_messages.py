"""Messages of the robot actor (actors/robot.py) and the views it answers with."""

from __future__ import annotations

from typing import Any

import msgspec

from drivers.robot.client import ClientStatistics, StreamStatistics
from drivers.robot.messages import Alert, DeviceInfo, MapInfo, RobotState, Settings

__all__ = [
    "CALLS",
    "AlertReceived",
    "CopyTelemetry",
    "GetRobotStatus",
    "ListRobotAlerts",
    "ListRobotLogs",
    "ReceiveAlert",
    "RobotCall",
    "RobotStatus",
    "TelemetryCopied",
    "WebhookKeyRefused",
]

# The RobotClient methods the API may call through RobotCall: every command, map, waypoint,
# mapping and settings route of docs/robot-protocol.md, read or write. Telemetry logs and
# alerts are read from the store instead (ListRobotLogs, ListRobotAlerts of actors/query.py).
CALLS = frozenset({
    "device_info", "state", "settings", "update_settings",
    "go_to_location", "go_to_waypoint", "cancel_go_to_location", "dock", "cancel_dock",
    "body_light", "set_volume", "set_display_brightness", "camera_head", "capture_media",
    "privacy",
    "maps", "map", "active_map", "activate_map", "update_map", "delete_map",
    "waypoints", "upsert_waypoints", "delete_waypoint",
    "start_mapping", "stop_mapping",
})


class RobotCall(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Call one robot route now: `method` of RobotClient (one of CALLS) with `args`.

    Answers the route's typed `data`; RobotRefused when the robot refuses (nothing changed),
    DeviceUnavailable when it does not answer (the actor then fails and reconnects).
    """

    method: str
    args: dict[str, Any] = {}


class GetRobotStatus(msgspec.Struct, frozen=True, tag=True):
    """What Takt knows of the robot without asking it (answers at once)."""


class CopyTelemetry(msgspec.Struct, frozen=True, tag=True):
    """Copy the robot's new telemetry log entries into the store now."""


class TelemetryCopied(msgspec.Struct, frozen=True, kw_only=True):
    copied: dict[str, int]  # new entries per kind
    overrun: list[str]  # kinds whose whole read was new: older entries may have been missed


class ListRobotLogs(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """The stored telemetry of a robot, newest first (answered by a query actor)."""

    robot: str
    kind: str
    no_of_logs: int = 10


class ListRobotAlerts(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """The stored alerts of a robot, newest first (answered by a query actor)."""

    robot: str
    no_of_alerts: int = 10
    max_severity: int = 5


class ReceiveAlert(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """An alert POSTed to Takt's webhook; `key` is the webhook's secret, None when an
    authenticated user posts it."""

    alert: Alert
    key: str | None = None


class AlertReceived(msgspec.Struct, frozen=True, kw_only=True):
    message: str
    acknowledged: bool  # stored (now, or before: a second copy of the same uuid)
    new: bool


class WebhookKeyRefused(PermissionError):
    """An alert POSTed with a key that is not this robot's webhook key."""


class RobotStatus(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    url: str
    connection: str  # connected (HTTP and stream up)
    device: DeviceInfo | None
    state: RobotState | None
    state_us: int | None  # when Takt received that state
    settings: Settings | None
    active_map: MapInfo | None
    goal_outcomes: dict[str, int]  # arrived / docked / canceled / failed since start
    alerts_received: int
    webhook_url: str | None  # where the robot posts alerts (its key hidden)
    telemetry_copied: int
    last_copy_us: int | None
    malformed: int  # stream messages that could not be read
    last_error: str | None
    client: ClientStatistics | None
    stream: StreamStatistics | None
