"""Robot actor: one per mobile robot, over its controller's HTTP API and WebSocket stream
(docs/robot-protocol.md, seed 003).

On every (re)connect it reads the robot's identity, settings, state and active map, opens the
push stream, points the robot's alert webhook at Takt and fetches the alerts raised while it
was away. From then on the stream keeps it current: every message is published on
`device.robot.<name>.<topic>` (state, tf, odom, map, goal_pose) for HMIs and the
`/ws/robots/<name>` relay; a goal's outcome is published durable (`.goal`), and each alert is
stored (once, by uuid, whichever way it came first) before it is published durable (`.alert`).
Telemetry logs are copied into the store every telemetry_interval_s, so their history outlives
the robot's own 500 entries and can be read while the robot is offline.

Commands are asked (RobotCall) and answered with the robot's reply. A robot that does not
answer, or a stream that is lost or falls silent, fails the actor; its supervisor reconnects
with backoff, and meanwhile every command to the robot fails at once with 503.
"""

from __future__ import annotations

import hmac
import secrets
from collections import Counter
from datetime import datetime
from typing import Any

import duckdb
import msgspec

from actors.base import handles
from actors.database import DatabaseActor
from actors.health import HealthState
from actors.robot_messages import (
    CALLS,
    AlertReceived,
    CopyTelemetry,
    GetRobotStatus,
    ReceiveAlert,
    RobotCall,
    RobotStatus,
    TelemetryCopied,
    WebhookKeyRefused,
)
from actors.runtime import ActorUnavailable, Runtime, tell
from controller.robot_config import RobotConfig
from drivers.errors import DeviceUnavailable, DriverError, FrameError
from drivers.robot.client import RobotClient, RobotStream
from drivers.robot.messages import (
    Alert,
    AlertMessage,
    DeviceInfo,
    MapInfo,
    MapMessage,
    MotionState,
    RobotState,
    Settings,
    StateMessage,
    StreamMessage,
)
from state.robots import (
    LOG_KINDS,
    RobotAlertRow,
    RobotLogRow,
    Watermark,
    log_watermarks,
    store_alert,
    store_logs,
)

__all__ = ["RobotActor", "webhook_base_url"]

_ENCODE = msgspec.json.Encoder().encode
# Motions that end a goal; each holds until the next goal, so one is reported once per goal.
_OUTCOMES = frozenset({MotionState.ARRIVED, MotionState.DOCKED, MotionState.CANCELED,
                       MotionState.FAILED})
_BACKFILL_ALERTS = 100  # the robot keeps its newest 100


def webhook_base_url(config: RobotConfig, server_host: str, server_port: int) -> str:
    """How the robot reaches Takt's API: the configured base, else Takt's own server address."""
    if config.webhook_base_url is not None:
        return config.webhook_base_url.rstrip("/")
    host = "127.0.0.1" if server_host in ("0.0.0.0", "::", "") else server_host
    return f"http://{f'[{host}]' if ':' in host else host}:{server_port}"


def _us(at: datetime) -> int:
    return int(at.timestamp() * 1_000_000)


class _Pushed(msgspec.Struct, frozen=True):
    link: int  # which stream of this actor it came on: a closed one's messages are stale
    message: Any


class _Trouble(msgspec.Struct, frozen=True):
    link: int
    kind: str  # malformed | lost
    reason: str


class _CopyTick(msgspec.Struct, frozen=True):
    pass


