"""Decisions (pass / fail / uncertain), what is kept, the stream gate and the alert rules."""

from __future__ import annotations

from itertools import pairwise

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.config import parse_config
from controller.config_check import ConfigError
from controller.inspection_rules import (
    AlertKind,
    AlertWatch,
    Decision,
    Severity,
    StreamGate,
    area_mm2,
    decide,
    keeps_image,
)
from controller.inspector_config import InspectorConfig

LABELS = ["empty_rail", "contactor", "contactor_on_rail", "screws_tight", "missing_screw",
          "misplaced", "scratch"]
DEFECTS = ("missing_screw", "misplaced", "scratch")
confidences = st.floats(0.0, 1.0, allow_nan=False)
thresholds = st.floats(0.0, 1.0, allow_nan=False)


def test_the_demo_labels_with_the_default_thresholds() -> None:
    c = InspectorConfig()
    assert decide("screws_tight", 0.95, c) is Decision.PASS
    assert decide("screws_tight", 0.79, c) is Decision.UNCERTAIN
    assert decide("scratch", 0.6, c) is Decision.FAIL
    assert decide("scratch", 0.59, c) is Decision.UNCERTAIN
    assert decide("misplaced", 0.99, c) is Decision.FAIL


def test_good_labels_narrow_what_may_pass() -> None:
    c = InspectorConfig(good_labels=("screws_tight",))
    assert decide("screws_tight", 0.9, c) is Decision.PASS
    assert decide("empty_rail", 0.99, c) is Decision.UNCERTAIN  # expected? no: a person looks
    assert decide("scratch", 0.99, c) is Decision.FAIL


@given(st.sampled_from(LABELS), confidences, thresholds, thresholds)
def test_decide_follows_the_rule(label: str, confidence: float, pass_t: float,
                                 fail_t: float) -> None:
    c = InspectorConfig(pass_threshold=pass_t, fail_threshold=fail_t, defect_labels=DEFECTS)
    decision = decide(label, confidence, c)
    if label in DEFECTS:
        expected = Decision.FAIL if confidence >= fail_t else Decision.UNCERTAIN
    else:
        expected = Decision.PASS if confidence >= pass_t else Decision.UNCERTAIN
    assert decision is expected


@given(st.sampled_from(LABELS), confidences, confidences)
def test_more_confidence_never_makes_a_decision_less_certain(label: str, a: float,
                                                             b: float) -> None:
    c = InspectorConfig()
    low, high = sorted((a, b))
    if decide(label, low, c) is not Decision.UNCERTAIN:
        assert decide(label, high, c) is decide(label, low, c)


def test_keep_images_levels() -> None:
    table = {
        "none": set(),
        "fail": {Decision.FAIL},
        "uncertain": {Decision.FAIL, Decision.UNCERTAIN},
        "all": {Decision.FAIL, Decision.UNCERTAIN, Decision.PASS},
    }
    for keep, kept in table.items():
        assert {d for d in Decision if keeps_image(d, keep)} == kept


def test_area_needs_a_box_and_a_scale() -> None:
    assert area_mm2((10, 20, 30, 60), 0.5) == pytest.approx(20 * 40 * 0.25)
    assert area_mm2(None, 0.5) is None
    assert area_mm2((0, 0, 1, 1), None) is None


