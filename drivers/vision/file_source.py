"""Frame sources for stations without a Basler camera: a folder of images, or what OpenCV's
`VideoCapture` opens (a device index, a stream URL, a video file).

Same interface as drivers/pylon/camera.py: `open()`, `start()` (a thread of its own calls
`on_frame(image, at_us)` with RGB uint8 read-only images, paced at `frame_rate`), `close()`,
and `on_lost(reason)` once when the source is gone. A file that does not decode is counted and
skipped, never fatal.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import msgspec
import numpy as np

from drivers.errors import DeviceUnavailable

__all__ = ["IMAGE_SUFFIXES", "FolderSource", "OpenCvSource", "SourceInfo", "SourceStatistics",
           "load_rgb"]

log = logging.getLogger("takt.drivers.vision")

FrameCallback = Callable[[np.ndarray, int], None]
LostCallback = Callable[[str], None]

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
_CACHED_IMAGES = 64  # a long folder is read from disk each cycle rather than held in memory
_RESCAN_S = 1.0  # a folder's listing is read again at least this often
_FAILED_READS_LOST = 30  # in a row, from a live OpenCV device


class SourceInfo(msgspec.Struct, frozen=True, kw_only=True):
    vendor: str
    model: str
    serial: str | None = None
    device_user_name: str | None = None
    emulated: bool = False


class SourceStatistics(msgspec.Struct, frozen=True, kw_only=True):
    grabbing: bool
    frames: int
    failed_grabs: int  # images that did not decode, reads that failed
    scene_reloads: int
    last_error: str | None


def load_rgb(path: Path) -> np.ndarray | None:
    """The image at `path` as RGB uint8 (read-only), or None when it does not decode."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        return None
    return _frozen(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


def _frozen(image: np.ndarray) -> np.ndarray:
    image.setflags(write=False)
    return image


class _PacedSource:
    """A thread that produces a frame every 1/frame_rate seconds until stopped or lost."""

    def __init__(self, frame_rate: float, *, on_frame: FrameCallback, on_lost: LostCallback,
                 now_us: Callable[[], int], name: str) -> None:
        self.frame_rate = frame_rate
        self.name = name
        self._on_frame = on_frame
        self._on_lost = on_lost
        self._now_us = now_us
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._lost: str | None = None
        self.frames = self.failed_grabs = 0
        self.last_error: str | None = None

    def set_frame_rate(self, frame_rate: float) -> None:
        if not 0 < frame_rate <= 1000:
            raise ValueError(f"frame_rate {frame_rate:g} is outside 0..1000")
        self.frame_rate = frame_rate

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._loop, name=f"grab-{self.name}",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stopping.set()
            thread.join(timeout=5)

    def statistics(self) -> SourceStatistics:
        return SourceStatistics(grabbing=self._thread is not None and self._lost is None,
                                frames=self.frames, failed_grabs=self.failed_grabs,
                                scene_reloads=0, last_error=self.last_error)

    def _loop(self) -> None:
        due = time.monotonic()
        while not self._stopping.wait(max(0.0, due - time.monotonic())):
            now = time.monotonic()
            # After a stall, carry on from now rather than catching up in a burst.
            due = max(due + 1.0 / self.frame_rate, now)
            try:
                image = self._next_image()
            except DeviceUnavailable as exc:
                self._report_lost(str(exc))
                return
            if image is not None:
                self.frames += 1
                try:
                    self._on_frame(image, self._now_us())
                except Exception:
                    log.exception("%s: the frame callback failed", self.name)

    def _next_image(self) -> np.ndarray | None:
        raise NotImplementedError

    def _failed(self, reason: str) -> None:
        self.failed_grabs += 1
        if reason != self.last_error:  # once per distinct problem, not per frame
            log.warning("%s: %s", self.name, reason)
        self.last_error = reason

    def _report_lost(self, reason: str) -> None:
        if self._lost is None:
            self._lost = self.last_error = reason
            try:
                self._on_lost(reason)
            except Exception:
                log.exception("%s: the lost callback failed", self.name)


class FolderSource(_PacedSource):
    """The images of a folder in name order, cycled; files added or replaced are picked up."""

    def __init__(self, folder: str | Path, frame_rate: float, *, on_frame: FrameCallback,
                 on_lost: LostCallback, now_us: Callable[[], int], name: str = "camera") -> None:
        super().__init__(frame_rate, on_frame=on_frame, on_lost=on_lost, now_us=now_us,
                         name=name)
        self.folder = Path(folder)
        self._files: list[Path] = []
        self._listed: tuple[int, float] | None = None  # (folder mtime, when listed)
        self._index = 0
        self._cache: dict[Path, tuple[tuple[int, int], np.ndarray]] = {}

    def open(self) -> SourceInfo:
        if not self.folder.is_dir():
            raise DeviceUnavailable(f"{self.name}: no folder {self.folder}")
        return SourceInfo(vendor="Takt", model="image folder")

    def close(self) -> None:
        self.stop()
        self._cache.clear()

    def images(self) -> int:
        return len(self._files)

    def _next_image(self) -> np.ndarray | None:
        self._rescan()
        if not self._files:
            return None
        path = self._files[self._index % len(self._files)]
        self._index += 1
        return self._load(path)

    def _rescan(self) -> None:
        try:
            mtime = self.folder.stat().st_mtime_ns
        except OSError as exc:
            raise DeviceUnavailable(f"{self.name}: the folder {self.folder} is gone") from exc
        now = time.monotonic()
        if self._listed is not None and self._listed[0] == mtime \
                and now - self._listed[1] < _RESCAN_S:
            return
        files = sorted(p for p in self.folder.iterdir()
                       if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
        self._files = files
        self._listed = (mtime, now)
        for gone in set(self._cache) - set(files):
            del self._cache[gone]

    def _load(self, path: Path) -> np.ndarray | None:
        try:
            st = path.stat()
        except OSError:
            return None  # removed since the listing: the next rescan drops it
        signature = (st.st_mtime_ns, st.st_size)
        cached = self._cache.get(path)
        if cached is not None and cached[0] == signature:
            return cached[1]
        image = load_rgb(path)
        if image is None:
            self._failed(f"{path.name} is not an image OpenCV can read")
            return None
        if len(self._cache) < _CACHED_IMAGES or path in self._cache:
            self._cache[path] = (signature, image)
        return image


class OpenCvSource(_PacedSource):
    """What `cv2.VideoCapture` opens: a device index ("0"), a stream URL or a video file (which
    loops)."""

    def __init__(self, device: str, frame_rate: float, *, on_frame: FrameCallback,
                 on_lost: LostCallback, now_us: Callable[[], int], name: str = "camera") -> None:
        super().__init__(frame_rate, on_frame=on_frame, on_lost=on_lost, now_us=now_us,
                         name=name)
        self.device = device
        self._capture: Any = None
        self._is_file = False
        self._failed_in_a_row = 0

    def open(self) -> SourceInfo:
        target: int | str = int(self.device) if self.device.isdigit() else self.device
        capture = cv2.VideoCapture(target)
        if not capture.isOpened():
            capture.release()
            raise DeviceUnavailable(f"{self.name}: OpenCV cannot open {self.device!r}")
        self._is_file = capture.get(cv2.CAP_PROP_FRAME_COUNT) > 0
        if not self._is_file:
            capture.set(cv2.CAP_PROP_FPS, self.frame_rate)
        self._capture = capture
        return SourceInfo(vendor="OpenCV", model=capture.getBackendName())

    def close(self) -> None:
        self.stop()
        capture, self._capture = self._capture, None
        if capture is not None:
            capture.release()

    def _next_image(self) -> np.ndarray | None:
        ok, bgr = self._capture.read()
        if not ok and self._is_file:
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)  # a video file loops
            ok, bgr = self._capture.read()
        if not ok or bgr is None:
            self._failed_in_a_row += 1
            self._failed(f"{self.device}: no frame")
            if self._failed_in_a_row >= _FAILED_READS_LOST:
                raise DeviceUnavailable(f"{self.name}: {self.device} gives no frames")
            return None
        self._failed_in_a_row = 0
        if bgr.ndim == 2:
            return _frozen(cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB))
        return _frozen(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
