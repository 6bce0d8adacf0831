"""Step events actor: starts and finishes step events posted through the API, on its own
cursor, with the same state functions the sequencer calls on its own.

On start it makes machine 1 the station, so a step event for the station (by its name) finds
its machine from the first request on. Summaries are read by the query actors
(SummarizeStepEvents).
"""

from __future__ import annotations

from typing import Any

import duckdb
import msgspec

from actors.base import handles
from actors.database import DatabaseActor
from actors.runtime import Runtime
from controller.config import StationInfo
from state import step_events as db
from state.step_events import DaySummary, StepEventCreated, StepEventFinished

__all__ = ["DaySummary", "FinishStepEvent", "StartStepEvent", "StepEventsActor",
           "SummarizeStepEvents"]


class StartStepEvent(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    machine: str  # display name
    start_us: int
    user_email: str
    part: str
    recipe_version: str
    step_number: str
    expected_cycle_s: float | None = None
    expected_setup_s: float | None = None
    qty_expected: int | None = None
    wo_number: str | None = None


class FinishStepEvent(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    machine: str  # display name
    end_us: int | None = None  # None: now
    qty_made: int | None = None
    qty_scrapped: int | None = None


class SummarizeStepEvents(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Answered by the query actors with list[DaySummary]."""

    from_us: int
    to_us: int
    machine_ids: list[int] | None = None


class StepEventsActor(DatabaseActor):
    def __init__(self, runtime: Runtime, name: str, database: duckdb.DuckDBPyConnection,
                 station: StationInfo, **kw: Any) -> None:
        super().__init__(runtime, name, database, **kw)
        self.station = station

    def started(self) -> None:
        super().started()
        db.ensure_station_machine(self.con, station_id=self.station.id,
                                  display_name=self.station.name, now_us=self.clock.now_us())

    @handles(StartStepEvent)
    def _start(self, msg: StartStepEvent) -> StepEventCreated:
        return db.start_step_event(
            self.con, machine=msg.machine, start_us=msg.start_us, operator_id=None,
            user_email=msg.user_email, part=msg.part, recipe_version=msg.recipe_version,
            step_number=msg.step_number, expected_cycle_s=msg.expected_cycle_s,
            expected_setup_s=msg.expected_setup_s, qty_expected=msg.qty_expected,
            wo_number=msg.wo_number, source="api", record_id=None, now_us=self.clock.now_us())

    @handles(FinishStepEvent)
    def _finish(self, msg: FinishStepEvent) -> StepEventFinished:
        return db.finish_step_event(self.con, machine=msg.machine, end_us=msg.end_us,
                                    qty_made=msg.qty_made, qty_scrapped=msg.qty_scrapped,
                                    now_us=self.clock.now_us())
