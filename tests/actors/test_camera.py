"""The camera actor on the real pylon emulator (and a folder source): frames into the camera's
slot, captures that are the served image, settings applied or refused with ranges, a paused
stream that does not stop grabbing, and a camera that is unplugged going DOWN and coming back.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import msgspec
import numpy as np
import pykka
import pytest

from actors.camera import CameraActor, open_source
from actors.camera_messages import (
    AutoAdjust,
    AutoFocus,
    Capture,
    ChangeCameraSettings,
    GetCameraSettings,
    GetCameraStatus,
    GetJpeg,
    NotSupportedByCamera,
    PauseStream,
    ReconnectCamera,
    ResumeStream,
    SetMaxGain,
    SettingsError,
    UseCameraConfig,
)
from actors.health import HealthState
from actors.runtime import Runtime, call
from actors.supervisor import ChildSpec, Supervisor
from controller.camera_config import CameraConfig, CameraSource
from controller.clock import RealClock
from controller.supervision import Backoff
from tests.actors.probe import Probe
from tests.drivers.test_pylon_camera import scene_image, write_image
from tests.waiting import wait_for

# pylon's camera emulator paces frames with SIGALRM timers and its own SIGALRM handler, which
# pytest-timeout's default (signal) method would replace (a spurious "Timeout", or SIG_DFL
# killing the run): time these tests out from a thread instead.
pytestmark = pytest.mark.timeout(120, method="thread")


@pytest.fixture
def rt() -> Iterator[Runtime]:
    """Real time: the emulator grabs in real time, and backoff delays must pass."""
    runtime = Runtime(clock=RealClock())
    yield runtime
    pykka.ActorRegistry.stop_all(block=True, timeout=10)
    runtime.clock.close()


@pytest.fixture
def scene(tmp_path: Path) -> tuple[Path, np.ndarray]:
    image = scene_image(seed=3)
    return write_image(tmp_path / "scene.png", image), image


def emulated(scene: Path, **kw: Any) -> CameraConfig:
    return CameraConfig(name="top", emulation=True, serial="0815-0000",
                        device_user_name="RAP_CAM_01", image_path=str(scene), **kw)


def decode(data: bytes) -> np.ndarray:
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert bgr is not None
    return bgr[:, :, ::-1]


def test_frames_fill_the_slot_and_a_capture_is_the_scene(
        rt: Runtime, scene: tuple[Path, np.ndarray]) -> None:
    ref = CameraActor.start(rt, "camera:top", emulated(scene[0]))
    slot = rt.frames.slot("top")
    wait_for(lambda: slot.puts >= 3)
    frame = slot.latest()
    assert frame is not None and frame.frame_id == f"top:{frame.seq}"
    assert np.array_equal(frame.image, scene[1][:896, :896])
    png = call(rt, ref, Capture(format="png"))
    assert (png.content_type, png.width, png.height) == ("image/png", 896, 896)
    assert np.array_equal(decode(png.data), scene[1][:896, :896])
    jpeg = call(rt, ref, Capture(width=448, height=448))
    assert decode(jpeg.data).shape == (448, 448, 3)
    assert np.abs(decode(jpeg.data).astype(int)
                  - cv2.resize(scene[1][:896, :896], (448, 448),
                               interpolation=cv2.INTER_AREA).astype(int)).mean() < 4
    status = call(rt, ref, GetCameraStatus())
    assert (status.state, status.model, status.serial, status.device_user_name) == (
        "connected", "Emulation", "0815-0000", "RAP_CAM_01")
    assert status.frames >= 3 and status.settings["width"] == 896
    wait_for(lambda: call(rt, ref, GetCameraStatus()).fps > 5)
    [state] = rt.bus.retained(["device.camera.top.state"])
    assert state.durable and state.data["state"] == "connected"


def test_settings_are_applied_or_refused_with_the_range(
        rt: Runtime, scene: tuple[Path, np.ndarray]) -> None:
    ref = CameraActor.start(rt, "camera:top", emulated(scene[0]))
    view = call(rt, ref, ChangeCameraSettings(changes={"Width": 640, "offset_x": 32,
                                                       "ReverseY": 1}))
    assert (view.settings["width"], view.settings["offset_x"], view.settings["reverse_y"]) == (
        640, 32, True)
    assert view.ranges["offset_x"] == f"0..{4096 - 640}"
    slot = rt.frames.slot("top")
    wait_for(lambda: (f := slot.latest()) is not None and f.image.shape == (896, 640, 3))
    frame = slot.latest()
    assert frame is not None
    assert np.array_equal(frame.image, scene[1][:896, 32:672][::-1])
    with pytest.raises(SettingsError) as caught:
        call(rt, ref, ChangeCameraSettings(changes={"Width": 5000, "Gain": 3.0}))
    [problem] = caught.value.problems
    assert (problem.field, problem.valid) == ("width", "1..4096")
    after = call(rt, ref, GetCameraSettings()).settings
    assert (after["width"], after["gain_db"]) == (640, 0.0)  # nothing changed
    events = [e.data["settings"]["width"] for e in rt.bus.retained(["device.camera.top.state"])]
    assert events == [640]
    assert call(rt, ref, SetMaxGain(max_gain_db=12.0)).settings["max_gain_db"] == 12.0
    assert call(rt, ref, AutoAdjust()).set == {"ExposureAuto": "Once", "GainAuto": "Once"}
    with pytest.raises(NotSupportedByCamera, match="not supported by this camera"):
        call(rt, ref, AutoFocus())


def test_a_stored_config_applies_only_what_the_camera_has_not_taken(
        rt: Runtime, scene: tuple[Path, np.ndarray]) -> None:
    """An API change goes to the camera first, then comes back as the stored config
    (UseCameraConfig): the camera is not set twice. What it has not taken yet is applied."""
    applied: list[Any] = []

    def factory(config: CameraConfig, **kw: Any) -> Any:
        source = open_source(config, **kw)
        real = source.apply

        def apply(wanted: Any) -> Any:
            applied.append(wanted)
            return real(wanted)

        source.apply = apply
        return source

    config = emulated(scene[0])
    ref = CameraActor.start(rt, "camera:top", config, source_factory=factory)
    call(rt, ref, ChangeCameraSettings(changes={"width": 640, "exposure_us": 8000}))
    assert len(applied) == 1
    stored = msgspec.structs.replace(config, width=640, exposure_us=8000, jpeg_quality=60)
    call(rt, ref, UseCameraConfig(stored))  # answered once handled: the mailbox is in order
    assert len(applied) == 1
    call(rt, ref, UseCameraConfig(msgspec.structs.replace(stored, gain_db=3.0)))
    assert len(applied) == 2 and applied[-1].gain_db == 3.0
    settings = call(rt, ref, GetCameraSettings()).settings
    assert (settings["width"], settings["exposure_us"], settings["gain_db"]) == (640, 8000, 3.0)


def test_a_paused_stream_holds_clients_but_not_the_grab(
        rt: Runtime, scene: tuple[Path, np.ndarray]) -> None:
    ref = CameraActor.start(rt, "camera:top", emulated(scene[0], jpeg_quality=70))
    first = call(rt, ref, GetJpeg())
    second = call(rt, ref, GetJpeg(after_seq=first.seq))
    assert second.seq > first.seq and decode(second.data).shape == (896, 896, 3)
    call(rt, ref, PauseStream())
    slot = rt.frames.slot("top")
    grabbed = slot.puts
    assert call(rt, ref, GetJpeg(after_seq=second.seq, wait_s=0.3)) is None
    assert slot.puts > grabbed  # the inspector still gets frames
    assert call(rt, ref, GetCameraStatus()).streaming is False
    call(rt, ref, ResumeStream())
    assert call(rt, ref, GetJpeg(after_seq=second.seq)).seq > second.seq


def test_an_unplugged_camera_goes_down_and_comes_back(
        rt: Runtime, scene: tuple[Path, np.ndarray], caplog: pytest.LogCaptureFixture) -> None:
    sources: list[Any] = []

    def factory(config: CameraConfig, **kw: Any) -> Any:
        sources.append(open_source(config, **kw))
        return sources[-1]

    probe = Probe.start(rt, "watch")
    rt.bus.subscribe_actor(["device.camera.*", "health.camera:top"], probe)
    spec = ChildSpec.of(CameraActor, "camera:top", emulated(scene[0]), source_factory=factory)
    Supervisor.start(rt, "devices", [spec],
                     backoff=Backoff(min_s=0.05, max_s=0.5, jitter=0.0, stable_s=30.0))
    slot = rt.frames.slot("top")
    wait_for(lambda: slot.puts >= 2)
    caplog.set_level(logging.INFO, logger="takt.health")
    sources[-1].unplug_emulated()
    wait_for(lambda: rt.health.component("camera:top").restarts >= 1
             and rt.health.state("camera:top") is HealthState.UP)
    grabbed = slot.puts
    wait_for(lambda: slot.puts > grabbed + 2)  # frames flow again, numbered on
    frame = slot.latest()
    assert frame is not None and frame.seq == slot.puts
    health = [e.data["state"] for e in probe.proxy().events.get()
              if e.topic == "health.camera:top"]
    assert health[-3:] == ["UP", "DOWN", "UP"]
    states = [(e.data["state"], e.data["reason"]) for e in probe.proxy().events.get()
              if e.topic == "device.camera.top.state"]
    assert states == [("connected", None), ("disconnected", "the camera was removed"),
                      ("connected", None)]
    messages = [r.getMessage() for r in caplog.records]
    assert sum("camera:top unavailable" in m for m in messages) == 1
    assert sum("camera:top back" in m for m in messages) == 1
    ref = rt.directory.get("camera:top")
    assert call(rt, ref, GetCameraStatus()).state == "connected"


def test_without_auto_reconnect_it_waits_to_be_asked(
        rt: Runtime, scene: tuple[Path, np.ndarray]) -> None:
    sources: list[Any] = []

    def factory(config: CameraConfig, **kw: Any) -> Any:
        sources.append(open_source(config, **kw))
        return sources[-1]

    ref = CameraActor.start(rt, "camera:top", emulated(scene[0], auto_reconnect=False),
                            source_factory=factory)
    slot = rt.frames.slot("top")
    wait_for(lambda: slot.puts >= 1)
    sources[-1].unplug_emulated()
    wait_for(lambda: call(rt, ref, GetCameraStatus()).state == "disconnected")
    assert rt.health.state("camera:top") is HealthState.DOWN
    assert "auto_reconnect is off" in (rt.health.component("camera:top").last_error or "")
    status = call(rt, ref, ReconnectCamera())
    assert status.state == "connected" and rt.health.state("camera:top") is HealthState.UP
    grabbed = slot.puts
    wait_for(lambda: slot.puts > grabbed)


def test_a_folder_camera_takes_only_a_frame_rate(rt: Runtime, tmp_path: Path) -> None:
    folder = tmp_path / "shots"
    folder.mkdir()
    write_image(folder / "a.png", scene_image(300, 400, seed=1))
    # A relative image_path is in the station's data directory.
    config = CameraConfig(name="bench", source=CameraSource.FOLDER, image_path="shots",
                          frame_rate=50.0)
    ref = CameraActor.start(rt, "camera:bench", config, data_dir=tmp_path)
    slot = rt.frames.slot("bench")
    wait_for(lambda: slot.puts >= 2)
    capture = call(rt, ref, Capture(format="png", width=300, height=300))
    # A 400 x 300 picture, centre-cropped to a square: columns 50..349.
    assert np.array_equal(decode(capture.data), scene_image(300, 400, seed=1)[:, 50:350])
    with pytest.raises(SettingsError, match="only frame_rate"):
        call(rt, ref, ChangeCameraSettings(changes={"Width": 100}))
    view = call(rt, ref, ChangeCameraSettings(changes={"AcquisitionFrameRate": 20}))
    assert view.settings == {"frame_rate": 20.0}
    with pytest.raises(NotSupportedByCamera):
        call(rt, ref, AutoAdjust())
    assert msgspec.to_builtins(call(rt, ref, GetCameraStatus()))["source"] == "folder"
