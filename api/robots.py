"""/api/v1/robots: the station's mobile robots (seed 003), addressed by Takt's name for them
(or the robot's own device_id), over their controllers' HTTP API (docs/robot-protocol.md).

Commands, settings, maps, waypoints and mapping go to the robot's actor, which asks the robot
at once: a robot that is offline answers 503 with Retry-After, never a queued command. A robot's
refusal is 404, 409 or 422 with its machine-readable `reason` as a member of the problem
document; nothing changed. Telemetry logs and alerts are read from the station store, so they
are there while the robot is offline. Writes are journaled as commands.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any

import msgspec
from msgspec import Meta
from quart import Blueprint, request
from quart_schema import document_response, tag

from actors.bridge import ask
from actors.config import GetStationConfig, StationView
from actors.monitor import GetHealth
from actors.query import pick_query_actor
from actors.robot_messages import (
    AlertReceived,
    CopyTelemetry,
    GetRobotStatus,
    ListRobotAlerts,
    ListRobotLogs,
    ReceiveAlert,
    RobotCall,
    RobotStatus,
    TelemetryCopied,
    WebhookKeyRefused,
)
from actors.runtime import ActorUnavailable
from api.http import body, facade, field_errors, json_response, query
from api.problems import Problem
from api.security import authenticate, current_principal, requires
from controller.access import Role, permits
from controller.config import RobotConfig
from drivers.errors import DeviceUnavailable, FrameError
from drivers.robot.client import RobotRefused
from drivers.robot.messages import (
    ActivateMap,
    Alert,
    BodyLight,
    CameraHead,
    CaptureMedia,
    DisplayBrightnessCommand,
    GoToLocation,
    GoToWaypoint,
    MapPatch,
    MappingStart,
    MappingStop,
    PrivacyCommand,
    SettingsPatch,
    VolumeCommand,
    WaypointsUpsert,
)
from state.robots import LOG_KINDS, MAX_LOGS, RobotAlertRow

__all__ = ["blueprint", "resolve_robot"]

blueprint = Blueprint("robots", __name__, url_prefix="/api/v1/robots")

_RETRY = {"Retry-After": "5"}
# The robot's refusals as Takt answers them; a robot's own 5xx is a bad gateway.
_REFUSAL_STATUS = {404: 404, 409: 409, 422: 422, 400: 422, 413: 422}


class _In(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class LogsQuery(_In, frozen=True, kw_only=True, forbid_unknown_fields=True):
    no_of_logs: Annotated[int, Meta(ge=1, le=MAX_LOGS)] = 10


class AlertsQuery(_In, frozen=True, kw_only=True, forbid_unknown_fields=True):
    no_of_alerts: Annotated[int, Meta(ge=1, le=1000)] = 10
    max_severity: Annotated[int, Meta(ge=1, le=5)] = 5
    """1 keeps only the most critical; 5 (the default) keeps all."""


class AlertIn(msgspec.Struct, frozen=True, kw_only=True):
    """Seed 003's alert webhook body. Fields a robot adds are ignored: an alert is not refused
    for saying more than Takt reads."""

    device_id: Annotated[str, Meta(max_length=64)] | None = None
    timestamp: datetime
    uuid: Annotated[str, Meta(pattern=r"^[0-9a-fA-F-]{32,36}(?!\n)$")]
    source: Annotated[str, Meta(min_length=1, max_length=64)]
    severity: Annotated[int, Meta(ge=1, le=5)]
    header: Annotated[str, Meta(min_length=1, max_length=256)]
    body: Annotated[str, Meta(max_length=4096)]
    action_required: Annotated[str, Meta(max_length=1024)] | None = None
    link_for_favicon: Annotated[str, Meta(max_length=2048)] | None = None
    link_for_large_image: Annotated[str, Meta(max_length=2048)] | None = None


class RobotEntry(msgspec.Struct, frozen=True, kw_only=True):
    config: RobotConfig
    state: str  # UP / DOWN / UNKNOWN / DISABLED of the robot's actor
    last_error: str | None
    status: RobotStatus | None  # None while the actor is down or the robot disabled


# ---- plumbing ----------------------------------------------------------------------------------


async def _robots() -> tuple[RobotConfig, ...]:
    view: StationView = await _ask_named("config", GetStationConfig())
    return view.config.robots


async def _ask_named(name: str, message: Any) -> Any:
    f = facade()
    return await ask(f.runtime, f.runtime.directory.get(name), message, f.ask_timeout_s)


async def _status(c: RobotConfig) -> RobotStatus | None:
    if not c.enabled:
        return None
    try:
        return await _ask_named(f"robot:{c.name}", GetRobotStatus())  # type: ignore[no-any-return]
    except ActorUnavailable:
        return None


async def _health(c: RobotConfig) -> tuple[str, str | None]:
    if not c.enabled:
        return "DISABLED", None
    report = await _ask_named("monitor", GetHealth(components=(f"robot:{c.name}",)))
    health = report.components.get(f"robot:{c.name}")
    return (health.state, health.last_error) if health else ("UNKNOWN", None)


async def _named(robot: str) -> RobotConfig:
    """The robot by Takt's name, or by the device_id it reported."""
    robots = await _robots()
    c = next((r for r in robots if r.name == robot), None)
    if c is not None:
        return c
    for r in robots:
        status = await _status(r)
        if status is not None and status.device is not None and status.device.device_id == robot:
            return r
    raise Problem(404, f"no robot named {robot!r} (nor with that device_id)")


