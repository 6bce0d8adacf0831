"""Station state: counts, last values, the rolling one-hour pass rate, input validation."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from controller.station_state import (
    BUCKET_US,
    WINDOW_BUCKETS,
    CoachingState,
    InspectionResult,
    InvalidStationInput,
    PassRateWindow,
    StationState,
    apply_coaching,
    apply_inspection,
    apply_system_status,
    changed_fields,
    parse_coaching,
    parse_inspection,
    refresh,
    tick_heartbeat,
)

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00Z, a minute boundary
MINUTE = BUCKET_US


def result(decision: str = "pass", ts_us: int = T0, **kw: object) -> InspectionResult:
    data = {"decision": decision, "confidence": 0.9, "objects_found": 2,
            "cycle_time_ms": 41.5, "ts_us": ts_us, **kw}
    return parse_inspection(data)


def test_counts_and_last_values_follow_each_result() -> None:
    state, window = StationState(), PassRateWindow()
    for i, decision in enumerate(["pass", "fail", "pass", "uncertain", "pass"]):
        state, window = apply_inspection(state, window, result(decision, T0 + i * 1_000_000,
                                                               confidence=i / 10))
    assert (state.pass_count, state.fail_count, state.uncertain_count) == (3, 1, 1)
    assert state.last_decision == "pass"
    assert state.last_confidence == 0.4
    assert state.last_inspection_us == T0 + 4_000_000
    assert state.objects_found == 2 and state.cycle_time_ms == 41.5
    assert state.pass_rate_1h == pytest.approx(60.0)


def test_a_fresh_state_shows_nothing_yet() -> None:
    state = StationState()
    assert state.last_decision == "none" and state.last_inspection_us is None
    assert state.pass_rate_1h == 0.0 and state.current_step is None
    assert PassRateWindow().rate() == 0.0


def test_pass_rate_forgets_results_older_than_the_hour() -> None:
    state, window = StationState(), PassRateWindow()
    state, window = apply_inspection(state, window, result("fail", T0))
    state, window = apply_inspection(state, window, result("pass", T0 + 30 * MINUTE))
    assert state.pass_rate_1h == pytest.approx(50.0)
    # The fail's minute is the 60th minute back at T0 + 59 min: still in the window...
    state, window = refresh(state, window, T0 + 59 * MINUTE + MINUTE - 1)
    assert state.pass_rate_1h == pytest.approx(50.0)
    # ...and out of it one minute later; counts are cumulative and stay.
    state, window = refresh(state, window, T0 + 60 * MINUTE)
    assert state.pass_rate_1h == pytest.approx(100.0)
    assert state.fail_count == 1
    state, window = refresh(state, window, T0 + 90 * MINUTE)
    assert state.pass_rate_1h == 0.0
    assert window.buckets == ()


def test_a_result_older_than_the_window_counts_but_does_not_rate() -> None:
    state, window = apply_inspection(StationState(), PassRateWindow(),
                                     result("pass", T0 + 2 * 60 * MINUTE))
    state, window = apply_inspection(state, window, result("fail", T0))
    assert state.fail_count == 1
    assert state.pass_rate_1h == pytest.approx(100.0)


def test_the_window_is_the_newest_minute_and_the_59_before_it() -> None:
    window = PassRateWindow().add(T0 + 60 * MINUTE, True)
    assert window.add(T0 + MINUTE, False).rate() == pytest.approx(50.0)
    assert window.add(T0 + MINUTE - 1, False).rate() == pytest.approx(100.0)


def test_time_never_moves_the_window_back() -> None:
    window = PassRateWindow().add(T0 + 10 * MINUTE, True)
    assert window.advance(T0) is window
    state, later = refresh(StationState(pass_rate_1h=100.0), window, T0)
    assert later.head == window.head and state.pass_rate_1h == 100.0


def _naive_rate(results: list[tuple[int, bool]], ticks: list[int]) -> float:
    """Rate over the results whose minute is within the 60 minutes ending at the newest seen."""
    head = max([ts // MINUTE for ts, _ in results] + [t // MINUTE for t in ticks])
    inside = [ok for ts, ok in results if head - WINDOW_BUCKETS < ts // MINUTE <= head]
    return 100.0 * sum(inside) / len(inside) if inside else 0.0


steps = st.lists(
    st.tuples(
        st.sampled_from(["pass", "fail", "uncertain", "tick"]),
        # Within about 2 hours, mostly right at bucket edges so window edges get hit often.
        st.one_of(
            st.integers(0, 130 * MINUTE),
            st.builds(lambda m, at: m * MINUTE + at, st.integers(0, 130),
                      st.sampled_from([0, 1, MINUTE - 1])),
        ),
    ),
    min_size=1,
    max_size=80,
)


@example([("pass", 60 * MINUTE), ("fail", 0)])  # exactly 60 minutes behind: out
@example([("fail", 0), ("tick", 60 * MINUTE - 1), ("tick", 60 * MINUTE)])
@settings(deadline=None)  # wall-clock limits flake on a loaded 2-core box
@given(steps)
def test_pass_rate_matches_a_naive_recount(events: list[tuple[str, int]]) -> None:
    state, window = StationState(), PassRateWindow()
    results: list[tuple[int, bool]] = []
    ticks: list[int] = []
    for kind, offset in events:
        ts = T0 + offset
        if kind == "tick":
            ticks.append(ts)
            state, window = refresh(state, window, ts)
        else:
            results.append((ts, kind == "pass"))
            state, window = apply_inspection(state, window, result(kind, ts))
        assert state.pass_rate_1h == pytest.approx(_naive_rate(results, ticks))
        assert len(window.buckets) <= WINDOW_BUCKETS
    assert state.pass_count == sum(1 for k, _ in events if k == "pass")
    assert state.fail_count + state.uncertain_count == sum(
        1 for k, _ in events if k in ("fail", "uncertain"))


def test_coaching_and_status_and_heartbeat() -> None:
    state = apply_coaching(StationState(), parse_coaching(
        {"assembly": "PUMP-7", "step": 2, "step_state": "active", "release_allowed": True}))
    assert (state.current_assembly, state.current_step, state.step_state,
            state.release_allowed) == ("PUMP-7", 2, "active", True)
    state = apply_coaching(state, CoachingState(assembly=None, step=None, step_state="idle",
                                                release_allowed=False))
    assert state.current_assembly is None and state.current_step is None
    assert apply_system_status(state, "degraded").system_status == "degraded"
    assert tick_heartbeat(StationState(heartbeat=65535)).heartbeat == 0
    assert tick_heartbeat(StationState(heartbeat=7)).heartbeat == 8


def test_changed_fields_names_what_differs() -> None:
    old = StationState()
    new = apply_inspection(old, PassRateWindow(), result("fail"))[0]
    assert changed_fields(old, new) == {
        "last_decision", "last_confidence", "objects_found", "cycle_time_ms", "fail_count",
        "last_inspection_us"}
    assert changed_fields(new, new) == frozenset()
    assert changed_fields(new, tick_heartbeat(new)) == {"heartbeat"}


@pytest.mark.parametrize("data, field", [
    ({"decision": "maybe", "confidence": 0.5, "objects_found": 0, "cycle_time_ms": 1.0,
      "ts_us": 1}, "decision"),
    ({"decision": "pass", "confidence": 1.5, "objects_found": 0, "cycle_time_ms": 1.0,
      "ts_us": 1}, "confidence"),
    ({"decision": "pass", "confidence": float("nan"), "objects_found": 0,
      "cycle_time_ms": 1.0, "ts_us": 1}, "confidence"),
    ({"decision": "pass", "confidence": 0.5, "objects_found": -1, "cycle_time_ms": 1.0,
      "ts_us": 1}, "objects_found"),
    ({"decision": "pass", "confidence": 0.5, "objects_found": 0,
      "cycle_time_ms": float("inf"), "ts_us": 1}, "cycle_time_ms"),
    ({"decision": "pass", "confidence": 0.5, "objects_found": 0, "cycle_time_ms": 1.0},
     "ts_us"),
    ("pass", "object"),
])
def test_bad_inspection_data_is_refused_with_the_field_named(data: object, field: str) -> None:
    with pytest.raises(InvalidStationInput, match=field):
        parse_inspection(data)


def test_bad_coaching_data_is_refused() -> None:
    with pytest.raises(InvalidStationInput, match="step_state"):
        parse_coaching({"assembly": "A", "step": 0, "step_state": "dancing",
                        "release_allowed": False})
    with pytest.raises(InvalidStationInput, match="step"):
        parse_coaching({"assembly": "A", "step": -1, "step_state": "idle",
                        "release_allowed": False})


def test_structs_with_the_same_attributes_are_accepted() -> None:
    given_struct = InspectionResult(decision="fail", confidence=0.2, objects_found=1,
                                    cycle_time_ms=3.0, ts_us=T0)
    assert parse_inspection(given_struct) == given_struct
