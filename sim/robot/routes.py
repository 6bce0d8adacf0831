"""HTTP routes of the simulated robot controller: request in, enveloped JSON reply out.

Sans-I/O: `handle` takes the method, target and body of one request and returns the
status, headers and body to send, so the routing is testable without a socket. Every reply
is `{code, status, message, data}`; errors carry `data.reason` (see `Reason`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any, NamedTuple, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

import msgspec

from drivers.robot.messages import (
    ActivateMap,
    AlertWebhook,
    BodyLight,
    CameraHead,
    CaptureMedia,
    DisplayBrightnessCommand,
    ErrorData,
    GoToLocation,
    GoToWaypoint,
    LogKind,
    MapPatch,
    MappingStart,
    MappingStop,
    PrivacyCommand,
    Reason,
    SettingsPatch,
    VolumeCommand,
    WaypointDeleted,
    WaypointsUpsert,
    encode,
)
from sim.robot.device import RobotDevice
from sim.robot.refused import Refused

__all__ = ["MAX_BODY_BYTES", "MAX_LIST", "REASON_STATUS", "HttpReply", "error_reply", "handle"]

MAX_BODY_BYTES = 64 * 1024
"""Largest request body accepted; more is answered 413."""
MAX_LIST = 500
"""Most entries one `GET /logs/{kind}` or `GET /alerts` returns."""
_DEFAULT_LIST = 10

REASON_STATUS: dict[Reason, int] = {
    Reason.BAD_REQUEST: 400,
    Reason.INVALID: 422,
    Reason.NOT_FOUND: 404,
    Reason.METHOD_NOT_ALLOWED: 405,
    Reason.TOO_LARGE: 413,
    Reason.UPGRADE_REQUIRED: 426,
    Reason.UNKNOWN_MAP: 404,
    Reason.UNKNOWN_WAYPOINT: 404,
    Reason.OUTSIDE_MAP: 422,
    Reason.UNREACHABLE: 422,
    Reason.BATTERY_LOW: 409,
    Reason.BATTERY_EMPTY: 409,
    Reason.BUSY: 409,
    Reason.MAP_ACTIVE: 409,
    Reason.PRIVACY_ACTIVE: 409,
    Reason.MAPPING_ACTIVE: 409,
    Reason.NOT_MAPPING: 409,
    Reason.INTERNAL: 500,
}

_JSON = ("content-type", "application/json")
_T = TypeVar("_T")


class HttpReply(NamedTuple):
    """Status, extra headers and JSON body of one reply."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


class _Request(NamedTuple):
    params: dict[str, str]
    query: dict[str, list[str]]
    body: bytes
    client: str


_Result = tuple[str, Any]
"""A route's success: the reply's message and its data."""
_Handler = Callable[[RobotDevice, _Request], _Result]


def _ok(status: int, message: str, data: Any) -> HttpReply:
    body = encode({"code": status, "status": "success", "message": message, "data": data})
    return HttpReply(status, (_JSON,), body)


def error_reply(
    reason: Reason,
    message: str,
    *,
    detail: str | None = None,
    headers: tuple[tuple[str, str], ...] = (),
) -> HttpReply:
    """An error reply for reason, with its status from REASON_STATUS."""
    status = REASON_STATUS[reason]
    data = ErrorData(reason=reason, detail=detail)
    body = encode({"code": status, "status": "error", "message": message, "data": data})
    return HttpReply(status, (_JSON, *headers), body)


