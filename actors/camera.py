"""Camera actor: one per camera; opens its source, and its grab thread fills the camera's frame
slot (`runtime.frames.slot(name)`): consumers take the newest frame from there, nothing queues.

The actor publishes `device.camera.<name>.state` (durable) when something a user would notice
changes: connected or disconnected, settings, stream paused. A lost camera fails the actor, so
the devices supervisor reopens it with backoff ("unavailable" and "back" are logged once, by
the health registry); with auto_reconnect off it stays disconnected until asked to reconnect.

Streaming clients ask `GetJpeg(after_seq)` and are answered when a newer frame is there (each
frame is JPEG-encoded once, however many clients stream it); pausing holds them, not the grab.
"""

from __future__ import annotations

import collections
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import msgspec
import numpy as np

from actors.base import TaktActor, handles
from actors.camera_messages import (
    AutoAdjust,
    AutoFocus,
    AutoResult,
    CameraOffline,
    CameraRefused,
    CameraSettingsView,
    CameraStatus,
    Capture,
    CapturedImage,
    ChangeCameraSettings,
    GetCameraSettings,
    GetCameraStatus,
    GetJpeg,
    JpegFrame,
    NoFrame,
    NotSupportedByCamera,
    PauseStream,
    ReconnectCamera,
    ResumeStream,
    SetMaxExposure,
    SetMaxGain,
    StreamState,
    UseCameraConfig,
)
from actors.health import HealthState
from actors.runtime import ActorUnavailable, Reply, Runtime, tell
from controller.camera_config import LIVE_FIELDS, CameraConfig, CameraSource, live_changes
from drivers.errors import DeviceUnavailable, DriverError
from drivers.pylon.settings import (
    PylonSettings,
    SettingProblem,
    SettingsError,
    describe,
    effective_ranges,
    settings_from_mapping,
)
from drivers.vision.file_source import FolderSource, OpenCvSource
from drivers.vision.frames import Frame

__all__ = ["CameraActor", "FrameSource", "SourceFactory", "encode_image", "fit_image",
           "open_source"]

FrameCallback = Callable[[np.ndarray, int], None]
LostCallback = Callable[[str], None]


class FrameSource(Protocol):
    """What the actor needs of a source: drivers/pylon/camera.py, drivers/vision/file_source.py."""

    def open(self) -> Any: ...  # its identity: vendor, model, serial, device_user_name
    def start(self) -> None: ...
    def close(self) -> None: ...
    def statistics(self) -> Any: ...  # frames, failed_grabs, scene_reloads, last_error


SourceFactory = Callable[..., FrameSource]


def open_source(config: CameraConfig, *, on_frame: FrameCallback, on_lost: LostCallback,
                now_us: Callable[[], int]) -> FrameSource:
    """The source a camera config names (not opened yet)."""
    if config.source == CameraSource.PYLON:
        from drivers.pylon.camera import PylonCamera, PylonTarget  # pypylon only where used

        target = PylonTarget(device_user_name=config.device_user_name, serial=config.serial,
                             emulation=config.emulation, image_path=config.image_path)
        return PylonCamera(target, on_frame=on_frame, on_lost=on_lost, now_us=now_us,
                           name=config.name)
    if config.source == CameraSource.FOLDER:
        assert config.image_path is not None  # the config rules make sure
        return FolderSource(config.image_path, config.frame_rate, on_frame=on_frame,
                            on_lost=on_lost, now_us=now_us, name=config.name)
    assert config.capture_device is not None
    return OpenCvSource(config.capture_device, config.frame_rate, on_frame=on_frame,
                        on_lost=on_lost, now_us=now_us, name=config.name)


def pylon_settings(config: CameraConfig) -> PylonSettings:
    """The settings a config gives a pylon camera."""
    values = {f: getattr(config, f) for f in LIVE_FIELDS}
    return PylonSettings(**{k: str(v) if k == "exposure_auto" else v
                            for k, v in values.items() if v is not None})


