"""/api/v1/cameras and /api/v1/camera: the station's cameras (seed 000 "Camera").

A camera is addressed by Takt's name or by its Basler device user name; `/api/v1/camera/...`
is the station's active camera. Settings changed here are checked against the camera's own
ranges first (422 naming each field and its valid range; nothing changes), applied at once,
then stored as the `cameras` config override so they survive a restart. A camera whose actor
is down answers 503 with the reason, at once.

The MJPEG stream (`multipart/x-mixed-replace; boundary=frame`) asks the camera's actor for
each next frame without holding a thread; a browser `<img>` may pass its token as `?token=`.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import msgspec
import trio
from msgspec import Meta
from quart import Blueprint, Response, current_app, request
from quart_schema import document_response, security_scheme, tag

from actors.bridge import ask
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
    PauseStream,
    ReconnectCamera,
    ResumeStream,
    SetMaxExposure,
    SetMaxGain,
    SettingsError,
    StreamState,
)
from actors.config import ConfigApplied, GetStationConfig, ReplaceSection, StationView
from actors.runtime import ActorUnavailable, AskTimeout
from api.http import Handler, ask_actor, body, facade, json_response, query
from api.problems import FieldError, Problem, config_problem
from api.security import authenticate, current_principal, requires
from controller.access import Role, permits
from controller.camera_config import (
    LIVE_FIELDS,
    CameraConfig,
    CameraSource,
    active_camera,
    normalize_changes,
)
from controller.config import ConfigError
from controller.config_check import check_table
from controller.overrides import replace_section
from drivers.errors import DeviceUnavailable

__all__ = ["blueprint"]

blueprint = Blueprint("cameras", __name__, url_prefix="/api/v1")

_APPLY_TIMEOUT_S = 20.0
_STREAM_GONE_S = 30.0  # a stream waits this long for a restarting camera before it ends
_BOUNDARY = "frame"


class _In(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class ActiveCamera(_In, frozen=True, kw_only=True, forbid_unknown_fields=True):
    camera: Annotated[str, Meta(min_length=1, max_length=64)]
    """Takt's name of the camera, or its Basler device user name."""


class MaxGain(_In, frozen=True, kw_only=True, forbid_unknown_fields=True):
    max_gain: Annotated[float, Meta(ge=0, le=100)]
    device_user_name: str | None = None  # seed 000 sends it; the path names the camera


class MaxExposure(_In, frozen=True, kw_only=True, forbid_unknown_fields=True):
    max_exposure_time: Annotated[int, Meta(ge=1, le=60_000_000)]  # microseconds
    device_user_name: str | None = None


class MaxExposureAll(_In, frozen=True, kw_only=True, forbid_unknown_fields=True):
    max: Annotated[int, Meta(ge=1, le=60_000_000)]  # microseconds, for every camera


class CaptureQuery(_In, frozen=True, kw_only=True, forbid_unknown_fields=True):
    format: Literal["jpeg", "png"] = "jpeg"
    width: Annotated[int, Meta(ge=16, le=4096)] = 896
    height: Annotated[int, Meta(ge=16, le=4096)] = 896
    quality: Annotated[int, Meta(ge=1, le=100)] = 90


class StreamQuery(_In, frozen=True, kw_only=True, forbid_unknown_fields=True):
    fps: Annotated[float, Meta(gt=0, le=120)] | None = None  # at most this many frames/s
    quality: Annotated[int, Meta(ge=1, le=100)] | None = None  # default: jpeg_quality
    token: str | None = None  # for clients that cannot send a header (<img src=...>)


