"""The Basler driver against the real pylon camera emulator (PYLON_CAMEMU): settings written
and read back from the device, refusals with the device's ranges that change nothing, frames
that are the served image's pixels, the emulator following a changed image file, and removal.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import msgspec
import numpy as np
import pytest

from drivers.errors import DeviceUnavailable
from drivers.pylon.camera import NotSupported, PylonCamera, PylonTarget
from drivers.pylon.settings import PylonSettings, SettingsError
from tests.waiting import wait_for

# pylon's camera emulator paces frames with SIGALRM timers and its own SIGALRM handler, which
# pytest-timeout's default (signal) method would replace (a spurious "Timeout", or SIG_DFL
# killing the run): time these tests out from a thread instead.
pytestmark = pytest.mark.timeout(120, method="thread")

SERIAL = "0815-0000"


def scene_image(height: int = 1000, width: int = 1100, seed: int = 0) -> np.ndarray:
    """An RGB test scene: smooth gradients (JPEG keeps them close) with a few sharp blocks."""
    y, x = np.mgrid[0:height, 0:width]
    image = np.stack([(x * 255 // width), (y * 255 // height),
                      ((x + y + seed * 40) % 256)], axis=-1).astype(np.uint8)
    rng = np.random.default_rng(seed)
    for _ in range(6):
        top, left = rng.integers(0, height - 120), rng.integers(0, width - 120)
        image[top:top + 100, left:left + 100] = rng.integers(0, 256, 3)
    return image


def write_image(path: Path, rgb: np.ndarray) -> Path:
    """Written next to its place, then renamed over it, so a reader never sees half a file."""
    part = path.with_name(f".{path.stem}.part{path.suffix}")
    assert cv2.imwrite(str(part), np.ascontiguousarray(rgb[:, :, ::-1]))
    os.replace(part, path)
    return path


class Frames:
    """What the camera handed to on_frame (the newest few), and whether it said it was lost."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.images: list[tuple[np.ndarray, int]] = []
        self.count = 0
        self.lost: list[str] = []

    def on_frame(self, image: np.ndarray, at_us: int) -> None:
        with self.lock:
            self.images.append((image, at_us))
            del self.images[:-5]
            self.count += 1

    def on_lost(self, reason: str) -> None:
        self.lost.append(reason)

    def newest(self) -> np.ndarray | None:
        with self.lock:
            return self.images[-1][0] if self.images else None

    def next_after(self, count: int) -> np.ndarray:
        """A frame grabbed after `count` frames had come (so after whatever changed)."""
        wait_for(lambda: self.count > count)
        image = self.newest()
        assert image is not None
        return image


@pytest.fixture
def scene(tmp_path: Path) -> tuple[Path, np.ndarray]:
    image = scene_image()
    return write_image(tmp_path / "scene.png", image), image


@pytest.fixture
def frames() -> Frames:
    return Frames()


@pytest.fixture
def camera(scene: tuple[Path, np.ndarray], frames: Frames) -> Iterator[PylonCamera]:
    ticks = iter(range(1_000_000, 10**12, 1000))
    cam = PylonCamera(PylonTarget(emulation=True, serial=SERIAL, device_user_name="RAP_CAM_01",
                                  image_path=str(scene[0])),
                      on_frame=frames.on_frame, on_lost=frames.on_lost,
                      now_us=lambda: next(ticks), name="top")
    cam.open()
    yield cam
    cam.close()


def test_the_emulator_opens_by_serial_and_takes_the_device_user_name(camera: PylonCamera) -> None:
    identity = camera.identity
    assert identity is not None
    assert (identity.vendor, identity.serial, identity.device_user_name, identity.emulated) == (
        "Basler", SERIAL, "RAP_CAM_01", True)


def test_settings_round_trip_through_the_device(camera: PylonCamera,
                                                 frames: Frames,
                                                 scene: tuple[Path, np.ndarray]) -> None:
    wanted = PylonSettings(user_set="Default", pixel_format="RGB8Packed", width=640, height=480,
                           offset_x=16, offset_y=8, reverse_x=True, reverse_y=False,
                           exposure_auto="Off", exposure_us=5000, gain_db=6.5,
                           frame_rate=25.0)
    applied = camera.configure(wanted)
    assert applied == wanted
    camera.start()
    image = frames.next_after(0)
    # The emulator crops the served file at the offsets, then mirrors it.
    assert image.shape == (480, 640, 3) and image.dtype == np.uint8
    assert np.array_equal(image, scene[1][8:488, 16:656][:, ::-1])
    assert not image.flags.writeable
    # Changed while grabbing: Width is locked then, so grabbing pauses for the write.
    assert camera.apply(PylonSettings(width=320, reverse_x=False)).width == 320
    count = frames.count
    assert np.array_equal(frames.next_after(count), scene[1][8:488, 16:336])
    assert camera.read_settings() == msgspec.structs.replace(wanted, width=320,
                                                             reverse_x=False)


