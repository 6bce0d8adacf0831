"""The coaching state machine: `transition(state, input) -> (state, effects)`, pure.

A coaching session is one assembly record: the operator is guided through the assembly's steps
in order, each step active until every one of its conditions (controller/assembly.py) holds.
The sequencer actor feeds device facts and operator commands in as inputs and carries out the
effects (publish, write a PLC output, store step records and events, release the part); it
keeps no coaching logic of its own, so replay gives the same answers as the line did.

Phases and their legal moves are in one table, `LEGAL`; a command that is not legal in the
current phase is refused (`Refused`) and changes nothing. Device facts that arrive outside an
active step (a tightening while paused) change nothing and are not refused: devices do not
wait for the sequencer.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from enum import StrEnum
from typing import Any

import msgspec

from controller.assembly import (
    Assembly,
    Condition,
    Confirm,
    Dwell,
    InputSignal,
    MlLabel,
    OcrCapture,
    OcrCheck,
    OcrEntry,
    OcrVerify,
    OutputSignal,
    ScanCode,
    Torque,
    condition_of,
    dependency_problems,
)

__all__ = [
    "LEGAL",
    "Abort",
    "Advance",
    "CoachingState",
    "Confirmed",
    "Emit",
    "Entry",
    "Finish",
    "Input",
    "Interrupt",
    "Ocr",
    "Outcome",
    "OutputConfirmed",
    "Pause",
    "Phase",
    "Prediction",
    "Progress",
    "RecordFinished",
    "Refused",
    "Release",
    "Resume",
    "Scan",
    "SelectTool",
    "SetStep",
    "Signal",
    "Start",
    "StepFinished",
    "StepResult",
    "StepStarted",
    "Tick",
    "Tightening",
    "WakeAt",
    "WriteOutput",
    "recovered",
    "transition",
]


class Phase(StrEnum):
    IDLE = "idle"
    STEP_ACTIVE = "step_active"
    STEP_COMPLETE = "step_complete"  # waiting for Advance (auto-advance off)
    PAUSED = "paused"
    INTERRUPTED = "interrupted"
    COMPLETE = "complete"  # the record is finished (outcome says how)
    ABORTED = "aborted"


_SESSION = (Phase.STEP_ACTIVE, Phase.STEP_COMPLETE, Phase.PAUSED, Phase.INTERRUPTED)
_FINAL = (Phase.IDLE, Phase.COMPLETE, Phase.ABORTED)

LEGAL: dict[Phase, frozenset[Phase]] = {
    Phase.IDLE: frozenset({Phase.STEP_ACTIVE}),
    Phase.STEP_ACTIVE: frozenset({Phase.STEP_ACTIVE, Phase.STEP_COMPLETE, Phase.PAUSED,
                                  Phase.INTERRUPTED, Phase.COMPLETE, Phase.ABORTED}),
    Phase.STEP_COMPLETE: frozenset({Phase.STEP_ACTIVE, Phase.PAUSED, Phase.INTERRUPTED,
                                    Phase.COMPLETE, Phase.ABORTED}),
    Phase.PAUSED: frozenset({Phase.STEP_ACTIVE, Phase.STEP_COMPLETE, Phase.INTERRUPTED,
                             Phase.COMPLETE, Phase.ABORTED}),
    Phase.INTERRUPTED: frozenset({Phase.STEP_ACTIVE, Phase.STEP_COMPLETE, Phase.COMPLETE,
                                  Phase.ABORTED}),
    Phase.COMPLETE: frozenset({Phase.STEP_ACTIVE}),
    Phase.ABORTED: frozenset({Phase.STEP_ACTIVE}),
}
"""Every phase -> the phases one input may lead to (a phase to itself is always allowed)."""


class Outcome(StrEnum):
    OK = "ok"  # every step done, every condition held
    NOK = "nok"  # a step failed (too many NOK tightenings)
    INCOMPLETE = "incomplete"  # finished before every step was done
    ABORTED = "aborted"


# --- state -----------------------------------------------------------------------------------


class Progress(msgspec.Struct, frozen=True, kw_only=True):
    """How far one condition of the active step is."""

    done: bool = False
    count: int = 0  # consecutive ML frames, OK tightenings
    nok: int = 0  # NOK tightenings
    evidence: tuple[str, ...] = ()  # frame ids, tightening ids, signal values, codes


class StepResult(msgspec.Struct, frozen=True, kw_only=True):
    index: int
    ok: bool
    started_us: int
    ended_us: int
    evidence: tuple[str, ...]
    reworked: bool  # NOK tightenings were redone
    skipped: bool  # left before its conditions held (set step, finish, abort)


class CoachingState(msgspec.Struct, frozen=True, kw_only=True):
    phase: Phase = Phase.IDLE
    record_id: str | None = None
    assembly: Assembly | None = None
    step: int = 0
    conditions: tuple[Condition, ...] = ()
    progress: tuple[Progress, ...] = ()
    variables: dict[str, str] = {}
    started_us: int = 0
    step_started_us: int = 0
    resume_phase: Phase | None = None  # where Resume returns to (PAUSED, INTERRUPTED)
    results: tuple[StepResult, ...] = ()
    failed: str | None = None  # why the record can no longer be OK
    outcome: Outcome | None = None
    auto_advance: bool = True
    release_enabled: bool = False

    @property
    def active(self) -> bool:
        return self.phase in _SESSION


# --- inputs ----------------------------------------------------------------------------------


class _In(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    at_us: int


class Start(_In):
    record_id: str
    assembly: Assembly
    step: int = 0
    auto_advance: bool = True
    release_enabled: bool = False


class Prediction(_In):
    label: str
    confidence: float
    frame_id: str = ""


class Tightening(_In):
    wrench: str
    pset: int
    ok: bool
    result_id: str = ""


class Signal(_In):
    plc: str
    signal: str
    value: str


class OutputConfirmed(_In):
    plc: str
    signal: str
    value: str


class Scan(_In):
    text: str
    reader: str = ""


class Ocr(_In):
    """What OCR read on one frame: `text` is its first line, `lines` every line in reading
    order (a label carries a rating, a voltage and a serial; the step wants one of them)."""

    text: str
    frame_id: str = ""
    lines: tuple[str, ...] = ()

    def candidates(self) -> tuple[str, ...]:
        return self.lines or (self.text,)


class Entry(_In):
    variable: str
    text: str


class Confirmed(_In):
    by: str = ""


class Tick(_In):
    pass


class Advance(_In):
    pass


class SetStep(_In):
    step: int


class Pause(_In):
    reason: str = ""


class Resume(_In):
    pass


class Interrupt(_In):
    reason: str = ""


class Abort(_In):
    reason: str = ""


class Finish(_In):
    pass


Input = (Start | Prediction | Tightening | Signal | OutputConfirmed | Scan | Ocr | Entry
         | Confirmed | Tick | Advance | SetStep | Pause | Resume | Interrupt | Abort | Finish)


# --- effects ---------------------------------------------------------------------------------


class Emit(msgspec.Struct, frozen=True, kw_only=True):
    """A coaching message for HMIs: prediction, step_advance, step_complete, step_interrupt,
    assembly_complete, feedback (an input that did not fit), paused, resumed."""

    kind: str
    data: dict[str, Any]


class StepStarted(msgspec.Struct, frozen=True, kw_only=True):
    record_id: str
    index: int
    at_us: int


class StepFinished(msgspec.Struct, frozen=True, kw_only=True):
    record_id: str
    result: StepResult


class RecordFinished(msgspec.Struct, frozen=True, kw_only=True):
    record_id: str
    outcome: Outcome
    at_us: int
    reason: str | None


class WriteOutput(msgspec.Struct, frozen=True, kw_only=True):
    plc: str
    signal: str
    value: str


class SelectTool(msgspec.Struct, frozen=True, kw_only=True):
    """Ready the wrench for a TORQUE step: select the step's pset on it."""

    wrench: str
    pset: int


