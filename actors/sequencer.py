"""Sequencer actor: one per station. It feeds device facts and operator commands into the pure
coaching state machine (controller/coaching.py) and carries out its effects.

Facts come off the bus: tightening results (`device.wrench.*.result`), PLC signals
(`device.plc.*.signal`), reads of the station's hand scanners (`device.scanner.*.read` of
role COACHING; line readers belong to traceability), the camera model's
predictions and OCR reads (`vision.*.prediction`, `vision.*.ocr`), and the UPS's power state
(`device.ups.*.power`: pause at low battery, resume when power is back). Commands are asked
(actors/sequencer_messages.py); one the machine refuses raises CoachingRefused and changes
nothing.

Effects: coaching messages are published on `coaching.<kind>` (the `/ws/coaching` stream);
step and assembly records are written to the store as the session goes (state/records.py),
so a restarted sequencer resumes the open record at its step; OUTPUT steps and the part's
release are written to their PLC actor, with the value read back; dwell timers run on the
runtime clock.
"""

from __future__ import annotations

from typing import Any

import duckdb
import msgspec

from actors.base import handles
from actors.bus import Event
from actors.database import DatabaseActor
from actors.health import HealthState
from actors.plc_messages import WriteSignal
from actors.record_writer import RecordWriter, Write
from actors.runtime import ActorUnavailable, Request, Runtime, tell
from actors.sequencer_messages import (
    AbortCoaching,
    AdvanceStep,
    CoachingRefused,
    CoachingView,
    CompleteCoaching,
    ConfirmStep,
    EnterValue,
    FeedInput,
    FlushRecords,
    GetCoaching,
    InterruptCoaching,
    PauseCoaching,
    ResumeCoaching,
    SetCoachingStep,
    SetStationOperator,
    StartCoaching,
)
from actors.sequencer_reads import ReadAgain, TextReads
from actors.wrench_messages import SelectPset
from controller.assembly import OcrCapture, OcrCheck, OcrVerify
from controller.coaching import (
    Abort,
    Advance,
    CoachingState,
    Confirmed,
    Emit,
    Entry,
    Finish,
    Input,
    Interrupt,
    Ocr,
    OutputConfirmed,
    Pause,
    Phase,
    Prediction,
    RecordFinished,
    Refused,
    Release,
    Resume,
    Scan,
    SelectTool,
    SetStep,
    Signal,
    Start,
    StepFinished,
    StepResult,
    StepStarted,
    Tick,
    Tightening,
    WakeAt,
    WriteOutput,
    recovered,
    transition,
)
from controller.coaching_config import CoachingConfig
from state import records
from state._sql import transaction
from state.assemblies import get_assembly, load_assembly
from state.errors import NotFound, StateError
from state.operators import Operator, find_operator_by_rfid, get_operator, note_record
from state.step_events import StepEventError, finish_step_event, start_step_event

__all__ = ["SequencerActor", "input_decoder"]

_PATTERNS = ["device.wrench.*.result", "device.plc.*.signal", "device.scanner.*.read",
             "vision.*.prediction", "vision.*.ocr", "device.ups.*.power"]
# Messages an HMI must not miss are durable (journaled, replayed); frames are not.
_DURABLE = frozenset({"step_complete", "step_interrupt", "assembly_complete"})
_INPUTS = msgspec.json.Decoder(Input)
_READS_TEXT = (OcrCapture, OcrCheck, OcrVerify)  # OCR_ENTRY is typed by the operator


def input_decoder() -> msgspec.json.Decoder[Any]:
    return _INPUTS


class _Written(msgspec.Struct, frozen=True):
    plc: str
    signal: str
    wanted: str
    value: Any
    error: str | None
    release: bool


