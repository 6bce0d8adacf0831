"""The simulated robot controller behind the HTTP routes: world, settings, logs, alerts.

No sockets and no threads: the server calls one method per request (or `tick(dt)` for
time passing) under its lock, then `drain()`s what is to go out: WebSocket pushes
(without their per-connection seq) and alerts for the webhook. Wall-clock stamps are the
world's time added to `epoch`, so a stepped simulation stamps deterministically.
"""

from __future__ import annotations

import itertools
import math
import random
import uuid
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import msgspec

from drivers.robot.messages import (
    Alert,
    AlertMessage,
    BodyLight,
    BodyLightState,
    CameraHead,
    CameraHeadState,
    CancelResult,
    CaptureMedia,
    DeviceInfo,
    DisplayBrightnessCommand,
    DisplayBrightnessState,
    Goal,
    GoalAccepted,
    LogEntry,
    LogKind,
    MapActivated,
    MapDeleted,
    MapInfo,
    MappingSession,
    MappingStopped,
    MapUpdated,
    MediaCaptured,
    PrivacyCommand,
    PrivacyState,
    Reason,
    Rect,
    RobotState,
    Settings,
    SettingsPatch,
    StreamMessage,
    VolumeCommand,
    VolumeState,
    Waypoint,
    WaypointsUpserted,
)
from sim.robot.maps import MapStore, StoredMap, demo_map
from sim.robot.pushes import PushTracker, snapshot
from sim.robot.refused import Refused
from sim.robot.telemetry import TelemetryLog
from sim.robot.world import (
    Arrived,
    BatteryDepleted,
    BatteryLow,
    Docked,
    GoalFailed,
    PrivacyEnded,
    RobotWorld,
    WorldEvent,
)

__all__ = ["RobotDevice"]

_EPOCH = datetime(2025, 1, 1, tzinfo=UTC)
_STEP = 10  # what `increase` / `decrease` add to a level
_ALERTS_KEPT = 100
_LOCATION_LOG_S = 1.0
_SLOW_LOG_S = 10.0


class _Mapping(msgspec.Struct, frozen=True):
    session_id: str
    map_id: str
    mode: str


