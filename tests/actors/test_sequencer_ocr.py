"""OCR steps read the camera: while a step waits for text, the sequencer keeps the inspector
reading the camera's newest frame, and the step takes the line it wants from what was read.

The real inspector runs PP-OCRv5 through OpenVINO on a frame of the demo's fixture board. The
frame is put into the camera's slot as a camera actor would put it: the camera itself is
tested against the pylon emulator in tests/actors/test_camera.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pykka
import pytest

from actors.inspector import InspectorActor
from actors.runtime import Runtime, call
from actors.sequencer import SequencerActor
from actors.sequencer_messages import GetCoaching, StartCoaching
from controller.assembly import ActionType, Assembly, Step, StepData
from controller.clock import VirtualClock
from controller.coaching_config import CoachingConfig
from controller.inspector_config import InspectorConfig
from drivers.vision.frames import Frame
from sim.assemblies import install
from sim.vision.board import Scene, render
from state import records
from state.connection import open_database
from tests.actors.settle import settle

LABEL = Assembly(name="Label check", steps=(
    Step(name="Scan the contactor",
         data=(StepData(action=ActionType.SCAN, infos={"capture": "serial"}),)),
    Step(name="Read the rating plate",
         data=(StepData(action=ActionType.OCR_CAPTURE,
                        infos={"variable": "rating", "pattern": r"\d{2}A"}),)),
    Step(name="Check the coil voltage",
         data=(StepData(action=ActionType.OCR_CHECK, infos={"pattern": r"24V ?DC"}),)),
    Step(name="Verify the serial on the label",
         data=(StepData(action=ActionType.OCR_VERIFY, infos={"variable": "serial"}),)),
))


@pytest.fixture
def database(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    con = open_database(tmp_path / "takt.duckdb")
    yield con
    pykka.ActorRegistry.stop_all(block=True, timeout=10)
    con.close()


def show(runtime: Runtime, scene: Scene, seq: int) -> None:
    image = render(scene)
    image.flags.writeable = False
    runtime.frames.slot("bench").put(Frame(camera="bench", seq=seq,
                                           at_us=runtime.clock.now_us(), image=image))


def test_ocr_steps_read_the_label_on_the_camera(runtime: Runtime, vclock: VirtualClock,
                                                database: duckdb.DuckDBPyConnection) -> None:
    assembly_id = install(database.cursor(), LABEL, now_us=1)
    inspector = InspectorActor.start(runtime, "inspector",
                                     InspectorConfig(camera="bench", ocr=True), database,
                                     station_id="cell-7")
    runtime.directory.set("inspector", inspector)
    ref = SequencerActor.start(runtime, "sequencer", CoachingConfig(ocr_interval_s=0.2),
                               database, station_id="cell-7", machine="Cell 7")
    runtime.directory.set("sequencer", ref)
    # The camera sees the empty rail first: nothing to read, the step waits.
    show(runtime, Scene(state="empty_rail"), 1)
    view = call(runtime, ref, StartCoaching(assembly_id=assembly_id, operator_id=None,
                                            work_order="WO-1", part_serial="CT-004711"))
    runtime.bus.publish("device.scanner.hand.read",
                        {"code": "CT-004711", "scanner": "hand", "role": "COACHING"},
                        source="test")

    def step() -> Any:
        return call(runtime, ref, GetCoaching())

    settle(runtime, vclock, lambda: step().step_index == 1)
    # The contactor on its rail, its label in view: rating, coil voltage and serial are read.
    show(runtime, Scene(state="contactor_on_rail", serial="CT-004711", rating="25A"), 2)
    settle(runtime, vclock, lambda: step().phase == "complete", max_virtual_s=30.0,
           real_timeout_s=60.0)
    assert step().variables == {"serial": "CT-004711", "rating": "25A"}
    steps = records.step_records(database.cursor(), view.assembly_record_id)
    assert [s.evidence for s in steps[1:]] == ['["25A"]', '["24V DC"]', '["CT-004711"]']