class SequencerActor(DatabaseActor):
    def __init__(self, runtime: Runtime, name: str, config: CoachingConfig,
                 database: duckdb.DuckDBPyConnection, *, station_id: str,
                 machine: str, **kw: Any) -> None:
        super().__init__(runtime, name, database, **kw)
        self.config = config
        self.station_id = station_id
        self.machine = config.machine or machine
        self.state = CoachingState()
        self._subscription: Any = None
        self._timers: list[Any] = []
        self._reads: TextReads | None = None
        self._recovering = False
        self._record: records.RecordRow | None = None
        self._writer: RecordWriter | None = None
        self.operator: Operator | None = None  # logged in at the station

    # --- lifecycle ------------------------------------------------------------------------

    def started(self) -> None:
        self._con = self.database.cursor()
        self._writer = RecordWriter(self.database, name=self.name, log=self.log)
        self._reads = TextReads(self.runtime, self.actor_ref, self.log,
                                interval_s=self.config.ocr_interval_s)
        self._recover()
        self._subscription = self.bus.subscribe_actor(_PATTERNS, self.actor_ref,
                                                      name=f"{self.name}-facts")
        self.set_health(HealthState.UP)
        self._read_text_if_wanted()

    def stopping(self) -> None:
        self._unsubscribe()
        self._stop_writer()
        super().stopping()

    def failed(self, error: BaseException) -> None:
        self._unsubscribe()
        self._stop_writer()
        super().failed(error)

    def _stop_writer(self) -> None:
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.stop()  # what was handed over is written first

    def _unsubscribe(self) -> None:
        for timer in self._timers:
            timer.cancel()
        if self._reads is not None:
            self._reads.cancel()
        if self._subscription is not None:
            self.bus.unsubscribe(self._subscription)
            self._subscription = None

    def _recover(self) -> None:
        """Resume the station's open record where it was: same step, same variables."""
        row = records.open_record_of(self.con, self.station_id)
        if row is None:
            return
        assembly = load_assembly(self.con, row.assembly_id)
        steps = records.step_records(self.con, row.id)
        finished = tuple(
            StepResult(index=s.step_index, ok=bool(s.ok), started_us=s.started_us,
                       ended_us=s.ended_us, evidence=tuple(msgspec.json.decode(s.evidence)),
                       reworked=bool(s.reworked), skipped=bool(s.skipped))
            for s in steps if s.ended_us is not None)
        open_step = any(s.ended_us is None and s.step_index == row.current_step for s in steps)
        index = min(row.current_step, len(assembly.steps) - 1)
        state, effects = recovered(
            assembly, str(row.id), index, started_us=row.started_us,
            step_started_us=row.step_started_us or row.started_us, at_us=self.clock.now_us(),
            variables=row.variables_dict(), results=finished, failed=row.failed,
            auto_advance=row.auto_advance, release_enabled=row.release_enabled)
        self.state = state
        self._record = row
        self.log.info("resuming assembly record %d at step %d", row.id, index)
        self._recovering = open_step  # its step record is open already: do not add another
        try:
            self._perform(effects)
        finally:
            self._recovering = False

    # --- facts ----------------------------------------------------------------------------

    @handles(Event)
    def _on_event(self, event: Event) -> None:
        fact = self._fact(event)
        if fact is not None:
            self._feed(fact)

    def _fact(self, event: Event) -> Input | None:
        root, kind, *rest = event.topic.split(".")
        d = event.data if isinstance(event.data, dict) else {}
        at = self.clock.now_us()
        name = rest[0] if rest else ""
        if kind == "wrench" and "pset" in d:
            return Tightening(at_us=at, wrench=name, pset=int(d["pset"]), ok=bool(d.get("ok")),
                              result_id=str(d.get("id", "")))
        if kind == "plc" and "signal" in d:
            return Signal(at_us=at, plc=name, signal=str(d["signal"]),
                          value=_text(d.get("value")))
        if kind == "scanner" and d.get("code") and d.get("role") == "COACHING" \
                and not self.state.active:
            self._badge(str(d["code"]))  # between sessions, a scanned badge logs in
            return None
        if kind == "scanner" and d.get("code") and d.get("role") == "COACHING":
            return Scan(at_us=at, text=str(d["code"]), reader=name)
        if root == "vision" and event.topic.endswith(".prediction") and "label" in d:
            return Prediction(at_us=at, label=str(d["label"]),
                              confidence=float(d.get("confidence", 0.0)),
                              frame_id=str(d.get("frame_id", "")))
        if root == "vision" and event.topic.endswith(".ocr") and "text" in d:
            lines = d.get("lines")
            return Ocr(at_us=at, text=str(d["text"]), frame_id=str(d.get("frame_id", "")),
                       lines=tuple(str(t["text"]) if isinstance(t, dict) else str(t)
                                   for t in lines) if isinstance(lines, list) else ())
        if kind == "ups" and d.get("pause_coaching") and self.state.active:
            return Pause(at_us=at, reason=f"UPS {name}: {d.get('state', 'low battery')}")
        if kind == "ups" and d.get("resume") and self.state.phase is Phase.PAUSED:
            return Resume(at_us=at)
        return None

    @handles(Tick)
    def _on_tick(self, tick: Tick) -> None:
        self._feed(tick)

    @handles(_Written)
    def _on_written(self, msg: _Written) -> None:
        if msg.release:
            if msg.error is not None or _text(msg.value) != msg.wanted:
                self.log.error("release of the part on %s.%s failed: %s", msg.plc, msg.signal,
                               msg.error or f"read back {msg.value!r}")
                self.publish("coaching.release_failed", {
                    "station": self.station_id, "plc": msg.plc, "signal": msg.signal,
                    "error": msg.error or f"read back {msg.value!r}"}, durable=True)
            return
        if msg.error is not None:
            self.publish("coaching.feedback", {
                "station": self.station_id, "ok": False,
                "reason": f"writing {msg.plc}.{msg.signal} failed: {msg.error}"})
            return
        self._feed(OutputConfirmed(at_us=self.clock.now_us(), plc=msg.plc, signal=msg.signal,
                                   value=_text(msg.value)))

    # --- commands -------------------------------------------------------------------------

    @handles(StartCoaching)
    def _start(self, msg: StartCoaching) -> CoachingView:
        if self.state.active:
            raise CoachingRefused(f"a coaching session is active (record "
                                  f"{self.state.record_id}); interrupt, complete or abort it "
                                  "first")
        try:
            row = get_assembly(self.con, msg.assembly_id)
        except NotFound:
            raise CoachingRefused(f"no assembly {msg.assembly_id}") from None
        if not row.published:
            raise CoachingRefused(f"assembly {row.id} (version {row.version}) is not published; "
                                  "only a published version is coached")
        assembly = load_assembly(self.con, row.id)
        auto = self.config.auto_advance if msg.auto_advance is None else msg.auto_advance
        release = self.config.release_control and self.config.release is not None
        now = self.clock.now_us()
        start = Start(at_us=now, record_id="0", assembly=assembly, step=msg.step_index,
                      auto_advance=auto, release_enabled=release)
        _, trial = transition(self.state, start)  # refused before anything is written
        _raise_refusal(trial)
        if msg.operator_id is None and self.operator is not None:
            msg = msgspec.structs.replace(msg, operator_id=self.operator.id)
        if msg.operator_id is not None:
            try:
                operator = get_operator(self.con, msg.operator_id)
            except NotFound:
                raise CoachingRefused(f"no operator {msg.operator_id}") from None
            if not operator.active:
                raise CoachingRefused(f"operator {operator.id} is not active")
        record = records.open_record(
            self.con, assembly_id=row.id, revision_id=row.revision_id,
            station_id=self.station_id, operator_id=msg.operator_id,
            work_order=msg.work_order, part_serial=msg.part_serial, started_us=now,
            auto_advance=auto, release_enabled=release)
        if msg.operator_id is not None:
            note_record(self.con, msg.operator_id)
        self._record = record
        self._feed(msgspec.structs.replace(start, record_id=str(record.id)))
        return self._view()

    @handles(InterruptCoaching)
    def _interrupt(self, msg: InterruptCoaching) -> CoachingView:
        return self._command(msg.assembly_record_id,
                             Interrupt(at_us=self.clock.now_us(), reason=msg.reason))

    @handles(PauseCoaching)
    def _pause(self, msg: PauseCoaching) -> CoachingView:
        return self._command(msg.assembly_record_id,
                             Pause(at_us=self.clock.now_us(), reason=msg.reason))

    @handles(ResumeCoaching)
    def _resume(self, msg: ResumeCoaching) -> CoachingView:
        return self._command(msg.assembly_record_id, Resume(at_us=self.clock.now_us()))

    @handles(AbortCoaching)
    def _abort(self, msg: AbortCoaching) -> CoachingView:
        return self._command(msg.assembly_record_id,
                             Abort(at_us=self.clock.now_us(), reason=msg.reason))

    @handles(CompleteCoaching)
    def _complete(self, msg: CompleteCoaching) -> CoachingView:
        return self._command(msg.assembly_record_id, Finish(at_us=self.clock.now_us()))

    @handles(AdvanceStep)
    def _advance(self, msg: AdvanceStep) -> CoachingView:
        return self._command(msg.assembly_record_id, Advance(at_us=self.clock.now_us()))

    @handles(SetCoachingStep)
    def _set_step(self, msg: SetCoachingStep) -> CoachingView:
        now = self.clock.now_us()
        at = now if msg.end_us is None else msg.end_us
        if not self.state.step_started_us <= at <= now:
            raise CoachingRefused("end_time must lie between the current step's start and now")
        return self._command(msg.assembly_record_id, SetStep(at_us=at, step=msg.step_index))

    @handles(ConfirmStep)
    def _confirm(self, msg: ConfirmStep) -> CoachingView:
        return self._command(msg.assembly_record_id,
                             Confirmed(at_us=self.clock.now_us(), by=msg.by))

    @handles(EnterValue)
    def _enter(self, msg: EnterValue) -> CoachingView:
        return self._command(None, Entry(at_us=self.clock.now_us(), variable=msg.variable,
                                         text=msg.text))

    @handles(FeedInput)
    def _feed_input(self, msg: FeedInput) -> CoachingView:
        try:
            event = msgspec.convert(msg.input, Input)
        except msgspec.ValidationError as exc:
            raise CoachingRefused(f"not a coaching input: {exc}") from None
        if isinstance(event, Start):
            raise CoachingRefused("start a session with StartCoaching")
        self._feed(event)
        return self._view()

    @handles(GetCoaching)
    def _get(self, _: GetCoaching) -> CoachingView:
        return self._view()

    @handles(FlushRecords)
    def _flush_records(self, _: FlushRecords) -> int:
        """Answer once every record write handed over so far is on disk; how many failed."""
        assert self._writer is not None
        if not self._writer.flush():
            raise TimeoutError("coaching records are not written yet")
        return self._writer.failed

    @handles(SetStationOperator)
    def _set_operator(self, msg: SetStationOperator) -> CoachingView:
        if msg.operator_id is None:
            self._log_in(None, msg.via)
            return self._view()
        try:
            operator = get_operator(self.con, msg.operator_id).public()
        except NotFound:
            raise CoachingRefused(f"no operator {msg.operator_id}") from None
        if not operator.active:
            raise CoachingRefused(f"operator {operator.id} is not active")
        self._log_in(operator, msg.via)
        return self._view()

    def _badge(self, code: str) -> None:
        row = find_operator_by_rfid(self.con, code)
        if row is None or not row.active:
            self.publish("coaching.feedback", {
                "station": self.station_id, "ok": False,
                "reason": "no coaching session; that badge is not an active operator's"})
            return
        self._log_in(row.public(), "rfid")

    def _log_in(self, operator: Operator | None, via: str) -> None:
        self.operator = operator
        self.publish("coaching.operator", {
            "station": self.station_id, "via": via,
            "operator_id": operator.id if operator else None,
            "name": f"{operator.first_name} {operator.last_name}" if operator else None},
            durable=True)

    def _command(self, record_id: int | None, event: Input) -> CoachingView:
        if record_id is not None and str(record_id) != self.state.record_id:
            raise CoachingRefused(f"record {record_id} is not the current one "
                                  f"({self.state.record_id or 'none'})")
        self._feed(event)
        return self._view()

    # --- the machine ----------------------------------------------------------------------

    def _feed(self, event: Input) -> None:
        state, effects = transition(self.state, event)
        _raise_refusal(effects)
        self.state = state
        self._perform(effects)

    def _perform(self, effects: tuple[Any, ...]) -> None:
        """Publish first, write in the background, then act on devices.

        The coaching messages go out at once and the records are written by the record
        writer (actors/record_writer.py), so neither the next step's message nor the next
        input waits for the disk (~30 ms a step here; bench/coaching_ws.py). Should the station
        die before the writes land, it resumes at an earlier step, which the operator completes
        again. A record's end is announced, and its part released, only once every write
        before it is on disk.
        """
        finished = any(isinstance(e, RecordFinished) for e in effects)
        for effect in effects:
            if isinstance(effect, Emit) and not (finished and effect.kind == "assembly_complete"):
                self._emit(effect)
        released = any(isinstance(e, Release) for e in effects)
        writes: list[Any] = []
        for effect in effects:
            if isinstance(effect, StepStarted):
                for timer in self._timers:  # a dwell of the step left behind wakes nobody
                    timer.cancel()
                self._timers = []
                if not self._recovering:
                    writes += self._step_started(effect)
            elif isinstance(effect, StepFinished):
                writes += self._step_ended(effect)
            elif isinstance(effect, RecordFinished):
                writes.append(_finish_record(effect, released))
        assert self._writer is not None
        if writes:
            self._writer.submit(_in_order(writes))
        if finished:
            if not self._writer.flush():
                self.log.error("the record's writes are late; announcing its end anyway")
            for effect in effects:
                if isinstance(effect, Emit) and effect.kind == "assembly_complete":
                    self._emit(effect)
        for effect in effects:
            if isinstance(effect, WriteOutput):
                self._write(effect.plc, effect.signal, effect.value, release=False)
            elif isinstance(effect, SelectTool):
                self._select_tool(effect.wrench, effect.pset)
            elif isinstance(effect, Release):
                target = self.config.release
                if target is not None:
                    self._write(target.plc, target.signal, "true", release=True)
            elif isinstance(effect, WakeAt):
                delay = max(0.0, (effect.at_us - self.clock.now_us()) / 1e6)
                self._timers.append(self.tell_self_later(delay, Tick(at_us=effect.at_us)))
        self._read_text_if_wanted()

    @handles(ReadAgain)
    def _read_again(self, _: ReadAgain) -> None:
        assert self._reads is not None
        self._reads.ready()
        self._read_text_if_wanted()

    def _read_text_if_wanted(self) -> None:
        """While the step waits for text on the camera, keep the inspector reading it."""
        state = self.state
        if self._reads is None or state.phase is not Phase.STEP_ACTIVE \
                or state.assembly is None:
            return
        if any(isinstance(c, _READS_TEXT) and not p.done
               for c, p in zip(state.conditions, state.progress, strict=False)):
            self._reads.want(state.assembly.steps[state.step].camera_id)

    def _emit(self, effect: Emit) -> None:
        data = dict(effect.data)
        if data.get("assembly_record_id") is not None:
            data["assembly_record_id"] = int(data["assembly_record_id"])
        self.publish(f"coaching.{effect.kind}", {"station": self.station_id, **data},
                     durable=effect.kind in _DURABLE)

    def _step_started(self, effect: StepStarted) -> list[Write]:
        """The writes of a step's start: its step record, then its step event."""
        assembly = self.state.assembly
        assert assembly is not None and self._record is not None
        step = assembly.steps[effect.index]
        record, machine = self._record, self.machine
        variables, failed = dict(self.state.variables), self.state.failed
        record_id = int(effect.record_id)

        def step_record(con: duckdb.DuckDBPyConnection) -> None:
            records.start_step(con, record_id, index=effect.index, step_id=step.id,
                               name=step.name, benchmark_s=step.benchmark_s,
                               at_us=effect.at_us, variables=variables, failed=failed)

        def step_event(con: duckdb.DuckDBPyConnection) -> None:
            start_step_event(
                con, machine=machine, start_us=effect.at_us, operator_id=record.operator_id,
                user_email=None, part=record.part_serial or f"record-{record.id}",
                recipe_version=assembly.revision, step_number=str(effect.index + 1),
                expected_cycle_s=step.benchmark_s or None, expected_setup_s=None,
                qty_expected=1, wo_number=record.work_order, source="sequencer",
                record_id=record.id, now_us=effect.at_us)

        return [step_record, _step_event(step_event, machine, self.log)]

    def _step_ended(self, effect: StepFinished) -> list[Write]:
        variables, failed, machine = dict(self.state.variables), self.state.failed, self.machine
        result, record_id = effect.result, int(effect.record_id)

        def step_record(con: duckdb.DuckDBPyConnection) -> None:
            records.finish_step(con, record_id, result, variables=variables, failed=failed)

        def step_event(con: duckdb.DuckDBPyConnection) -> None:
            finish_step_event(con, machine=machine, end_us=result.ended_us,
                              qty_made=1 if result.ok else 0, qty_scrapped=0,
                              now_us=result.ended_us)

        return [step_record, _step_event(step_event, machine, self.log)]

    def _write(self, plc: str, signal: str, value: str, *, release: bool) -> None:
        """Write a PLC output and read it back; the answer comes back as _Written."""
        me, runtime = self.actor_ref, self.runtime

        def answered(result: Any, error: BaseException | None) -> None:
            try:
                tell(runtime, me, _Written(plc=plc, signal=signal, wanted=value, value=result,
                                           error=None if error is None else str(error),
                                           release=release))
            except ActorUnavailable:
                pass  # the sequencer is gone; its successor resumes from the store

        try:
            ref = self.runtime.directory.get(f"plc:{plc}")
            tell(self.runtime, ref, Request(WriteSignal(signal=signal, value=_value(value),
                                                        read_back=True), answered))
        except ActorUnavailable as exc:
            answered(None, exc)

    def _select_tool(self, wrench: str, pset: int) -> None:
        """Select the TORQUE step's pset on its wrench; a wrench that is not there, or refuses,
        is told to the operator (feedback) and the step waits for results all the same."""
        runtime, station = self.runtime, self.station_id

        def answered(_: Any, error: BaseException | None) -> None:
            if error is not None:
                runtime.bus.publish("coaching.feedback", {
                    "station": station, "ok": False,
                    "reason": f"selecting pset {pset} on wrench {wrench} failed: {error}"},
                    source="sequencer")

        try:
            ref = self.runtime.directory.get(f"wrench:{wrench}")
            tell(self.runtime, ref, Request(SelectPset(pset=pset), answered))
        except ActorUnavailable as exc:
            answered(None, exc)

    def _view(self) -> CoachingView:
        s = self.state
        step = (s.assembly.steps[s.step] if s.assembly is not None and s.active else None)
        conditions = [
            {"kind": type(c).__name__, "condition": msgspec.to_builtins(c), "done": p.done,
             "count": p.count, "nok": p.nok}
            for c, p in zip(s.conditions, s.progress, strict=True)] if s.active else []
        return CoachingView(
            phase=s.phase.value,
            assembly_record_id=int(s.record_id) if s.record_id is not None else None,
            assembly_id=s.assembly.id if s.assembly is not None else None,
            assembly_name=s.assembly.name if s.assembly is not None else None,
            step_index=s.step if s.active else None,
            step_name=step.name if step is not None else None,
            steps=len(s.assembly.steps) if s.assembly is not None else 0,
            conditions=conditions, variables=dict(s.variables),
            outcome=s.outcome.value if s.outcome is not None else None, failed=s.failed,
            auto_advance=s.auto_advance, release_enabled=s.release_enabled,
            started_us=s.started_us or None, step_started_us=s.step_started_us or None,
            operator_id=self.operator.id if self.operator else None,
            operator_name=(f"{self.operator.first_name} {self.operator.last_name}"
                           if self.operator else None))