async def resolve_robot(robot: str) -> tuple[str, str | None]:
    """Takt's name of an enabled robot given by name or device_id, and its device_id if known."""
    c = await _named(robot)
    if not c.enabled:
        raise Problem(409, f"robot {c.name} is disabled")
    status = await _status(c)
    return c.name, status.device.device_id if status and status.device else None


@contextmanager
def _refusals(c: RobotConfig) -> Iterator[None]:
    try:
        yield
    except RobotRefused as exc:
        status = _REFUSAL_STATUS.get(exc.code, 502)
        raise Problem(status, f"robot {c.name} refused: {exc.message}",
                      extensions={"reason": exc.reason or None}) from None
    except FrameError as exc:
        raise Problem(502, f"robot {c.name} sent a reply Takt cannot read: {exc}") from None
    except DeviceUnavailable as exc:  # it stopped answering while asked: it reconnects
        raise Problem(503, f"robot {c.name} is unavailable: {exc}", headers=_RETRY) from None


async def _ask(c: RobotConfig, message: Any) -> Any:
    """Ask the robot's actor: 409 if disabled, 503 at once if it is down."""
    if not c.enabled:
        raise Problem(409, f"robot {c.name} is disabled")
    try:
        ref = facade().runtime.directory.get(f"robot:{c.name}")
    except ActorUnavailable:
        state, error = await _health(c)
        raise Problem(503, f"robot {c.name} is offline ({state}"
                           f"{f': {error}' if error else ''}); nothing was sent",
                      headers=_RETRY) from None
    f = facade()
    with _refusals(c):
        return await ask(f.runtime, ref, message, f.ask_timeout_s)


async def _call(robot: str, method: str, args: dict[str, Any] | None = None, *,
                write: bool = True) -> object:
    c = await _named(robot)
    args = args or {}
    if write:
        if not c.enabled:
            raise Problem(409, f"robot {c.name} is disabled")
        facade().runtime.ingest.command("api", {"by": current_principal().name, "robot": c.name,
                                                "call": method, **msgspec.to_builtins(args)})
    return json_response(await _ask(c, RobotCall(method=method, args=args)))


async def _read(message: Any) -> Any:
    f = facade()
    return await ask(f.runtime, pick_query_actor(f.runtime.directory), message, f.ask_timeout_s)


def _fields(data: msgspec.Struct) -> dict[str, Any]:
    return {f: getattr(data, f) for f in data.__struct_fields__}


# ---- robots ------------------------------------------------------------------------------------


@blueprint.get("")
@tag(["robots"])
@requires(Role.OPERATOR)
@document_response(list[RobotEntry])
async def list_robots() -> object:
    """The configured robots, each with its connection, identity, state and active map."""
    entries = []
    for c in await _robots():
        status = await _status(c)
        state, error = ("UP", status.last_error) if status is not None else await _health(c)
        entries.append(RobotEntry(config=c, state=state, last_error=error, status=status))
    return json_response(entries)


@blueprint.get("/<robot>")
@tag(["robots"])
@requires(Role.OPERATOR)
@document_response(RobotEntry)
async def robot_status(robot: str) -> object:
    """What Takt knows of the robot now, without asking it (works while it is offline)."""
    c = await _named(robot)
    status = await _status(c)
    state, error = ("UP", status.last_error) if status is not None else await _health(c)
    return json_response(RobotEntry(config=c, state=state, last_error=error, status=status))