class RobotDevice:
    """One robot: world and device state; every public method is one request or one tick."""

    def __init__(
        self,
        *,
        world: RobotWorld | None = None,
        epoch: datetime = _EPOCH,
        seed: int = 0,
        log_capacity: int = 500,
    ) -> None:
        self.world = world if world is not None else RobotWorld(MapStore([demo_map()]))
        self.maps = self.world.maps
        self.epoch = epoch
        self._random = random.Random(seed)
        self.device_id = str(self._uuid())
        self.logs = TelemetryLog(capacity=log_capacity)
        self.alerts: deque[Alert] = deque(maxlen=_ALERTS_KEPT)
        self.webhook_url: str | None = None
        self.volume = 50
        self.display_brightness = 80
        self.status_light_brightness = 60
        self._settings_changed: tuple[float, str] | None = None
        self.light = BodyLightState(
            color="#FFFFFF", brightness=100, animation="solid", strip_number=-1
        )
        self.head = CameraHeadState(pan=0.0, tilt=0.0)
        self._media_ids = itertools.count(1)
        self._session_ids = itertools.count(1)
        self.mapping: _Mapping | None = None
        self._pushes: list[StreamMessage] = []
        self._alerts_out: list[Alert] = []
        self._tracker = PushTracker()
        self._location_logged_at = -math.inf
        self._slow_logged_at = -math.inf

    # --- time ------------------------------------------------------------------------------

    def now(self) -> datetime:
        """The wall-clock stamp of the world's present."""
        return self.epoch + timedelta(seconds=self.world.time_s)

    def _at(self, world_s: float) -> datetime:
        return self.epoch + timedelta(seconds=world_s)

    def tick(self, dt: float) -> None:
        """Let dt seconds pass: move, drain or charge, log, and queue what changed."""
        # In slices no longer than the shortest log period, so a long step logs like many
        # short ones would; pushes only show where the step ends.
        remaining = dt
        while True:
            chunk = min(remaining, _LOCATION_LOG_S)
            for event in self.world.advance(chunk):
                self._on_world_event(event)
            self._periodic_logs()
            remaining -= chunk
            if remaining <= 0.0:
                break
        self.sync_pushes()

    def set_battery(self, pct: float) -> None:
        """Force the charge level (a fault switch), with the alerts it causes."""
        for event in self.world.set_battery(pct):
            self._on_world_event(event)
        self._log_battery()
        self.sync_pushes()

    def drain(self) -> tuple[list[StreamMessage], list[Alert]]:
        """Take the pushes and webhook alerts queued since the last drain."""
        pushes, alerts = self._pushes, self._alerts_out
        self._pushes, self._alerts_out = [], []
        return pushes, alerts

    # --- device, state, settings -----------------------------------------------------------

    def device_info(self) -> DeviceInfo:
        """`GET /device`."""
        return DeviceInfo(
            device_id=self.device_id,
            model="Takt SimBot AMR-1",
            manufacturer="Takt simulator",
            os_version="1.4.2",
            serial_number=f"SIM-{self.device_id[:8].upper()}",
            battery_health=96,
            last_restart_time=self.epoch,
            storage_capacity_gb=128,
            available_storage_gb=round(96.0 - 0.01 * len(self.logs), 2),
        )

    def state(self) -> RobotState:
        """`GET /state` and the `state` topic."""
        w = self.world
        return RobotState(
            pose=w.pose,
            motion=w.motion,
            goal=w.goal,
            battery_pct=round(w.battery_pct, 3),
            charging=w.charging,
            docked=w.docked,
            privacy=w.privacy,
            mapping=self.mapping is not None,
            active_map_id=self.maps.active.map_id,
            linear_speed=w.linear_speed,
            angular_speed=w.angular_speed,
        )

    def settings(self) -> Settings:
        """`GET /settings`."""
        until = self.world.privacy_until_s
        changed = self._settings_changed
        return Settings(
            device_id=self.device_id,
            privacy_status=self.world.privacy,
            privacy_until=None if until is None else self._at(until),
            volume=self.volume,
            display_brightness=self.display_brightness,
            status_light_brightness=self.status_light_brightness,
            last_device_settings_changed_at=None if changed is None else self._at(changed[0]),
            last_device_settings_changed_by=None if changed is None else changed[1],
        )

    def update_settings(self, patch: SettingsPatch, client: str) -> Settings:
        """`PATCH /settings`."""
        if patch.privacy_status is not None:
            self._set_privacy(patch.privacy_status, None, client)
        if patch.volume is not None:
            self.volume = patch.volume
        if patch.display_brightness is not None:
            self.display_brightness = patch.display_brightness
        if patch.status_light_brightness is not None:
            self.status_light_brightness = patch.status_light_brightness
        self._settings_changed = (self.world.time_s, client)
        self._activity(
            "settings", f"settings changed: {msgspec.json.encode(patch).decode()}", client
        )
        return self.settings()

    # --- motion commands -------------------------------------------------------------------

    def go_to_location(self, x: float, y: float, yaw: float, client: str) -> GoalAccepted:
        """`POST /commands/go_to_location`."""
        return self._goal(lambda: self.world.go_to(x, y, yaw), f"go to ({x}, {y}, {yaw})", client)

    def go_to_waypoint(self, name: str, client: str) -> GoalAccepted:
        """`POST /commands/go_to_waypoint`."""
        return self._goal(
            lambda: self.world.go_to_waypoint(name), f"go to waypoint {name!r}", client
        )

    def dock(self, client: str) -> GoalAccepted:
        """`POST /commands/dock`."""
        return self._goal(self.world.dock, "dock", client)

    def cancel_go_to_location(self, client: str) -> CancelResult:
        """`POST /commands/cancel_go_to_location`."""
        canceled = self.world.cancel_goal()
        if canceled:
            self._activity("cancel", "goal canceled", client)
            self._log_location()
        return CancelResult(canceled=canceled)

    def cancel_dock(self, client: str) -> CancelResult:
        """`POST /commands/cancel_dock`."""
        canceled = self.world.cancel_dock()
        if canceled:
            self._activity("cancel_dock", "docking canceled", client)
            self._log_location()
        return CancelResult(canceled=canceled)

    # --- other commands --------------------------------------------------------------------

    def body_light(self, command: BodyLight, client: str) -> BodyLightState:
        """`POST /commands/body_light`."""
        self.light = BodyLightState(
            color=command.color.upper(),
            brightness=command.brightness,
            animation=command.animation,
            strip_number=command.strip_number,
        )
        self._activity("body_light", f"light {self.light.color} {self.light.animation}", client)
        return self.light

    def set_volume(self, command: VolumeCommand, client: str) -> VolumeState:
        """`POST /commands/volume`."""
        self.volume = _level(self.volume, command.volume_level, command.adjustment)
        self._settings_changed = (self.world.time_s, client)
        self._activity("volume", f"volume {self.volume}", client)
        return VolumeState(volume=self.volume)

    def set_display_brightness(
        self, command: DisplayBrightnessCommand, client: str
    ) -> DisplayBrightnessState:
        """`POST /commands/display_brightness`."""
        level = _level(self.display_brightness, command.brightness_level, command.adjustment)
        self.display_brightness = level
        self._settings_changed = (self.world.time_s, client)
        self._activity("display_brightness", f"display brightness {level}", client)
        return DisplayBrightnessState(display_brightness=level)

    def camera_head(self, command: CameraHead, client: str) -> CameraHeadState:
        """`POST /commands/camera_head`."""
        self.head = CameraHeadState(pan=command.pan, tilt=command.tilt)
        self._activity("camera_head", f"camera head pan {command.pan} tilt {command.tilt}", client)
        return self.head

    def capture_media(self, command: CaptureMedia, client: str) -> MediaCaptured:
        """`POST /commands/capture_media`; refused while privacy mode is on."""
        if self.world.privacy:
            self._activity("capture_media", f"{command.kind} refused: privacy", client, error=True)
            raise Refused(Reason.PRIVACY_ACTIVE, "privacy mode is on; no capture")
        media_id = f"media-{next(self._media_ids)}"
        suffix = "jpg" if command.kind == "photo" else "mp4"
        self._activity("capture_media", f"{command.kind} {media_id}", client)
        return MediaCaptured(
            media_id=media_id,
            kind=command.kind,
            duration_s=command.duration_s,
            captured_at=self.now(),
            path=f"media/{media_id}.{suffix}",
        )

    def privacy(self, command: PrivacyCommand, client: str) -> PrivacyState:
        """`POST /commands/privacy`."""
        self._set_privacy(command.enabled, command.duration_s, client)
        until = self.world.privacy_until_s
        return PrivacyState(
            privacy_status=self.world.privacy, until=None if until is None else self._at(until)
        )

    # --- logs and alerts -------------------------------------------------------------------

    def latest_logs(self, kind: LogKind, count: int) -> list[LogEntry]:
        """`GET /logs/{kind}?no_of_logs=N`, newest first."""
        return self.logs.latest(kind, count)

    def latest_alerts(self, count: int) -> list[Alert]:
        """`GET /alerts?no_of_alerts=N`, newest first."""
        return list(self.alerts)[::-1][:count]

    def raise_alert(
        self,
        severity: int,
        header: str,
        body: str,
        *,
        source: str = "robot",
        action_required: str | None = None,
    ) -> Alert:
        """Record an alert, push it on /ws and queue it for the webhook."""
        if not 1 <= severity <= 5:
            raise ValueError("severity is 1 (most critical) to 5")
        alert = Alert(
            device_id=self.device_id,
            timestamp=self.now(),
            uuid=str(self._uuid()),
            source=source,
            severity=severity,
            header=header,
            body=body,
            action_required=action_required,
        )
        self.alerts.append(alert)
        self._pushes.append(AlertMessage(seq=1, ts=alert.timestamp, data=alert))
        if self.webhook_url is not None:
            self._alerts_out.append(alert)
        self._activity("alert", f"severity {severity}: {header}", source, error=severity <= 3)
        return alert

    def log_connectivity(self, status: str, detail: str) -> None:
        """Note a link event (a WS client, a webhook delivery) in the connectivity log."""
        self.logs.add(
            LogKind.CONNECTIVITY,
            device_id=self.device_id,
            recorded_at=self.now(),
            connection_status=status,
            signal_strength=-48,
            network_type="WIFI",
            ip_address="127.0.0.1",
            detail=detail,
        )

    # --- maps ------------------------------------------------------------------------------

    def map_info(self, stored: StoredMap) -> MapInfo:
        """A stored map as its reply body."""
        return MapInfo(
            map_id=stored.map_id,
            map_name=stored.name,
            description=stored.description,
            mode="trinary",
            resolution=stored.resolution,
            origin=(0.0, 0.0, 0.0),
            width_m=stored.width_m,
            height_m=stored.height_m,
            dock=stored.dock,
            obstacles=[
                Rect(x_min=b.x_min, y_min=b.y_min, x_max=b.x_max, y_max=b.y_max)
                for b in stored.obstacles
            ],
            waypoints=list(stored.waypoints),
            active_map=stored.map_id == self.maps.active.map_id,
            created_at=self._at(stored.created_s),
            last_modified_at=self._at(stored.modified_s),
        )

    def activate_map(self, map_id: str, client: str) -> MapActivated:
        """`PUT /maps/active`."""
        pose = self.world.activate_map(map_id)
        self._activity("map", f"map {map_id} activated", client)
        return MapActivated(map_id=map_id, pose=pose)

    def update_map(
        self, map_id: str, name: str | None, description: str | None, client: str
    ) -> MapUpdated:
        """`PATCH /maps/{id}`."""
        updated = self.maps.update(
            map_id, name=name, description=description, now_s=self.world.time_s
        )
        self._activity("map", f"map {map_id} updated: {', '.join(updated) or 'nothing'}", client)
        return MapUpdated(map_id=map_id, updated=updated)

    def delete_map(self, map_id: str, client: str) -> MapDeleted:
        """`DELETE /maps/{id}`."""
        count = self.maps.delete(map_id)
        self._activity("map", f"map {map_id} deleted", client)
        return MapDeleted(map_id=map_id, waypoints_deleted=count)

    def upsert_waypoints(
        self, map_id: str, waypoints: list[Waypoint], client: str
    ) -> WaypointsUpserted:
        """`PUT /maps/{id}/waypoints`."""
        inserted, updated = self.maps.upsert_waypoints(map_id, waypoints, now_s=self.world.time_s)
        self._activity("waypoints", f"map {map_id}: {inserted} new, {updated} replaced", client)
        return WaypointsUpserted(inserted=inserted, updated=updated)

    def delete_waypoint(self, map_id: str, name: str, client: str) -> None:
        """`DELETE /maps/{id}/waypoints/{name}`."""
        self.maps.delete_waypoint(map_id, name, now_s=self.world.time_s)
        self._activity("waypoints", f"map {map_id}: waypoint {name!r} deleted", client)

    def start_mapping(self, mode: str, client: str) -> MappingSession:
        """`POST /mapping/start`."""
        if self.mapping is not None:
            raise Refused(Reason.MAPPING_ACTIVE, f"mapping session {self.mapping.session_id} runs")
        self.mapping = _Mapping(
            session_id=f"session-{next(self._session_ids)}", map_id=self.maps.new_id(), mode=mode
        )
        self._activity("mapping", f"mapping started ({mode})", client)
        return MappingSession(
            session_id=self.mapping.session_id, map_id=self.mapping.map_id, mapping_mode=mode
        )

    def stop_mapping(self, action: str, name: str | None, client: str) -> MappingStopped:
        """`POST /mapping/stop`: save the explored area (the active map's extent) or drop it."""
        session = self.mapping
        if session is None:
            raise Refused(Reason.NOT_MAPPING, "no mapping session runs")
        self.mapping = None
        saved: str | None = None
        if action == "save":
            # The simulated building is what the active map shows, so that is what was seen.
            seen = self.maps.active
            now = self.world.time_s
            self.maps.add(
                StoredMap(
                    map_id=session.map_id,
                    name=name or session.map_id,
                    description=f"mapped in {session.session_id} ({session.mode})",
                    width_m=seen.width_m,
                    height_m=seen.height_m,
                    resolution=seen.resolution,
                    obstacles=seen.obstacles,
                    dock=seen.dock,
                    created_s=now,
                    modified_s=now,
                )
            )
            saved = session.map_id
        self._activity("mapping", f"mapping {action}: {saved or 'discarded'}", client)
        return MappingStopped(session_id=session.session_id, action=action, map_id=saved)

    # --- pushes ----------------------------------------------------------------------------

    def snapshot(self) -> list[StreamMessage]:
        """What a new /ws client (or one that asks after a gap) is sent first."""
        return snapshot(self.now(), self.state(), self.map_info(self.maps.active))

    def sync_pushes(self) -> None:
        """Queue a push for each thing that changed, and the heartbeat when it is due."""
        active = self.map_info(self.maps.active)
        self._pushes += self._tracker.changes(self.now(), self.world.time_s, self.state(), active)

    # --- inside ----------------------------------------------------------------------------

    def _uuid(self) -> uuid.UUID:
        return uuid.UUID(int=self._random.getrandbits(128), version=4)

    def _goal(self, start: Callable[[], Goal], what: str, client: str) -> GoalAccepted:
        try:
            goal = start()
        except Refused as exc:
            self._activity("goal", f"{what} refused: {exc.message}", client, error=True)
            raise
        self._activity("goal", f"{what} accepted as {goal.goal_id}", client)
        self._log_location()
        return GoalAccepted(
            goal=goal,
            current_position=self.world.pose,
            estimated_time_s=round(self.world.estimated_time_s(), 3),
        )

    def _set_privacy(self, enabled: bool, duration_s: float | None, client: str) -> None:
        if enabled:
            self.world.enable_privacy(duration_s)
            span = "until disabled" if duration_s is None else f"for {duration_s:g} s"
            self._activity("privacy", f"privacy on {span}", client)
        else:
            self.world.disable_privacy()
            self._activity("privacy", "privacy off", client)

    def _on_world_event(self, event: WorldEvent) -> None:
        match event:
            case Arrived(goal):
                self._activity("arrived", f"{goal.goal_id} reached", "robot")
                self._log_location()
            case Docked(goal):
                self._activity("docked", f"{goal.goal_id}: docked, charging", "robot")
                self._log_location()
                self._log_battery()
            case GoalFailed(goal, reason):
                self._activity("goal", f"{goal.goal_id} failed: {reason}", "robot", error=True)
                self._log_location()
            case BatteryLow(pct):
                self.raise_alert(
                    4,
                    "Battery low",
                    f"battery at {pct:.1f}%; only docking is accepted below "
                    f"{self.world.battery_model.refuse_goals_below_pct:g}%",
                    source="battery",
                    action_required="send the robot to its dock",
                )
            case BatteryDepleted():
                self.raise_alert(
                    1,
                    "Battery empty",
                    "the battery is empty; the robot has stopped",
                    source="battery",
                    action_required="carry the robot to its dock",
                )
            case PrivacyEnded():
                self._activity("privacy", "privacy period ended", "robot")

    def _activity(self, kind: str, description: str, client: str, *, error: bool = False) -> None:
        self.logs.add(
            LogKind.ACTIVITY,
            device_id=self.device_id,
            recorded_at=self.now(),
            activity_type=kind,
            description=description,
            triggered_by=client,
            error_code=f"robot_{kind}_error" if error else None,
            resolved=not error,
        )

    def _log_location(self) -> None:
        pose = self.world.pose
        self.logs.add(
            LogKind.LOCATION,
            device_id=self.device_id,
            recorded_at=self.now(),
            map_id=self.maps.active.map_id,
            position_x=pose.x,
            position_y=pose.y,
            yaw=pose.yaw,
            movement_status=self.world.motion,
        )
        self._location_logged_at = self.world.time_s

    def _log_battery(self) -> None:
        pct = self.world.battery_pct
        charging = "full" if pct >= 100.0 else "charging" if self.world.charging else "discharging"
        self.logs.add(
            LogKind.BATTERY,
            device_id=self.device_id,
            recorded_at=self.now(),
            battery_level=round(pct, 3),
            charging_status=charging,
            voltage=round(22.0 + 0.05 * pct, 2),
            temperature=31.5 if self.world.charging else 29.0,
        )

    def _periodic_logs(self) -> None:
        now = self.world.time_s
        if self.world.moving and now - self._location_logged_at >= _LOCATION_LOG_S:
            self._log_location()
        if now - self._slow_logged_at >= _SLOW_LOG_S:
            self._slow_logged_at = now
            self._log_battery()
            load = 0.6 if self.world.moving else 0.2
            self.logs.add(
                LogKind.SYSTEM,
                device_id=self.device_id,
                recorded_at=self.now(),
                cpu_usage_percent=100.0 * load / 2,
                memory_usage_mb=1024 + 16 * len(self.alerts),
                system_load_avg=load,
                cpu_temperature=48.0 + 10.0 * load,
                power_state="active" if self.world.moving else "idle",
            )


def _level(current: int, level: int | None, adjustment: str) -> int:
    if adjustment == "increase":
        return min(100, current + _STEP)
    if adjustment == "decrease":
        return max(0, current - _STEP)
    assert level is not None  # the command's own validation guarantees it
    return level
