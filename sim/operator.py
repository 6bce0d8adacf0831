"""The demo's virtual operator: assembles the demo's contactor again and again at a human pace,
now and then making a mistake, so `takt run` shows coaching live.

It works the station as a person would: it scans with the hand scanner simulator, tightens
with the nutrunner simulator (the controller judges the result), and confirms and types on the
HMI (commands to the sequencer). The PLC simulator's own program closes the clamp now and then.
With a camera (`[sim] camera`), the operator's work is what the emulated camera sees: each
move renders the fixture board into the camera's image file (sim/demo_vision.py), and the
station's inspector recognises it and reads the label. Without one, what the camera would see
is published as the camera's model and OCR would publish it (`vision.demo.prediction`,
`vision.demo.ocr`): a stand-in saying what a model would report of the operator's work.
"""

from __future__ import annotations

import itertools
import logging
import random
import threading
from collections.abc import Callable
from typing import Any

from actors.runtime import ActorUnavailable, Runtime, call
from actors.sequencer_messages import (
    CoachingRefused,
    CoachingView,
    ConfirmStep,
    EnterValue,
    GetCoaching,
    ResumeCoaching,
    StartCoaching,
)

__all__ = ["VirtualOperator"]

log = logging.getLogger(__name__)

_IDLE = ("idle", "complete", "aborted")


class VirtualOperator:
    """Runs on a daemon thread from start() to stop(); `pace` scales every pause.

    `assembly` gives the id of the assembly to assemble; it is called on the operator's own
    thread, because installing the demo's assembly on a first start is seconds of store work
    that the station's start should not wait for."""

    def __init__(self, runtime: Runtime, assembly: Callable[[], int], *, hand_scanner: Any,
                 wrench: Any | None, scene: Any | None = None, pace: float = 1.0,
                 mistakes: float = 0.1, seed: int | None = None) -> None:
        self.runtime = runtime
        self.scene = scene  # sim.demo_vision.SceneWriter: what the camera sees
        self._assembly = assembly
        self.assembly_id: int | None = None
        self.hand = hand_scanner
        self.wrench = wrench
        self.pace = pace
        self.mistakes = mistakes
        self.random = random.Random(seed)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._serials = itertools.count(self.random.randrange(100_000, 900_000))
        self._frames = itertools.count(1)
        self.assemblies = 0

    def start(self) -> VirtualOperator:
        self._thread = threading.Thread(target=self._run, name="virtual-operator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join(5.0)

    # --- the work -------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self.assembly_id = self._assembly()
        except Exception:
            log.exception("virtual operator has no assembly to assemble")
            return
        while not self._stop.is_set():
            try:
                self._act()
            except (ActorUnavailable, CoachingRefused, TimeoutError) as exc:
                log.debug("virtual operator waits: %s", exc)
                self._wait(2.0)
            except Exception:  # the demo goes on; a bug here must not end it silently
                log.exception("virtual operator stumbled")
                self._wait(5.0)

    def _wait(self, seconds: float) -> bool:
        return self._stop.wait(seconds * self.pace)

    def _ask(self, message: Any) -> CoachingView:
        return call(self.runtime, self.runtime.directory.get("sequencer"),  # type: ignore[no-any-return]
                    message, timeout=10)

    def _act(self) -> None:
        view = self._ask(GetCoaching())
        if view.phase in _IDLE:
            if self._wait(4.0):
                return
            serial = next(self._serials)
            assert self.assembly_id is not None  # resolved before the first act
            self._show("empty_rail")
            self._ask(StartCoaching(assembly_id=self.assembly_id, operator_id=None,
                                    work_order=f"WO-{serial // 100}",
                                    part_serial=f"CT-{serial:06d}"))
            self.assemblies += 1
            return
        if view.phase == "interrupted":  # too many NOKs: the lead lets them rework the step
            if not self._wait(5.0):
                self._ask(ResumeCoaching())
            return
        if view.phase in ("paused", "step_complete"):
            self._wait(1.0)
            return
        step = view.step_index
        self._wait(self.random.uniform(1.0, 2.5))
        if self._ask(GetCoaching()).step_index != step:
            return
        for condition in view.conditions:
            if not condition["done"]:
                self._do(condition["kind"], condition["condition"], view)
        self._wait(1.0)

    def _mistake(self) -> bool:
        return self.random.random() < self.mistakes

    def _do(self, kind: str, c: dict[str, Any], view: CoachingView) -> None:
        serial = view.variables.get("serial") or f"CT-{next(self._serials):06d}"
        if kind == "ScanCode":
            code = view.variables.get(c["verify"], serial) if c.get("verify") else serial
            if self._mistake():
                self.hand.emit(b"CT-000000")  # the contactor of the next bin
                self._wait(2.0)
            self.hand.emit(code.encode())
            if self.scene is not None and self.scene.state == "empty_rail":
                self._show("contactor", serial)  # picked and scanned, now in the picking zone
        elif kind == "MlLabel" and self.scene is not None:
            if self._mistake():  # the screws, or the contactor, not quite right at first
                self._show("missing_screw" if c["label"] == "screws_tight" else "misplaced",
                           serial)
                self._wait(3.0)
            self._show(c["label"], serial)
            self._wait(2.0)  # the camera and the model see it within a few frames
        elif kind in ("OcrCapture", "OcrCheck", "OcrVerify") and self.scene is not None:
            self._wait(2.0)  # the label is in view; the station reads it
        elif kind == "MlLabel":
            for _ in range(int(c["frames"]) + 1):
                wrong = self._mistake()
                self._publish("prediction", {
                    "label": "empty_rail" if wrong else c["label"],
                    "confidence": round(self.random.uniform(0.85, 0.99), 3),
                    "frame_id": f"demo-{next(self._frames)}"})
                self._wait(0.2)
        elif kind in ("OcrCapture", "OcrCheck", "OcrVerify"):
            text = {"OcrCapture": "32A", "OcrCheck": "24V DC",
                    "OcrVerify": view.variables.get(c.get("variable", ""), serial)}[kind]
            self._publish("ocr", {"text": text, "frame_id": f"demo-{next(self._frames)}"})
        elif kind == "OcrEntry":
            text = "B12" if self._mistake() else f"B{self.random.randrange(1000, 9999)}"
            self._ask(EnterValue(variable=c["variable"], text=text))
        elif kind == "Torque" and self.wrench is not None:
            for _ in range(int(c["count"])):
                if self._stop.is_set():
                    return
                self.wrench.tighten(ok=False if self._mistake() else None)
                self._wait(self.random.uniform(1.5, 3.0))
        elif kind == "Confirm":
            self._wait(self.random.uniform(2.0, 4.0))
            self._ask(ConfirmStep(by="virtual operator"))
        # InputSignal: the PLC's program closes the clamp; OutputSignal and Dwell finish alone.

    def _show(self, state: str, serial: str | None = None) -> None:
        if self.scene is not None:
            self.scene.show(state, serial)

    def _publish(self, what: str, data: dict[str, Any]) -> None:
        self.runtime.bus.publish(f"vision.demo.{what}", data, source="camera:demo")