@blueprint.get("/<robot>/device")
@tag(["robots"])
@requires(Role.OPERATOR)
async def device_info(robot: str) -> object:
    """`GET /device` of the robot: model, serial, OS, battery health, storage."""
    return await _call(robot, "device_info", write=False)


@blueprint.get("/<robot>/state")
@tag(["robots"])
@requires(Role.OPERATOR)
async def state(robot: str) -> object:
    """The robot's state asked now: pose, motion, goal, battery, docked, privacy, map."""
    return await _call(robot, "state", write=False)


@blueprint.get("/<robot>/settings")
@tag(["robots"])
@requires(Role.OPERATOR)
async def settings(robot: str) -> object:
    """Privacy, volume, display and status light brightness, and who changed them last."""
    return await _call(robot, "settings", write=False)


@blueprint.patch("/<robot>/settings")
@tag(["robots"])
@requires(Role.ENGINEER, write=True)
@body(SettingsPatch)
async def update_settings(robot: str, data: SettingsPatch) -> object:
    """Change any of privacy_status, volume, display_brightness, status_light_brightness
    (0-100)."""
    args = {k: v for k, v in _fields(data).items() if v is not None}
    if not args:
        raise Problem(422, "give at least one setting to change")
    return await _call(robot, "update_settings", args)


# ---- commands ----------------------------------------------------------------------------------


@blueprint.post("/<robot>/commands/go_to_location")
@tag(["robots"])
@requires(Role.OPERATOR, write=True)
@body(GoToLocation)
async def go_to_location(robot: str, data: GoToLocation) -> object:
    """Drive to x, y (metres) and turn to yaw (radians) on the active map."""
    return await _call(robot, "go_to_location", _fields(data))


@blueprint.post("/<robot>/commands/go_to_waypoint")
@tag(["robots"])
@requires(Role.OPERATOR, write=True)
@body(GoToWaypoint)
async def go_to_waypoint(robot: str, data: GoToWaypoint) -> object:
    """Drive to a named waypoint of the active map."""
    return await _call(robot, "go_to_waypoint", _fields(data))


@blueprint.post("/<robot>/commands/cancel_go_to_location")
@tag(["robots"])
@requires(Role.OPERATOR, write=True)
async def cancel_go_to_location(robot: str) -> object:
    """Stop the current location or waypoint goal (`canceled: false` if none ran)."""
    return await _call(robot, "cancel_go_to_location")


@blueprint.post("/<robot>/commands/dock")
@tag(["robots"])
@requires(Role.OPERATOR, write=True)
async def dock(robot: str) -> object:
    """Go to the dock and charge (accepted even on low battery)."""
    return await _call(robot, "dock")


@blueprint.post("/<robot>/commands/cancel_dock")
@tag(["robots"])
@requires(Role.OPERATOR, write=True)
async def cancel_dock(robot: str) -> object:
    """Stop docking (`canceled: false` if it was not docking)."""
    return await _call(robot, "cancel_dock")


@blueprint.post("/<robot>/commands/body_light")
@tag(["robots"])
@requires(Role.OPERATOR, write=True)
@body(BodyLight)
async def body_light(robot: str, data: BodyLight) -> object:
    """Colour `#RGB`/`#RRGGBB`, brightness 0-100, animation, strip -1 (all) to 7."""
    return await _call(robot, "body_light", _fields(data))


@blueprint.post("/<robot>/commands/volume")
@tag(["robots"])
@requires(Role.OPERATOR, write=True)
@body(VolumeCommand)
async def volume(robot: str, data: VolumeCommand) -> object:
    """Set volume_level 0-100, or step it by 10 with adjustment increase/decrease."""
    return await _call(robot, "set_volume", {"level": data.volume_level,
                                             "adjustment": data.adjustment})


@blueprint.post("/<robot>/commands/display_brightness")
@tag(["robots"])
@requires(Role.OPERATOR, write=True)
@body(DisplayBrightnessCommand)
async def display_brightness(robot: str, data: DisplayBrightnessCommand) -> object:
    """Set brightness_level 0-100, or step it by 10 with adjustment increase/decrease."""
    return await _call(robot, "set_display_brightness", {"level": data.brightness_level,
                                                         "adjustment": data.adjustment})


