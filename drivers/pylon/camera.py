"""A Basler camera over pypylon: find it, open it, configure it, and grab on a thread of its own.

Blocking. While grabbing, the grab thread owns the camera: settings and other commands are
handed to it and run between two frames, so nothing races the grab loop and a feature that is
locked while grabbing (Width, PixelFormat) is written with grabbing stopped for a moment.
Each frame is converted to RGB (uint8, read-only) and handed to `on_frame(image, at_us)`; a
removed camera or a grab that keeps failing is reported once through `on_lost(reason)`.

The pylon emulator (`PYLON_CAMEMU`) serves the file or folder `image_path` names. It reads the
image(s) when grabbing starts, so for a file the grab thread watches its mtime (scene follow)
and restarts grabbing when it changes: that is how a simulator changes what the camera sees.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

import msgspec
import numpy as np
from pypylon import genicam, pylon

from drivers.errors import DeviceUnavailable, DriverError
from drivers.pylon.emulator import (
    EMULATOR_CLASS,
    FIRST_SERIAL,
    ensure_emulated,
    file_signature,
    serve,
)
from drivers.pylon.features import (
    FeatureWriter,
    NotSupported,
    auto_adjust,
    auto_focus,
    short_error,
    stall_after_s,
)
from drivers.pylon.settings import DeviceRanges, PylonSettings

__all__ = ["CameraIdentity", "GrabStatistics", "NotSupported", "PylonCamera", "PylonTarget"]

log = logging.getLogger("takt.drivers.pylon")

T = TypeVar("T")
FrameCallback = Callable[[np.ndarray, int], None]
LostCallback = Callable[[str], None]

_FAILED_GRABS_LOST = 50  # in a row: the camera is gone in all but name
_ENUMERATION = threading.Lock()  # one enumeration at a time across camera actors


class PylonTarget(msgspec.Struct, frozen=True, kw_only=True):
    """Which camera to open, and for the emulator what it shows."""

    device_user_name: str | None = None
    serial: str | None = None
    emulation: bool = False
    image_path: str | None = None


class CameraIdentity(msgspec.Struct, frozen=True, kw_only=True):
    vendor: str
    model: str
    serial: str | None
    device_user_name: str | None
    emulated: bool


class GrabStatistics(msgspec.Struct, frozen=True, kw_only=True):
    grabbing: bool
    frames: int
    failed_grabs: int  # frames the camera sent broken; counted, not fatal
    scene_reloads: int  # times the emulator was pointed at a changed image file
    last_error: str | None


class PylonCamera:
    """One Basler camera. `open`, `configure`, `start`; `close` when done (idempotent)."""

    def __init__(self, target: PylonTarget, *, on_frame: FrameCallback, on_lost: LostCallback,
                 now_us: Callable[[], int], name: str = "camera", poll_s: float = 0.05,
                 follow_s: float = 0.1, stall_s: float = 5.0) -> None:
        """`stall_s`: no frame for that long (or a few frame periods, if longer) is a lost
        camera; `follow_s`: how often the emulator's image file is checked."""
        self.target = target
        self.name = name
        self._on_frame = on_frame
        self._on_lost = on_lost
        self._now_us = now_us
        self._poll_ms = max(int(poll_s * 1000), 1)
        self._follow_s = follow_s
        self._min_stall_s = self._stall_s = stall_s
        self._cam: Any = None
        self.identity: CameraIdentity | None = None
        self._converter: Any = None
        self._writer = FeatureWriter(name)
        self._commands: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = \
            queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._lost: str | None = None
        self._scene: tuple[int, int] | None = None
        self.frames = self.failed_grabs = self.scene_reloads = 0
        self.last_error: str | None = None

    # --- open / close -----------------------------------------------------------------------

    def open(self) -> CameraIdentity:
        """Find and open the camera; DeviceUnavailable when it is not there or is in use."""
        if self.target.emulation and self.target.image_path is not None \
                and not os.path.exists(self.target.image_path):
            raise DeviceUnavailable(f"{self.name}: nothing for the emulator to show at "
                                    f"{self.target.image_path}")
        cam: Any = None
        try:
            with _ENUMERATION:
                info = self._find()
                cam = pylon.InstantCamera(pylon.TlFactory.GetInstance().CreateDevice(info))
            cam.Open()
        except genicam.GenericException as exc:
            if cam is not None:
                cam.DestroyDevice()  # in use elsewhere, or gone again: release our handle
            why = short_error(exc)
            raise DeviceUnavailable(f"{self.name}: cannot open the camera: {why}") from exc
        self._cam = cam
        self._converter = pylon.ImageFormatConverter()
        self._converter.OutputPixelFormat = pylon.PixelType_RGB8packed
        try:
            if self.target.emulation:
                self._set_up_emulator()
            self.identity = self._identity()
            return self.identity
        except genicam.GenericException as exc:
            self.close()
            raise DeviceUnavailable(f"{self.name}: {short_error(exc)}") from exc

    def _find(self) -> Any:
        wanted, match = _matcher(self.target)
        devices = pylon.TlFactory.GetInstance().EnumerateDevices()
        for info in devices:
            if match(info):
                return info
        found = ", ".join(f"{d.GetSerialNumber()} {d.GetUserDefinedName()!r}" for d in devices)
        raise DeviceUnavailable(f"{self.name}: no {wanted} (found: {found or 'no cameras'})")

    def _set_up_emulator(self) -> None:
        nodemap = self._cam.GetNodeMap()
        if self.target.device_user_name is not None:
            # The emulator keeps no user names: Takt gives it the configured one.
            nodemap.GetNode("DeviceUserID").SetValue(self.target.device_user_name)
        if self.target.image_path is not None:
            serve(nodemap, self.target.image_path)
            self._scene = file_signature(self.target.image_path)

    def _identity(self) -> CameraIdentity:
        info = self._cam.GetDeviceInfo()
        user = self._cam.GetNodeMap().GetNode("DeviceUserID")
        name = user.GetValue() if user.IsValid() and user.IsReadable() else None
        return CameraIdentity(vendor=info.GetVendorName(), model=info.GetModelName(),
                              serial=info.GetSerialNumber() or None,
                              device_user_name=name or info.GetUserDefinedName() or None,
                              emulated=info.GetDeviceClass() == EMULATOR_CLASS)

    def close(self) -> None:
        self.stop()
        cam, self._cam = self._cam, None
        if cam is None:
            return
        try:
            cam.Close()
            cam.DestroyDevice()
        except genicam.GenericException as exc:  # a removed camera: nothing left to release
            log.debug("%s: closing: %s", self.name, short_error(exc))

    def unplug_emulated(self) -> None:
        """The emulator's unplug: the camera reports itself removed (for tests and sims)."""
        if not self.target.emulation or self._cam is None:
            raise NotSupported(f"{self.name}: only an emulated camera can be unplugged")
        self._call(self._cam.FirePnPCallback.Execute)

    @property
    def removed(self) -> bool:
        return self._cam is not None and bool(self._cam.IsCameraDeviceRemoved())

    # --- settings ---------------------------------------------------------------------------

    def configure(self, settings: PylonSettings) -> PylonSettings:
        """Write every setting given (the user set first), after checking them all."""
        return self._call(lambda: self._apply(settings, everything=True))

    def apply(self, changes: PylonSettings) -> PylonSettings:
        """Change some settings: all checked against the camera's ranges before any is written
        (SettingsError names each refused one with its range; nothing changes)."""
        return self._call(lambda: self._apply(changes, everything=False))

    def read_settings(self) -> PylonSettings:
        return self._call(self._read)

    def ranges(self) -> DeviceRanges:
        return self._call(self._ranges)

    def auto_adjust(self) -> dict[str, str]:
        """Exposure and gain set once by the camera (ExposureAuto/GainAuto = Once)."""
        return self._call(lambda: auto_adjust(self._nodemap(), self.name))

    def auto_focus(self) -> dict[str, str]:
        """Focus once; NotSupported for a camera without a focus feature."""
        return self._call(lambda: auto_focus(self._nodemap(), self.name))

    def _read(self) -> PylonSettings:
        return self._writer.read(self._nodemap())

    def _ranges(self) -> DeviceRanges:
        return self._writer.ranges(self._nodemap())

    def _apply(self, changes: PylonSettings, *, everything: bool) -> PylonSettings:
        applied = self._writer.apply(self._cam, changes, everything=everything)
        self._stall_s = stall_after_s(applied, self._min_stall_s)
        return applied

    # --- grabbing ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start grabbing (latest image only) on a thread of its own."""
        if self._thread is not None:
            return
        try:
            self._cam.StartGrabbing(pylon.GrabStrategy_LatestImageOnly)
        except genicam.GenericException as exc:
            why = short_error(exc)
            raise DeviceUnavailable(f"{self.name}: cannot start grabbing: {why}") from exc
        self._stopping.clear()
        self._thread = threading.Thread(target=self._grab_loop, name=f"grab-{self.name}",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop grabbing; the camera stays open."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stopping.set()
            thread.join(timeout=5)
        if self._cam is not None:
            try:
                self._cam.StopGrabbing()
            except genicam.GenericException as exc:
                log.debug("%s: stopping: %s", self.name, short_error(exc))

    def statistics(self) -> GrabStatistics:
        grabbing = self._thread is not None and self._lost is None
        return GrabStatistics(grabbing=grabbing, frames=self.frames,
                              failed_grabs=self.failed_grabs, scene_reloads=self.scene_reloads,
                              last_error=self.last_error)

    def _call(self, fn: Callable[[], T], timeout_s: float = 10.0) -> T:
        """Run fn on the thread that owns the camera; library errors become driver errors."""
        if self._cam is None:
            raise DeviceUnavailable(f"{self.name}: the camera is not open")
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return self._guarded(fn)
        if self._lost is not None:
            raise DeviceUnavailable(f"{self.name}: {self._lost}")
        future: Future[T] = Future()
        self._commands.put((lambda: self._guarded(fn), future))
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                return future.result(timeout=0.05)
            except FutureTimeout:
                if not thread.is_alive():  # it ended before it saw the command
                    self._fail_commands()
                elif time.monotonic() > deadline:
                    raise DeviceUnavailable(f"{self.name}: the camera did not answer in "
                                            f"{timeout_s:g} s") from None

    def _guarded(self, fn: Callable[[], T]) -> T:
        if self.removed:
            raise DeviceUnavailable(f"{self.name}: the camera was removed")
        try:
            return fn()
        except genicam.GenericException as exc:
            if self.removed:
                raise DeviceUnavailable(f"{self.name}: the camera was removed") from exc
            raise DriverError(f"{self.name}: {short_error(exc)}") from exc

    def _grab_loop(self) -> None:
        cam = self._cam
        next_check = time.monotonic()
        last_frame = time.monotonic()
        failed_in_a_row = 0
        try:
            while not self._stopping.is_set():
                self._serve_commands()
                if cam.IsCameraDeviceRemoved():
                    self._report_lost("the camera was removed")
                    return
                now = time.monotonic()
                if now >= next_check:
                    next_check = now + self._follow_s
                    self._housekeeping()
                if not cam.IsGrabbing():
                    last_frame = now  # stopped on purpose for a moment: not a stall
                    self._wait_for_command(self._poll_ms / 1000)
                    continue
                result = cam.RetrieveResult(self._poll_ms, pylon.TimeoutHandling_Return)
                if result is None or not result.IsValid():
                    if now - last_frame > self._stall_s:
                        self._report_lost(f"no frame for {self._stall_s:g} s")
                        return
                    continue
                try:
                    if result.GrabSucceeded():
                        failed_in_a_row = 0
                        last_frame = time.monotonic()
                        self._deliver(self._rgb(result))
                    else:
                        failed_in_a_row += 1
                        self._failed(result.GetErrorDescription(), failed_in_a_row)
                finally:
                    result.Release()
                if failed_in_a_row >= _FAILED_GRABS_LOST:
                    self._report_lost(f"{failed_in_a_row} grabs in a row failed: "
                                      f"{self.last_error}")
                    return
        except genicam.GenericException as exc:
            self._report_lost(short_error(exc))
        except Exception as exc:  # a bug here must not leave a camera that silently stopped
            log.exception("%s: the grab loop failed", self.name)
            self._report_lost(f"the grab loop failed: {exc}")
        finally:
            self._fail_commands()

    def _deliver(self, image: np.ndarray) -> None:
        self.frames += 1
        try:
            self._on_frame(image, self._now_us())
        except Exception:
            log.exception("%s: the frame callback failed", self.name)

    def _rgb(self, result: Any) -> np.ndarray:
        if result.GetPixelType() == pylon.PixelType_RGB8packed:
            image = result.GetArray()
        else:
            image = self._converter.Convert(result).GetArray()
        image = np.asarray(image)
        if image.base is not None and image.flags.writeable:
            image = image.copy()  # not a view of a buffer pylon reuses
        image.setflags(write=False)
        return image

    def _failed(self, reason: str, in_a_row: int) -> None:
        self.failed_grabs += 1
        self.last_error = f"grab failed: {reason}"
        if in_a_row == 1:  # once per run of failures, not per frame
            log.warning("%s: %s", self.name, self.last_error)

    def _housekeeping(self) -> None:
        self._follow_scene()
        self._writer.enforce_limits(self._cam.GetNodeMap())

    def _follow_scene(self) -> None:
        """Restart grabbing when the emulator's image file changed: it caches it at start."""
        if self._scene is None or self.target.image_path is None:
            return
        scene = file_signature(self.target.image_path)
        if scene is None or scene == self._scene:
            return
        self._scene = scene
        cam = self._cam
        grabbing = cam.IsGrabbing()
        if grabbing:
            cam.StopGrabbing()
        serve(cam.GetNodeMap(), self.target.image_path)
        if grabbing:
            cam.StartGrabbing(pylon.GrabStrategy_LatestImageOnly)
        self.scene_reloads += 1

    def _serve_commands(self) -> None:
        while True:
            try:
                fn, future = self._commands.get_nowait()
            except queue.Empty:
                return
            self._run_command(fn, future)

    def _wait_for_command(self, timeout_s: float) -> None:
        try:
            fn, future = self._commands.get(timeout=timeout_s)
        except queue.Empty:
            return
        self._run_command(fn, future)

    @staticmethod
    def _run_command(fn: Callable[[], Any], future: Future[Any]) -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(fn())
        except BaseException as exc:
            future.set_exception(exc)

    def _fail_commands(self) -> None:
        reason = self._lost or "grabbing stopped"
        while True:
            try:
                _, future = self._commands.get_nowait()
            except queue.Empty:
                return
            if future.set_running_or_notify_cancel():
                future.set_exception(DeviceUnavailable(f"{self.name}: {reason}"))

    def _report_lost(self, reason: str) -> None:
        if self._lost is not None:
            return
        self._lost = reason
        self.last_error = reason
        try:
            self._on_lost(reason)
        except Exception:
            log.exception("%s: the lost callback failed", self.name)

    def _nodemap(self) -> Any:
        if self._cam is None:
            raise DeviceUnavailable(f"{self.name}: the camera is not open")
        return self._cam.GetNodeMap()


def _matcher(t: PylonTarget) -> tuple[str, Callable[[Any], bool]]:
    """What to look for among the enumerated devices, and how to tell it."""
    if t.emulation:
        serial = t.serial or FIRST_SERIAL
        ensure_emulated(serial)

        def emulated(d: Any) -> bool:
            return bool(d.GetDeviceClass() == EMULATOR_CLASS and d.GetSerialNumber() == serial)
        return f"emulated camera {serial}", emulated
    if t.serial is not None:
        def by_serial(d: Any) -> bool:
            return bool(d.GetSerialNumber() == t.serial)
        return f"camera with serial {t.serial}", by_serial

    def by_name(d: Any) -> bool:
        return bool(d.GetUserDefinedName() == t.device_user_name)
    return f"camera with DeviceUserID {t.device_user_name!r}", by_name