def test_out_of_range_is_refused_with_the_range_and_changes_nothing(
        camera: PylonCamera) -> None:
    camera.configure(PylonSettings(width=896, height=896, gain_db=3.0))
    before = camera.read_settings()
    with pytest.raises(SettingsError) as caught:
        camera.apply(PylonSettings(width=100_000, gain_db=10.0, pixel_format="YUV422"))
    problems = {p.field: p for p in caught.value.problems}
    assert set(problems) == {"width", "pixel_format"}
    assert problems["width"].valid == "1..4096"  # read from the emulator's Width node
    assert "100000 is outside the camera's range 1..4096" in str(caught.value)
    assert "RGB8Packed" in problems["pixel_format"].message
    assert camera.read_settings() == before  # gain_db was fine, and is still 3.0
    with pytest.raises(SettingsError, match=r"offset_x: 300 is outside the camera's range 0..200"):
        camera.apply(PylonSettings(offset_x=300, width=3896))
    assert camera.read_settings() == before


def test_frames_are_the_served_image_with_the_injected_clock(
        camera: PylonCamera, frames: Frames, scene: tuple[Path, np.ndarray]) -> None:
    camera.configure(PylonSettings(width=896, height=896, pixel_format="RGB8Packed"))
    camera.start()
    wait_for(lambda: frames.count >= 3)
    (_, t1), (second, t2) = frames.images[-2:]
    assert np.array_equal(second, scene[1][:896, :896])
    assert 1_000_000 <= t1 < t2 < 10**7  # from now_us, not the wall clock
    stats = camera.statistics()
    assert stats.grabbing and stats.frames >= 3 and stats.failed_grabs == 0


@pytest.mark.parametrize("pixel_format", ["Mono8", "BGR8Packed", "BayerRG8"])
def test_every_pixel_format_arrives_as_rgb(camera: PylonCamera, frames: Frames,
                                           scene: tuple[Path, np.ndarray],
                                           pixel_format: str) -> None:
    camera.configure(PylonSettings(width=256, height=128, pixel_format=pixel_format))
    camera.start()
    image = frames.next_after(0)
    assert image.shape == (128, 256, 3) and image.dtype == np.uint8
    expected = scene[1][:128, :256].astype(int)
    if pixel_format == "Mono8":
        assert np.array_equal(image[..., 0], image[..., 1])
        gray = cv2.cvtColor(scene[1][:128, :256], cv2.COLOR_RGB2GRAY).astype(int)
        assert np.abs(image[..., 0].astype(int) - gray).mean() < 3
    elif pixel_format == "BGR8Packed":
        assert np.array_equal(image, scene[1][:128, :256])
    else:  # demosaiced: close to the scene away from the sharp block edges
        assert np.abs(image.astype(int) - expected).mean() < 12


def test_the_emulator_follows_a_changed_image_file(
        camera: PylonCamera, frames: Frames, scene: tuple[Path, np.ndarray]) -> None:
    camera.configure(PylonSettings(width=896, height=896, pixel_format="RGB8Packed"))
    camera.start()
    assert np.array_equal(frames.next_after(0), scene[1][:896, :896])
    changed = scene_image(seed=7)
    write_image(scene[0], changed)
    wait_for(lambda: (image := frames.newest()) is not None
             and np.array_equal(image, changed[:896, :896]))
    assert camera.statistics().scene_reloads >= 1


def test_max_gain_without_a_limit_node_is_kept_and_clamps(camera: PylonCamera) -> None:
    camera.configure(PylonSettings(gain_db=20.0))
    lowered = camera.apply(PylonSettings(max_gain_db=10.0))
    assert (lowered.max_gain_db, lowered.gain_db) == (10.0, 10.0)  # the gain came down with it
    with pytest.raises(SettingsError, match="above max_gain_db"):
        camera.apply(PylonSettings(gain_db=12.0))
    assert camera.apply(PylonSettings(gain_db=8.0)).gain_db == 8.0
    assert camera.apply(PylonSettings(max_exposure_us=2000)).exposure_us == 2000


def test_auto_adjust_and_no_auto_focus(camera: PylonCamera) -> None:
    assert camera.auto_adjust() == {"ExposureAuto": "Once", "GainAuto": "Once"}
    with pytest.raises(NotSupported, match="auto focus is not supported by this camera"):
        camera.auto_focus()


def test_a_removed_camera_is_reported_once(camera: PylonCamera,
                                           frames: Frames) -> None:
    camera.start()
    frames.next_after(0)
    camera.unplug_emulated()
    wait_for(lambda: frames.lost)
    assert frames.lost == ["the camera was removed"]
    with pytest.raises(DeviceUnavailable):
        camera.apply(PylonSettings(gain_db=1.0))
    assert frames.lost == ["the camera was removed"]


def test_a_camera_that_is_not_there_is_unavailable() -> None:
    cam = PylonCamera(PylonTarget(device_user_name="NO_SUCH_CAM"), on_frame=lambda i, t: None,
                      on_lost=lambda r: None, now_us=time.monotonic_ns, name="ghost")
    with pytest.raises(DeviceUnavailable, match="no camera with DeviceUserID 'NO_SUCH_CAM'"):
        cam.open()
    cam.close()