@blueprint.post("/<robot>/commands/camera_head")
@tag(["robots"])
@requires(Role.OPERATOR, write=True)
@body(CameraHead)
async def camera_head(robot: str, data: CameraHead) -> object:
    """Point the camera head: pan -170..170, tilt -30..60 degrees."""
    return await _call(robot, "camera_head", _fields(data))


@blueprint.post("/<robot>/commands/capture_media")
@tag(["robots"])
@requires(Role.OPERATOR, write=True)
@body(CaptureMedia)
async def capture_media(robot: str, data: CaptureMedia) -> object:
    """A photo, or a video of duration_s (up to 600 s); refused in privacy mode (409)."""
    return await _call(robot, "capture_media", _fields(data))


@blueprint.post("/<robot>/commands/privacy")
@tag(["robots"])
@requires(Role.OPERATOR, write=True)
@body(PrivacyCommand)
async def privacy(robot: str, data: PrivacyCommand) -> object:
    """Privacy mode on (for duration_s, or until turned off) or off."""
    return await _call(robot, "privacy", _fields(data))


# ---- maps, waypoints, mapping ------------------------------------------------------------------


@blueprint.get("/<robot>/maps")
@tag(["robots"])
@requires(Role.OPERATOR)
async def maps(robot: str) -> object:
    """The robot's stored maps."""
    return await _call(robot, "maps", write=False)


@blueprint.get("/<robot>/maps/active")
@tag(["robots"])
@requires(Role.OPERATOR)
async def active_map(robot: str) -> object:
    """The map the robot navigates on."""
    return await _call(robot, "active_map", write=False)


@blueprint.put("/<robot>/maps/active")
@tag(["robots"])
@requires(Role.ENGINEER, write=True)
@body(ActivateMap)
async def activate_map(robot: str, data: ActivateMap) -> object:
    """Switch the active map (409 `busy` while a goal runs); the robot re-localises."""
    return await _call(robot, "activate_map", {"map_id": data.map_id})


@blueprint.get("/<robot>/maps/<map_id>")
@tag(["robots"])
@requires(Role.OPERATOR)
async def get_map(robot: str, map_id: str) -> object:
    """One map: extent, dock, obstacles and waypoints."""
    return await _call(robot, "map", {"map_id": map_id}, write=False)


@blueprint.patch("/<robot>/maps/<map_id>")
@tag(["robots"])
@requires(Role.ENGINEER, write=True)
@body(MapPatch)
async def update_map(robot: str, data: MapPatch, map_id: str) -> object:
    """Rename a map or change its description."""
    if data.map_name is None and data.description is None:
        raise Problem(422, "give map_name or description")
    return await _call(robot, "update_map", {"map_id": map_id, "name": data.map_name,
                                             "description": data.description})


@blueprint.delete("/<robot>/maps/<map_id>")
@tag(["robots"])
@requires(Role.ENGINEER, write=True)
async def delete_map(robot: str, map_id: str) -> object:
    """Delete a map and its waypoints (409 `map_active` for the active one)."""
    return await _call(robot, "delete_map", {"map_id": map_id})


@blueprint.get("/<robot>/maps/<map_id>/waypoints")
@tag(["robots"])
@requires(Role.OPERATOR)
async def waypoints(robot: str, map_id: str) -> object:
    """The map's waypoints."""
    return await _call(robot, "waypoints", {"map_id": map_id}, write=False)


@blueprint.put("/<robot>/maps/<map_id>/waypoints")
@tag(["robots"])
@requires(Role.ENGINEER, write=True)
@body(WaypointsUpsert)
async def upsert_waypoints(robot: str, data: WaypointsUpsert, map_id: str) -> object:
    """Add or update 1-200 waypoints by name, all or none (a waypoint off the map: 422)."""
    return await _call(robot, "upsert_waypoints", {"map_id": map_id,
                                                   "waypoints": data.waypoints})


@blueprint.delete("/<robot>/maps/<map_id>/waypoints/<name>")
@tag(["robots"])
@requires(Role.ENGINEER, write=True)
async def delete_waypoint(robot: str, map_id: str, name: str) -> object:
    """Delete one waypoint."""
    return await _call(robot, "delete_waypoint", {"map_id": map_id, "name": name})