def _in_order(writes: list[Write]) -> Write:
    """One writer job: the records of one input in one transaction (one COMMIT), then the
    step events, each in its own (a step event that cannot be written must not undo a
    record)."""
    def run(con: duckdb.DuckDBPyConnection) -> None:
        events = [w for w in writes if getattr(w, "step_event", False)]
        with transaction(con):
            for write in writes:
                if write not in events:
                    write(con)
        for write in events:
            write(con)

    return run


def _step_event(write: Write, machine: str, log: Any) -> Write:
    """Every coached step is also a step event (seed 004); one that cannot be written is
    logged and coaching goes on: the step record has it all."""
    def run(con: duckdb.DuckDBPyConnection) -> None:
        try:
            write(con)
        except (StepEventError, StateError) as exc:
            log.warning("step event not written on machine %r: %s", machine, exc)

    run.step_event = True  # type: ignore[attr-defined]
    return run


def _finish_record(effect: RecordFinished, released: bool) -> Write:
    def run(con: duckdb.DuckDBPyConnection) -> None:
        records.finish_record(con, int(effect.record_id), outcome=effect.outcome.value,
                              reason=effect.reason, at_us=effect.at_us, released=released)

    return run


def _raise_refusal(effects: tuple[Any, ...]) -> None:
    refused = [e for e in effects if isinstance(e, Refused)]
    if refused:
        raise CoachingRefused(refused[0].reason)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _value(text: str) -> bool | int | float | str:
    """A step's output value as the PLC actor takes it."""
    lowered = text.strip().lower()
    if lowered in ("true", "on"):
        return True
    if lowered in ("false", "off"):
        return False
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text