class Release(msgspec.Struct, frozen=True, kw_only=True):
    """Release the part to the line: only after a record completed OK with release on."""

    record_id: str


class WakeAt(msgspec.Struct, frozen=True, kw_only=True):
    """Feed a Tick at (or after) this time: a dwell ends then."""

    at_us: int


class Refused(msgspec.Struct, frozen=True, kw_only=True):
    """The input is not legal now; nothing changed."""

    reason: str


Effect = (Emit | StepStarted | StepFinished | RecordFinished | WriteOutput | SelectTool | Release
          | WakeAt | Refused)
Result = tuple[CoachingState, tuple[Effect, ...]]


# --- the machine -----------------------------------------------------------------------------


def transition(state: CoachingState, event: Input) -> Result:
    """The next state and what to do, for one input."""
    handler = _HANDLERS[type(event)]
    new, effects = handler(state, event)
    if new.phase != state.phase and new.phase not in LEGAL[state.phase]:  # pragma: no cover
        raise AssertionError(f"illegal move {state.phase} -> {new.phase} on {event!r}")
    return new, tuple(effects)


def recovered(assembly: Assembly, record_id: str, step: int, *, started_us: int,
              step_started_us: int, at_us: int, variables: dict[str, str],
              results: tuple[StepResult, ...], failed: str | None = None,
              auto_advance: bool = True, release_enabled: bool = False) -> Result:
    """The session as the store had it when the sequencer stopped: active at `step`, whose
    conditions start over (their partial progress was never stored), with the variables
    captured and steps finished before."""
    base = CoachingState(phase=Phase.IDLE, record_id=record_id, assembly=assembly,
                         started_us=started_us, variables=dict(variables), results=results,
                         failed=failed, auto_advance=auto_advance,
                         release_enabled=release_enabled)
    state, effects = _enter(base, step, at_us, announce_start=False)
    state = msgspec.structs.replace(state, step_started_us=step_started_us)
    return state, tuple(e for e in effects if not isinstance(e, WakeAt)) + _wake(state)


