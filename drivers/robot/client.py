"""Blocking driver for a robot controller: HTTP resources (httpx) and the /ws push stream.

`RobotClient` has one method per route of docs/robot-protocol.md and returns the typed
reply. Errors are Takt's: the controller's error reply -> `RobotRefused` (HTTP status,
message, reason), no connection or no answer in time -> `DeviceUnavailable`, a body that
is not the expected JSON -> `FrameError`. Arguments are validated before anything is sent
(ValueError). `RobotStream` reads the WebSocket on its own thread (wsproto over a socket)
and hands each decoded message to a callback; reconnecting is the owner's decision.
"""

from __future__ import annotations

import functools
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import httpx
import msgspec
import wsproto
import wsproto.events as wse
import wsproto.utilities

from drivers.errors import DeviceUnavailable, DriverError, FrameError
from drivers.robot.messages import (
    ActivateMap,
    ActivityLog,
    Adjustment,
    Alert,
    AlertWebhook,
    BatteryLog,
    BodyLight,
    BodyLightState,
    CameraHead,
    CameraHeadState,
    CancelResult,
    CaptureMedia,
    ConnectivityLog,
    DeviceInfo,
    DisplayBrightnessCommand,
    DisplayBrightnessState,
    Envelope,
    ErrorData,
    GoalAccepted,
    GoToLocation,
    GoToWaypoint,
    LocationLog,
    LogEntry,
    LogKind,
    MapActivated,
    MapDeleted,
    MapInfo,
    MapPatch,
    MappingSession,
    MappingStart,
    MappingStop,
    MappingStopped,
    MapUpdated,
    MediaCaptured,
    PrivacyCommand,
    PrivacyState,
    RobotState,
    Settings,
    SettingsPatch,
    StreamMessage,
    StreamRequest,
    SystemLog,
    VolumeCommand,
    VolumeState,
    Waypoint,
    WaypointDeleted,
    WaypointsUpsert,
    WaypointsUpserted,
    decode_stream_message,
    encode,
    validate,
)

__all__ = [
    "ClientStatistics",
    "RobotClient",
    "RobotRefused",
    "RobotStream",
    "StreamStatistics",
]

_log = logging.getLogger(__name__)
_T = TypeVar("_T")
_JOIN_TIMEOUT_S = 5.0
_RECV_BYTES = 65536
# Upper bound of one reader wait, so close() and the silence deadline are noticed promptly.
_MAX_WAIT_S = 0.25
_DEFAULT_MAX_MESSAGE = 1024 * 1024


class RobotRefused(DriverError):
    """The controller answered with an error reply; the link itself is fine.

    code is the HTTP status, reason the machine-readable `data.reason` ("" if absent).
    """

    def __init__(self, code: int, message: str, *, reason: str = "", detail: str | None = None):
        super().__init__(f"{code} {reason or 'error'}: {message}")
        self.code = code
        self.message = message
        self.reason = reason
        self.detail = detail


class ClientStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """Requests made by one client and how they ended."""

    requests: int
    refused: int
    unavailable: int
    malformed: int


def _ignore(*_args: object) -> None:
    return None


@functools.cache
def _tls() -> ssl.SSLContext:
    # One verified context for every client: building it loads the CA bundle, which costs
    # tens of milliseconds per client otherwise.
    return httpx.create_ssl_context()


