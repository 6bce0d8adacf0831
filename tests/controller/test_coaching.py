"""The coaching state machine: steps completed by their conditions, refusals that change
nothing, NOK rework, release only after an OK record, and properties over any input sequence."""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.assembly import ActionType, Assembly, Step, StepData
from controller.coaching import (
    LEGAL,
    Abort,
    Advance,
    CoachingState,
    Confirmed,
    Emit,
    Finish,
    Interrupt,
    Ocr,
    Outcome,
    Pause,
    Phase,
    Prediction,
    Progress,
    RecordFinished,
    Refused,
    Release,
    Resume,
    Scan,
    SetStep,
    Start,
    StepFinished,
    StepStarted,
    Tick,
    Tightening,
    WakeAt,
    WriteOutput,
    recovered,
    transition,
)
from sim.assemblies import CONTACTOR, completing_inputs

COMPLETING = completing_inputs()


class Run:
    """Feeds inputs at a rising time and keeps every effect."""

    def __init__(self, state: CoachingState | None = None) -> None:
        self.state = state or CoachingState()
        self.now = 1_000_000
        self.effects: list[Any] = []

    def feed(self, event: Any, advance_s: float = 0.5) -> tuple[Any, ...]:
        self.now += round(advance_s * 1_000_000)
        event = type(event)(**{**{f: getattr(event, f) for f in event.__struct_fields__},
                               "at_us": self.now})
        self.state, effects = transition(self.state, event)
        self.effects += effects
        return effects

    def of(self, kind: type) -> list[Any]:
        return [e for e in self.effects if isinstance(e, kind)]

    def emitted(self, kind: str) -> list[dict[str, Any]]:
        return [e.data for e in self.of(Emit) if e.kind == kind]


def start(run: Run, **kw: Any) -> None:
    effects = run.feed(Start(at_us=0, record_id="r1", assembly=CONTACTOR, **kw))
    assert not [e for e in effects if isinstance(e, Refused)], effects


def complete_step(run: Run, index: int) -> None:
    for event in COMPLETING[index]:
        run.feed(event, advance_s=2.5 if isinstance(event, Tick) else 0.5)


def test_a_whole_assembly_is_coached_step_by_step_and_released() -> None:
    run = Run()
    start(run, release_enabled=True)
    for index in range(len(CONTACTOR.steps)):
        assert (run.state.phase, run.state.step) == (Phase.STEP_ACTIVE, index)
        complete_step(run, index)
    assert run.state.phase is Phase.COMPLETE and run.state.outcome is Outcome.OK
    assert [d["step_index"] for d in run.emitted("step_advance")] == list(range(8))
    assert [d["step_index"] for d in run.emitted("step_complete")] == list(range(8))
    assert [r.result.ok for r in run.of(StepFinished)] == [True] * 8
    assert run.of(WriteOutput) == [WriteOutput(plc="line1", signal="lamp", value="true")]
    assert run.of(RecordFinished)[0].outcome is Outcome.OK
    assert run.of(Release) == [Release(record_id="r1")]
    assert run.emitted("assembly_complete")[0]["released"] is True
    assert run.state.variables == {"part": "C1234"}
    evidence = run.of(StepFinished)[2].result.evidence
    assert evidence == ("t1", "t2")  # the tightening ids are the step's evidence


def test_release_is_off_unless_enabled() -> None:
    run = Run()
    start(run)
    for index in range(len(CONTACTOR.steps)):
        complete_step(run, index)
    assert run.state.outcome is Outcome.OK and run.of(Release) == []


def test_ml_needs_consecutive_frames_at_the_minimum_confidence() -> None:
    run = Run()
    start(run)
    for label, confidence in (("contactor", 0.9), ("contactor", 0.5), ("contactor", 0.9),
                              ("relay", 0.99)):
        run.feed(Prediction(at_us=0, label=label, confidence=confidence))
    assert run.state.step == 0 and run.state.progress[0].count == 0
    run.feed(Prediction(at_us=0, label="contactor", confidence=0.8))
    run.feed(Prediction(at_us=0, label="contactor", confidence=0.81))
    assert run.state.step == 1
    assert len(run.emitted("prediction")) == 6


