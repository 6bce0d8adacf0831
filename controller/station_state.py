"""What a station shows a line PLC or SCADA: the last inspection, counts, pass rate, coaching.

Pure values and functions: the gateway actors feed bus events in and publish the result
over Modbus and OPC-UA. Counts are cumulative since Takt started.

The one-hour pass rate is kept in minute buckets of the inspections' own event time, so
memory is bounded (at most 60 buckets) whatever the inspection rate. The window is the
newest minute seen (by an inspection or by `refresh`) and the 59 minutes before it, so
it holds between 59 and 60 minutes of history; a result older than that still counts in
the totals but not in the rate.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeAlias

import msgspec

__all__ = [
    "BUCKET_US",
    "WINDOW_BUCKETS",
    "CoachingState",
    "Decision",
    "InspectionResult",
    "InvalidStationInput",
    "PassRateWindow",
    "StationState",
    "StepState",
    "SystemStatus",
    "apply_coaching",
    "apply_inspection",
    "apply_system_status",
    "changed_fields",
    "parse_coaching",
    "parse_inspection",
    "refresh",
    "tick_heartbeat",
]

Decision: TypeAlias = Literal["none", "pass", "fail", "uncertain"]
ResultDecision: TypeAlias = Literal["pass", "fail", "uncertain"]
SystemStatus: TypeAlias = Literal["unknown", "healthy", "degraded", "unhealthy"]
StepState: TypeAlias = Literal["idle", "active", "complete", "paused", "interrupted", "aborted"]

BUCKET_US = 60_000_000  # one minute
WINDOW_BUCKETS = 60
_HEARTBEAT_MOD = 0x10000


class InvalidStationInput(ValueError):
    """An inspection or coaching event whose data does not have the documented shape."""


class InspectionResult(msgspec.Struct, frozen=True, kw_only=True):
    """The data of `inspection.<station>.result`."""

    decision: ResultDecision
    confidence: Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
    objects_found: Annotated[int, msgspec.Meta(ge=0)]
    # The upper bound rejects inf and NaN, and keeps the value representable as float32.
    cycle_time_ms: Annotated[float, msgspec.Meta(ge=0.0, le=1e9)]
    ts_us: Annotated[int, msgspec.Meta(ge=0)]


class CoachingState(msgspec.Struct, frozen=True, kw_only=True):
    """The data of `coaching.<station>.state`."""

    assembly: str | None
    step: Annotated[int, msgspec.Meta(ge=0)] | None
    step_state: StepState
    release_allowed: bool


class StationState(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a gateway publishes about one station."""

    last_decision: Decision = "none"
    last_confidence: float = 0.0
    objects_found: int = 0
    cycle_time_ms: float = 0.0
    pass_count: int = 0
    fail_count: int = 0
    uncertain_count: int = 0
    pass_rate_1h: float = 0.0  # percent, 0..100; 0 when the window holds no result
    last_inspection_us: int | None = None  # event time of the last result
    system_status: SystemStatus = "unknown"
    current_assembly: str | None = None
    current_step: int | None = None  # 0-based
    step_state: StepState = "idle"
    release_allowed: bool = False
    heartbeat: int = 0  # uint16, wraps; lets the PLC watchdog Takt