def fit_image(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Centre-crop to the aspect of width x height, then resize to it."""
    h, w = image.shape[:2]
    if w * height > h * width:
        keep = round(h * width / height)
        image = image[:, (w - keep) // 2:(w - keep) // 2 + keep]
    elif w * height < h * width:
        keep = round(w * height / width)
        image = image[(h - keep) // 2:(h - keep) // 2 + keep]
    if image.shape[:2] != (height, width):
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    return image


def encode_image(image: np.ndarray, fmt: str, quality: int = 90) -> bytes:
    """An RGB image as JPEG or PNG bytes."""
    bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    if fmt == "png":
        ok, data = cv2.imencode(".png", bgr)
    else:
        ok, data = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError(f"OpenCV could not encode a {image.shape} frame as {fmt}")
    return data.tobytes()


class _Lost(msgspec.Struct, frozen=True):
    link: int  # which source reported it: a closed one's news is stale
    reason: str


class _FrameReady(msgspec.Struct, frozen=True):
    pass


class _Expire(msgspec.Struct, frozen=True):
    token: int


@dataclass
class _Waiter:
    reply: Reply
    after_seq: int
    stream: bool  # a streaming client (held while paused) or a capture
    quality: int
    capture: Capture | None = None
    timer: Any = None


class _Rate:
    """Frames per second over the last frames (monotonic time: what a viewer sees)."""

    def __init__(self, frames: int = 30) -> None:
        self.times: collections.deque[float] = collections.deque(maxlen=frames)

    def tick(self) -> None:
        self.times.append(time.monotonic())

    def fps(self) -> float:
        times = list(self.times)
        if len(times) < 2 or time.monotonic() - times[-1] > 2.0 or times[-1] <= times[0]:
            return 0.0
        return round((len(times) - 1) / (times[-1] - times[0]), 1)


class CameraActor(TaktActor):
    fatal = (DeviceUnavailable,)

    def __init__(self, runtime: Runtime, name: str, config: CameraConfig, *,
                 source_factory: SourceFactory = open_source, data_dir: Path | None = None,
                 **kw: Any) -> None:
        """`data_dir`: the station's data directory, which a relative image_path is in (else
        the working directory)."""
        super().__init__(runtime, name, **kw)
        self.config = config
        self._data_dir = data_dir
        self._source_config = self._for_source(config)
        self.topic = f"device.camera.{config.name}.state"
        self.slot = runtime.frames.slot(config.name)
        self._factory = source_factory
        self.source: Any = None
        self.identity: Any = None
        self.settings: dict[str, Any] = {}
        self._links = 0
        self._seq = 0
        self._rate = _Rate()
        self.paused = False
        self.last_error: str | None = None
        self._waiters: dict[int, _Waiter] = {}
        self._tokens = itertools.count(1)
        self._wakeable = False  # read on the grab thread: wake the actor for a new frame
        self._wake_sent = False
        self._jpeg: dict[int, tuple[int, bytes]] = {}  # quality -> (seq, JPEG) of the newest
        self._unlisten: Callable[[], None] | None = None
        # A paused stream stays paused across a reconnect or a settings restart.
        for event in self.bus.retained([self.topic]):
            if isinstance(event.data, dict):
                self.paused = event.data.get("streaming") is False

    def _for_source(self, config: CameraConfig) -> CameraConfig:
        """What the source opens: the config with a relative image_path made absolute."""
        if self._data_dir is not None and config.image_path is not None \
                and not Path(config.image_path).is_absolute():
            return msgspec.structs.replace(config,
                                           image_path=str(self._data_dir / config.image_path))
        return config

    # --- lifecycle -------------------------------------------------------------------------

    def started(self) -> None:
        # Frame numbers go on from the last frame of this camera: the slot outlives restarts.
        self._seq = self.slot.puts
        self._unlisten = self.slot.listen(self._on_slot_frame)
        self._connect()
        self.set_health(HealthState.UP)
        self._publish_state()

    def stopping(self) -> None:
        self._shut("the camera actor stopped")

    def failed(self, error: BaseException) -> None:
        self._shut(f"the camera failed: {error}")

    def _shut(self, why: str) -> None:
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None
        self._close_source()
        waiters, self._waiters = self._waiters, {}
        for waiter in waiters.values():
            if waiter.timer is not None:
                waiter.timer.cancel()
            waiter.reply(None, ActorUnavailable(f"{self.name}: {why}"))

    def _connect(self) -> None:
        """Open, configure and start the source; DeviceUnavailable if any of it fails."""
        self._links += 1
        link, ref, runtime = self._links, self.actor_ref, self.runtime

        def lost(reason: str) -> None:
            try:
                tell(runtime, ref, _Lost(link, reason))
            except ActorUnavailable:
                pass  # stopped meanwhile; its successor opens the camera again

        source = self._factory(self._source_config, on_frame=self._on_frame, on_lost=lost,
                               now_us=self.clock.now_us)
        try:
            self.identity = source.open()
            if self.config.source == CameraSource.PYLON:
                applied = source.configure(pylon_settings(self.config))
                self.settings = msgspec.to_builtins(applied)
            else:
                self.settings = {"frame_rate": self.config.frame_rate}
            source.start()
        except SettingsError as exc:
            source.close()
            raise DeviceUnavailable(f"{self.config.name}: the camera refused its configured "
                                    f"settings: {exc}") from exc
        except DriverError as exc:
            source.close()
            if isinstance(exc, DeviceUnavailable):
                raise
            raise DeviceUnavailable(f"{self.config.name}: {exc}") from exc
        except BaseException:
            source.close()
            raise
        self.source = source
        self.last_error = None

    def _close_source(self) -> None:
        source, self.source = self.source, None
        self._links += 1  # whatever the old source still reports is stale
        if source is not None:
            source.close()

    # --- frames (grab thread) --------------------------------------------------------------

    def _on_frame(self, image: np.ndarray, at_us: int) -> None:
        self._seq += 1
        self._rate.tick()
        self.slot.put(Frame(camera=self.config.name, seq=self._seq, at_us=at_us, image=image))

    def _on_slot_frame(self, frame: Frame) -> None:
        if self._wakeable and not self._wake_sent:
            self._wake_sent = True
            try:
                tell(self.runtime, self.actor_ref, _FrameReady())
            except ActorUnavailable:
                pass

    # --- from the source -------------------------------------------------------------------

    @handles(_Lost)
    def _on_lost(self, msg: _Lost) -> None:
        if msg.link != self._links:
            return
        self.last_error = msg.reason
        self._close_source()
        self._publish_state(reason=msg.reason)
        if self.config.auto_reconnect:
            raise DeviceUnavailable(f"{self.config.name}: {msg.reason}")
        self.set_health(HealthState.DOWN, f"disconnected: {msg.reason} (auto_reconnect is off)")

    @handles(_FrameReady)
    def _on_frame_ready(self, _: _FrameReady) -> None:
        self._wake_sent = False
        self._serve_waiters()

    @handles(_Expire)
    def _on_expire(self, msg: _Expire) -> None:
        waiter = self._waiters.pop(msg.token, None)
        if waiter is None:
            return
        self._update_wakeable()
        if waiter.stream:
            waiter.reply(None, None)
        else:
            waiter.reply(None, NoFrame(f"camera {self.config.name} has no frame yet"))

    # --- frames for clients ----------------------------------------------------------------

    @handles(Capture, deferred=True)
    def _capture(self, msg: Capture, reply: Reply) -> None:
        self._wait(reply, after_seq=0, stream=False, quality=msg.quality, wait_s=msg.wait_s,
                   capture=msg)

    @handles(GetJpeg, deferred=True)
    def _get_jpeg(self, msg: GetJpeg, reply: Reply) -> None:
        quality = msg.quality if msg.quality is not None else self.config.jpeg_quality
        self._wait(reply, after_seq=msg.after_seq, stream=True, quality=quality,
                   wait_s=msg.wait_s)

    def _wait(self, reply: Reply, *, after_seq: int, stream: bool, quality: int, wait_s: float,
              capture: Capture | None = None) -> None:
        token = next(self._tokens)
        waiter = _Waiter(reply=reply, after_seq=after_seq, stream=stream, quality=quality,
                         capture=capture)
        self._waiters[token] = waiter
        # Registered before looking: a frame that comes meanwhile wakes the actor.
        self._update_wakeable()
        self._serve_waiters()
        if token in self._waiters:
            waiter.timer = self.tell_self_later(max(wait_s, 0.0), _Expire(token))

    def _serve_waiters(self) -> None:
        if not self._waiters:
            return
        frame = self.slot.latest()
        if frame is not None:
            for token, waiter in list(self._waiters.items()):
                if frame.seq <= waiter.after_seq or (waiter.stream and self.paused):
                    continue
                del self._waiters[token]
                if waiter.timer is not None:
                    waiter.timer.cancel()
                try:
                    result = self._reply_frame(frame, waiter)
                except Exception as exc:
                    waiter.reply(None, exc)
                else:
                    waiter.reply(result, None)
        self._update_wakeable()

    def _reply_frame(self, frame: Frame, waiter: _Waiter) -> JpegFrame | CapturedImage:
        if waiter.capture is None:
            return JpegFrame(seq=frame.seq, frame_id=frame.frame_id, at_us=frame.at_us,
                             data=self._jpeg_of(frame, waiter.quality))
        c = waiter.capture
        image = fit_image(frame.image, c.width, c.height)
        return CapturedImage(camera=self.config.name, frame_id=frame.frame_id, seq=frame.seq,
                             at_us=frame.at_us, width=c.width, height=c.height,
                             content_type="image/png" if c.format == "png" else "image/jpeg",
                             data=encode_image(image, c.format, c.quality))

    def _jpeg_of(self, frame: Frame, quality: int) -> bytes:
        """Encoded once per frame and quality, however many clients stream it."""
        cached = self._jpeg.get(quality)
        if cached is not None and cached[0] == frame.seq:
            return cached[1]
        data = encode_image(frame.image, "jpeg", quality)
        self._jpeg = {q: v for q, v in self._jpeg.items() if v[0] == frame.seq}
        self._jpeg[quality] = (frame.seq, data)
        return data

    def _update_wakeable(self) -> None:
        self._wakeable = any(not w.stream or not self.paused for w in self._waiters.values())

    @handles(PauseStream)
    def _pause(self, _: PauseStream) -> StreamState:
        self._set_paused(True)
        return StreamState(camera=self.config.name, streaming=False)

    @handles(ResumeStream)
    def _resume(self, _: ResumeStream) -> StreamState:
        self._set_paused(False)
        self._serve_waiters()
        return StreamState(camera=self.config.name, streaming=True)

    def _set_paused(self, paused: bool) -> None:
        if paused != self.paused:
            self.paused = paused
            self._update_wakeable()
            self._publish_state()

    # --- settings --------------------------------------------------------------------------

    @handles(GetCameraSettings)
    def _get_settings(self, _: GetCameraSettings) -> CameraSettingsView:
        source = self._live()
        if self.config.source == CameraSource.PYLON:
            current = source.read_settings()
            self.settings = msgspec.to_builtins(current)
            ranges = {k: describe(v)
                      for k, v in effective_ranges(current, source.ranges()).items()}
        else:
            ranges = {"frame_rate": "0..1000"}
        return CameraSettingsView(camera=self.config.name, settings=dict(self.settings),
                                  ranges=ranges)

    @handles(ChangeCameraSettings)
    def _change(self, msg: ChangeCameraSettings) -> CameraSettingsView:
        return self._apply(msg.changes)

    @handles(UseCameraConfig)
    def _use_config(self, msg: UseCameraConfig) -> None:
        # Applied before it is kept: a camera that refuses it fails, and its restart opens it
        # with the new config, refused the same way and said so (DOWN, with the reason).
        changes = live_changes(self.config, msg.config)
        if changes and self.source is not None:
            self._apply(msgspec.to_builtins(changes))
        self.config = msg.config
        self._source_config = self._for_source(msg.config)
        self._publish_state()

    @handles(SetMaxGain)
    def _set_max_gain(self, msg: SetMaxGain) -> CameraSettingsView:
        return self._apply({"max_gain_db": msg.max_gain_db})

    @handles(SetMaxExposure)
    def _set_max_exposure(self, msg: SetMaxExposure) -> CameraSettingsView:
        return self._apply({"max_exposure_us": msg.max_exposure_us})

    def _apply(self, changes: dict[str, Any]) -> CameraSettingsView:
        source = self._live()
        if self.config.source == CameraSource.PYLON:
            wanted = settings_from_mapping(changes)  # SettingsError: not even a setting
            try:
                self.settings = msgspec.to_builtins(source.apply(wanted))
            except DriverError as exc:
                if isinstance(exc, DeviceUnavailable):
                    raise
                raise CameraRefused(str(exc)) from exc
        else:
            self._apply_to_file_source(source, changes)
        self._remember(changes)
        self._publish_state()
        return self._get_settings(GetCameraSettings())

    def _remember(self, changes: dict[str, Any]) -> None:
        """Keep what the camera took in this actor's config: a reconnect asked of it sets it
        again, and the stored config that follows an API change (UseCameraConfig) finds
        nothing left to apply. A restarted actor starts from its supervisor's spec, which the
        stored config updates."""
        taken = {k: v for k, v in changes.items() if k in LIVE_FIELDS}
        if not taken:
            return  # seed spellings and the like: the stored config brings them
        try:
            self.config = msgspec.convert({**msgspec.to_builtins(self.config), **taken},
                                          CameraConfig)
        except msgspec.ValidationError:
            return  # the device took what the config's rules would not; the config stays
        self._source_config = self._for_source(self.config)

    def _apply_to_file_source(self, source: Any, changes: dict[str, Any]) -> None:
        problems = [SettingProblem(field=k, message=f"not a setting of a {self.config.source} "
                                                    f"camera (only frame_rate is)")
                    for k in changes if k not in ("frame_rate", "AcquisitionFrameRate")]
        rate = changes.get("frame_rate", changes.get("AcquisitionFrameRate"))
        if rate is not None and (type(rate) not in (int, float) or not 0 < rate <= 1000):
            problems.append(SettingProblem(field="frame_rate", valid="0..1000",
                                           message=f"{rate!r} is outside 0..1000"))
        if problems:
            raise SettingsError(problems)
        if rate is not None:
            source.set_frame_rate(float(rate))
            self.settings["frame_rate"] = float(rate)

    @handles(AutoAdjust)
    def _auto_adjust(self, _: AutoAdjust) -> AutoResult:
        return AutoResult(camera=self.config.name, set=self._pylon_call("auto adjust",
                                                                        "auto_adjust"))

    @handles(AutoFocus)
    def _auto_focus(self, _: AutoFocus) -> AutoResult:
        return AutoResult(camera=self.config.name, set=self._pylon_call("auto focus",
                                                                        "auto_focus"))

    def _pylon_call(self, what: str, method: str) -> Any:
        source = self._live()
        if self.config.source != CameraSource.PYLON:
            raise NotSupportedByCamera(f"{what} is not supported by a {self.config.source} "
                                       f"camera")
        from drivers.pylon.camera import NotSupported

        try:
            return getattr(source, method)()
        except NotSupported as exc:
            raise NotSupportedByCamera(str(exc)) from None
        except DriverError as exc:
            if isinstance(exc, DeviceUnavailable):
                raise
            raise CameraRefused(str(exc)) from exc

    # --- status ----------------------------------------------------------------------------

    @handles(ReconnectCamera)
    def _reconnect(self, _: ReconnectCamera) -> CameraStatus:
        if self.source is None:
            try:
                self._connect()
            except DeviceUnavailable as exc:  # not fatal here: it stays disconnected
                self.last_error = str(exc)
                raise CameraOffline(str(exc)) from None
            self.set_health(HealthState.UP)
            self._publish_state()
        return self._status(GetCameraStatus())

    @handles(GetCameraStatus)
    def _status(self, _: GetCameraStatus) -> CameraStatus:
        c, ident = self.config, self.identity
        stats = self.source.statistics() if self.source is not None else None
        return CameraStatus(
            name=c.name, source=c.source.value,
            device_user_name=getattr(ident, "device_user_name", None) or c.device_user_name,
            serial=getattr(ident, "serial", None) or c.serial,
            vendor=getattr(ident, "vendor", None), model=getattr(ident, "model", None),
            emulation=c.emulation, state=self._state(), active=c.active,
            streaming=not self.paused, frames=self.slot.puts, fps=self._rate.fps(),
            overwritten=self.slot.overwritten,
            failed_grabs=stats.failed_grabs if stats else 0,
            scene_reloads=stats.scene_reloads if stats else 0,
            last_error=(stats.last_error if stats else None) or self.last_error,
            settings=dict(self.settings))

    def _state(self) -> str:
        return "connected" if self.source is not None else "disconnected"

    def _live(self) -> Any:
        if self.source is None:
            raise CameraOffline(f"camera {self.config.name} is disconnected"
                                f"{f': {self.last_error}' if self.last_error else ''}")
        return self.source

    def _publish_state(self, reason: str | None = None) -> None:
        """Published (durable) only when it differs from what was published last."""
        ident = self.identity
        data = {"camera": self.config.name, "state": self._state(),
                "source": self.config.source.value,
                "device_user_name": getattr(ident, "device_user_name", None)
                or self.config.device_user_name,
                "serial": getattr(ident, "serial", None) or self.config.serial,
                "model": getattr(ident, "model", None), "streaming": not self.paused,
                "settings": dict(self.settings), "reason": reason}
        for event in self.bus.retained([self.topic]):
            if event.data == data:
                return
        self.publish(self.topic, data, durable=True)
