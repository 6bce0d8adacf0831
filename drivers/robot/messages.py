"""The JSON bodies of Takt's robot controller protocol, as validated msgspec structs.

One definition serves the controller simulator, the client driver and (later) the robot
actor. Requests forbid unknown fields, so a typo is an error rather than a silent no-op;
replies accept unknown fields, so a newer controller does not break an older Takt.
Constraints (finite coordinates, percentages 0-100, non-empty names) are checked when a
body is decoded; `validate` applies them to a struct built in Python. See
docs/robot-protocol.md for the routes.
"""

from __future__ import annotations

import math
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, TypeVar

import msgspec

from drivers.errors import FrameError

__all__ = [
    "MAX_COORDINATE_M",
    "ActivateMap",
    "ActivityLog",
    "Adjustment",
    "Alert",
    "AlertMessage",
    "AlertWebhook",
    "BatteryLog",
    "BodyLight",
    "BodyLightState",
    "CameraHead",
    "CameraHeadState",
    "CancelResult",
    "CaptureMedia",
    "ConnectivityLog",
    "DeviceInfo",
    "DisplayBrightnessCommand",
    "DisplayBrightnessState",
    "Envelope",
    "ErrorData",
    "GoToLocation",
    "GoToWaypoint",
    "Goal",
    "GoalAccepted",
    "GoalKind",
    "GoalPoseMessage",
    "LocationLog",
    "LogEntry",
    "LogKind",
    "MapActivated",
    "MapDeleted",
    "MapInfo",
    "MapMessage",
    "MapPatch",
    "MapUpdated",
    "MappingSession",
    "MappingStart",
    "MappingStop",
    "MappingStopped",
    "MediaCaptured",
    "MotionState",
    "OdomMessage",
    "Odometry",
    "Pose",
    "PrivacyCommand",
    "PrivacyState",
    "Quaternion",
    "Reason",
    "Rect",
    "RobotState",
    "Settings",
    "SettingsPatch",
    "StateMessage",
    "StreamMessage",
    "StreamRequest",
    "SystemLog",
    "TfMessage",
    "Transform",
    "Vector3",
    "VolumeCommand",
    "VolumeState",
    "Waypoint",
    "WaypointDeleted",
    "WaypointsUpsert",
    "WaypointsUpserted",
    "decode_stream_message",
    "encode",
    "validate",
]

MAX_COORDINATE_M = 10_000.0
"""Largest |x| or |y| accepted anywhere; it also keeps every coordinate finite."""

# --- field types -------------------------------------------------------------------------

Coordinate = Annotated[float, msgspec.Meta(ge=-MAX_COORDINATE_M, le=MAX_COORDINATE_M)]
"""Metres in the map frame; the bounds also reject inf and NaN."""
Yaw = Annotated[float, msgspec.Meta(ge=-2 * math.pi, le=2 * math.pi)]
"""Radians, counter-clockwise from +x; the robot reports it wrapped to [-pi, pi)."""
Percent = Annotated[int, msgspec.Meta(ge=0, le=100)]
BatteryPercent = Annotated[float, msgspec.Meta(ge=0.0, le=100.0)]
Severity = Annotated[int, msgspec.Meta(ge=1, le=5)]
"""1 is the most critical, 5 the least (the seed's convention)."""
Name = Annotated[
    str,
    msgspec.Meta(
        min_length=1, max_length=64, pattern=r"^[^\s/\x00-\x1f](?:[^/\x00-\x1f]*[^\s/\x00-\x1f])?\Z"
    ),
]
"""A map or waypoint name: 1-64 characters, no '/', no control characters, not padded."""
Identifier = Annotated[
    str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+\Z")
]
Text = Annotated[str, msgspec.Meta(max_length=256)]
Seq = Annotated[int, msgspec.Meta(ge=1)]
Count = Annotated[int, msgspec.Meta(ge=0)]
Finite = Annotated[float, msgspec.Meta(ge=-1e9, le=1e9)]
HexColor = Annotated[str, msgspec.Meta(pattern=r"^#(?:[0-9a-fA-F]{3}){1,2}\Z")]
Pan = Annotated[float, msgspec.Meta(ge=-170.0, le=170.0)]
"""Camera head pan in degrees, positive to the left."""
Tilt = Annotated[float, msgspec.Meta(ge=-30.0, le=60.0)]
"""Camera head tilt in degrees, positive up."""
VideoSeconds = Annotated[float, msgspec.Meta(gt=0.0, le=600.0)]
PrivacySeconds = Annotated[float, msgspec.Meta(gt=0.0, le=7 * 24 * 3600.0)]
WebhookUrl = Annotated[str, msgspec.Meta(max_length=2048, pattern=r"^https?://[^\s/]+(/\S*)?\Z")]