class RobotActor(DatabaseActor):
    fatal = (DeviceUnavailable,)

    def __init__(self, runtime: Runtime, name: str, config: RobotConfig,
                 database: duckdb.DuckDBPyConnection, *, webhook_base: str | None = None,
                 **kw: Any) -> None:
        super().__init__(runtime, name, database, **kw)
        self.config = config
        self.topic = f"device.robot.{config.name}"
        self.source = f"robot.{config.name}"
        self._webhook_base = webhook_base
        self._key = secrets.token_urlsafe(18)  # the webhook's secret; new on every start
        self.webhook_url: str | None = None
        self.client: RobotClient | None = None
        self.stream: RobotStream | None = None
        self._links = 0
        self.device: DeviceInfo | None = None
        self.settings: Settings | None = None
        self.state: RobotState | None = None
        self.state_us: int | None = None
        self.active_map: MapInfo | None = None
        self.outcomes: Counter[str] = Counter()
        self.alerts_received = 0
        self.malformed = 0
        self.copied = 0
        self.last_copy_us: int | None = None
        self.last_error: str | None = None
        self._watermarks: dict[str, Watermark] = {}
        self._timer: Any = None

    # --- lifecycle ------------------------------------------------------------------------

    def started(self) -> None:
        # The cursor is opened here rather than by DatabaseActor.started, which would report
        # UP before the robot was even tried.
        self._con = self.database.cursor()
        self._watermarks = log_watermarks(self.con, self.config.name)
        self._connect()
        self.set_health(HealthState.UP)
        self._publish_status()
        self._schedule_copy()

    def stopping(self) -> None:
        self._close_link()
        super().stopping()

    def failed(self, error: BaseException) -> None:
        self._close_link()
        super().failed(error)

    def _close_link(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        stream, self.stream = self.stream, None
        if stream is not None:
            stream.close()
        client, self.client = self.client, None
        if client is not None:
            client.close()

    def _connect(self) -> None:
        """Identity, settings, state, stream, webhook, missed alerts and telemetry; any
        failure is DeviceUnavailable (the supervisor retries with backoff)."""
        c = self.config
        client = RobotClient(c.url, timeout_s=c.timeout_ms / 1000, name="takt")
        self.client = client
        self._links += 1
        link = self._links
        try:
            self.device = client.device_info()
            self.settings = client.settings()
            self.active_map = client.active_map()
            self._on_state(client.state())
            # The stream before the backfill: an alert raised in between is in one of them.
            self.stream = client.stream(
                on_message=lambda m: self._tell(_Pushed(link, m)),
                on_malformed=lambda reason: self._tell(_Trouble(link, "malformed", reason)),
                on_lost=lambda reason: self._tell(_Trouble(link, "lost", reason)),
                silence_timeout_s=c.silence_timeout_s)
            if c.alert_webhook and self._webhook_base is not None:
                url = f"{self._webhook_base}/api/v1/robots/{c.name}/alerts?key={self._key}"
                client.set_alert_webhook(url)
                self.webhook_url = url.partition("?")[0]
            for alert in reversed(client.alerts(_BACKFILL_ALERTS)):  # oldest first
                self._take_alert(alert, "backfill")
            self._copy_telemetry()
        except FrameError as exc:
            self.malformed += 1
            self.log.warning("robot %s sent a malformed reply: %s", c.name, exc)
            self._close_link()
            raise DeviceUnavailable(f"{c.name}: {exc}") from exc
        except DriverError as exc:
            # A refusal here (RobotRefused) is as fatal as no answer: the robot is not usable.
            self._close_link()
            if isinstance(exc, DeviceUnavailable):
                raise
            raise DeviceUnavailable(f"{c.name}: {exc}") from exc
        except BaseException:
            self._close_link()
            raise
        self.last_error = None

    def _tell(self, message: Any) -> None:
        try:
            tell(self.runtime, self.actor_ref, message)
        except ActorUnavailable:
            pass  # gone; its replacement reconnects

    # --- from the stream ------------------------------------------------------------------

    @handles(_Pushed)
    def _on_pushed(self, msg: _Pushed) -> None:
        if msg.link != self._links:
            return
        m: StreamMessage = msg.message
        if isinstance(m, StateMessage):
            self._on_state(m.data)
        elif isinstance(m, AlertMessage):
            self._take_alert(m.data, "stream")
        else:  # tf, odom, map, goal_pose: for HMIs and the relay
            if isinstance(m, MapMessage):
                self.active_map = m.data
            topic = type(m).__struct_config__.tag
            self.publish(f"{self.topic}.{topic}", msgspec.to_builtins(m.data))

    @handles(_Trouble)
    def _on_trouble(self, msg: _Trouble) -> None:
        if msg.link != self._links:
            return
        if msg.kind == "lost":
            raise DeviceUnavailable(f"{self.config.name}: stream lost: {msg.reason}")
        self.malformed += 1
        self.last_error = msg.reason
        self.log.warning("robot %s: malformed stream message: %s", self.config.name, msg.reason)

    def _on_state(self, state: RobotState) -> None:
        previous, self.state = self.state, state
        self.state_us = self.clock.now_us()
        self.publish(f"{self.topic}.state", {"robot": self.config.name,
                                             **msgspec.to_builtins(state)})
        ended = state.motion in _OUTCOMES and state.motion != (previous and previous.motion)
        if ended and previous is not None:
            self.outcomes[state.motion.value] += 1
            goal = previous.goal or state.goal
            self.publish(f"{self.topic}.goal", {
                "robot": self.config.name, "outcome": state.motion.value,
                "goal": msgspec.to_builtins(goal) if goal is not None else None,
                "pose": msgspec.to_builtins(state.pose),
                "battery_pct": state.battery_pct}, durable=True)

    def _take_alert(self, alert: Alert, via: str) -> bool:
        """Store the alert (the evidence first), then publish it if it is new."""
        row = RobotAlertRow(
            uuid=alert.uuid, robot=self.config.name, device_id=alert.device_id,
            raised_us=_us(alert.timestamp), received_us=self.clock.now_us(), via=via,
            source=alert.source, severity=alert.severity, header=alert.header, body=alert.body,
            action_required=alert.action_required)
        if not store_alert(self.con, row):
            return False
        self.alerts_received += 1
        self.publish(f"{self.topic}.alert", {"robot": self.config.name, "via": via,
                                             **msgspec.to_builtins(alert)}, durable=True)
        return True

    # --- telemetry ------------------------------------------------------------------------

    @handles(_CopyTick)
    def _on_copy_tick(self, _: _CopyTick) -> None:
        try:
            self._copy_telemetry()
        except FrameError as exc:
            self.malformed += 1
            self.last_error = str(exc)
            self.log.warning("robot %s: malformed telemetry: %s", self.config.name, exc)
        finally:
            self._schedule_copy()

    def _schedule_copy(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.tell_self_later(self.config.telemetry_interval_s, _CopyTick())

    @handles(CopyTelemetry)
    def _copy_now(self, _: CopyTelemetry) -> TelemetryCopied:
        return self._copy_telemetry()

    def _copy_telemetry(self) -> TelemetryCopied:
        client = self._client()
        now = self.clock.now_us()
        rows: list[RobotLogRow] = []
        copied: dict[str, int] = {}
        overrun: list[str] = []
        marks = dict(self._watermarks)
        for kind in LOG_KINDS:
            entries = client.logs(kind, self.config.telemetry_batch)
            mark = marks.get(kind)
            new = [e for e in entries
                   if mark is None or mark.older_than(_us(e.recorded_at), e.log_id)]
            if new and len(new) == len(entries) and mark is not None:
                overrun.append(kind)  # nothing old came back: entries in between are lost
            for e in reversed(new):  # oldest first
                rows.append(RobotLogRow(robot=self.config.name, kind=kind, log_id=e.log_id,
                                        recorded_us=_us(e.recorded_at), stored_us=now,
                                        entry=_ENCODE(e).decode()))
            if new:
                marks[kind] = Watermark(_us(new[0].recorded_at), new[0].log_id)
            copied[kind] = len(new)
        store_logs(self.con, rows)
        self._watermarks = marks
        self.copied += len(rows)
        self.last_copy_us = now
        if overrun:
            self.log.warning("robot %s: telemetry of %s ran past %d entries between copies; "
                             "raise telemetry_batch or copy more often", self.config.name,
                             ", ".join(overrun), self.config.telemetry_batch)
        return TelemetryCopied(copied=copied, overrun=overrun)

    # --- requests -------------------------------------------------------------------------

    @handles(RobotCall)
    def _call(self, msg: RobotCall) -> Any:
        if msg.method not in CALLS:
            raise ValueError(f"no robot call {msg.method!r}")
        client = self._client()
        try:
            result = getattr(client, msg.method)(**msg.args)
        except FrameError as exc:
            self.malformed += 1
            self.last_error = str(exc)
            self.log.warning("robot %s: malformed reply: %s", self.config.name, exc)
            raise
        if isinstance(result, Settings):
            self.settings = result
        elif isinstance(result, DeviceInfo):
            self.device = result
        return result

    @handles(ReceiveAlert)
    def _receive_alert(self, msg: ReceiveAlert) -> AlertReceived:
        if msg.key is not None and not hmac.compare_digest(msg.key, self._key):
            raise WebhookKeyRefused(f"that is not robot {self.config.name}'s webhook key")
        alert = msg.alert
        if self.device is not None and not alert.device_id:  # the seed's webhook names none
            alert = msgspec.structs.replace(alert, device_id=self.device.device_id)
        if self.device is not None and alert.device_id != self.device.device_id:
            raise ValueError(f"alert from device {alert.device_id}, but robot "
                             f"{self.config.name} is device {self.device.device_id}")
        new = self._take_alert(alert, "webhook")
        return AlertReceived(message="Alert sent successfully.", acknowledged=True, new=new)

    @handles(GetRobotStatus)
    def _status(self, _: GetRobotStatus) -> RobotStatus:
        return RobotStatus(
            name=self.config.name, url=self.config.url,
            connection="connected" if self.stream is not None and self.stream.connected
            else "connecting",
            device=self.device, state=self.state, state_us=self.state_us,
            settings=self.settings, active_map=self.active_map,
            goal_outcomes=dict(self.outcomes), alerts_received=self.alerts_received,
            webhook_url=self.webhook_url, telemetry_copied=self.copied,
            last_copy_us=self.last_copy_us, malformed=self.malformed,
            last_error=self.last_error,
            client=self.client.statistics() if self.client is not None else None,
            stream=self.stream.statistics() if self.stream is not None else None)

    # --- helpers --------------------------------------------------------------------------

    def _client(self) -> RobotClient:
        if self.client is None:
            raise DeviceUnavailable(f"robot {self.config.name} is not connected")
        return self.client

    def _publish_status(self) -> None:
        d = self.device
        self.publish(f"{self.topic}.device", {
            "robot": self.config.name, "connected": True,
            "device": msgspec.to_builtins(d) if d is not None else None})