def _refuse(state: CoachingState, reason: str) -> tuple[CoachingState, list[Effect]]:
    return state, [Refused(reason=reason)]


def _start(state: CoachingState, e: Start) -> tuple[CoachingState, list[Effect]]:
    if state.active:
        return _refuse(state, f"a coaching session is active (record {state.record_id}); "
                              "interrupt, complete or abort it first")
    steps = e.assembly.steps
    if not steps:
        return _refuse(state, f"assembly {e.assembly.name!r} has no steps")
    if not 0 <= e.step < len(steps):
        return _refuse(state, f"no step {e.step}; the assembly has {len(steps)}")
    broken = dependency_problems(steps)
    if broken:
        return _refuse(state, f"the assembly cannot be coached: {broken[0]}")
    for index, step in enumerate(steps):
        for d in step.data:
            try:
                condition_of(d, step)
            except ValueError as exc:
                return _refuse(state, f"step {index} ({step.name}): {exc}")
    fresh = CoachingState(record_id=e.record_id, assembly=e.assembly, started_us=e.at_us,
                          auto_advance=e.auto_advance, release_enabled=e.release_enabled)
    entered, effects = _enter(fresh, e.step, e.at_us, announce_start=True)
    return entered, effects


def _enter(state: CoachingState, index: int, at_us: int, *,
           announce_start: bool = False) -> tuple[CoachingState, list[Effect]]:
    assert state.assembly is not None and state.record_id is not None
    step = state.assembly.steps[index]
    conditions = tuple(condition_of(d, step) for d in step.data)
    new = msgspec.structs.replace(
        state, phase=Phase.STEP_ACTIVE, step=index, conditions=conditions,
        progress=tuple(Progress() for _ in conditions), step_started_us=at_us,
        resume_phase=None)
    effects: list[Effect] = [
        StepStarted(record_id=state.record_id, index=index, at_us=at_us),
        Emit(kind="step_advance", data={**_ids(new), "step_id": step.id, "name": step.name,
                                         "description": step.description,
                                         "benchmark_s": step.benchmark_s,
                                         "actions": [d.action.value for d in step.data],
                                         "started": announce_start}),
    ]
    effects += [WriteOutput(plc=c.plc, signal=c.signal, value=c.value)
                for c in conditions if isinstance(c, OutputSignal)]
    effects += [SelectTool(wrench=c.wrench, pset=c.pset) for c in conditions
                if isinstance(c, Torque) and c.wrench is not None and c.pset is not None]
    effects += _wake(new)
    return new, effects