class MotionState(StrEnum):
    """What the base is doing; arrived, canceled, docked and failed hold until the next goal."""

    IDLE = "idle"
    NAVIGATING = "navigating"
    ARRIVED = "arrived"
    CANCELED = "canceled"
    DOCKING = "docking"
    DOCKED = "docked"
    FAILED = "failed"


class GoalKind(StrEnum):
    """Where a goal came from."""

    LOCATION = "location"
    WAYPOINT = "waypoint"
    DOCK = "dock"


class LogKind(StrEnum):
    """The telemetry logs a robot keeps, one bounded list each (`GET /logs/{kind}`)."""

    ACTIVITY = "activity"
    CONNECTIVITY = "connectivity"
    LOCATION = "location"
    BATTERY = "battery"
    SYSTEM = "system"


class Reason(StrEnum):
    """The machine-readable `data.reason` of an error reply."""

    BAD_REQUEST = "bad_request"  # body not JSON, or a bad query parameter
    INVALID = "invalid"  # body JSON but not the expected fields or ranges
    NOT_FOUND = "not_found"  # no such route
    METHOD_NOT_ALLOWED = "method_not_allowed"
    TOO_LARGE = "too_large"
    UPGRADE_REQUIRED = "upgrade_required"
    UNKNOWN_MAP = "unknown_map"
    UNKNOWN_WAYPOINT = "unknown_waypoint"
    OUTSIDE_MAP = "outside_map"
    UNREACHABLE = "unreachable"
    BATTERY_LOW = "battery_low"
    BATTERY_EMPTY = "battery_empty"
    BUSY = "busy"
    MAP_ACTIVE = "map_active"
    PRIVACY_ACTIVE = "privacy_active"
    MAPPING_ACTIVE = "mapping_active"
    NOT_MAPPING = "not_mapping"
    INTERNAL = "internal"


Adjustment = Literal["none", "increase", "decrease"]
"""`none` sets the given level; `increase`/`decrease` step the current level by 10."""


