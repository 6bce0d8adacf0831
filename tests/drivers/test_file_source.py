"""Sources for stations without a Basler: a folder of images cycled at a frame rate (new files
picked up, broken ones counted and skipped), and an OpenCV capture (a video file here)."""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.errors import DeviceUnavailable
from drivers.vision.file_source import FolderSource, OpenCvSource, load_rgb
from tests.drivers.test_pylon_camera import Frames, write_image
from tests.waiting import wait_for


def solid(value: int, shape: tuple[int, int] = (48, 64)) -> np.ndarray:
    image = np.zeros((*shape, 3), np.uint8)
    image[..., 0] = value
    image[..., 2] = 255 - value
    return image


@pytest.fixture
def frames() -> Frames:
    return Frames()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    images = tmp_path / "images"
    images.mkdir()
    for i, value in enumerate((10, 20, 30)):
        write_image(images / f"{i}.png", solid(value))
    return images


@pytest.fixture
def source(folder: Path, frames: Frames) -> Iterator[FolderSource]:
    src = FolderSource(folder, 200.0, on_frame=frames.on_frame, on_lost=frames.on_lost,
                       now_us=lambda: 42, name="bench")
    src.open()
    yield src
    src.close()


def _red(frames: Frames) -> list[int]:
    with frames.lock:
        return [int(image[0, 0, 0]) for image, _ in frames.images]


def test_a_folder_is_cycled_in_name_order(source: FolderSource, frames: Frames) -> None:
    source.start()
    wait_for(lambda: frames.count >= 5)
    reds = _red(frames)
    after = {10: 20, 20: 30, 30: 10}
    assert all(b == after[a] for a, b in itertools.pairwise(reds))
    image, at_us = frames.images[-1]
    assert image.shape == (48, 64, 3) and image.dtype == np.uint8 and not image.flags.writeable
    assert at_us == 42
    assert source.images() == 3


def test_new_and_replaced_files_are_picked_up_and_broken_ones_skipped(
        source: FolderSource, frames: Frames, folder: Path) -> None:
    source.start()
    wait_for(lambda: frames.count >= 3)
    (folder / "3.png").write_bytes(b"not a png at all")
    write_image(folder / "4.png", solid(40))
    write_image(folder / "0.png", solid(50))
    wait_for(lambda: {40, 50} <= set(_red(frames)))
    wait_for(lambda: source.statistics().failed_grabs >= 1)
    stats = source.statistics()
    assert stats.grabbing and "3.png" in (stats.last_error or "")
    assert source.images() == 5


def test_a_folder_that_goes_away_is_lost_once(source: FolderSource, frames: Frames,
                                              folder: Path) -> None:
    source.start()
    wait_for(lambda: frames.count >= 1)
    shutil.rmtree(folder)
    wait_for(lambda: frames.lost)
    assert len(frames.lost) == 1 and "is gone" in frames.lost[0]
    assert not source.statistics().grabbing


def test_a_missing_folder_does_not_open(tmp_path: Path, frames: Frames) -> None:
    src = FolderSource(tmp_path / "nope", 10.0, on_frame=frames.on_frame,
                       on_lost=frames.on_lost, now_us=lambda: 0)
    with pytest.raises(DeviceUnavailable, match="no folder"):
        src.open()


def test_the_frame_rate_paces_the_folder(source: FolderSource, frames: Frames) -> None:
    with pytest.raises(ValueError, match="outside"):
        source.set_frame_rate(0)
    source.set_frame_rate(1000.0)
    source.start()
    wait_for(lambda: frames.count >= 20)  # a slow rate would not get here in the time


def test_an_opencv_video_file_loops(tmp_path: Path, frames: Frames) -> None:
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    assert writer.isOpened()
    for value in (0, 120, 240):
        writer.write(np.ascontiguousarray(solid(value)[:, :, ::-1]))
    writer.release()
    src = OpenCvSource(str(video), 200.0, on_frame=frames.on_frame, on_lost=frames.on_lost,
                       now_us=lambda: 7, name="cv")
    info = src.open()
    assert info.vendor == "OpenCV"
    src.start()
    try:
        wait_for(lambda: frames.count >= 7)  # more frames than the file has: it looped
    finally:
        src.close()
    nearest = [min((0, 120, 240), key=lambda v, r=r: abs(v - r)) for r in _red(frames)]
    assert all(abs(r - v) < 12 for r, v in zip(_red(frames), nearest, strict=True))
    assert len(set(nearest)) >= 2  # the frames of the file, in turn
    assert not frames.lost


def test_opencv_cannot_open_what_is_not_there(tmp_path: Path, frames: Frames) -> None:
    src = OpenCvSource(str(tmp_path / "missing.avi"), 10.0, on_frame=frames.on_frame,
                       on_lost=frames.on_lost, now_us=lambda: 0)
    with pytest.raises(DeviceUnavailable, match="cannot open"):
        src.open()


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300) | st.sampled_from([b"\x89PNG\r\n\x1a\n" + b"\0" * 40,
                                                  b"\xff\xd8\xff\xe0" + b"\0" * 40]))
def test_any_file_loads_as_an_image_or_none(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "any.png"
    path.write_bytes(data)
    image = load_rgb(path)
    assert image is None or (image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8)