class CameraEntry(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    active: bool
    state: str  # the actor's health: UP, DOWN, UNKNOWN, or DISABLED
    last_error: str | None
    config: CameraConfig
    status: CameraStatus | None  # None while the camera's actor is down


class CameraConfigView(msgspec.Struct, frozen=True, kw_only=True):
    camera: str
    config: CameraConfig
    device: dict[str, Any] | None  # as the camera has it now; None while it is down
    ranges: dict[str, str]  # what the camera accepts


class CameraChanged(msgspec.Struct, frozen=True, kw_only=True):
    camera: str
    config: CameraConfig
    device: dict[str, Any] | None
    applied: ConfigApplied  # the stored override, and the cameras it restarted


class ActiveView(msgspec.Struct, frozen=True, kw_only=True):
    camera: str
    device_user_name: str | None


class MaxExposureEntry(msgspec.Struct, frozen=True, kw_only=True):
    camera: str
    device_user_name: str | None
    max_exposure_time: int | None  # microseconds; None: no limit set


# ---- plumbing ----------------------------------------------------------------------------------


async def _station() -> StationView:
    return await ask_actor("config", GetStationConfig())  # type: ignore[no-any-return]


async def _cameras() -> tuple[CameraConfig, ...]:
    return (await _station()).config.cameras


def _find(cameras: tuple[CameraConfig, ...], name: str) -> CameraConfig:
    c = next((c for c in cameras if c.name == name), None) or next(
        (c for c in cameras if c.device_user_name == name), None)
    if c is None:
        raise Problem(404, f"no camera named {name!r}")
    return c


async def _named(name: str) -> CameraConfig:
    return _find(await _cameras(), name)


async def _active() -> CameraConfig:
    c = active_camera(await _cameras())
    if c is None:
        raise Problem(404, "this station has no camera configured ([[cameras]])")
    return c


def _down(c: CameraConfig, exc: BaseException | None = None) -> Problem:
    """503 with why the camera is unavailable (its health's last error)."""
    health = facade().runtime.health.snapshot().get(f"camera:{c.name}")
    reason = (str(exc) if isinstance(exc, CameraOffline | DeviceUnavailable) else None) or (
        health.last_error if health is not None else None) or "not running"
    return Problem(503, f"camera {c.name} is unavailable: {reason}",
                   headers={"Retry-After": "5"}, extensions={"reason": reason})


def _settings_problem(exc: SettingsError, sent_as: dict[str, str] | None = None) -> Problem:
    names = sent_as or {}
    errors = [FieldError(field=names.get(p.field, p.field), message=p.message)
              for p in exc.problems]
    ranges = {names.get(p.field, p.field): p.valid for p in exc.problems if p.valid}
    return Problem(422, f"the camera would not take these settings ({len(errors)} problem(s)); "
                        f"nothing was changed", errors=errors, extensions={"ranges": ranges})


async def _ask(c: CameraConfig, message: Any, *, sent_as: dict[str, str] | None = None,
               timeout: float | None = None) -> Any:
    """Ask the camera's actor (503 at once if it is down); its refusals become problems."""
    if not c.enabled:
        raise Problem(409, f"camera {c.name} is disabled")
    try:
        facade().runtime.directory.get(f"camera:{c.name}")
        return await ask_actor(f"camera:{c.name}", message, timeout=timeout)
    except ActorUnavailable as exc:
        raise _down(c, exc) from None
    except SettingsError as exc:
        raise _settings_problem(exc, sent_as) from None
    except CameraRefused as exc:  # NotSupportedByCamera among them
        raise Problem(409, str(exc)) from None
    except (CameraOffline, DeviceUnavailable) as exc:
        raise _down(c, exc) from None
    except NoFrame as exc:
        raise Problem(503, str(exc), headers={"Retry-After": "1"}) from None


def _command(what: dict[str, Any]) -> None:
    facade().runtime.ingest.command("api", {"by": current_principal().name, **what})


def _lock() -> trio.Lock:
    """One read-modify-write of the cameras section at a time."""
    extensions = current_app.extensions
    lock = extensions.get("takt.cameras.lock")
    if lock is None:
        lock = extensions["takt.cameras.lock"] = trio.Lock()
    return lock  # type: ignore[no-any-return]


def _replaced(cameras: tuple[CameraConfig, ...], new: CameraConfig) -> list[CameraConfig]:
    return [new if c.name == new.name else c for c in cameras]


async def _store(cameras: list[CameraConfig], station: StationView) -> ConfigApplied:
    """Check the cameras with every rule of the station file, then store and apply them."""
    value = [msgspec.to_builtins(c) for c in cameras]
    try:
        replace_section(station.config, "cameras", value)
        return await ask_actor(  # type: ignore[no-any-return]
            "config", ReplaceSection(section="cameras", value=value,
                                     by=current_principal().name), timeout=_APPLY_TIMEOUT_S)
    except ConfigError as exc:
        raise config_problem(exc) from None


async def _entry(c: CameraConfig, active: CameraConfig | None) -> CameraEntry:
    is_active = active is not None and active.name == c.name
    health = facade().runtime.health.snapshot().get(f"camera:{c.name}")
    state = "DISABLED" if not c.enabled else health.state.value if health else "UNKNOWN"
    status = None
    if c.enabled:
        try:
            status = await ask_actor(f"camera:{c.name}", GetCameraStatus())
            status = msgspec.structs.replace(status, active=is_active)
        except ActorUnavailable:
            status = None
    return CameraEntry(name=c.name, active=is_active, state=state,
                       last_error=health.last_error if health else None, config=c,
                       status=status)


# ---- the list ----------------------------------------------------------------------------------


@blueprint.get("/cameras")
@tag(["cameras"])
@requires(Role.OPERATOR)
@document_response(list[CameraEntry])
async def list_cameras() -> object:
    """Each configured camera with its state, counters and settings."""
    cameras = await _cameras()
    active = active_camera(cameras)
    return json_response([await _entry(c, active) for c in cameras])


@blueprint.get("/cameras/device-user-names")
@tag(["cameras"])
@requires(Role.OPERATOR)
@document_response(list[str])
async def device_user_names() -> object:
    """The configured Basler device user names (e.g. "RAP_CAM_01")."""
    return json_response([c.device_user_name for c in await _cameras()
                          if c.device_user_name is not None])


@blueprint.get("/cameras/active")
@tag(["cameras"])
@requires(Role.OPERATOR)
@document_response(ActiveView)
async def get_active() -> object:
    """The station's active camera: the one marked active, else the first enabled one."""
    c = await _active()
    return json_response(ActiveView(camera=c.name, device_user_name=c.device_user_name))


@blueprint.put("/cameras/active")
@tag(["cameras"])
@requires(Role.ENGINEER, write=True)
@body(ActiveCamera)
@document_response(ActiveView)
async def put_active(data: ActiveCamera) -> object:
    """Make a camera the active one (stored as the cameras override)."""
    async with _lock():
        station = await _station()
        cameras = station.config.cameras
        chosen = _find(cameras, data.camera)
        if not chosen.enabled:
            raise Problem(409, f"camera {chosen.name} is disabled")
        _command({"cameras": "active", "camera": chosen.name})
        await _store([msgspec.structs.replace(c, active=c.name == chosen.name) for c in cameras],
                     station)
    return json_response(ActiveView(camera=chosen.name,
                                    device_user_name=chosen.device_user_name))


@blueprint.get("/cameras/max-exposure")
@tag(["cameras"])
@requires(Role.OPERATOR)
@document_response(list[MaxExposureEntry])
async def get_max_exposures() -> object:
    """Each camera's max exposure time (microseconds)."""
    return json_response([MaxExposureEntry(camera=c.name, device_user_name=c.device_user_name,
                                           max_exposure_time=c.max_exposure_us)
                          for c in await _cameras()])


@blueprint.put("/cameras/max-exposure")
@tag(["cameras"])
@requires(Role.ENGINEER, write=True)
@body(MaxExposureAll)
@document_response(list[MaxExposureEntry])
async def put_max_exposures(data: MaxExposureAll) -> object:
    """Set the max exposure time of every enabled Basler camera: all take it, or none."""
    async with _lock():
        station = await _station()
        targets = [c for c in station.config.cameras
                   if c.enabled and c.source == CameraSource.PYLON]
        for c in targets:
            if facade().runtime.health.state(f"camera:{c.name}").value != "UP":
                raise _down(c)
        _command({"cameras": "max_exposure", "max": data.max})
        done: list[CameraConfig] = []
        try:
            for c in targets:
                await _ask(c, SetMaxExposure(max_exposure_us=data.max),
                           sent_as={"max_exposure_us": "max"})
                done.append(c)
        except Problem:
            for c in done:  # put back what the others took: all or nothing
                if c.max_exposure_us is not None:
                    await _ask(c, SetMaxExposure(max_exposure_us=c.max_exposure_us))
            raise
        names = {c.name for c in targets}
        new = [_with_max_exposure(c, data.max) if c.name in names else c
               for c in station.config.cameras]
        await _store(new, station)
    return json_response([MaxExposureEntry(camera=c.name, device_user_name=c.device_user_name,
                                           max_exposure_time=c.max_exposure_us)
                          for c in new if c.name in names])


def _with_max_exposure(c: CameraConfig, top: int) -> CameraConfig:
    exposure = c.exposure_us if c.exposure_us is None else min(c.exposure_us, top)
    return msgspec.structs.replace(c, max_exposure_us=top, exposure_us=exposure)


def _with_max_gain(c: CameraConfig, top: float) -> CameraConfig:
    gain = c.gain_db if c.gain_db is None else min(c.gain_db, top)
    return msgspec.structs.replace(c, max_gain_db=top, gain_db=gain)


# ---- one camera's config -----------------------------------------------------------------------


@blueprint.get("/cameras/<name>/config")
@tag(["cameras"])
@requires(Role.OPERATOR)
@document_response(CameraConfigView)
async def get_config(name: str) -> object:
    """The camera's config, what the camera has now and the ranges it accepts."""
    c = await _named(name)
    device, ranges = None, {}
    if c.enabled:
        try:
            view: CameraSettingsView = await ask_actor(f"camera:{c.name}", GetCameraSettings())
            device, ranges = view.settings, view.ranges
        except (ActorUnavailable, CameraOffline, DeviceUnavailable):
            pass
    return json_response(CameraConfigView(camera=c.name, config=c, device=device,
                                          ranges=ranges))


@blueprint.patch("/cameras/<name>/config")
@tag(["cameras"])
@requires(Role.ENGINEER, write=True)
@body(dict[str, Any], raw=True)
@document_response(CameraChanged)
async def patch_config(name: str, data: Any) -> object:
    """Change some settings, by Takt's keys (`width`) or seed 000's (`Width`, `OffsetX`,
    `MaxGain`, `AcquisitionFrameRate`, `AutoReconnect`, ...): checked against the config
    rules and the camera's own ranges, applied at once, stored so they survive a restart."""
    if not isinstance(data, dict):
        raise Problem(422, "send the settings as a JSON object")
    changes, sent_as, problems = normalize_changes(data)
    if "name" in changes:
        problems.append((sent_as["name"], "a camera is renamed through PUT /api/v1/config"))
    async with _lock():
        station = await _station()
        c = _find(station.config.cameras, name)
        new, invalid = check_table({**msgspec.to_builtins(c), **changes}, CameraConfig)
        problems += [(sent_as.get(k.split(".")[0].split("[")[0], k), text) for k, text in invalid]
        if problems or new is None:
            raise _field_problem(problems)
        cameras = _replaced(station.config.cameras, new)
        if new.active:
            cameras = [x if x.name == new.name else msgspec.structs.replace(x, active=False)
                       for x in cameras]
        try:
            replace_section(station.config, "cameras", [msgspec.to_builtins(x) for x in cameras])
        except ConfigError as exc:
            raise config_problem(exc) from None
        # Everything asked for goes to the camera, even what the config already says: the
        # camera may have drifted from it (an auto adjust).
        live = {k: msgspec.to_builtins(getattr(new, k)) for k in changes
                if k in LIVE_FIELDS and getattr(new, k) is not None}
        _command({"camera": c.name, "config": data})
        device = None
        if live and c.enabled and new.enabled:
            view = await _ask(c, ChangeCameraSettings(changes=live), sent_as=sent_as)
            device = view.settings
        applied = await _store(cameras, station)
    return json_response(CameraChanged(camera=c.name, config=new, device=device,
                                       applied=applied))


def _field_problem(problems: list[tuple[str, str]]) -> Problem:
    return Problem(422, f"the camera settings are invalid ({len(problems)} problem(s)); "
                        f"nothing was changed",
                   errors=[FieldError(field=k or "body", message=m) for k, m in problems])


@blueprint.put("/cameras/<name>/max-gain")
@tag(["cameras"])
@requires(Role.ENGINEER, write=True)
@body(MaxGain)
@document_response(CameraChanged)
async def put_max_gain(name: str, data: MaxGain) -> object:
    """The highest gain (dB) the camera may use, auto gain included; a higher gain comes
    down to it."""
    async with _lock():
        station = await _station()
        c = _find(station.config.cameras, name)
        _command({"camera": c.name, "max_gain": data.max_gain})
        view = await _ask(c, SetMaxGain(max_gain_db=data.max_gain),
                          sent_as={"max_gain_db": "max_gain"})
        new = _with_max_gain(c, data.max_gain)
        applied = await _store(_replaced(station.config.cameras, new), station)
    return json_response(CameraChanged(camera=c.name, config=new, device=view.settings,
                                       applied=applied))


@blueprint.put("/cameras/<name>/max-exposure")
@tag(["cameras"])
@requires(Role.ENGINEER, write=True)
@body(MaxExposure)
@document_response(CameraChanged)
async def put_max_exposure(name: str, data: MaxExposure) -> object:
    """The longest exposure (microseconds) the camera may use, auto exposure included."""
    async with _lock():
        station = await _station()
        c = _find(station.config.cameras, name)
        _command({"camera": c.name, "max_exposure": data.max_exposure_time})
        view = await _ask(c, SetMaxExposure(max_exposure_us=data.max_exposure_time),
                          sent_as={"max_exposure_us": "max_exposure_time"})
        new = _with_max_exposure(c, data.max_exposure_time)
        applied = await _store(_replaced(station.config.cameras, new), station)
    return json_response(CameraChanged(camera=c.name, config=new, device=view.settings,
                                       applied=applied))


# ---- commands ----------------------------------------------------------------------------------


@blueprint.post("/cameras/<name>/auto-adjust")
@tag(["cameras"])
@requires(Role.ENGINEER, write=True)
@document_response(AutoResult)
async def auto_adjust(name: str) -> object:
    """Exposure and gain set once by the camera itself (within its max gain and exposure)."""
    c = await _named(name)
    _command({"camera": c.name, "auto_adjust": True})
    return json_response(await _ask(c, AutoAdjust()))


@blueprint.post("/cameras/<name>/auto-focus")
@tag(["cameras"])
@requires(Role.ENGINEER, write=True)
@document_response(AutoResult)
async def auto_focus(name: str) -> object:
    """Focus once; 409 for a camera without a focus feature."""
    c = await _named(name)
    _command({"camera": c.name, "auto_focus": True})
    return json_response(await _ask(c, AutoFocus()))


@blueprint.post("/cameras/<name>/reconnect")
@tag(["cameras"])
@requires(Role.ENGINEER, write=True)
@document_response(CameraStatus)
async def reconnect(name: str) -> object:
    """Open a camera that was lost while auto_reconnect is off (503 if it is still gone)."""
    c = await _named(name)
    _command({"camera": c.name, "reconnect": True})
    return json_response(await _ask(c, ReconnectCamera()))


# ---- images ------------------------------------------------------------------------------------


async def _capture(c: CameraConfig, q: CaptureQuery) -> Response:
    image: CapturedImage = await _ask(c, Capture(width=q.width, height=q.height,
                                                 format=q.format, quality=q.quality))
    return Response(image.data, content_type=image.content_type,
                    headers={"Cache-Control": "no-store", "X-Takt-Frame-Id": image.frame_id,
                             "X-Takt-Frame-At-Us": str(image.at_us)})


@blueprint.get("/cameras/<name>/capture")
@tag(["cameras"])
@requires(Role.OPERATOR)
@query(CaptureQuery)
async def capture(name: str, q: CaptureQuery) -> object:
    """The newest frame, centre-cropped and resized to width x height (896 x 896), as
    image/jpeg (or ?format=png)."""
    return await _capture(await _named(name), q)


@blueprint.get("/camera/capture")
@tag(["cameras"])
@requires(Role.OPERATOR)
@query(CaptureQuery)
async def capture_active(q: CaptureQuery) -> object:
    """The active camera's newest frame, 896 x 896 image/jpeg (or ?format=png)."""
    return await _capture(await _active(), q)


def _viewer(fn: Handler) -> Handler:
    """Operator role, like `requires`, with the token also taken from `?token=`: a browser's
    `<img src=...>` cannot send a header. Checked before the query is."""

    @functools.wraps(fn)
    async def handler(*args: Any, **kwargs: Any) -> Any:
        header = request.headers.get("Authorization")
        token = request.args.get("token")
        if header:
            scheme, _, value = header.partition(" ")
            token = value.strip() if scheme.lower() == "bearer" else None
        principal = await authenticate(token or None)
        if not permits(principal, Role.OPERATOR, False):
            raise Problem(403, f"{principal.name} may not watch cameras")
        return await fn(*args, **kwargs)

    return security_scheme([{"bearer": []}])(handler)  # type: ignore[no-any-return]


async def _stream(c: CameraConfig, q: StreamQuery) -> Response:
    if not c.enabled:
        raise Problem(409, f"camera {c.name} is disabled")
    runtime = facade().runtime
    actor = f"camera:{c.name}"
    try:
        runtime.directory.get(actor)
    except ActorUnavailable as exc:
        raise _down(c, exc) from None
    response = Response(_mjpeg(runtime, actor, q),
                        content_type=f"multipart/x-mixed-replace; boundary={_BOUNDARY}",
                        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
    response.timeout = None  # a stream lasts as long as its viewer watches
    return response


async def _mjpeg(runtime: Any, actor: str, q: StreamQuery) -> AsyncIterator[bytes]:
    """One part per new frame, at most q.fps a second; a restarting camera (a reconnect, a
    settings change) is waited for, up to _STREAM_GONE_S."""
    interval = 1.0 / q.fps if q.fps else 0.0
    after = 0
    gone_since: float | None = None
    while True:
        try:
            frame: JpegFrame | None = await ask(
                runtime, runtime.directory.get(actor),
                GetJpeg(after_seq=after, quality=q.quality, wait_s=2.0), timeout=5.0)
        except (ActorUnavailable, AskTimeout):
            now = trio.current_time()
            gone_since = gone_since if gone_since is not None else now
            if now - gone_since > _STREAM_GONE_S:
                return
            await trio.sleep(0.2)
            continue
        gone_since = None
        if frame is None:
            continue  # none within wait_s (paused, or a stalled camera): ask again
        after = frame.seq
        yield (f"--{_BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
               f"Content-Length: {len(frame.data)}\r\nX-Takt-Frame-Id: {frame.frame_id}\r\n\r\n"
               ).encode() + frame.data + b"\r\n"
        if interval:
            await trio.sleep(interval)


@blueprint.get("/cameras/<name>/stream")
@tag(["cameras"])
@_viewer
@query(StreamQuery)
async def stream(name: str, q: StreamQuery) -> object:
    """MJPEG (multipart/x-mixed-replace; boundary=frame) of the camera's frames; ?fps= caps
    the rate. Operator role; the token by header or ?token=."""
    return await _stream(await _named(name), q)


@blueprint.get("/camera/stream")
@tag(["cameras"])
@_viewer
@query(StreamQuery)
async def stream_active(q: StreamQuery) -> object:
    """MJPEG of the active camera (see /cameras/{name}/stream)."""
    return await _stream(await _active(), q)


async def _pause(c: CameraConfig, paused: bool) -> Response:
    _command({"camera": c.name, "stream": "pause" if paused else "resume"})
    state: StreamState = await _ask(c, PauseStream() if paused else ResumeStream())
    return json_response(state)


@blueprint.post("/cameras/<name>/stream/pause")
@tag(["cameras"])
@requires(Role.OPERATOR, write=True)
@document_response(StreamState)
async def pause(name: str) -> object:
    """Streaming clients get no new frames until resumed; the camera keeps grabbing for
    inspection."""
    return await _pause(await _named(name), True)


@blueprint.post("/cameras/<name>/stream/resume")
@tag(["cameras"])
@requires(Role.OPERATOR, write=True)
@document_response(StreamState)
async def resume(name: str) -> object:
    return await _pause(await _named(name), False)


@blueprint.post("/camera/stream/pause")
@tag(["cameras"])
@requires(Role.OPERATOR, write=True)
@document_response(StreamState)
async def pause_active() -> object:
    return await _pause(await _active(), True)


@blueprint.post("/camera/stream/resume")
@tag(["cameras"])
@requires(Role.OPERATOR, write=True)
@document_response(StreamState)
async def resume_active() -> object:
    return await _pause(await _active(), False)