class _Request(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A body Takt sends; unknown fields are refused."""


class _Reply(msgspec.Struct, frozen=True, kw_only=True):
    """A body the robot sends; unknown fields are ignored."""


# --- envelope ----------------------------------------------------------------------------


class Envelope(msgspec.Struct, frozen=True, kw_only=True):
    """Every HTTP reply: `{code, status, message, data}`; code is the HTTP status."""

    code: int
    status: Literal["success", "error"]
    message: str
    data: msgspec.Raw = msgspec.Raw(b"null")


class ErrorData(_Reply):
    """`data` of an error reply: a reason from `Reason` and, for invalid bodies, where."""

    reason: str
    detail: str | None = None


# --- geometry ----------------------------------------------------------------------------


class Pose(_Reply):
    """A planar pose in the active map's frame: metres and radians."""

    x: Coordinate
    y: Coordinate
    yaw: Yaw = 0.0


class Rect(_Reply):
    """An axis-aligned rectangle in metres (an obstacle)."""

    x_min: Coordinate
    y_min: Coordinate
    x_max: Coordinate
    y_max: Coordinate

    def __post_init__(self) -> None:
        if not (self.x_min < self.x_max and self.y_min < self.y_max):
            raise ValueError("a rectangle needs x_min < x_max and y_min < y_max")


class Vector3(_Reply):
    """A translation in metres."""

    x: Finite
    y: Finite
    z: Finite = 0.0


class Quaternion(_Reply):
    """A rotation; planar robots only ever rotate about z."""

    x: Finite
    y: Finite
    z: Finite
    w: Finite


# --- device and settings -----------------------------------------------------------------


class DeviceInfo(_Reply):
    """`GET /device`."""

    device_id: str
    model: str
    manufacturer: str
    os_version: str
    serial_number: str
    battery_health: Percent
    last_restart_time: datetime
    storage_capacity_gb: Count
    available_storage_gb: Annotated[float, msgspec.Meta(ge=0.0)]


class Settings(_Reply):
    """`GET /settings`, and the reply of `PATCH /settings`."""

    device_id: str
    privacy_status: bool
    privacy_until: datetime | None
    volume: Percent
    display_brightness: Percent
    status_light_brightness: Percent
    last_device_settings_changed_at: datetime | None
    last_device_settings_changed_by: str | None


class SettingsPatch(_Request, omit_defaults=True):
    """`PATCH /settings`: only the fields given change; privacy set here has no time limit."""

    privacy_status: bool | None = None
    volume: Percent | None = None
    display_brightness: Percent | None = None
    status_light_brightness: Percent | None = None


# --- commands ----------------------------------------------------------------------------


class GoToLocation(_Request):
    """`POST /commands/go_to_location`."""

    x: Coordinate
    y: Coordinate
    yaw: Yaw = 0.0


class GoToWaypoint(_Request):
    """`POST /commands/go_to_waypoint`: a waypoint of the active map."""

    name: Name


class Goal(_Reply):
    """The goal the robot is pursuing (or last pursued)."""

    goal_id: str
    kind: GoalKind
    target: Pose
    waypoint: str | None = None


class GoalAccepted(_Reply):
    """Reply of go_to_location, go_to_waypoint and dock: the robot has started moving."""

    goal: Goal
    current_position: Pose
    estimated_time_s: Annotated[float, msgspec.Meta(ge=0.0)]


class CancelResult(_Reply):
    """Reply of cancel_go_to_location and cancel_dock; canceled is False if nothing ran."""

    canceled: bool


class BodyLight(_Request):
    """`POST /commands/body_light`; strip_number -1 means every strip."""

    color: HexColor
    brightness: Percent = 100
    animation: Literal["solid", "blink", "breathe", "flow", "off"] = "solid"
    strip_number: Annotated[int, msgspec.Meta(ge=-1, le=7)] = -1


class BodyLightState(_Reply):
    """The body light as the robot now shows it."""

    color: str
    brightness: Percent
    animation: str
    strip_number: int


def _level_or_step(level: int | None, adjustment: str, what: str) -> None:
    if adjustment == "none" and level is None:
        raise ValueError(f"{what} is required when adjustment is 'none'")


class VolumeCommand(_Request):
    """`POST /commands/volume`: set volume_level, or step the current volume by 10."""

    volume_level: Percent | None = None
    adjustment: Adjustment = "none"

    def __post_init__(self) -> None:
        _level_or_step(self.volume_level, self.adjustment, "volume_level")


class VolumeState(_Reply):
    """The volume after a volume command."""

    volume: Percent


class DisplayBrightnessCommand(_Request):
    """`POST /commands/display_brightness`: set brightness_level or step by 10."""

    brightness_level: Percent | None = None
    adjustment: Adjustment = "none"

    def __post_init__(self) -> None:
        _level_or_step(self.brightness_level, self.adjustment, "brightness_level")


class DisplayBrightnessState(_Reply):
    """The display brightness after a display_brightness command."""

    display_brightness: Percent


class CameraHead(_Request):
    """`POST /commands/camera_head`: absolute pan and tilt in degrees."""

    pan: Pan
    tilt: Tilt


class CameraHeadState(_Reply):
    """Where the camera head points."""

    pan: float
    tilt: float


class CaptureMedia(_Request):
    """`POST /commands/capture_media`: a photo, or a video of duration_s seconds."""

    kind: Literal["photo", "video"]
    duration_s: VideoSeconds | None = None

    def __post_init__(self) -> None:
        if self.kind == "video" and self.duration_s is None:
            raise ValueError("a video needs duration_s")
        if self.kind == "photo" and self.duration_s is not None:
            raise ValueError("a photo takes no duration_s")


class MediaCaptured(_Reply):
    """A captured photo or video, stored on the robot under path."""

    media_id: str
    kind: Literal["photo", "video"]
    duration_s: float | None
    captured_at: datetime
    path: str


class PrivacyCommand(_Request):
    """`POST /commands/privacy`: enable (for duration_s, or until disabled) or disable."""

    enabled: bool
    duration_s: PrivacySeconds | None = None

    def __post_init__(self) -> None:
        if not self.enabled and self.duration_s is not None:
            raise ValueError("duration_s only goes with enabled: true")


class PrivacyState(_Reply):
    """Privacy mode: while on, the robot refuses to capture media."""

    privacy_status: bool
    until: datetime | None


# --- state -------------------------------------------------------------------------------


class RobotState(_Reply):
    """`GET /state` and the `state` topic: everything an operator would look at."""

    pose: Pose
    motion: MotionState
    goal: Goal | None
    battery_pct: BatteryPercent
    charging: bool
    docked: bool
    privacy: bool
    mapping: bool
    active_map_id: str
    linear_speed: Finite
    angular_speed: Finite


# --- telemetry logs ----------------------------------------------------------------------


class ActivityLog(_Reply, tag="activity", tag_field="kind"):
    """What the robot did and who asked for it."""

    log_id: Seq
    device_id: str
    recorded_at: datetime
    activity_type: str
    description: str
    triggered_by: str
    error_code: str | None = None
    resolved: bool = True


class ConnectivityLog(_Reply, tag="connectivity", tag_field="kind"):
    """Links coming and going: WS clients, webhook deliveries."""

    log_id: Seq
    device_id: str
    recorded_at: datetime
    connection_status: str
    signal_strength: int
    network_type: str
    ip_address: str
    detail: str = ""


class LocationLog(_Reply, tag="location", tag_field="kind"):
    """Where the robot was."""

    log_id: Seq
    device_id: str
    recorded_at: datetime
    map_id: str
    position_x: Coordinate
    position_y: Coordinate
    yaw: Yaw
    movement_status: MotionState


class BatteryLog(_Reply, tag="battery", tag_field="kind"):
    """Charge level and charging."""

    log_id: Seq
    device_id: str
    recorded_at: datetime
    battery_level: BatteryPercent
    charging_status: Literal["charging", "discharging", "full"]
    voltage: Finite
    temperature: Finite


class SystemLog(_Reply, tag="system", tag_field="kind"):
    """Computer load and temperature."""

    log_id: Seq
    device_id: str
    recorded_at: datetime
    cpu_usage_percent: Annotated[float, msgspec.Meta(ge=0.0, le=100.0)]
    memory_usage_mb: Count
    system_load_avg: Finite
    cpu_temperature: Finite
    power_state: str


LogEntry = ActivityLog | ConnectivityLog | LocationLog | BatteryLog | SystemLog

# --- maps, waypoints, mapping ------------------------------------------------------------


class Waypoint(_Reply, forbid_unknown_fields=True):
    """A named pose on a map (also a request item of `PUT /maps/{id}/waypoints`)."""

    name: Name
    x: Coordinate
    y: Coordinate
    yaw: Yaw = 0.0
    description: Text = ""


class MapInfo(_Reply):
    """A stored map: its extent (from origin), obstacles, dock and waypoints."""

    map_id: str
    map_name: str
    description: str
    mode: Literal["trinary", "scale", "raw"]
    resolution: Annotated[float, msgspec.Meta(gt=0.0)]
    origin: tuple[Finite, Finite, Finite]
    width_m: Annotated[float, msgspec.Meta(gt=0.0, le=MAX_COORDINATE_M)]
    height_m: Annotated[float, msgspec.Meta(gt=0.0, le=MAX_COORDINATE_M)]
    dock: Pose
    obstacles: list[Rect]
    waypoints: list[Waypoint]
    active_map: bool
    created_at: datetime
    last_modified_at: datetime


class ActivateMap(_Request):
    """`PUT /maps/active`."""

    map_id: Identifier


class MapActivated(_Reply):
    """The map now active; the robot re-localises at its dock if its pose is not free there."""

    map_id: str
    pose: Pose


class MapPatch(_Request, omit_defaults=True):
    """`PATCH /maps/{id}`: rename or re-describe."""

    map_name: Name | None = None
    description: Text | None = None

    def __post_init__(self) -> None:
        if self.map_name is None and self.description is None:
            raise ValueError("nothing to change: give map_name or description")


class MapUpdated(_Reply):
    """Which fields `PATCH /maps/{id}` changed."""

    map_id: str
    updated: list[str]


class MapDeleted(_Reply):
    """`DELETE /maps/{id}` and how many waypoints went with it."""

    map_id: str
    waypoints_deleted: Count


class WaypointsUpsert(_Request):
    """`PUT /maps/{id}/waypoints`: add new names, replace existing ones."""

    waypoints: Annotated[list[Waypoint], msgspec.Meta(min_length=1, max_length=200)]

    def __post_init__(self) -> None:
        names = [w.name for w in self.waypoints]
        if len(set(names)) != len(names):
            raise ValueError("waypoint names repeat")


class WaypointsUpserted(_Reply):
    """How many waypoints were new and how many replaced."""

    inserted: Count
    updated: Count


class WaypointDeleted(_Reply):
    """`DELETE /maps/{id}/waypoints/{name}`."""

    map_id: str
    name: str


class MappingStart(_Request):
    """`POST /mapping/start`."""

    mapping_mode: Literal["manual", "autonomous"] = "manual"


class MappingSession(_Reply):
    """A running mapping session and the id its map will get if saved."""

    session_id: str
    map_id: str
    mapping_mode: str


class MappingStop(_Request):
    """`POST /mapping/stop`: save under name, or cancel (the map is discarded)."""

    action: Literal["save", "cancel"]
    name: Name | None = None

    def __post_init__(self) -> None:
        if self.action == "save" and self.name is None:
            raise ValueError("saving a map needs a name")


class MappingStopped(_Reply):
    """The session that ended and the map saved (None when canceled)."""

    session_id: str
    action: str
    map_id: str | None


# --- alerts ------------------------------------------------------------------------------


class Alert(_Reply):
    """What the robot POSTs to its webhook and pushes on the `alert` topic."""

    device_id: str
    timestamp: datetime
    uuid: str
    source: str
    severity: Severity
    header: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    body: Annotated[str, msgspec.Meta(max_length=4096)]
    action_required: str | None = None


class AlertWebhook(_Request):
    """`PUT /alerts/webhook` and its reply; url None stops deliveries."""

    url: WebhookUrl | None


# --- WebSocket ---------------------------------------------------------------------------


class _Stream(_Reply, tag_field="topic"):
    seq: Seq
    ts: datetime


class StateMessage(_Stream, tag="state"):
    """Pushed on every change and every second; while moving, every tick."""

    data: RobotState


class AlertMessage(_Stream, tag="alert"):
    """An alert, as also sent to the webhook."""

    data: Alert


class Transform(_Reply):
    """`map` -> `base_link`, like a ROS tf message."""

    frame_id: str
    child_frame_id: str
    translation: Vector3
    rotation: Quaternion


class TfMessage(_Stream, tag="tf"):
    """The robot's transform; pushed with `odom`."""

    data: Transform


class Odometry(_Reply):
    """Pose and velocity of the base."""

    frame_id: str
    child_frame_id: str
    pose: Pose
    linear_speed: Finite
    angular_speed: Finite


class OdomMessage(_Stream, tag="odom"):
    """Odometry; pushed every tick while moving and every second at rest."""

    data: Odometry


class MapMessage(_Stream, tag="map"):
    """The active map; pushed on connect and whenever it changes."""

    data: MapInfo


class GoalPoseMessage(_Stream, tag="goal_pose"):
    """The current goal, or None once it is cleared by arrival, cancel or failure."""

    data: Goal | None


StreamMessage = StateMessage | AlertMessage | TfMessage | OdomMessage | MapMessage | GoalPoseMessage


class StreamRequest(_Request):
    """What a client may send on /ws: ask for a fresh snapshot (after a seq gap)."""

    request: Literal["snapshot"]


# --- coding ------------------------------------------------------------------------------

_T = TypeVar("_T")
_ENCODER = msgspec.json.Encoder()
_STREAM_DECODER = msgspec.json.Decoder(StreamMessage)


def encode(value: Any) -> bytes:
    """JSON bytes of a struct (or of builtins holding structs)."""
    return _ENCODER.encode(value)


def validate(value: _T) -> _T:
    """Apply the decode-time constraints to a struct built in Python; ValueError if broken."""
    try:
        return msgspec.json.decode(_ENCODER.encode(value), type=type(value))
    except msgspec.ValidationError as exc:
        raise ValueError(f"invalid {type(value).__name__}: {exc}") from exc


def decode_stream_message(raw: bytes | str) -> StreamMessage:
    """One /ws message; FrameError if it is not JSON or not a known, valid message."""
    try:
        return _STREAM_DECODER.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise FrameError(f"bad stream message: {exc}") from exc