def _wake(state: CoachingState) -> tuple[WakeAt, ...]:
    return tuple(WakeAt(at_us=state.step_started_us + round(c.seconds * 1_000_000))
                 for c in state.conditions if isinstance(c, Dwell))


def _ids(state: CoachingState) -> dict[str, Any]:
    return {"assembly_record_id": state.record_id, "step_index": state.step}


# --- device facts ----------------------------------------------------------------------------


def _fact(state: CoachingState, event: Input) -> tuple[CoachingState, list[Effect]]:
    if state.phase is not Phase.STEP_ACTIVE:
        return state, []
    progress = list(state.progress)
    variables = state.variables
    effects: list[Effect] = []
    failed = state.failed
    interrupt: str | None = None
    for n, (condition, before) in enumerate(zip(state.conditions, progress, strict=True)):
        if before.done:
            continue
        moved = _match(condition, before, event, variables)
        if moved is None:
            continue
        p, feedback, captured = moved
        progress[n] = p
        if captured is not None:
            variables = {**variables, **captured}
        if feedback is not None:
            effects.append(Emit(kind="feedback", data={**_ids(state), "ok": False,
                                                        "reason": feedback}))
        # Only the NOK that crosses the limit interrupts; the rework after a Resume does not.
        if isinstance(condition, Torque) and condition.max_nok is not None \
                and p.nok > before.nok and p.nok > condition.max_nok and interrupt is None:
            interrupt = (f"{p.nok} NOK tightening(s) on this step, {condition.max_nok} "
                         "allowed")
            failed = failed or f"step {state.step}: {interrupt}"
    if isinstance(event, Prediction):
        effects.insert(0, Emit(kind="prediction", data={
            **_ids(state), "label": event.label, "confidence": event.confidence,
            "frame_id": event.frame_id}))
    new = msgspec.structs.replace(state, progress=tuple(progress), variables=variables,
                                  failed=failed)
    if interrupt is not None:
        new = msgspec.structs.replace(new, phase=Phase.INTERRUPTED,
                                      resume_phase=Phase.STEP_ACTIVE)
        return new, [*effects, Emit(kind="step_interrupt",
                                    data={**_ids(new), "reason": interrupt})]
    if all(p.done for p in new.progress):
        new, more = _step_done(new, event.at_us)
        effects += more
    return new, effects


_Match = tuple[Progress, str | None, dict[str, str] | None] | None