def test_a_start_while_coaching_is_refused_and_changes_nothing() -> None:
    run = Run()
    start(run)
    before = run.state
    effects = run.feed(Start(at_us=0, record_id="r2", assembly=CONTACTOR))
    assert effects == (Refused(reason="a coaching session is active (record r1); interrupt, "
                                      "complete or abort it first"),)
    assert run.state == before


def test_nok_tightenings_are_reworked_until_too_many_interrupt_and_fail_the_record() -> None:
    run = Run()
    start(run, release_enabled=True)
    complete_step(run, 0)
    complete_step(run, 1)
    run.feed(Tightening(at_us=0, wrench="w1", pset=1, ok=False, result_id="t1"))
    assert run.state.phase is Phase.STEP_ACTIVE  # one NOK is allowed: rework
    run.feed(Tightening(at_us=0, wrench="w1", pset=2, ok=True, result_id="x"))
    assert run.emitted("feedback")[-1]["reason"].startswith("tightening of pset 2")
    run.feed(Tightening(at_us=0, wrench="w1", pset=1, ok=False, result_id="t2"))
    assert run.state.phase is Phase.INTERRUPTED
    assert run.emitted("step_interrupt")[-1]["reason"] == \
        "2 NOK tightening(s) on this step, 1 allowed"
    run.feed(Resume(at_us=0))  # the supervisor lets the operator redo it
    complete_step(run, 2)
    assert run.of(StepFinished)[-1].result.reworked
    for index in range(3, len(CONTACTOR.steps)):
        complete_step(run, index)
    assert run.state.outcome is Outcome.NOK and run.of(Release) == []


def test_a_dwell_ends_by_time_and_asks_to_be_woken() -> None:
    run = Run()
    start(run)
    for index in range(6):
        complete_step(run, index)
    assert run.state.step == 6
    wake = run.of(WakeAt)[-1]
    assert wake.at_us == run.state.step_started_us + 2_000_000
    run.feed(Tick(at_us=0), advance_s=1.0)
    assert run.state.step == 6
    run.feed(Tick(at_us=0), advance_s=1.0)
    assert run.state.step == 7


def test_inputs_while_paused_change_nothing_and_resume_goes_on() -> None:
    run = Run()
    start(run)
    run.feed(Pause(at_us=0, reason="UPS low battery"))
    paused = run.state
    for event in COMPLETING[0]:
        run.feed(event)
    assert run.state == paused and run.state.phase is Phase.PAUSED
    assert isinstance(run.feed(Pause(at_us=0))[0], Refused)
    run.feed(Resume(at_us=0))
    complete_step(run, 0)
    assert run.state.step == 1


def test_manual_advance_waits_for_the_operator() -> None:
    run = Run()
    start(run, auto_advance=False)
    assert isinstance(run.feed(Advance(at_us=0))[0], Refused)
    complete_step(run, 0)
    assert (run.state.phase, run.state.step) == (Phase.STEP_COMPLETE, 0)
    run.feed(Advance(at_us=0))
    assert (run.state.phase, run.state.step) == (Phase.STEP_ACTIVE, 1)


def test_a_skipped_step_leaves_the_record_incomplete_and_unreleased() -> None:
    run = Run()
    start(run, release_enabled=True)
    run.feed(SetStep(at_us=0, step=1))
    assert run.of(StepFinished)[-1].result.skipped
    for index in range(1, len(CONTACTOR.steps)):
        complete_step(run, index)
    assert run.state.outcome is Outcome.INCOMPLETE and run.of(Release) == []
    assert run.of(RecordFinished)[0].reason == "steps not done: [0]"


def test_abort_and_finish_end_the_record() -> None:
    run = Run()
    start(run)
    run.feed(Abort(at_us=0, reason="part dropped"))
    assert run.state.phase is Phase.ABORTED
    assert run.of(RecordFinished)[-1].outcome is Outcome.ABORTED
    assert isinstance(run.feed(Finish(at_us=0))[0], Refused)
    run.feed(Start(at_us=0, record_id="r2", assembly=CONTACTOR))
    run.feed(Interrupt(at_us=0, reason="break"))
    run.feed(Finish(at_us=0))
    assert run.of(RecordFinished)[-1].outcome is Outcome.INCOMPLETE


