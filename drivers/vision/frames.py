"""Frames and the latest-frame slot a camera fills and its consumers take from.

A camera never queues frames: each new frame replaces the one before in its slot, and a
consumer that is slower than the camera simply sees fewer of them. Frames a consumer never
took are counted as overwritten, so the loss is visible rather than silent.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Frame", "FrameSlot", "FrameSlots"]


@dataclass(frozen=True, slots=True)
class Frame:
    camera: str
    seq: int  # per camera, from 1, never reused while the station runs
    at_us: int  # the station clock when the frame was grabbed
    image: np.ndarray  # H x W x 3 uint8, RGB, not writeable

    @property
    def frame_id(self) -> str:
        return f"{self.camera}:{self.seq}"


Listener = Callable[[Frame], None]


@dataclass(eq=False)
class FrameSlot:
    """The newest frame of one camera. Thread-safe; `put` never blocks on a consumer."""

    camera: str
    _lock: threading.Condition = field(default_factory=threading.Condition, repr=False)
    _frame: Frame | None = None
    _taken_seq: int = 0
    _listeners: list[Listener] = field(default_factory=list, repr=False)
    puts: int = 0
    overwritten: int = 0  # frames replaced before any consumer took them

    def put(self, frame: Frame) -> None:
        with self._lock:
            if self._frame is not None and self._frame.seq > self._taken_seq:
                self.overwritten += 1
            self._frame = frame
            self.puts += 1
            listeners = tuple(self._listeners)
            self._lock.notify_all()
        # Listeners run on the grabbing thread: they must only hand the frame on.
        for listener in listeners:
            listener(frame)

    def latest(self) -> Frame | None:
        """The newest frame, marked as taken."""
        with self._lock:
            if self._frame is not None:
                self._taken_seq = max(self._taken_seq, self._frame.seq)
            return self._frame

    def wait_newer(self, after_seq: int, timeout_s: float) -> Frame | None:
        """The newest frame with seq > after_seq, waiting up to timeout_s; None on timeout."""
        with self._lock:
            ok = self._lock.wait_for(
                lambda: self._frame is not None and self._frame.seq > after_seq, timeout_s)
            if not ok or self._frame is None:
                return None
            self._taken_seq = max(self._taken_seq, self._frame.seq)
            return self._frame

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Call `listener` with every new frame (on the camera's thread); returns the undo."""
        with self._lock:
            self._listeners.append(listener)

        def remove() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)
        return remove


class FrameSlots:
    """Camera name -> its slot. A slot outlives restarts of its camera's actor."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: dict[str, FrameSlot] = {}

    def slot(self, camera: str) -> FrameSlot:
        with self._lock:
            slot = self._slots.get(camera)
            if slot is None:
                slot = self._slots[camera] = FrameSlot(camera)
            return slot

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._slots)