def _match(c: Condition, p: Progress, e: Input, variables: dict[str, str]) -> _Match:
    """How input e moves condition c on: (progress, feedback, captured) or None (unrelated)."""
    if isinstance(c, MlLabel) and isinstance(e, Prediction):
        if e.label == c.label and e.confidence >= c.minimum_predict:
            count = p.count + 1
            return _progress(p, count, count >= c.frames, e.frame_id), None, None
        return msgspec.structs.replace(p, count=0), None, None  # consecutive frames only
    if isinstance(c, Torque) and isinstance(e, Tightening):
        if c.wrench not in (None, e.wrench) or c.pset not in (None, e.pset):
            return p, f"tightening of pset {e.pset} on {e.wrench} is not this step's", None
        if not e.ok:
            return msgspec.structs.replace(p, nok=p.nok + 1,
                                           evidence=(*p.evidence, e.result_id)), None, None
        count = p.count + 1
        return _progress(p, count, count >= c.count, e.result_id), None, None
    if isinstance(c, InputSignal) and isinstance(e, Signal):
        if (e.plc, e.signal) != (c.plc, c.signal):
            return None
        held = _same(e.value, c.value)
        return (_progress(p, p.count, True, f"{e.plc}.{e.signal}={e.value}") if held else p,
                None, None)
    if isinstance(c, OutputSignal) and isinstance(e, OutputConfirmed):
        if (e.plc, e.signal) != (c.plc, c.signal):
            return None
        if _same(e.value, c.value):
            return _progress(p, p.count, True, f"{e.plc}.{e.signal}={e.value}"), None, None
        return p, f"{e.plc}.{e.signal} read back {e.value!r}, not {c.value!r}", None
    if isinstance(c, ScanCode) and isinstance(e, Scan):
        if c.pattern is not None and not re.fullmatch(c.pattern, e.text):
            return p, f"code {e.text!r} does not match {c.pattern!r}", None
        if c.verify is not None and variables.get(c.verify) != e.text:
            return p, f"code {e.text!r} is not the captured {c.verify}", None
        captured = {c.capture: e.text} if c.capture is not None else None
        return _progress(p, p.count, True, e.text), None, captured
    if isinstance(c, OcrCapture) and isinstance(e, Ocr):
        read = _line(e, lambda t: c.pattern is None or re.fullmatch(c.pattern, t) is not None)
        if read is None:
            return p, f"read {_shown(e)}, which does not match {c.pattern!r}", None
        return _progress(p, p.count, True, read), None, {c.variable: read}
    if isinstance(c, OcrVerify) and isinstance(e, Ocr):
        read = _line(e, lambda t: variables.get(c.variable) == t)
        if read is None:
            return p, f"read {_shown(e)}, not the captured {c.variable}", None
        return _progress(p, p.count, True, read), None, None
    if isinstance(c, OcrCheck) and isinstance(e, Ocr):
        read = _line(e, lambda t: re.fullmatch(c.pattern, t) is not None)
        if read is None:
            return p, f"read {_shown(e)}, which does not match {c.pattern!r}", None
        return _progress(p, p.count, True, read), None, None
    if isinstance(c, OcrEntry) and isinstance(e, Entry):
        if e.variable != c.variable:
            return None
        if c.pattern is not None and not re.fullmatch(c.pattern, e.text):
            return p, f"{e.text!r} does not match {c.pattern!r}", None
        return _progress(p, p.count, True, e.text), None, {c.variable: e.text}
    if isinstance(c, Confirm) and isinstance(e, Confirmed):
        return _progress(p, p.count, True, f"confirmed by {e.by or 'operator'}"), None, None
    if isinstance(c, Dwell) and isinstance(e, Tick):
        return None  # decided in _tick, which knows the step's start
    return None


def _line(e: Ocr, fits: Callable[[str], bool]) -> str | None:
    """The first line read on the frame that the step accepts."""
    return next((t for t in e.candidates() if fits(t)), None)


def _shown(e: Ocr) -> str:
    return " / ".join(repr(t) for t in e.candidates())


def _progress(p: Progress, count: int, done: bool, evidence: str) -> Progress:
    return Progress(done=done, count=count, nok=p.nok,
                    evidence=(*p.evidence, evidence) if evidence else p.evidence)


def _same(value: str, expected: str) -> bool:
    truth = {"true": "true", "1": "true", "on": "true", "false": "false", "0": "false",
             "off": "false"}
    a, b = value.strip().lower(), expected.strip().lower()
    if a in truth and b in truth:
        return truth[a] == truth[b]
    try:
        return float(a) == float(b)
    except ValueError:
        return value.strip() == expected.strip()


def _tick(state: CoachingState, e: Tick) -> tuple[CoachingState, list[Effect]]:
    if state.phase is not Phase.STEP_ACTIVE:
        return state, []
    progress = list(state.progress)
    for n, c in enumerate(state.conditions):
        if isinstance(c, Dwell) and not progress[n].done \
                and e.at_us >= state.step_started_us + round(c.seconds * 1_000_000):
            progress[n] = _progress(progress[n], 0, True, f"dwelt {c.seconds:g} s")
    new = msgspec.structs.replace(state, progress=tuple(progress))
    if new.progress != state.progress and all(p.done for p in new.progress):
        return _step_done(new, e.at_us)
    return new, []


