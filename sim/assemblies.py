"""Assemblies of the demo station, and the inputs that complete each of their steps: what the
virtual operator does, what the tests and the coaching bench feed the state machine."""

from __future__ import annotations

from typing import Any

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

__all__ = ["CONTACTOR", "completing_inputs"]


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
