"""The sequencer's OCR reads: while a step waits for text on the camera, the inspector reads
the camera's newest frame again and again.

Each read is published by the inspector as `vision.<camera>.ocr` and reaches the sequencer as
a fact like any other, so a recorded session replays without a camera. This module only
decides when to ask: one read in flight at a time, the next `interval_s` after the answer, and
slower while the inspector cannot read (no camera frame, OCR switched off), logged once.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec

from actors.inspector_messages import ReadText
from actors.runtime import ActorUnavailable, Request, Runtime, tell

__all__ = ["ReadAgain", "TextReads"]

_RETRY_S = 5.0  # after a failed read: the camera or OCR may come back


class ReadAgain(msgspec.Struct, frozen=True):
    """Told to the sequencer when it may ask for the next read."""


class TextReads:
    def __init__(self, runtime: Runtime, me: Any, log: logging.Logger, *,
                 interval_s: float) -> None:
        self.runtime, self.me, self.log = runtime, me, log
        self.interval_s = interval_s
        self.busy = False  # a read is in flight, or the next one is scheduled
        self._failing: str | None = None
        self._timer: Any = None

    def want(self, camera: str | None) -> None:
        """Ask for a read of `camera` (None: the inspector's own) unless one is under way."""
        if self.busy:
            return
        self.busy = True
        try:
            ref = self.runtime.directory.get("inspector")
            tell(self.runtime, ref, Request(ReadText(camera=camera), self._answered))
        except ActorUnavailable as exc:
            self._answered(None, exc)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def ready(self) -> None:
        """The ReadAgain came: the next read may be asked for (on the sequencer's thread)."""
        self.busy = False
        self._timer = None

    def _answered(self, _: Any, error: BaseException | None) -> None:
        # Runs on the inspector's thread (or ours when it is gone): only schedule the next.
        delay = self.interval_s
        if error is not None:
            delay = _RETRY_S
            if str(error) != self._failing:
                self.log.warning("OCR step waits: the inspector cannot read text: %s", error)
            self._failing = str(error)
        else:
            self._failing = None
        runtime, me = self.runtime, self.me

        def again() -> None:
            try:
                tell(runtime, me, ReadAgain())
            except ActorUnavailable:
                pass  # the sequencer stopped

        self._timer = runtime.clock.call_later(delay, again)
