"""Query actors: readers on their own cursors, so reads never wait behind the writer.

A small pool (`query:0`, `query:1`, ...) shares the read load; `pick_query_actor`
chooses the one with the shortest mailbox.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pykka

from actors.base import handles
from actors.database import DatabaseActor
from actors.inspector_messages import (
    ActiveLearningQueue,
    ActiveLearningStats,
    CountInspections,
    ExportInspections,
    GetBatchJob,
    GetInspection,
    InspectionStats,
    InspectionTrend,
    InspectionView,
    ListBatchJobs,
    ListInspectionAlerts,
    ListInspections,
    ListVisionModels,
    inspection_view,
)
from actors.operators import GetOperator, ListOperators, LookupOperator, VerifyRfid
from actors.robot_messages import ListRobotAlerts, ListRobotLogs
from actors.runtime import ActorUnavailable, Directory
from actors.step_events import SummarizeStepEvents
from actors.trace_messages import (
    BatchDetail,
    CodeDetail,
    CountCodes,
    GetBatch,
    GetBufferSummary,
    GetCode,
    ListBatches,
    ListCodes,
)
from state._membership import BATCH_COLUMNS, CODE_COLUMNS, batch_row, code_row
from state.batches import BatchPage, batch_history, get_batch, list_batches
from state.buffer import BufferSummary, buffer_summary
from state.codes import CodePage, count_codes, find_code, get_code, list_codes
from state.errors import NotFound
from state.events import EventFilter, StoredEvent, get_event, list_events, unacked_ids
from state.inspection_alerts import AlertRow
from state.inspection_alerts import list_alerts as list_inspection_alerts
from state.inspection_jobs import (
    ActiveLearningRow,
    BatchJobRow,
    active_learning_stats,
    get_job,
    list_jobs,
    pending_items,
)
from state.inspections import (
    InspectionRow,
    InspectionStatistics,
    InspectionTrends,
    count_inspections,
    export_page,
    get_inspection,
    inspection_statistics,
    inspection_trends,
    list_inspections,
)
from state.journal import JournalRow, read_journal
from state.operators import (
    Operator,
    find_operator_by_name,
    find_operator_by_rfid,
    get_operator,
    list_operators,
)
from state.robots import RobotAlertRow, list_alerts, list_logs
from state.step_events import DaySummary, step_event_summary
from state.vision_models import ModelRow, list_models

__all__ = ["GetEvent", "QueryActor", "ReadEvents", "ReadJournal", "UnackedEvents",
           "pick_query_actor"]

PREFIX = "query:"


class ReadJournal(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    from_seq: int = 0
    topic_prefix: str | None = None
    limit: int = 100


class ReadEvents(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    filter: EventFilter = EventFilter()
    before_id: int | None = None
    limit: int = 100


class GetEvent(msgspec.Struct, frozen=True, tag=True):
    id: int


class UnackedEvents(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    filter: EventFilter = EventFilter()
    up_to_id: int
    limit: int = 10_000


class QueryActor(DatabaseActor):
    @handles(ReadJournal)
    def _journal(self, msg: ReadJournal) -> list[JournalRow]:
        return read_journal(self.con, from_seq=msg.from_seq, topic_prefix=msg.topic_prefix,
                            limit=msg.limit)

    @handles(ReadEvents)
    def _events(self, msg: ReadEvents) -> list[StoredEvent]:
        return list_events(self.con, msg.filter, before_id=msg.before_id, limit=msg.limit)

    @handles(GetEvent)
    def _event(self, msg: GetEvent) -> StoredEvent | None:
        return get_event(self.con, msg.id)

    @handles(UnackedEvents)
    def _unacked(self, msg: UnackedEvents) -> list[int]:
        return unacked_ids(self.con, msg.filter, up_to_id=msg.up_to_id, limit=msg.limit)

    # ---- codes and batches (written by the traceability actor) ----------------------------

    @handles(ListCodes)
    def _codes(self, msg: ListCodes) -> CodePage:
        if msg.code is not None:  # a lookup by value: one row or none
            row = find_code(self.con, msg.code)
            return CodePage(items=[row] if row is not None else [], next_cursor=None)
        return list_codes(self.con, status=msg.status, batch_id=msg.batch_id, line_id=msg.line_id,
                          source=msg.source, from_us=msg.from_us, to_us=msg.to_us, limit=msg.limit,
                          cursor=msg.cursor)

    @handles(GetCode)
    def _code(self, msg: GetCode) -> CodeDetail:
        row = get_code(self.con, msg.id)
        if row is None:
            raise NotFound(f"no code with id {msg.id}")
        return CodeDetail(code=row, batches=batch_history(self.con, row.code))

    @handles(CountCodes)
    def _count(self, msg: CountCodes) -> dict[str, int]:
        counts = count_codes(self.con, line_id=msg.line_id, from_us=msg.from_us, to_us=msg.to_us)
        return {str(int(status)): n for status, n in counts.items()}

    @handles(ListBatches)
    def _batches(self, msg: ListBatches) -> BatchPage:
        return list_batches(self.con, status=msg.status, kind=msg.kind, device_id=msg.device_id,
                            line_id=msg.line_id, limit=msg.limit, cursor=msg.cursor)

    @handles(GetBatch)
    def _batch(self, msg: GetBatch) -> BatchDetail:
        row = get_batch(self.con, msg.id)
        if row is None:
            raise NotFound(f"no batch with id {msg.id}")
        limit = max(1, min(msg.limit, 10_000))
        codes = self.con.execute(
            f"SELECT {CODE_COLUMNS} FROM codes WHERE batch_id = ? ORDER BY id LIMIT ?",
            [row.id, limit + 1]).fetchall()
        packages = self.con.execute(
            f"SELECT {BATCH_COLUMNS} FROM batches WHERE parent_id = ? ORDER BY id", [row.id]
        ).fetchall()
        return BatchDetail(batch=row, codes=[code_row(c) for c in codes[:limit]],
                           packages=[batch_row(p) for p in packages], more_codes=len(codes) > limit)

    @handles(GetBufferSummary)
    def _buffer(self, _: GetBufferSummary) -> list[BufferSummary]:
        return buffer_summary(self.con)

    @handles(ListRobotLogs)
    def _robot_logs(self, msg: ListRobotLogs) -> list[dict[str, Any]]:
        return list_logs(self.con, msg.robot, msg.kind, msg.no_of_logs)

    @handles(ListRobotAlerts)
    def _robot_alerts(self, msg: ListRobotAlerts) -> list[RobotAlertRow]:
        return list_alerts(self.con, msg.robot, msg.no_of_alerts, max_severity=msg.max_severity)

    # ---- operators (written by the operators actor) ---------------------------------------

    @handles(ListOperators)
    def _operators(self, msg: ListOperators) -> list[Operator]:
        return [row.public() for row in list_operators(self.con, active_only=msg.active_only)]

    @handles(GetOperator)
    def _operator(self, msg: GetOperator) -> Operator:
        row = get_operator(self.con, msg.operator_id)
        if row is None:
            raise NotFound(f"no operator {msg.operator_id}")
        return row.public()

    @handles(VerifyRfid)
    def _rfid(self, msg: VerifyRfid) -> Operator:
        row = find_operator_by_rfid(self.con, msg.rfid)
        if row is None or not row.active:
            raise NotFound("no active operator has this RFID")
        return row.public()

    @handles(LookupOperator)
    def _lookup(self, msg: LookupOperator) -> int:
        row = find_operator_by_name(self.con, msg.first_name, msg.last_name)
        if row is None:
            raise NotFound(f"no operator named {msg.first_name} {msg.last_name}")
        return row.id

    # ---- step events (written by the step events actor and the sequencer) -----------------

    @handles(SummarizeStepEvents)
    def _step_events(self, msg: SummarizeStepEvents) -> list[DaySummary]:
        return step_event_summary(self.con, from_us=msg.from_us, to_us=msg.to_us,
                                  machine_ids=msg.machine_ids)

    # ---- inspections (written by the inspector through the store) ---------------------------

    def _model_names(self) -> dict[str, str]:
        return {m.id: f"{m.name} v{m.version}" for m in list_models(self.con)}

    @handles(GetInspection)
    def _inspection(self, msg: GetInspection) -> InspectionView:
        stored = get_inspection(self.con, msg.id)
        if stored is None:
            raise NotFound(f"no inspection {msg.id}")
        model_id = stored.inspection.model_id
        return inspection_view(stored, self._model_names().get(model_id or ""))

    @handles(ListInspections)
    def _inspections(self, msg: ListInspections) -> list[InspectionView]:
        names = self._model_names()
        return [inspection_view(s, names.get(s.inspection.model_id or ""))
                for s in list_inspections(self.con, msg.filter, limit=msg.limit,
                                          offset=msg.offset)]

    @handles(CountInspections)
    def _count_inspections(self, msg: CountInspections) -> int:
        return count_inspections(self.con, msg.filter)

    @handles(InspectionStats)
    def _inspection_stats(self, msg: InspectionStats) -> InspectionStatistics:
        return inspection_statistics(self.con, since_us=msg.since_us, station_id=msg.station_id)

    @handles(InspectionTrend)
    def _inspection_trend(self, msg: InspectionTrend) -> InspectionTrends:
        return inspection_trends(self.con, since_us=msg.since_us, until_us=msg.until_us,
                                 interval=msg.interval, station_id=msg.station_id)

    @handles(ExportInspections)
    def _export_inspections(self, msg: ExportInspections) -> list[InspectionRow]:
        after = None if msg.after_us is None or msg.after_id is None else (msg.after_us,
                                                                           msg.after_id)
        return export_page(self.con, after=after, limit=msg.limit, flt=msg.filter)

    @handles(ListVisionModels)
    def _vision_models(self, _: ListVisionModels) -> list[ModelRow]:
        return list_models(self.con)

    @handles(ListInspectionAlerts)
    def _inspection_alerts(self, msg: ListInspectionAlerts) -> list[AlertRow]:
        return list_inspection_alerts(self.con, msg.filter, limit=msg.limit, offset=msg.offset)

    @handles(ListBatchJobs)
    def _batch_jobs(self, msg: ListBatchJobs) -> list[BatchJobRow]:
        return list_jobs(self.con, limit=msg.limit, offset=msg.offset)

    @handles(GetBatchJob)
    def _batch_job(self, msg: GetBatchJob) -> BatchJobRow:
        job = get_job(self.con, msg.id)
        if job is None:
            raise NotFound(f"no batch job {msg.id}")
        return job

    @handles(ActiveLearningStats)
    def _active_learning_stats(self, _: ActiveLearningStats) -> dict[str, int]:
        return active_learning_stats(self.con)

    @handles(ActiveLearningQueue)
    def _active_learning_queue(self, msg: ActiveLearningQueue) -> list[ActiveLearningRow]:
        return pending_items(self.con, limit=msg.limit)


def pick_query_actor(directory: Directory) -> pykka.ActorRef[Any]:
    """The running query actor with the fewest waiting messages."""
    refs = []
    for name in directory.names(PREFIX):
        try:
            refs.append(directory.get(name))
        except ActorUnavailable:
            continue
    if not refs:
        raise ActorUnavailable("no query actor is running")
    return min(refs, key=lambda r: r.actor_inbox.qsize())

