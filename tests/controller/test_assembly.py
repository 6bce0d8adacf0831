"""Step data read into conditions, and the capture/verify dependencies between steps."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.assembly import (
    ActionType,
    Dwell,
    MlLabel,
    ScanCode,
    Step,
    StepData,
    Torque,
    allowed_moves,
    condition_of,
    dependency_problems,
    may_delete,
    step_problems,
)


def step(name: str, action: ActionType, **infos: str) -> Step:
    return Step(name=name, data=(StepData(action=action, infos=infos),))


CAPTURE = step("read serial", ActionType.OCR_CAPTURE, variable="serial", pattern=r"SN\d{6}")
VERIFY = step("check label", ActionType.OCR_VERIFY, variable="serial")
SCAN_VERIFY = step("scan label", ActionType.SCAN, verify="serial")
TIGHTEN = step("tighten", ActionType.TORQUE, pset="1", count="4")


def test_conditions_are_read_from_the_infos_with_defaults() -> None:
    ml = condition_of(StepData(action=ActionType.ML, infos={"label": "cover_on"}),
                      Step(name="s", minimum_predict=0.8))
    assert ml == MlLabel(label="cover_on", minimum_predict=0.8, frames=1)
    torque = condition_of(StepData(action=ActionType.TORQUE_ONLY, infos={"count": "3"}))
    assert torque == Torque(wrench=None, pset=None, count=3, max_nok=None)
    assert condition_of(StepData(action=ActionType.QA_DWELL, infos={"seconds": "2.5"})) == \
        Dwell(seconds=2.5)
    assert condition_of(StepData(action=ActionType.SCAN, infos={"capture": "box"})) == \
        ScanCode(pattern=None, capture="box", verify=None)


@pytest.mark.parametrize(("action", "infos", "says"), [
    (ActionType.ML, {}, "label is required"),
    (ActionType.ML, {"label": "x", "minimum_predict": "1.5"}, "outside 0..1"),
    (ActionType.TORQUE, {"pset": "1000"}, "outside 0..999"),
    (ActionType.TORQUE, {"count": "two"}, "not a whole number"),
    (ActionType.INPUT, {"plc": "line1"}, "signal is required"),
    (ActionType.SCAN, {"pattern": "(["}, "not a regular expression"),
    (ActionType.SCAN, {"capture": "a", "verify": "b"}, "one or the other"),
    (ActionType.OCR_VERIFY, {"variable": "9lives"}, "not a variable name"),
    (ActionType.QA_DWELL, {"seconds": "nan"}, "not a number"),
    (ActionType.QA_DWELL, {}, "give the dwell time"),
])
def test_step_data_that_cannot_be_coached_is_refused_with_its_info(
        action: ActionType, infos: dict[str, str], says: str) -> None:
    with pytest.raises(ValueError, match=says):
        condition_of(StepData(action=action, infos=infos))
    assert step_problems(Step(name="s", data=(StepData(action=action, infos=infos),)))


@given(action=st.sampled_from(list(ActionType)),
       infos=st.dictionaries(st.sampled_from(["label", "minimum_predict", "frames", "pset",
                                              "count", "max_nok", "plc", "signal", "value",
                                              "pattern", "capture", "verify", "variable",
                                              "seconds", "prompt", "wrench"]),
                             st.text(max_size=12)))
def test_any_infos_give_a_condition_or_a_value_error(action: ActionType,
                                                     infos: dict[str, str]) -> None:
    try:
        condition_of(StepData(action=action, infos=infos))
    except ValueError as exc:
        assert action.value in str(exc)


def test_a_verify_needs_an_earlier_capture() -> None:
    assert dependency_problems([CAPTURE, TIGHTEN, VERIFY, SCAN_VERIFY]) == []
    problems = dependency_problems([VERIFY, CAPTURE])
    assert problems == ["step 0 (check label) verifies 'serial', which no earlier step "
                        "captures"]
    assert dependency_problems([SCAN_VERIFY])  # a verifying scan counts the same


def test_delete_and_move_answers_keep_dependencies() -> None:
    steps = [CAPTURE, TIGHTEN, VERIFY]
    assert may_delete(steps, 1) == []  # the tightening is nobody's dependency
    assert may_delete(steps, 0)  # the capture is
    assert may_delete(steps, 2) == []
    assert allowed_moves(steps, 0) == [0, 1]  # the capture may not pass its verify
    assert allowed_moves(steps, 2) == [1, 2]
    assert allowed_moves(steps, 1) == [0, 1, 2]
    with pytest.raises(IndexError):
        may_delete(steps, 3)


def test_a_step_without_data_or_name_is_not_coachable() -> None:
    assert step_problems(Step(name="", data=())) == [
        "a step needs a name", "step '' has no step data: nothing would complete it"]
    assert step_problems(TIGHTEN) == []