def _step_done(state: CoachingState, at_us: int) -> tuple[CoachingState, list[Effect]]:
    """Every condition of the active step holds: record it, then advance or wait."""
    assert state.record_id is not None and state.assembly is not None
    result = _result(state, at_us, ok=True)
    effects: list[Effect] = [
        StepFinished(record_id=state.record_id, result=result),
        Emit(kind="step_complete", data={**_ids(state), "ok": True,
                                         "cycle_time_s": (at_us - state.step_started_us) / 1e6,
                                         "reworked": result.reworked}),
    ]
    new = msgspec.structs.replace(state, phase=Phase.STEP_COMPLETE,
                                  results=(*state.results, result))
    if state.auto_advance:
        new, more = _advance(new, at_us)
        effects += more
    return new, effects


def _result(state: CoachingState, at_us: int, *, ok: bool) -> StepResult:
    evidence = tuple(x for p in state.progress for x in p.evidence)
    reworked = any(p.nok for p in state.progress)
    return StepResult(index=state.step, ok=ok, started_us=state.step_started_us, ended_us=at_us,
                      evidence=evidence, reworked=reworked, skipped=not ok)


def _advance(state: CoachingState, at_us: int) -> tuple[CoachingState, list[Effect]]:
    assert state.assembly is not None
    following = state.step + 1
    if following < len(state.assembly.steps):
        return _enter(state, following, at_us)
    return _finish(state, at_us)


def _step_open(state: CoachingState) -> bool:
    """The current step has begun and not finished (its StepFinished is still to come)."""
    if state.phase is Phase.STEP_ACTIVE:
        return True
    return state.phase in (Phase.PAUSED, Phase.INTERRUPTED) and \
        state.resume_phase is not Phase.STEP_COMPLETE


def _finish(state: CoachingState, at_us: int) -> tuple[CoachingState, list[Effect]]:
    """End the record: its outcome, the release, the message."""
    assert state.assembly is not None and state.record_id is not None
    effects: list[Effect] = []
    if _step_open(state):
        result = _result(state, at_us, ok=False)  # left before its conditions held
        effects.append(StepFinished(record_id=state.record_id, result=result))
        state = msgspec.structs.replace(state, results=(*state.results, result))
    latest = {r.index: r.ok for r in state.results}
    done = all(latest.get(i, False) for i in range(len(state.assembly.steps)))
    if state.failed is not None:
        outcome, reason = Outcome.NOK, state.failed
    elif done:
        outcome, reason = Outcome.OK, None
    else:
        missing = [i for i in range(len(state.assembly.steps)) if not latest.get(i, False)]
        outcome, reason = Outcome.INCOMPLETE, f"steps not done: {missing}"
    new = msgspec.structs.replace(state, phase=Phase.COMPLETE, outcome=outcome,
                                  resume_phase=None)
    effects.append(RecordFinished(record_id=state.record_id, outcome=outcome, at_us=at_us,
                                  reason=reason))
    release = outcome is Outcome.OK and state.release_enabled
    effects.append(Emit(kind="assembly_complete", data={
        "assembly_record_id": state.record_id, "step_index": state.step,
        "outcome": outcome.value, "reason": reason, "released": release}))
    if release:
        effects.append(Release(record_id=state.record_id))
    return new, effects


# --- commands --------------------------------------------------------------------------------


def _advance_cmd(state: CoachingState, e: Advance) -> tuple[CoachingState, list[Effect]]:
    if state.phase is not Phase.STEP_COMPLETE:
        return _refuse(state, f"nothing to advance from while {state.phase.value}: the step is "
                              "not complete")
    return _advance(state, e.at_us)