@blueprint.post("/<robot>/mapping/start")
@tag(["robots"])
@requires(Role.ENGINEER, write=True)
@body(MappingStart)
async def start_mapping(robot: str, data: MappingStart) -> object:
    """Start a mapping session (manual or autonomous)."""
    return await _call(robot, "start_mapping", {"mode": data.mapping_mode})


@blueprint.post("/<robot>/mapping/stop")
@tag(["robots"])
@requires(Role.ENGINEER, write=True)
@body(MappingStop)
async def stop_mapping(robot: str, data: MappingStop) -> object:
    """End the session: `save` with a name stores the map (not activated), `cancel` drops it."""
    return await _call(robot, "stop_mapping", {"action": data.action, "name": data.name})


# ---- telemetry and alerts ----------------------------------------------------------------------


@blueprint.get("/<robot>/logs/<kind>")
@tag(["robots"])
@requires(Role.OPERATOR)
@query(LogsQuery)
async def logs(robot: str, kind: str, q: LogsQuery) -> object:
    """Stored telemetry of one kind (activity, connectivity, location, battery, system),
    newest first, as the robot logged it; copied from the robot every telemetry_interval_s."""
    c = await _named(robot)
    if kind not in LOG_KINDS:
        raise Problem(404, f"no log kind {kind!r}; one of {', '.join(LOG_KINDS)}")
    return json_response(await _read(ListRobotLogs(robot=c.name, kind=kind,
                                                   no_of_logs=q.no_of_logs)))


@blueprint.post("/<robot>/telemetry/copy")
@tag(["robots"])
@requires(Role.ENGINEER, write=True)
@document_response(TelemetryCopied)
async def copy_telemetry(robot: str) -> object:
    """Copy the robot's new telemetry into the store now rather than at the next interval."""
    return json_response(await _ask(await _named(robot), CopyTelemetry()))


@blueprint.get("/<robot>/alerts")
@tag(["robots"])
@requires(Role.OPERATOR)
@query(AlertsQuery)
@document_response(list[RobotAlertRow])
async def alerts(robot: str, q: AlertsQuery) -> object:
    """Stored alerts of the robot, newest first; max_severity 2 keeps severities 1 and 2."""
    c = await _named(robot)
    return json_response(await _read(ListRobotAlerts(robot=c.name, no_of_alerts=q.no_of_alerts,
                                                     max_severity=q.max_severity)))


@blueprint.post("/<robot>/alerts")
@tag(["robots"])
@document_response(AlertReceived)
async def receive_alert(robot: str) -> object:
    """The alert webhook (seed 003): the robot posts here with the `key` Takt gave it when it
    set the webhook; a user may post too, with a bearer token (operator, write). Answered
    only once the alert is stored; a second copy of the same uuid is acknowledged again."""
    key = request.args.get("key") or None
    if key is not None and len(key) > 128:
        raise Problem(403, "that is not a webhook key")
    header = request.headers.get("Authorization")
    if header is None and key is None:
        raise Problem(401, "post with the webhook's ?key= or an Authorization bearer token",
                      headers={"WWW-Authenticate": 'Bearer realm="takt"'})
    if header is not None:
        scheme, _, token = header.partition(" ")
        principal = await authenticate(token.strip() if scheme.lower() == "bearer" else None)
        if not permits(principal, Role.OPERATOR, True):
            raise Problem(403, f"{principal.name} may not post alerts")
        key = None
    data = await _alert_body()
    c = await _named(robot)
    alert = Alert(device_id=data.device_id or "", timestamp=data.timestamp, uuid=data.uuid,
                  source=data.source, severity=data.severity, header=data.header,
                  body=data.body, action_required=data.action_required)
    try:
        received = await _ask(c, ReceiveAlert(alert=alert, key=key))
    except WebhookKeyRefused as exc:
        raise Problem(403, str(exc)) from None
    except ValueError as exc:
        raise Problem(422, str(exc)) from None
    return json_response(received)


_ALERT = msgspec.json.Decoder(AlertIn)


async def _alert_body() -> AlertIn:
    if request.mimetype != "application/json":
        raise Problem(415, "send the alert as application/json")
    try:
        return _ALERT.decode(await request.get_data(cache=False))
    except msgspec.ValidationError as exc:
        raise Problem(422, "the alert does not match the schema",
                      errors=field_errors(exc)) from None
    except msgspec.DecodeError as exc:
        raise Problem(400, f"the alert is not valid JSON: {exc}") from None

