"""Assemblies of the demo station, and the inputs that complete each of their steps: what the
virtual operator does, what the tests and the coaching bench feed the state machine."""

from __future__ import annotations

from typing import Any

import duckdb

from controller.assembly import ActionType, Assembly, Step, StepData
from controller.coaching import (
    Confirmed,
    Ocr,
    OutputConfirmed,
    Prediction,
    Scan,
    Signal,
    Tick,
    Tightening,
)

__all__ = ["CONTACTOR", "DEMO_CONTACTOR", "completing_inputs", "install", "install_demo"]


def _data(action: ActionType, **infos: str) -> StepData:
    return StepData(action=action, infos=infos)


CONTACTOR = Assembly(id=1, name="Contactor Installation", steps=(
    Step(name="Place contactor", benchmark_s=6.0,
         data=(_data(ActionType.ML, label="contactor", frames="2", minimum_predict="0.8"),)),
    Step(name="Scan contactor", benchmark_s=3.0,
         data=(_data(ActionType.SCAN, capture="part", pattern=r"C\d{4}"),)),
    Step(name="Tighten", benchmark_s=12.0,
         data=(_data(ActionType.TORQUE, wrench="w1", pset="1", count="2", max_nok="1"),)),
    Step(name="Part present", benchmark_s=2.0,
         data=(_data(ActionType.INPUT, plc="line1", signal="present"),)),
    Step(name="Lamp", benchmark_s=1.0,
         data=(_data(ActionType.OUTPUT, plc="line1", signal="lamp"),)),
    Step(name="Verify", benchmark_s=4.0,
         data=(_data(ActionType.SCAN, verify="part"),
               _data(ActionType.OCR_CHECK, pattern=r"OK-\d+"))),
    Step(name="Cure", benchmark_s=2.0, data=(_data(ActionType.QA_DWELL, seconds="2"),)),
    Step(name="Inspect", benchmark_s=5.0,
         data=(_data(ActionType.QA, prompt="cover seated?"),)),
))


# The demo station's assembly: every action type, on the demo's simulated devices (the hand
# scanner, the nutrunner's psets 1 and 2, line1's clamp_closed input and andon_led output, the
# camera's model and OCR).
DEMO_CONTACTOR = Assembly(name="Contactor Installation", steps=(
    Step(name="Scan the contactor", benchmark_s=4.0,
         description="Scan the DataMatrix on the contactor's side with the hand scanner.",
         data=(_data(ActionType.SCAN, capture="serial", pattern=r"CT-\d{6}"),)),
    Step(name="Place the contactor on the DIN rail", benchmark_s=6.0, minimum_predict=0.8,
         data=(_data(ActionType.ML, label="contactor_on_rail", frames="3"),)),
    Step(name="Read the rating plate", benchmark_s=3.0,
         data=(_data(ActionType.OCR_CAPTURE, variable="rating", pattern=r"\d{2}A"),)),
    Step(name="Check the coil voltage", benchmark_s=3.0,
         data=(_data(ActionType.OCR_CHECK, pattern=r"24V ?DC"),)),
    Step(name="Close the clamp", benchmark_s=5.0,
         data=(_data(ActionType.INPUT, plc="line1", signal="clamp_closed", value="true"),)),
    Step(name="Tighten the terminal screws", benchmark_s=16.0,
         data=(_data(ActionType.TORQUE, wrench="nutrunner", pset="1", count="4", max_nok="2"),
               _data(ActionType.ML, label="screws_tight", frames="2"))),
    Step(name="Tighten the bracket", benchmark_s=6.0,
         data=(_data(ActionType.TORQUE_ONLY, wrench="nutrunner", pset="2", count="1"),)),
    Step(name="Andon on for inspection", benchmark_s=1.0,
         data=(_data(ActionType.OUTPUT, plc="line1", signal="andon_led", value="true"),)),
    Step(name="Enter the batch number", benchmark_s=8.0,
         data=(_data(ActionType.OCR_ENTRY, variable="batch", pattern=r"B\d{4}"),)),
    Step(name="Verify the serial on the label", benchmark_s=4.0,
         data=(_data(ActionType.OCR_VERIFY, variable="serial"),)),
    Step(name="Scan the label", benchmark_s=3.0,
         data=(_data(ActionType.SCAN, verify="serial"),)),
    Step(name="Let the thread lock set", benchmark_s=5.0,
         data=(_data(ActionType.QA_DWELL, seconds="5"),)),
    Step(name="Watch: checking the wiring", benchmark_s=8.0,
         data=(_data(ActionType.VIDEO_ONLY, prompt="watched the wiring check"),)),
    Step(name="Final inspection", benchmark_s=6.0,
         data=(_data(ActionType.QA, prompt="cover seated, no loose wires"),)),
))


def completing_inputs() -> list[list[Any]]:
    """Per step of CONTACTOR, inputs that complete it (at_us 0: the feeder stamps them)."""
    return [
        [Prediction(at_us=0, label="contactor", confidence=0.9, frame_id="f1"),
         Prediction(at_us=0, label="contactor", confidence=0.95, frame_id="f2")],
        [Scan(at_us=0, text="C1234")],
        [Tightening(at_us=0, wrench="w1", pset=1, ok=True, result_id="t1"),
         Tightening(at_us=0, wrench="w1", pset=1, ok=True, result_id="t2")],
        [Signal(at_us=0, plc="line1", signal="present", value="1")],
        [OutputConfirmed(at_us=0, plc="line1", signal="lamp", value="true")],
        [Scan(at_us=0, text="C1234"), Ocr(at_us=0, text="OK-7")],
        [Tick(at_us=0)],
        [Confirmed(at_us=0, by="ana")],
    ]


def install(con: duckdb.DuckDBPyConnection, assembly: Assembly, *, now_us: int,
            revision: str | None = None) -> int:
    """Store assembly as a new published version (of a revision named after it, created if
    missing); its id."""
    from state import assemblies as store

    name = revision or assembly.name
    found = [r for r in store.list_revisions(con) if r.name == name]
    rev = found[0] if found else store.create_revision(con, name=name, now_us=now_us)
    row = store.create_assembly(con, revision_id=rev.id, name=assembly.name, now_us=now_us)
    for step in assembly.steps:
        store.add_step(con, row.id, now_us=now_us, data=step.data, name=step.name,
                       description=step.description, benchmark_s=step.benchmark_s,
                       minimum_predict=step.minimum_predict, camera_id=step.camera_id)
    store.publish_assembly(con, row.id, approver="demo", now_us=now_us)
    return row.id


def install_demo(con: duckdb.DuckDBPyConnection, now_us: int) -> int:
    """The demo's assembly, published (installed once: a station's data outlives a run)."""
    from state import assemblies as store

    for row in store.coachable(con):
        if row.name == DEMO_CONTACTOR.name:
            return row.id
    return install(con, DEMO_CONTACTOR, now_us=now_us)