@given(st.floats(0.5, 120), st.lists(st.integers(0, 50_000), min_size=1, max_size=200))
def test_stream_gate_never_passes_more_than_fps(fps: float, steps: list[int]) -> None:
    gate = StreamGate(fps)
    now = 0
    passed: list[int] = []
    for step in steps:
        now += step
        if gate.allow(now):
            passed.append(now)
    assert passed  # the first one always passes
    period = round(1e6 / fps)
    # Never two passes closer than half a period: no burst after a pause.
    assert all(b - a >= period // 2 for a, b in pairwise(passed))


@given(st.floats(1, 60), st.integers(1, 10))
def test_stream_gate_keeps_the_rate_of_a_faster_steady_camera(fps: float, faster: int) -> None:
    gate = StreamGate(fps)
    interval = round(1e6 / fps / (faster + 0.5))
    frames = range(0, 10_000_000, interval)  # ten seconds of frames
    passed = sum(gate.allow(t) for t in frames)
    # The rate of the gate's whole-microsecond period: 1e6 / round(1e6 / fps) differs from
    # fps by under 0.002 %, which may still tip the count of a ten-second window by one.
    rate = 1e6 / round(1e6 / fps)
    assert rate * 10 - 1 <= passed <= rate * 10 + 1


def test_stream_gate_zero_passes_everything() -> None:
    gate = StreamGate(0)
    assert all(gate.allow(5) for _ in range(100))


# ---- alerts ------------------------------------------------------------------------------------


def test_consecutive_fails_raise_once_and_clear_on_a_pass() -> None:
    watch = AlertWatch(InspectorConfig(consecutive_fails=3, pass_rate_window=1000))
    changes = [watch.observe(Decision.FAIL) for _ in range(6)]
    raised = [c for batch in changes for c in batch]
    assert len(raised) == 1
    assert raised[0].raised and raised[0].kind is AlertKind.CONSECUTIVE_FAILS
    assert raised[0].severity is Severity.ERROR
    assert "3 inspections in a row" in raised[0].message
    assert changes[2] == [raised[0]]  # on the third fail, not before
    cleared = watch.observe(Decision.PASS)
    assert [(c.kind, c.raised) for c in cleared] == [(AlertKind.CONSECUTIVE_FAILS, False)]
    again = [c for _ in range(3) for c in watch.observe(Decision.FAIL)]
    assert [(c.kind, c.raised) for c in again] == [(AlertKind.CONSECUTIVE_FAILS, True)]


def test_pass_rate_waits_for_a_full_window() -> None:
    watch = AlertWatch(InspectorConfig(pass_rate_window=4, pass_rate_threshold=0.75,
                                       consecutive_fails=0))
    assert watch.observe(Decision.FAIL) == []  # 0% of one inspection is not a rate yet
    assert watch.observe(Decision.PASS) == []
    assert watch.observe(Decision.PASS) == []
    raised = watch.observe(Decision.PASS)  # 3/4 = 75%: at the threshold, not below
    assert raised == []
    raised = watch.observe(Decision.UNCERTAIN)  # window P P P U: 75%
    assert raised == []
    raised = watch.observe(Decision.FAIL)  # P P U F: 50%
    assert [(c.kind, c.raised, c.severity) for c in raised] == [
        (AlertKind.PASS_RATE, True, Severity.WARNING)]
    assert "50%" in raised[0].message and "75%" in raised[0].message


def test_model_and_camera_errors_raise_once_and_clear_on_recovery() -> None:
    watch = AlertWatch(InspectorConfig())
    first = watch.error(AlertKind.MODEL_ERROR, "inference failed")
    assert [(c.kind, c.raised) for c in first] == [(AlertKind.MODEL_ERROR, True)]
    assert watch.error(AlertKind.MODEL_ERROR, "inference failed again") == []
    assert watch.recovered(AlertKind.CAMERA_ERROR, "frames again") == []
    back = watch.recovered(AlertKind.MODEL_ERROR, "inference works")
    assert [(c.kind, c.raised) for c in back] == [(AlertKind.MODEL_ERROR, False)]
    assert watch.recovered(AlertKind.MODEL_ERROR, "still fine") == []


def test_alerts_active_at_start_are_not_raised_again() -> None:
    watch = AlertWatch(InspectorConfig(consecutive_fails=1),
                       active=frozenset({AlertKind.CONSECUTIVE_FAILS}))
    assert watch.observe(Decision.FAIL) == []
    assert [c.raised for c in watch.observe(Decision.PASS)] == [False]


@given(st.lists(st.sampled_from(list(Decision)), max_size=300), st.integers(1, 12),
       st.floats(0.05, 1.0), st.integers(0, 6))
@settings(max_examples=200, deadline=None)
def test_alerts_match_a_recount_of_the_decisions(decisions: list[Decision], window: int,
                                                 threshold: float, k: int) -> None:
    watch = AlertWatch(InspectorConfig(pass_rate_window=window, pass_rate_threshold=threshold,
                                       consecutive_fails=k))
    raised = {kind: False for kind in AlertKind}
    rate_alert = False
    for i, decision in enumerate(decisions):
        for change in watch.observe(decision):
            # Raise and clear alternate: never raised twice, never cleared when not raised.
            assert raised[change.kind] is not change.raised
            raised[change.kind] = change.raised
        seen = decisions[: i + 1]
        streak = 0
        for d in reversed(seen):
            if d is not Decision.FAIL:
                break
            streak += 1
        assert raised[AlertKind.CONSECUTIVE_FAILS] == (k > 0 and streak >= k)
        if len(seen) >= window:
            rate = sum(d is Decision.PASS for d in seen[-window:]) / window
            if rate < threshold:
                rate_alert = True
            elif rate >= min(1.0, threshold + 0.05):
                rate_alert = False
            assert watch.pass_rate == pytest.approx(rate)
        assert raised[AlertKind.PASS_RATE] == rate_alert


# ---- the config section --------------------------------------------------------------------


def _station(inspector: str) -> str:
    return f'[station]\nid = "s"\nname = "S"\n\n[inspector]\n{inspector}\n'


def test_the_section_parses_with_its_defaults_and_values() -> None:
    config = parse_config(_station('camera = "cam1"\nstream_fps = 10\nprecision = "f16"\n'
                                   'keep_images = "all"\nrequests = 4'), "s.toml").inspector
    assert config.camera == "cam1" and config.stream_fps == 10 and config.precision == "f16"
    assert config.keep_images == "all" and config.requests == 4
    assert config.pass_threshold == 0.8 and config.fail_threshold == 0.6
    assert config.defect_labels == ("missing_screw", "misplaced", "scratch")


@pytest.mark.parametrize(("text", "key"), [
    ('precision = "int4"', "inspector.precision"),
    ("requests = 9", "inspector.requests"),
    ("pass_threshold = 1.5", "inspector.pass_threshold"),
    ('keep_images = "some"', "inspector.keep_images"),
    ("stream_fps = 5", "inspector.stream_fps"),
    ('good_labels = ["scratch"]', "inspector.good_labels"),
])
def test_bad_values_are_reported_under_their_key(text: str, key: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_config(_station(text), "s.toml")
    assert [issue.key for issue in error.value.issues] == [key]


def test_config_round_trips_through_json() -> None:
    config = InspectorConfig(camera="cam1", defect_labels=("a", "b"))
    assert msgspec.json.decode(msgspec.json.encode(config), type=InspectorConfig) == config