def _body(request: _Request, kind: type[_T]) -> _T:
    try:
        return msgspec.json.decode(request.body or b"{}", type=kind)
    except msgspec.ValidationError as exc:
        raise _BadBody(Reason.INVALID, f"invalid {kind.__name__}: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise _BadBody(Reason.BAD_REQUEST, f"body is not JSON: {exc}") from exc


class _BadBody(Exception):
    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def _count(request: _Request, name: str) -> int:
    values = request.query.get(name)
    if not values:
        return _DEFAULT_LIST
    try:
        count = int(values[-1])
    except ValueError:
        count = 0
    if not 1 <= count <= MAX_LIST:
        raise _BadBody(Reason.BAD_REQUEST, f"{name} must be an integer 1..{MAX_LIST}")
    return count


# --- handlers ----------------------------------------------------------------------------


def _device(dev: RobotDevice, _r: _Request) -> _Result:
    return "Device info retrieved.", dev.device_info()


def _state(dev: RobotDevice, _r: _Request) -> _Result:
    return "Robot state retrieved.", dev.state()


def _settings(dev: RobotDevice, _r: _Request) -> _Result:
    return "Device settings retrieved.", dev.settings()


def _patch_settings(dev: RobotDevice, r: _Request) -> _Result:
    return "Device settings updated.", dev.update_settings(_body(r, SettingsPatch), r.client)


def _go_to_location(dev: RobotDevice, r: _Request) -> _Result:
    body = _body(r, GoToLocation)
    return "Go to location accepted.", dev.go_to_location(body.x, body.y, body.yaw, r.client)


def _go_to_waypoint(dev: RobotDevice, r: _Request) -> _Result:
    return "Go to waypoint accepted.", dev.go_to_waypoint(_body(r, GoToWaypoint).name, r.client)


def _cancel_go_to(dev: RobotDevice, r: _Request) -> _Result:
    return "Cancel go to location executed.", dev.cancel_go_to_location(r.client)


def _dock(dev: RobotDevice, r: _Request) -> _Result:
    return "Dock accepted.", dev.dock(r.client)


def _cancel_dock(dev: RobotDevice, r: _Request) -> _Result:
    return "Cancel dock executed.", dev.cancel_dock(r.client)


def _body_light(dev: RobotDevice, r: _Request) -> _Result:
    return "Body light set.", dev.body_light(_body(r, BodyLight), r.client)


def _volume(dev: RobotDevice, r: _Request) -> _Result:
    return "Volume updated.", dev.set_volume(_body(r, VolumeCommand), r.client)


def _display(dev: RobotDevice, r: _Request) -> _Result:
    command = _body(r, DisplayBrightnessCommand)
    return "Display brightness updated.", dev.set_display_brightness(command, r.client)


def _camera_head(dev: RobotDevice, r: _Request) -> _Result:
    return "Camera head moved.", dev.camera_head(_body(r, CameraHead), r.client)


def _capture(dev: RobotDevice, r: _Request) -> _Result:
    return "Media captured.", dev.capture_media(_body(r, CaptureMedia), r.client)


def _privacy(dev: RobotDevice, r: _Request) -> _Result:
    return "Privacy mode set.", dev.privacy(_body(r, PrivacyCommand), r.client)


def _logs(dev: RobotDevice, r: _Request) -> _Result:
    try:
        kind = LogKind(r.params["kind"])
    except ValueError:
        raise _BadBody(Reason.NOT_FOUND, f"no log kind {r.params['kind']!r}") from None
    return f"{kind.capitalize()} logs retrieved.", dev.latest_logs(kind, _count(r, "no_of_logs"))


def _maps(dev: RobotDevice, _r: _Request) -> _Result:
    return "Maps fetched.", [dev.map_info(m) for m in dev.maps.all()]


def _active_map(dev: RobotDevice, _r: _Request) -> _Result:
    return "Active map fetched.", dev.map_info(dev.maps.active)


def _activate(dev: RobotDevice, r: _Request) -> _Result:
    map_id = _body(r, ActivateMap).map_id
    return f"Map {map_id} set as active.", dev.activate_map(map_id, r.client)


def _map(dev: RobotDevice, r: _Request) -> _Result:
    return "Map details fetched.", dev.map_info(dev.maps.get(r.params["map_id"]))


def _patch_map(dev: RobotDevice, r: _Request) -> _Result:
    patch, map_id = _body(r, MapPatch), r.params["map_id"]
    return f"Map {map_id} updated.", dev.update_map(
        map_id, patch.map_name, patch.description, r.client
    )


def _delete_map(dev: RobotDevice, r: _Request) -> _Result:
    map_id = r.params["map_id"]
    return f"Map {map_id} deleted.", dev.delete_map(map_id, r.client)


def _waypoints(dev: RobotDevice, r: _Request) -> _Result:
    return "Waypoints fetched.", list(dev.maps.get(r.params["map_id"]).waypoints)


def _put_waypoints(dev: RobotDevice, r: _Request) -> _Result:
    body, map_id = _body(r, WaypointsUpsert), r.params["map_id"]
    result = dev.upsert_waypoints(map_id, body.waypoints, r.client)
    return f"{result.inserted} new and {result.updated} existing waypoint(s) processed.", result


def _delete_waypoint(dev: RobotDevice, r: _Request) -> _Result:
    map_id, name = r.params["map_id"], r.params["name"]
    dev.delete_waypoint(map_id, name, r.client)
    return f"Waypoint {name!r} deleted.", WaypointDeleted(map_id=map_id, name=name)


def _start_mapping(dev: RobotDevice, r: _Request) -> _Result:
    return "Mapping started.", dev.start_mapping(_body(r, MappingStart).mapping_mode, r.client)


def _stop_mapping(dev: RobotDevice, r: _Request) -> _Result:
    body = _body(r, MappingStop)
    return f"Mapping stopped ({body.action}).", dev.stop_mapping(body.action, body.name, r.client)


def _alerts(dev: RobotDevice, r: _Request) -> _Result:
    return "Alerts fetched.", dev.latest_alerts(_count(r, "no_of_alerts"))


def _webhook(dev: RobotDevice, _r: _Request) -> _Result:
    return "Alert webhook fetched.", AlertWebhook(url=dev.webhook_url)


def _put_webhook(dev: RobotDevice, r: _Request) -> _Result:
    dev.webhook_url = _body(r, AlertWebhook).url
    return "Alert webhook set.", AlertWebhook(url=dev.webhook_url)


class SimAlert(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`POST /sim/alerts`: the simulator's fault switch for another process (not a robot
    route): raise an alert as the robot would."""

    severity: Annotated[int, msgspec.Meta(ge=1, le=5)]
    header: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    body: Annotated[str, msgspec.Meta(max_length=4096)] = ""
    action_required: str | None = None


def _sim_alert(dev: RobotDevice, r: _Request) -> _Result:
    a = _body(r, SimAlert)
    return "Alert raised.", dev.raise_alert(a.severity, a.header, a.body, source="sim",
                                            action_required=a.action_required)


_COMMANDS: dict[str, _Handler] = {
    "go_to_location": _go_to_location,
    "go_to_waypoint": _go_to_waypoint,
    "cancel_go_to_location": _cancel_go_to,
    "dock": _dock,
    "cancel_dock": _cancel_dock,
    "body_light": _body_light,
    "volume": _volume,
    "display_brightness": _display,
    "camera_head": _camera_head,
    "capture_media": _capture,
    "privacy": _privacy,
}

_ROUTES: list[tuple[re.Pattern[str], dict[str, _Handler]]] = [
    (re.compile(pattern), methods)
    for pattern, methods in [
        (r"/device", {"GET": _device}),
        (r"/state", {"GET": _state}),
        (r"/settings", {"GET": _settings, "PATCH": _patch_settings}),
        *[(rf"/commands/{name}", {"POST": handler}) for name, handler in _COMMANDS.items()],
        (r"/logs/(?P<kind>[^/]+)", {"GET": _logs}),
        (r"/maps", {"GET": _maps}),
        (r"/maps/active", {"GET": _active_map, "PUT": _activate}),
        (
            r"/maps/(?P<map_id>[^/]+)",
            {"GET": _map, "PATCH": _patch_map, "DELETE": _delete_map},
        ),
        (r"/maps/(?P<map_id>[^/]+)/waypoints", {"GET": _waypoints, "PUT": _put_waypoints}),
        (r"/maps/(?P<map_id>[^/]+)/waypoints/(?P<name>[^/]+)", {"DELETE": _delete_waypoint}),
        (r"/mapping/start", {"POST": _start_mapping}),
        (r"/mapping/stop", {"POST": _stop_mapping}),
        (r"/alerts", {"GET": _alerts}),
        (r"/alerts/webhook", {"GET": _webhook, "PUT": _put_webhook}),
        (r"/sim/alerts", {"POST": _sim_alert}),
    ]
]


def handle(
    device: RobotDevice, method: str, target: str, body: bytes, *, client: str = "api"
) -> HttpReply:
    """Answer one request; the device is not touched when the request is bad."""
    split = urlsplit(target)
    path = split.path.rstrip("/") or "/"
    for pattern, methods in _ROUTES:
        match = pattern.fullmatch(path)
        if match is None:
            continue
        handler = methods.get(method)
        if handler is None:
            allow = ("allow", ", ".join(methods))
            return error_reply(
                Reason.METHOD_NOT_ALLOWED, f"{method} not allowed on {path}", headers=(allow,)
            )
        params = {key: unquote(value) for key, value in match.groupdict().items()}
        request = _Request(params, parse_qs(split.query), body, client)
        try:
            message, data = handler(device, request)
        except _BadBody as exc:
            return error_reply(exc.reason, exc.message)
        except Refused as exc:
            return error_reply(exc.reason, exc.message)
        return _ok(200, message, data)
    return error_reply(Reason.NOT_FOUND, f"no route {path}")