def test_a_broken_assembly_is_refused_at_start() -> None:
    verify = StepData(action=ActionType.OCR_VERIFY, infos={"variable": "sn"})
    broken = Assembly(name="b", steps=(Step(name="v", data=(verify,)),))
    state, effects = transition(CoachingState(), Start(at_us=1, record_id="r",
                                                       assembly=broken))
    assert state == CoachingState() and "no earlier step captures" in effects[0].reason
    empty = Assembly(name="e")
    assert isinstance(transition(CoachingState(), Start(at_us=1, record_id="r",
                                                        assembly=empty))[1][0], Refused)


def test_a_recovered_session_continues_at_the_same_step() -> None:
    run = Run()
    start(run, release_enabled=True)
    for index in range(3):
        complete_step(run, index)
    s = run.state
    state, effects = recovered(CONTACTOR, "r1", s.step, started_us=s.started_us,
                               step_started_us=s.step_started_us, at_us=run.now,
                               variables=s.variables, results=s.results,
                               release_enabled=True)
    assert (state.phase, state.step) == (Phase.STEP_ACTIVE, 3)
    assert [e.data["step_index"] for e in effects if isinstance(e, Emit)] == [3]
    again = Run(state)
    again.now = run.now
    for index in range(3, len(CONTACTOR.steps)):
        complete_step(again, index)
    assert again.state.outcome is Outcome.OK and again.of(Release) == [Release(record_id="r1")]


# --- properties over any input sequence ------------------------------------------------------

_ANY_INPUT = st.one_of(
    st.sampled_from([e for step in COMPLETING for e in step]),
    st.builds(Prediction, at_us=st.just(0), label=st.sampled_from(["contactor", "relay"]),
              confidence=st.floats(0, 1)),
    st.builds(Tightening, at_us=st.just(0), wrench=st.just("w1"), pset=st.sampled_from([1, 2]),
              ok=st.booleans()),
    st.builds(Scan, at_us=st.just(0), text=st.sampled_from(["C1234", "C9999", "junk"])),
    st.builds(Ocr, at_us=st.just(0), text=st.sampled_from(["OK-1", "NO", "C1234"])),
    st.sampled_from([Advance(at_us=0), Pause(at_us=0), Resume(at_us=0), Interrupt(at_us=0),
                     Abort(at_us=0), Finish(at_us=0), Tick(at_us=0), Confirmed(at_us=0)]),
    st.builds(SetStep, at_us=st.just(0), step=st.integers(-1, 9)),
    st.builds(Start, at_us=st.just(0), record_id=st.sampled_from(["a", "b"]),
              assembly=st.just(CONTACTOR), auto_advance=st.booleans(),
              release_enabled=st.booleans(), step=st.integers(-1, 8)),
)


# "Progress" stands for the inputs that complete whatever step is active when it comes, so
# that sequences reach the end of the assembly often, not only its first steps.
PROGRESS = "progress"
_SEQUENCE = st.lists(st.one_of(st.just(PROGRESS), st.just(PROGRESS), st.just(PROGRESS), _ANY_INPUT),
                     min_size=10, max_size=80)


def _expand(run: Run, item: Any) -> list[Any]:
    if item != PROGRESS:
        return [item]
    if run.state.phase is Phase.STEP_ACTIVE:
        return COMPLETING[run.state.step]
    return [Resume(at_us=0)] if run.state.phase is not Phase.IDLE else [
        Start(at_us=0, record_id="a", assembly=CONTACTOR, release_enabled=True)]


@settings(max_examples=300, deadline=None)
@given(_SEQUENCE)
def test_no_input_sequence_breaks_the_rules(items: list[Any]) -> None:
    run = Run()
    done: dict[str, set[int]] = {}  # per record, the steps whose conditions held
    finished: set[str] = set()
    open_step: dict[str, int | None] = {}  # per record, the step begun and not yet finished
    for event in (e for item in items for e in _expand(run, item)):
        before = run.state
        effects = run.feed(event, advance_s=1.5)
        after = run.state
        assert after.phase == before.phase or after.phase in LEGAL[before.phase]
        if any(isinstance(e, Refused) for e in effects):
            assert after == before and len(effects) == 1  # a refusal changes nothing
        for e in effects:
            if isinstance(e, StepStarted):
                assert open_step.get(e.record_id) is None  # the one before was finished
                open_step[e.record_id] = e.index
            if isinstance(e, StepFinished):  # exactly once per step begun
                assert open_step.get(e.record_id) == e.result.index
                open_step[e.record_id] = None
            if isinstance(e, StepFinished) and e.result.ok:
                done.setdefault(e.record_id, set()).add(e.result.index)
            if isinstance(e, StepFinished) and not e.result.ok:
                done.setdefault(e.record_id, set()).discard(e.result.index)
            if isinstance(e, RecordFinished):
                assert e.record_id not in finished or e.record_id in ("a", "b")
                finished.add(e.record_id)
                if e.outcome is Outcome.OK:
                    assert done.get(e.record_id) == set(range(len(CONTACTOR.steps)))
                    assert after.failed is None
            if isinstance(e, Release):
                outcome = [x for x in effects if isinstance(x, RecordFinished)]
                assert outcome and outcome[0].outcome is Outcome.OK and before.release_enabled
        if after.phase in (Phase.STEP_ACTIVE, Phase.STEP_COMPLETE):
            assert after.assembly is not None and 0 <= after.step < len(after.assembly.steps)
            assert len(after.progress) == len(after.conditions)