class RobotClient:
    """Blocking HTTP client for one robot controller at base_url (`http://host:port`).

    One request at a time per client is the intended use (an actor's thread); httpx keeps
    the connection alive between requests. `name` is sent as `X-Client-Name`, which the
    robot records as who triggered an activity.
    """

    def __init__(self, base_url: str, *, timeout_s: float = 2.0, name: str = "takt") -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be > 0")
        self._base_url = base_url.rstrip("/")
        self._name = name
        self._timeout_s = timeout_s
        self._http = httpx.Client(
            base_url=self._base_url,
            timeout=timeout_s,
            headers={"accept": "application/json", "x-client-name": name},
            verify=_tls(),
        )
        self._lock = threading.Lock()
        self._requests = self._refused = self._unavailable = self._malformed = 0

    def __repr__(self) -> str:
        return f"RobotClient({self._name} {self._base_url})"

    def __enter__(self) -> RobotClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the pooled connections; safe to repeat."""
        self._http.close()

    def statistics(self) -> ClientStatistics:
        """Counters since the client was created."""
        with self._lock:
            return ClientStatistics(
                requests=self._requests,
                refused=self._refused,
                unavailable=self._unavailable,
                malformed=self._malformed,
            )

    # --- device, state, settings -----------------------------------------------------------

    def device_info(self) -> DeviceInfo:
        """`GET /device`."""
        return self._call("GET", "/device", DeviceInfo)

    def state(self) -> RobotState:
        """`GET /state`: pose, motion, goal, battery, docked, privacy."""
        return self._call("GET", "/state", RobotState)

    def settings(self) -> Settings:
        """`GET /settings`."""
        return self._call("GET", "/settings", Settings)

    def update_settings(
        self,
        *,
        privacy_status: bool | None = None,
        volume: int | None = None,
        display_brightness: int | None = None,
        status_light_brightness: int | None = None,
    ) -> Settings:
        """`PATCH /settings`: only the arguments given change."""
        patch = SettingsPatch(
            privacy_status=privacy_status,
            volume=volume,
            display_brightness=display_brightness,
            status_light_brightness=status_light_brightness,
        )
        return self._call("PATCH", "/settings", Settings, body=patch)

    # --- commands --------------------------------------------------------------------------

    def go_to_location(self, x: float, y: float, yaw: float = 0.0) -> GoalAccepted:
        """Drive to (x, y) in metres and turn to yaw (radians) on the active map."""
        body = GoToLocation(x=x, y=y, yaw=yaw)
        return self._call("POST", "/commands/go_to_location", GoalAccepted, body=body)

    def go_to_waypoint(self, name: str) -> GoalAccepted:
        """Drive to a waypoint of the active map."""
        body = GoToWaypoint(name=name)
        return self._call("POST", "/commands/go_to_waypoint", GoalAccepted, body=body)

    def cancel_go_to_location(self) -> CancelResult:
        """Stop a location or waypoint goal."""
        return self._call("POST", "/commands/cancel_go_to_location", CancelResult)

    def dock(self) -> GoalAccepted:
        """Drive to the dock and charge."""
        return self._call("POST", "/commands/dock", GoalAccepted)

    def cancel_dock(self) -> CancelResult:
        """Stop a dock goal."""
        return self._call("POST", "/commands/cancel_dock", CancelResult)

    def body_light(
        self, color: str, *, brightness: int = 100, animation: str = "solid", strip_number: int = -1
    ) -> BodyLightState:
        """Set the body light (`#RRGGBB`, 0-100, solid|blink|breathe|flow|off)."""
        body = BodyLight(
            color=color,
            brightness=brightness,
            animation=animation,  # type: ignore[arg-type]  # validated before sending
            strip_number=strip_number,
        )
        return self._call("POST", "/commands/body_light", BodyLightState, body=body)

    def set_volume(
        self, level: int | None = None, *, adjustment: Adjustment = "none"
    ) -> VolumeState:
        """Set the volume to level, or step it by 10 with adjustment increase/decrease."""
        body = VolumeCommand(volume_level=level, adjustment=adjustment)
        return self._call("POST", "/commands/volume", VolumeState, body=body)

    def set_display_brightness(
        self, level: int | None = None, *, adjustment: Adjustment = "none"
    ) -> DisplayBrightnessState:
        """Set the display brightness, or step it by 10."""
        body = DisplayBrightnessCommand(brightness_level=level, adjustment=adjustment)
        return self._call("POST", "/commands/display_brightness", DisplayBrightnessState, body=body)

    def camera_head(self, pan: float, tilt: float) -> CameraHeadState:
        """Point the camera head (degrees)."""
        body = CameraHead(pan=pan, tilt=tilt)
        return self._call("POST", "/commands/camera_head", CameraHeadState, body=body)

    def capture_media(self, kind: str, duration_s: float | None = None) -> MediaCaptured:
        """Take a photo, or a video of duration_s; refused (409) in privacy mode."""
        body = CaptureMedia(kind=kind, duration_s=duration_s)  # type: ignore[arg-type]
        return self._call("POST", "/commands/capture_media", MediaCaptured, body=body)

    def privacy(self, enabled: bool, duration_s: float | None = None) -> PrivacyState:
        """Privacy mode on (for duration_s, or until turned off) or off."""
        body = PrivacyCommand(enabled=enabled, duration_s=duration_s)
        return self._call("POST", "/commands/privacy", PrivacyState, body=body)

    # --- telemetry and alerts --------------------------------------------------------------

    def logs(self, kind: LogKind | str, no_of_logs: int = 10) -> list[LogEntry]:
        """The newest no_of_logs entries of a log kind, newest first."""
        kind = LogKind(kind)
        return self._call("GET", f"/logs/{kind}", list[LogEntry], params={"no_of_logs": no_of_logs})

    def activity_logs(self, no_of_logs: int = 10) -> list[ActivityLog]:
        """`GET /logs/activity`."""
        return self._logs(LogKind.ACTIVITY, no_of_logs, ActivityLog)

    def connectivity_logs(self, no_of_logs: int = 10) -> list[ConnectivityLog]:
        """`GET /logs/connectivity`."""
        return self._logs(LogKind.CONNECTIVITY, no_of_logs, ConnectivityLog)

    def location_logs(self, no_of_logs: int = 10) -> list[LocationLog]:
        """`GET /logs/location`."""
        return self._logs(LogKind.LOCATION, no_of_logs, LocationLog)

    def battery_logs(self, no_of_logs: int = 10) -> list[BatteryLog]:
        """`GET /logs/battery`."""
        return self._logs(LogKind.BATTERY, no_of_logs, BatteryLog)

    def system_logs(self, no_of_logs: int = 10) -> list[SystemLog]:
        """`GET /logs/system`."""
        return self._logs(LogKind.SYSTEM, no_of_logs, SystemLog)

    def alerts(self, no_of_alerts: int = 10) -> list[Alert]:
        """The robot's newest alerts, newest first."""
        return self._call("GET", "/alerts", list[Alert], params={"no_of_alerts": no_of_alerts})

    def alert_webhook(self) -> str | None:
        """The URL the robot POSTs alerts to (None: none)."""
        return self._call("GET", "/alerts/webhook", AlertWebhook).url

    def set_alert_webhook(self, url: str | None) -> str | None:
        """Point the robot's alerts at url (None stops them)."""
        body = AlertWebhook(url=url)
        return self._call("PUT", "/alerts/webhook", AlertWebhook, body=body).url

    # --- maps and waypoints ----------------------------------------------------------------

    def maps(self) -> list[MapInfo]:
        """Every stored map."""
        return self._call("GET", "/maps", list[MapInfo])

    def map(self, map_id: str) -> MapInfo:
        """One map, with its waypoints."""
        return self._call("GET", f"/maps/{_segment(map_id)}", MapInfo)

    def active_map(self) -> MapInfo:
        """The map the robot navigates on."""
        return self._call("GET", "/maps/active", MapInfo)

    def activate_map(self, map_id: str) -> MapActivated:
        """Make map_id active (refused while moving)."""
        body = ActivateMap(map_id=map_id)
        return self._call("PUT", "/maps/active", MapActivated, body=body)

    def update_map(
        self, map_id: str, *, name: str | None = None, description: str | None = None
    ) -> MapUpdated:
        """Rename or re-describe a map."""
        body = MapPatch(map_name=name, description=description)
        return self._call("PATCH", f"/maps/{_segment(map_id)}", MapUpdated, body=body)

    def delete_map(self, map_id: str) -> MapDeleted:
        """Delete a map that is not active, with its waypoints."""
        return self._call("DELETE", f"/maps/{_segment(map_id)}", MapDeleted)

    def waypoints(self, map_id: str) -> list[Waypoint]:
        """The waypoints of a map."""
        return self._call("GET", f"/maps/{_segment(map_id)}/waypoints", list[Waypoint])

    def upsert_waypoints(self, map_id: str, waypoints: Sequence[Waypoint]) -> WaypointsUpserted:
        """Add new waypoints and replace same-named ones (all or nothing)."""
        body = WaypointsUpsert(waypoints=list(waypoints))
        path = f"/maps/{_segment(map_id)}/waypoints"
        return self._call("PUT", path, WaypointsUpserted, body=body)

    def delete_waypoint(self, map_id: str, name: str) -> WaypointDeleted:
        """Delete one waypoint."""
        path = f"/maps/{_segment(map_id)}/waypoints/{_segment(name)}"
        return self._call("DELETE", path, WaypointDeleted)

    def start_mapping(self, mode: str = "manual") -> MappingSession:
        """Start a mapping session (manual or autonomous)."""
        body = MappingStart(mapping_mode=mode)  # type: ignore[arg-type]
        return self._call("POST", "/mapping/start", MappingSession, body=body)

    def stop_mapping(self, action: str, name: str | None = None) -> MappingStopped:
        """End the mapping session: `save` under name, or `cancel`."""
        body = MappingStop(action=action, name=name)  # type: ignore[arg-type]
        return self._call("POST", "/mapping/stop", MappingStopped, body=body)

    # --- stream ----------------------------------------------------------------------------

    def stream(
        self,
        *,
        on_message: Callable[[StreamMessage], None],
        on_lost: Callable[[str], None] = _ignore,
        on_malformed: Callable[[str], None] = _ignore,
        silence_timeout_s: float | None = 5.0,
    ) -> RobotStream:
        """A connected RobotStream to this robot's /ws."""
        parts = urlsplit(self._base_url)
        if parts.scheme != "http":
            raise ValueError(f"the push stream needs a plain http:// robot, not {parts.scheme}")
        stream = RobotStream(
            f"ws://{parts.netloc}{parts.path}/ws",
            on_message=on_message,
            on_lost=on_lost,
            on_malformed=on_malformed,
            timeout_s=self._timeout_s,
            silence_timeout_s=silence_timeout_s,
            name=self._name,
        )
        stream.connect()
        return stream

    # --- inside ----------------------------------------------------------------------------

    def _logs(self, kind: LogKind, count: int, entry: type[_T]) -> list[_T]:
        return self._call("GET", f"/logs/{kind}", list[entry], params={"no_of_logs": count})  # type: ignore[valid-type]

    def _count(self, counter: str) -> None:
        with self._lock:
            setattr(self, counter, getattr(self, counter) + 1)

    def _call(
        self,
        method: str,
        path: str,
        reply: Any,
        *,
        body: msgspec.Struct | None = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        content = None if body is None else encode(validate(body))
        headers = None if content is None else {"content-type": "application/json"}
        self._count("_requests")
        try:
            response = self._http.request(
                method, path, content=content, params=params, headers=headers
            )
        except httpx.TimeoutException as exc:
            self._count("_unavailable")
            raise DeviceUnavailable(f"{self!r}: {method} {path}: no answer in time") from exc
        except httpx.TransportError as exc:
            self._count("_unavailable")
            raise DeviceUnavailable(f"{self!r}: {method} {path}: {exc}") from exc
        try:
            envelope = msgspec.json.decode(response.content, type=Envelope)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            self._count("_malformed")
            raise FrameError(
                f"{self!r}: {method} {path}: HTTP {response.status_code}, "
                f"body is not a reply envelope: {exc}"
            ) from exc
        if response.is_error or envelope.status == "error":
            try:
                error = msgspec.json.decode(envelope.data, type=ErrorData)
            except (msgspec.DecodeError, msgspec.ValidationError):
                error = ErrorData(reason="")
            self._count("_refused")
            raise RobotRefused(
                response.status_code, envelope.message, reason=error.reason, detail=error.detail
            )
        try:
            return msgspec.json.decode(envelope.data, type=reply)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            self._count("_malformed")
            raise FrameError(f"{self!r}: {method} {path}: unexpected reply data: {exc}") from exc


def _segment(value: str) -> str:
    return quote(value, safe="")


# --- push stream -------------------------------------------------------------------------


class StreamStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """The current (or last) connection and counters since the stream was created."""

    connected: bool
    messages: int
    malformed: int
    gaps: int
    lost_reason: str | None


_CLOSED_BY_US = (wsproto.connection.ConnectionState.LOCAL_CLOSING,
                 wsproto.connection.ConnectionState.CLOSED)


class _Link:
    """One WebSocket connection; a reconnect gets a new one, so an old reader cannot leak."""

    def __init__(self, sock: socket.socket, ws: wsproto.WSConnection) -> None:
        self.sock = sock
        self.ws = ws
        self.lock = threading.Lock()  # wsproto is not thread-safe: every call goes under it
        self.closing = False
        self.up = True
        self.lost_reason: str | None = None
        self.last_seq = 0
        self.text: list[str] = []
        self.text_bytes = 0
        self.skipping = False
        self.reader: threading.Thread | None = None
        self.pending: list[wse.Event] = []

    def send(self, event: wse.Event) -> bool:
        """Send an event; False, and nothing sent, once our own close has gone out (close()
        on another thread): wsproto refuses a pong for a ping read just before it."""
        with self.lock:
            try:
                data = self.ws.send(event)
            except wsproto.utilities.LocalProtocolError:
                if self.ws.state in _CLOSED_BY_US:
                    return False
                raise
        self.sock.sendall(data)
        return True


class RobotStream:
    """The robot's /ws push stream, read on a thread of its own.

    Callbacks run on the reader thread: on_message(message) per decoded message,
    on_malformed(reason) per message that does not decode (counted), on_lost(reason) once
    per connection when the robot closes, the link breaks or the robot falls silent for
    silence_timeout_s (never after close()). The robot pings every second, so silence means
    it is gone. `statistics().gaps` counts seq numbers skipped.
    """

    def __init__(
        self,
        url: str,
        *,
        on_message: Callable[[StreamMessage], None],
        on_lost: Callable[[str], None] = _ignore,
        on_malformed: Callable[[str], None] = _ignore,
        timeout_s: float = 2.0,
        silence_timeout_s: float | None = 5.0,
        max_message_bytes: int = _DEFAULT_MAX_MESSAGE,
        name: str = "takt",
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme != "ws" or not parts.hostname:
            raise ValueError(f"need a ws://host:port/path URL, got {url!r}")
        if timeout_s <= 0 or (silence_timeout_s is not None and silence_timeout_s <= 0):
            raise ValueError("timeout_s and silence_timeout_s must be > 0")
        self._host = parts.hostname
        self._port = parts.port or 80
        self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._url = url
        self._on_message = on_message
        self._on_lost = on_lost
        self._on_malformed = on_malformed
        self._timeout_s = timeout_s
        self._silence_s = silence_timeout_s
        self._max_message = max_message_bytes
        self._name = name
        self._cond = threading.Condition()
        self._link: _Link | None = None
        self._messages = self._malformed = self._gaps = 0

    def __repr__(self) -> str:
        return f"RobotStream({self._name} {self._url})"

    def __enter__(self) -> RobotStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def connected(self) -> bool:
        """True from connect() until the link is lost or closed."""
        with self._cond:
            return self._link is not None and self._link.up

    def statistics(self) -> StreamStatistics:
        """Connection state and counters."""
        with self._cond:
            link = self._link
            return StreamStatistics(
                connected=link is not None and link.up,
                messages=self._messages,
                malformed=self._malformed,
                gaps=self._gaps,
                lost_reason=None if link is None else link.lost_reason,
            )

    def connect(self) -> None:
        """Open the WebSocket; DeviceUnavailable if the robot cannot be reached or refuses."""
        with self._cond:
            if self._link is not None and self._link.up:
                raise RuntimeError(f"{self!r}: already connected")
        self.close()
        try:
            sock = socket.create_connection((self._host, self._port), timeout=self._timeout_s)
        except OSError as exc:
            raise DeviceUnavailable(f"{self!r}: cannot connect: {exc}") from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        ws = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
        link = _Link(sock, ws)
        try:
            self._handshake(link)
        except BaseException:
            sock.close()
            raise
        sock.settimeout(_MAX_WAIT_S)
        link.reader = threading.Thread(
            target=self._read, args=(link,), name=f"{self._name}-ws-reader", daemon=True
        )
        with self._cond:
            self._link = link
        link.reader.start()

    def request_snapshot(self) -> None:
        """Ask the robot to send state, map and goal again (after a gap)."""
        link = self._require_link()
        try:
            link.send(wse.TextMessage(data=encode(StreamRequest(request="snapshot")).decode()))
        except (OSError, wsproto.utilities.LocalProtocolError) as exc:
            raise DeviceUnavailable(f"{self!r}: cannot send: {exc}") from exc

    def close(self) -> None:
        """Close the connection and join the reader; on_lost is not called. Safe to repeat."""
        with self._cond:
            link = self._link
            if link is None:
                return
            link.closing = True
            link.up = False
        if link.ws.state is wsproto.connection.ConnectionState.OPEN:
            try:
                link.send(wse.CloseConnection(code=1000))
            except (OSError, wsproto.utilities.LocalProtocolError):
                pass  # already gone; closing anyway
        try:
            link.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        if link.reader is not None and link.reader is not threading.current_thread():
            link.reader.join(_JOIN_TIMEOUT_S)
        link.sock.close()

    # --- inside ----------------------------------------------------------------------------

    def _require_link(self) -> _Link:
        with self._cond:
            link = self._link
            if link is None or not link.up:
                raise DeviceUnavailable(f"{self!r}: not connected")
            return link

    def _handshake(self, link: _Link) -> None:
        request = wse.Request(
            host=f"{self._host}:{self._port}",
            target=self._target,
            extra_headers=[(b"x-client-name", self._name.encode("latin-1", "replace"))],
        )
        deadline = time.monotonic() + self._timeout_s
        try:
            link.sock.sendall(link.ws.send(request))
            while True:
                link.sock.settimeout(max(0.001, deadline - time.monotonic()))
                data = link.sock.recv(_RECV_BYTES)
                if not data:
                    raise DeviceUnavailable(f"{self!r}: closed during the handshake")
                link.ws.receive_data(data)
                for event in link.ws.events():
                    if isinstance(event, wse.AcceptConnection):
                        continue
                    if isinstance(event, wse.RejectConnection):
                        raise DeviceUnavailable(
                            f"{self!r}: upgrade refused with HTTP {event.status_code}"
                        )
                    if isinstance(event, wse.RejectData):
                        continue
                    link.pending.append(event)  # messages sent right after the 101
                if link.ws.state is wsproto.connection.ConnectionState.OPEN:
                    return
        except TimeoutError as exc:
            raise DeviceUnavailable(f"{self!r}: no handshake answer in time") from exc
        except OSError as exc:
            raise DeviceUnavailable(f"{self!r}: handshake failed: {exc}") from exc
        except wsproto.utilities.RemoteProtocolError as exc:
            raise DeviceUnavailable(f"{self!r}: not a WebSocket answer: {exc}") from exc

    def _read(self, link: _Link) -> None:
        reason: str | None = None
        last_heard = time.monotonic()
        try:
            if not self._handle(link, link.pending):
                reason = "closed by the robot"
            while reason is None and not link.closing:
                try:
                    data = link.sock.recv(_RECV_BYTES)
                except TimeoutError:
                    silence = time.monotonic() - last_heard
                    if self._silence_s is not None and silence > self._silence_s:
                        reason = f"robot silent for {silence:.1f} s"
                    continue
                if not data:
                    reason = "connection closed by the robot"
                    break
                last_heard = time.monotonic()
                with link.lock:
                    link.ws.receive_data(data)
                    events = list(link.ws.events())
                if not self._handle(link, events):
                    reason = "closed by the robot"
        except OSError as exc:
            reason = f"connection lost: {exc}"
        except wsproto.utilities.RemoteProtocolError as exc:
            reason = f"WebSocket protocol error: {exc}"
        self._lost(link, reason)

    def _handle(self, link: _Link, events: Sequence[wse.Event]) -> bool:
        """Act on events; False once the robot has closed the connection."""
        for event in events:
            if isinstance(event, wse.TextMessage):
                self._text(link, event)
            elif isinstance(event, wse.BytesMessage):
                if event.message_finished:
                    self._bad(link, "binary message on a JSON stream")
            elif isinstance(event, wse.Ping):
                link.send(event.response())
            elif isinstance(event, wse.CloseConnection):
                if link.ws.state is wsproto.connection.ConnectionState.REMOTE_CLOSING:
                    link.send(event.response())
                return False
        return True

    def _text(self, link: _Link, event: wse.TextMessage) -> None:
        if not link.skipping:
            link.text.append(event.data)
            link.text_bytes += len(event.data)
            if link.text_bytes > self._max_message:
                link.skipping = True
                link.text, link.text_bytes = [], 0
        if not event.message_finished:
            return
        if link.skipping:
            link.skipping = False
            self._bad(link, f"message over {self._max_message} bytes")
            return
        text = "".join(link.text)
        link.text, link.text_bytes = [], 0
        try:
            message = decode_stream_message(text)
        except FrameError as exc:
            self._bad(link, f"{exc} in {text[:80]!r}")
            return
        with self._cond:
            self._messages += 1
            if link.last_seq and message.seq > link.last_seq + 1:
                self._gaps += message.seq - link.last_seq - 1
            link.last_seq = message.seq
        try:
            self._on_message(message)
        except Exception:
            _log.exception("%r: on_message failed", self)

    def _bad(self, link: _Link, reason: str) -> None:
        with self._cond:
            self._malformed += 1
        _log.warning("%r: malformed message: %s", self, reason)
        try:
            self._on_malformed(reason)
        except Exception:
            _log.exception("%r: on_malformed failed", self)

    def _lost(self, link: _Link, reason: str | None) -> None:
        with self._cond:
            report = not link.closing and reason is not None
            link.up = False
            if report:
                link.lost_reason = reason
        if not report:
            return
        try:
            link.sock.close()
        except OSError:
            pass
        _log.warning("%r: stream lost: %s", self, reason)
        try:
            self._on_lost(reason or "")
        except Exception:
            _log.exception("%r: on_lost failed", self)