class PassRateWindow(msgspec.Struct, frozen=True, kw_only=True):
    """Passes and results per minute over the last hour; immutable, at most 60 buckets."""

    head: int | None = None  # newest minute index seen
    buckets: tuple[tuple[int, int, int], ...] = ()  # (minute, passes, results), ascending

    @property
    def passes(self) -> int:
        return sum(b[1] for b in self.buckets)

    @property
    def results(self) -> int:
        return sum(b[2] for b in self.buckets)

    def rate(self) -> float:
        """Percent of results in the window that passed; 0.0 when there are none."""
        results = self.results
        return 100.0 * self.passes / results if results else 0.0

    def advance(self, now_us: int) -> PassRateWindow:
        """Move the window's end to now_us's minute (never back), dropping what falls out."""
        minute = now_us // BUCKET_US
        if self.head is not None and minute <= self.head:
            return self
        oldest = minute - WINDOW_BUCKETS + 1
        return PassRateWindow(head=minute, buckets=tuple(b for b in self.buckets if b[0] >= oldest))

    def add(self, ts_us: int, passed: bool) -> PassRateWindow:
        """Count one result at its event time; one older than the window is not counted."""
        window = self.advance(ts_us)
        minute = ts_us // BUCKET_US
        head = minute if window.head is None else window.head  # advance always sets it
        if minute <= head - WINDOW_BUCKETS:
            return window
        buckets = list(window.buckets)
        for i, (m, passes, results) in enumerate(buckets):
            if m == minute:
                buckets[i] = (m, passes + passed, results + 1)
                break
            if m > minute:
                buckets.insert(i, (minute, int(passed), 1))
                break
        else:
            buckets.append((minute, int(passed), 1))
        return PassRateWindow(head=head, buckets=tuple(buckets))


def parse_inspection(data: Any) -> InspectionResult:
    """Validate an inspection event's data (a dict or a struct with those attributes)."""
    return _convert(data, InspectionResult, "inspection result")


def parse_coaching(data: Any) -> CoachingState:
    """Validate a coaching event's data (a dict or a struct with those attributes)."""
    return _convert(data, CoachingState, "coaching state")


def _convert(data: Any, cls: type[Any], what: str) -> Any:
    try:
        return msgspec.convert(data, cls, from_attributes=True)
    except msgspec.ValidationError as exc:
        raise InvalidStationInput(f"invalid {what}: {exc}") from None


def apply_inspection(
    state: StationState, window: PassRateWindow, result: InspectionResult
) -> tuple[StationState, PassRateWindow]:
    """The state after one more inspection result, and the window that counted it."""
    window = window.add(result.ts_us, result.decision == "pass")
    return msgspec.structs.replace(
        state,
        last_decision=result.decision,
        last_confidence=result.confidence,
        objects_found=result.objects_found,
        cycle_time_ms=result.cycle_time_ms,
        pass_count=state.pass_count + (result.decision == "pass"),
        fail_count=state.fail_count + (result.decision == "fail"),
        uncertain_count=state.uncertain_count + (result.decision == "uncertain"),
        pass_rate_1h=window.rate(),
        last_inspection_us=result.ts_us,
    ), window


def refresh(
    state: StationState, window: PassRateWindow, now_us: int
) -> tuple[StationState, PassRateWindow]:
    """Let the pass rate age: results older than the hour before now_us drop out."""
    window = window.advance(now_us)
    rate = window.rate()
    if rate == state.pass_rate_1h:
        return state, window
    return msgspec.structs.replace(state, pass_rate_1h=rate), window


def apply_coaching(state: StationState, coaching: CoachingState) -> StationState:
    """The state after a coaching state change."""
    return msgspec.structs.replace(
        state,
        current_assembly=coaching.assembly,
        current_step=coaching.step,
        step_state=coaching.step_state,
        release_allowed=coaching.release_allowed,
    )


def apply_system_status(state: StationState, status: SystemStatus) -> StationState:
    """The state with the station's overall health status."""
    if status == state.system_status:
        return state
    return msgspec.structs.replace(state, system_status=status)


def tick_heartbeat(state: StationState) -> StationState:
    """One more heartbeat; the counter wraps at 65536."""
    return msgspec.structs.replace(state, heartbeat=(state.heartbeat + 1) % _HEARTBEAT_MOD)


def changed_fields(old: StationState, new: StationState) -> frozenset[str]:
    """Names of the fields whose values differ."""
    if old is new:
        return frozenset()
    return frozenset(
        name for name in new.__struct_fields__ if getattr(old, name) != getattr(new, name)
    )