@settings(max_examples=150, deadline=None)
@given(_SEQUENCE)
def test_a_session_recovered_from_its_stored_facts_continues_at_the_same_step(
        items: list[Any]) -> None:
    """What the store keeps of an active session (step, its start, variables, finished steps,
    why it failed) is enough: the recovered session is at the same step, and completing it
    from there gives the outcome the uninterrupted session would have."""
    run = Run()
    for event in (e for item in items for e in _expand(run, item)):
        run.feed(event, advance_s=1.5)
    s = run.state
    if s.phase is not Phase.STEP_ACTIVE:
        return
    assert s.assembly is not None and s.record_id is not None
    state, _ = recovered(s.assembly, s.record_id, s.step, started_us=s.started_us,
                         step_started_us=s.step_started_us, at_us=run.now,
                         variables=s.variables, results=s.results, failed=s.failed,
                         auto_advance=s.auto_advance, release_enabled=s.release_enabled)
    assert (state.phase, state.step, state.variables) == (s.phase, s.step, s.variables)
    fresh = Run(msgspec.structs.replace(s, progress=tuple(Progress() for _ in s.progress)))
    again = Run(state)
    for one in (fresh, again):
        one.now = run.now
        for _ in range(2 * len(CONTACTOR.steps)):  # a step whose input cannot fit stays
            if one.state.phase is Phase.STEP_COMPLETE:
                one.feed(Advance(at_us=0))
            if one.state.phase is not Phase.STEP_ACTIVE:
                break
            complete_step(one, one.state.step)
    assert (again.state.phase, again.state.step) == (fresh.state.phase, fresh.state.step)
    assert again.state.outcome == fresh.state.outcome


def test_ocr_takes_the_line_of_the_frame_that_the_step_wants() -> None:
    """A label carries a rating, a voltage and a serial: each OCR step takes the line it needs
    from the same frame's text, and says so when no line fits."""
    label = ("32A", "24V DC", "CT-000123")
    assembly = Assembly(id=9, name="Label", steps=(
        Step(name="scan", data=(StepData(action=ActionType.SCAN,
                                         infos={"capture": "serial"}),)),
        Step(name="rating", data=(StepData(action=ActionType.OCR_CAPTURE,
                                           infos={"variable": "rating", "pattern": r"\d{2}A"}),)),
        Step(name="coil", data=(StepData(action=ActionType.OCR_CHECK,
                                         infos={"pattern": r"24V ?DC"}),)),
        Step(name="serial", data=(StepData(action=ActionType.OCR_VERIFY,
                                           infos={"variable": "serial"}),)),
    ))
    run = Run()
    run.feed(Start(at_us=0, record_id="r9", assembly=assembly))
    run.feed(Scan(at_us=0, text="CT-000123"))
    run.feed(Ocr(at_us=0, text="24V DC", lines=("24V DC", "CT-000123")))  # no rating in view
    assert run.state.step == 1
    assert "'24V DC' / 'CT-000123'" in run.emitted("feedback")[-1]["reason"]
    for _ in range(3):
        run.feed(Ocr(at_us=0, text=label[0], lines=label))
    assert run.state.phase is Phase.COMPLETE and run.state.outcome is Outcome.OK
    assert run.state.variables == {"serial": "CT-000123", "rating": "32A"}
    assert [r.result.evidence for r in run.of(StepFinished)][1:] == [
        ("32A",), ("24V DC",), ("CT-000123",)]
