"""How a prediction becomes pass, fail or uncertain, what is kept of it, and when the
inspector raises or clears an alert. Pure: no I/O, no clock of its own."""

from __future__ import annotations

from collections import deque
from enum import StrEnum

import msgspec

from controller.inspector_config import InspectorConfig

__all__ = [
    "AlertChange",
    "AlertKind",
    "AlertWatch",
    "Decision",
    "Severity",
    "StreamGate",
    "area_mm2",
    "decide",
    "keeps_image",
]

PASS_RATE_CLEAR_MARGIN = 0.05
"""A pass-rate alert clears only this far above the threshold, so a rate that hovers on the
threshold does not raise a new alert every few inspections."""


class Decision(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    UNCERTAIN = "uncertain"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"


class AlertKind(StrEnum):
    PASS_RATE = "pass_rate"
    CONSECUTIVE_FAILS = "consecutive_fails"
    MODEL_ERROR = "model_error"
    CAMERA_ERROR = "camera_error"


_SEVERITY = {AlertKind.PASS_RATE: Severity.WARNING, AlertKind.CONSECUTIVE_FAILS: Severity.ERROR,
             AlertKind.MODEL_ERROR: Severity.ERROR, AlertKind.CAMERA_ERROR: Severity.WARNING}


def decide(label: str, confidence: float, config: InspectorConfig) -> Decision:
    """Pass: a good label won with >= pass_threshold; fail: a defect label won with >=
    fail_threshold; anything else needs a person to look (uncertain)."""
    if config.is_defect(label):
        return Decision.FAIL if confidence >= config.fail_threshold else Decision.UNCERTAIN
    if config.is_good(label) and confidence >= config.pass_threshold:
        return Decision.PASS
    return Decision.UNCERTAIN


_KEEP_RANK = {"none": 0, "fail": 1, "uncertain": 2, "all": 3}
_DECISION_RANK = {Decision.FAIL: 1, Decision.UNCERTAIN: 2, Decision.PASS: 3}


def keeps_image(decision: Decision, keep: str) -> bool:
    """Whether `keep_images` (none < fail < uncertain < all) keeps the image of a decision."""
    return _DECISION_RANK[decision] <= _KEEP_RANK[keep]


def area_mm2(box: tuple[int, int, int, int] | None, mm_per_pixel: float | None) -> float | None:
    """The area of a box in mm2 at a known scale; None without a box or a scale."""
    if box is None or mm_per_pixel is None:
        return None
    x1, y1, x2, y2 = box
    return abs(x2 - x1) * abs(y2 - y1) * mm_per_pixel * mm_per_pixel


class StreamGate:
    """At most `fps` passes per second (0: every one), judged on the caller's clock."""

    __slots__ = ("_next_us", "_period_us")

    def __init__(self, fps: float) -> None:
        self._period_us = round(1e6 / fps) if fps > 0 else 0
        self._next_us = 0

    def allow(self, now_us: int) -> bool:
        if now_us < self._next_us:
            return False
        # From the slot, not from now, so a camera's jitter does not halve the rate; but never
        # closer than half a period to this pass, so a pause is not followed by a burst.
        self._next_us = max(self._next_us + self._period_us, now_us + self._period_us // 2)
        return True


class AlertChange(msgspec.Struct, frozen=True, kw_only=True):
    """An alert to raise (`raised`) or the end of one (`raised` False)."""

    kind: AlertKind
    raised: bool
    severity: Severity
    title: str
    message: str


class AlertWatch:
    """The alert rules over the stream of live inspections and device errors.

    Each condition raises one alert when it starts and clears it when it ends; while it lasts,
    further inspections raise nothing. A condition that returns later raises a new alert.
    """

    def __init__(self, config: InspectorConfig, active: frozenset[AlertKind] = frozenset()
                 ) -> None:
        self.config = config
        self.active: set[AlertKind] = set(active)
        self._window: deque[bool] = deque(maxlen=config.pass_rate_window)
        self._passes = 0
        self._fails_in_row = 0

    @property
    def pass_rate(self) -> float | None:
        """Share of passes in the window once it is full; None before."""
        if len(self._window) < self.config.pass_rate_window:
            return None
        return self._passes / len(self._window)

    def observe(self, decision: Decision) -> list[AlertChange]:
        """Take one inspection's decision; the alerts it raises or clears."""
        passed = decision is Decision.PASS
        if len(self._window) == self._window.maxlen:
            self._passes -= self._window[0]
        self._window.append(passed)
        self._passes += passed
        self._fails_in_row = self._fails_in_row + 1 if decision is Decision.FAIL else 0
        return [*self._pass_rate(), *self._streak()]

    def error(self, kind: AlertKind, message: str) -> list[AlertChange]:
        """A model or camera failed; raises its alert unless it is already raised."""
        if kind in self.active:
            return []
        title = "Model error" if kind is AlertKind.MODEL_ERROR else "Camera error"
        return [self._raise(kind, title, message)]

    def recovered(self, kind: AlertKind, message: str) -> list[AlertChange]:
        """The model or camera works again; clears its alert if one is raised."""
        return [self._clear(kind, message)] if kind in self.active else []

    def _pass_rate(self) -> list[AlertChange]:
        rate = self.pass_rate
        if rate is None:
            return []
        threshold = self.config.pass_rate_threshold
        if AlertKind.PASS_RATE not in self.active and rate < threshold:
            return [self._raise(
                AlertKind.PASS_RATE, "Pass rate below threshold",
                f"Pass rate {rate:.0%} over the last {len(self._window)} inspections is below "
                f"the {threshold:.0%} target")]
        if AlertKind.PASS_RATE in self.active and rate >= min(
                1.0, threshold + PASS_RATE_CLEAR_MARGIN):
            return [self._clear(AlertKind.PASS_RATE,
                                f"Pass rate back at {rate:.0%} over the last "
                                f"{len(self._window)} inspections")]
        return []

    def _streak(self) -> list[AlertChange]:
        k = self.config.consecutive_fails
        if k and self._fails_in_row >= k and AlertKind.CONSECUTIVE_FAILS not in self.active:
            return [self._raise(AlertKind.CONSECUTIVE_FAILS, "Consecutive fails",
                                f"{self._fails_in_row} inspections in a row failed")]
        if self._fails_in_row == 0 and AlertKind.CONSECUTIVE_FAILS in self.active:
            return [self._clear(AlertKind.CONSECUTIVE_FAILS, "The run of fails ended")]
        return []

    def _raise(self, kind: AlertKind, title: str, message: str) -> AlertChange:
        self.active.add(kind)
        return AlertChange(kind=kind, raised=True, severity=_SEVERITY[kind], title=title,
                           message=message)

    def _clear(self, kind: AlertKind, message: str) -> AlertChange:
        self.active.discard(kind)
        return AlertChange(kind=kind, raised=False, severity=Severity.INFO,
                           title=f"{kind.value.replace('_', ' ').capitalize()} recovered",
                           message=message)