def _set_step(state: CoachingState, e: SetStep) -> tuple[CoachingState, list[Effect]]:
    if state.phase not in (Phase.STEP_ACTIVE, Phase.STEP_COMPLETE, Phase.INTERRUPTED):
        return _refuse(state, f"no step to change while {state.phase.value}")
    assert state.assembly is not None and state.record_id is not None
    if not 0 <= e.step < len(state.assembly.steps):
        return _refuse(state, f"no step {e.step}; the assembly has "
                              f"{len(state.assembly.steps)}")
    effects: list[Effect] = []
    if _step_open(state):  # the current step ends where it is
        result = _result(state, e.at_us, ok=False)
        effects.append(StepFinished(record_id=state.record_id, result=result))
        state = msgspec.structs.replace(state, results=(*state.results, result))
    new, more = _enter(state, e.step, e.at_us)
    return new, effects + more


def _pause(state: CoachingState, e: Pause) -> tuple[CoachingState, list[Effect]]:
    if state.phase not in (Phase.STEP_ACTIVE, Phase.STEP_COMPLETE):
        return _refuse(state, f"nothing to pause while {state.phase.value}")
    new = msgspec.structs.replace(state, phase=Phase.PAUSED, resume_phase=state.phase)
    return new, [Emit(kind="paused", data={**_ids(state), "reason": e.reason})]


def _resume(state: CoachingState, e: Resume) -> tuple[CoachingState, list[Effect]]:
    if state.phase in (Phase.PAUSED, Phase.INTERRUPTED):
        # Back where it was: an active step goes on (a NOK step is reworked), a complete one
        # waits for Advance again; it is never finished a second time.
        back = state.resume_phase or Phase.STEP_ACTIVE
    else:
        return _refuse(state, f"nothing to resume while {state.phase.value}")
    new = msgspec.structs.replace(state, phase=back, resume_phase=None)
    effects: list[Effect] = [Emit(kind="resumed", data=_ids(new))]
    if back is Phase.STEP_ACTIVE:
        effects += _wake(new)
        # A dwell that ended during the pause, or inputs that completed the step, finish now.
        if all(p.done for p in new.progress):
            new, more = _step_done(new, e.at_us)
            effects += more
    return new, effects


def _interrupt(state: CoachingState, e: Interrupt) -> tuple[CoachingState, list[Effect]]:
    if state.phase not in (Phase.STEP_ACTIVE, Phase.STEP_COMPLETE, Phase.PAUSED):
        return _refuse(state, f"nothing to interrupt while {state.phase.value}")
    back = state.resume_phase if state.phase is Phase.PAUSED else state.phase
    new = msgspec.structs.replace(state, phase=Phase.INTERRUPTED, resume_phase=back)
    return new, [Emit(kind="step_interrupt", data={**_ids(state), "reason": e.reason})]


def _abort(state: CoachingState, e: Abort) -> tuple[CoachingState, list[Effect]]:
    if not state.active:
        return _refuse(state, f"no coaching session to abort while {state.phase.value}")
    assert state.record_id is not None
    effects: list[Effect] = []
    if _step_open(state):
        effects.append(StepFinished(record_id=state.record_id,
                                    result=_result(state, e.at_us, ok=False)))
    reason = e.reason or "aborted"
    effects += [RecordFinished(record_id=state.record_id, outcome=Outcome.ABORTED,
                               at_us=e.at_us, reason=reason),
                Emit(kind="assembly_complete", data={
                    **_ids(state), "outcome": Outcome.ABORTED.value, "reason": reason,
                    "released": False})]
    return msgspec.structs.replace(state, phase=Phase.ABORTED, outcome=Outcome.ABORTED,
                                   resume_phase=None), effects


def _finish_cmd(state: CoachingState, e: Finish) -> tuple[CoachingState, list[Effect]]:
    if not state.active:
        return _refuse(state, f"no coaching session to complete while {state.phase.value}")
    return _finish(state, e.at_us)


_HANDLERS: dict[type, Any] = {
    Start: _start, Prediction: _fact, Tightening: _fact, Signal: _fact, OutputConfirmed: _fact,
    Scan: _fact, Ocr: _fact, Entry: _fact, Confirmed: _fact, Tick: _tick,
    Advance: _advance_cmd, SetStep: _set_step, Pause: _pause, Resume: _resume,
    Interrupt: _interrupt, Abort: _abort, Finish: _finish_cmd,
}
