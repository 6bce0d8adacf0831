"""Assembly records and step records (tables of migration 0007): what each coaching session
left behind, written by the sequencer as the session goes, read by the records API.

The open record of a station (ended_us NULL) carries the current step, when it started, the
captured variables and why the record can no longer be OK: all a restarted sequencer needs
to resume (controller.coaching.recovered).
"""

from __future__ import annotations

from typing import Any

import duckdb
import msgspec

from controller.coaching import StepResult
from state._sql import capped, fetch_one, first_row, transaction
from state.errors import NotFound, translated_errors

__all__ = [
    "RecordRow",
    "StepRecordRow",
    "finish_record",
    "finish_step",
    "get_record",
    "list_records",
    "open_record",
    "open_record_of",
    "record_metrics",
    "start_step",
    "step_performance",
    "step_records",
]

_json = msgspec.json.Encoder()
_decode = msgspec.json.Decoder()


class RecordRow(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    assembly_id: int
    revision_id: int
    station_id: str
    operator_id: int | None
    work_order: str | None
    part_serial: str | None
    started_us: int
    ended_us: int | None
    outcome: str | None
    reason: str | None
    released: bool
    auto_advance: bool
    release_enabled: bool
    current_step: int
    step_started_us: int | None
    variables: str  # JSON object
    failed: str | None

    def variables_dict(self) -> dict[str, str]:
        value = _decode.decode(self.variables)
        return value if isinstance(value, dict) else {}


class StepRecordRow(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    record_id: int
    step_index: int
    step_id: int
    name: str
    started_us: int
    ended_us: int | None
    cycle_s: float | None
    benchmark_s: float
    ok: bool | None
    skipped: bool | None
    reworked: bool | None
    evidence: str  # JSON list


_RECORD = ", ".join(RecordRow.__struct_fields__)
_STEP = ", ".join(StepRecordRow.__struct_fields__)


def _record(row: tuple[Any, ...]) -> RecordRow:
    return RecordRow(**dict(zip(RecordRow.__struct_fields__, row, strict=True)))


def _step(row: tuple[Any, ...]) -> StepRecordRow:
    return StepRecordRow(**dict(zip(StepRecordRow.__struct_fields__, row, strict=True)))


def open_record(con: duckdb.DuckDBPyConnection, *, assembly_id: int, revision_id: int,
                station_id: str, operator_id: int | None, work_order: str | None,
                part_serial: str | None, started_us: int, auto_advance: bool,
                release_enabled: bool) -> RecordRow:
    with translated_errors():
        row = first_row(con.execute(
            "INSERT INTO assembly_records (assembly_id, revision_id, station_id, operator_id, "
            "work_order, part_serial, started_us, auto_advance, release_enabled) "
            f"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING {_RECORD}",
            [assembly_id, revision_id, station_id, operator_id, work_order, part_serial,
             started_us, auto_advance, release_enabled]))
    assert row is not None
    return _record(row)


def open_record_of(con: duckdb.DuckDBPyConnection, station_id: str) -> RecordRow | None:
    """The station's unfinished record, if any (the newest, should there be two)."""
    row = fetch_one(con, f"SELECT {_RECORD} FROM assembly_records WHERE station_id = ? "
                         "AND ended_us IS NULL ORDER BY id DESC LIMIT 1", [station_id])
    return _record(row) if row is not None else None


def get_record(con: duckdb.DuckDBPyConnection, record_id: int) -> RecordRow:
    row = fetch_one(con, f"SELECT {_RECORD} FROM assembly_records WHERE id = ?", [record_id])
    if row is None:
        raise NotFound(f"no assembly record {record_id}")
    return _record(row)


def start_step(con: duckdb.DuckDBPyConnection, record_id: int, *, index: int, step_id: int,
               name: str, benchmark_s: float, at_us: int, variables: dict[str, str],
               failed: str | None) -> None:
    """A step began: its open step record, and the record's place for a resume."""
    with transaction(con):
        row = first_row(con.execute(
            "INSERT INTO step_records (record_id, step_index, step_id, name, started_us, "
            "benchmark_s) VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
            [record_id, index, step_id, name, at_us, benchmark_s]))
        con.execute("UPDATE assembly_records SET current_step = ?, step_started_us = ?, "
                    "variables = ?, failed = ?, open_step_id = ? WHERE id = ?",
                    [index, at_us, _json.encode(variables).decode(), failed,
                     row[0] if row else None, record_id])


def finish_step(con: duckdb.DuckDBPyConnection, record_id: int, result: StepResult, *,
                variables: dict[str, str], failed: str | None) -> None:
    """The step ended: close its open step record with the result and evidence."""
    with transaction(con):
        con.execute(
            "UPDATE step_records SET ended_us = ?, cycle_s = ?, ok = ?, skipped = ?, "
            "reworked = ?, evidence = ? WHERE id = (SELECT open_step_id FROM assembly_records "
            "WHERE id = ?) AND step_index = ? AND ended_us IS NULL",
            [result.ended_us, (result.ended_us - result.started_us) / 1e6, result.ok,
             result.skipped, result.reworked, _json.encode(list(result.evidence)).decode(),
             record_id, result.index])
        con.execute("UPDATE assembly_records SET variables = ?, failed = ? WHERE id = ?",
                    [_json.encode(variables).decode(), failed, record_id])


def finish_record(con: duckdb.DuckDBPyConnection, record_id: int, *, outcome: str,
                  reason: str | None, at_us: int, released: bool) -> None:
    with translated_errors():
        con.execute("UPDATE assembly_records SET ended_us = ?, outcome = ?, reason = ?, "
                    "released = ? WHERE id = ?", [at_us, outcome, reason, released, record_id])


def step_records(con: duckdb.DuckDBPyConnection, record_id: int) -> list[StepRecordRow]:
    with translated_errors():
        rows = con.execute(f"SELECT {_STEP} FROM step_records WHERE record_id = ? ORDER BY id",
                           [record_id]).fetchall()
    return [_step(r) for r in rows]


def list_records(con: duckdb.DuckDBPyConnection, *, assembly_id: int | None = None,
                 operator_id: int | None = None, outcome: str | None = None,
                 limit: int = 100, cursor: int | None = None) -> list[RecordRow]:
    """Records newest first; pass the last id seen as cursor for the next page."""
    conditions, params = [], []
    for column, value in (("assembly_id", assembly_id), ("operator_id", operator_id),
                          ("outcome", outcome)):
        if value is not None:
            conditions.append(f"{column} = ?")
            params.append(value)
    if cursor is not None:
        conditions.append("id < ?")
        params.append(cursor)
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    with translated_errors():
        rows = con.execute(f"SELECT {_RECORD} FROM assembly_records {where} "
                           "ORDER BY id DESC LIMIT ?", [*params, capped(limit)]).fetchall()
    return [_record(r) for r in rows]


def record_metrics(con: duckdb.DuckDBPyConnection, *, assembly_id: int | None = None,
                   operator_id: int | None = None) -> dict[str, Any]:
    """Counts per outcome and cycle times of finished records."""
    conditions, params = ["ended_us IS NOT NULL"], []
    for column, value in (("assembly_id", assembly_id), ("operator_id", operator_id)):
        if value is not None:
            conditions.append(f"{column} = ?")
            params.append(value)
    with translated_errors():
        row = first_row(con.execute(
            "SELECT count(*), count(*) FILTER (WHERE outcome = 'ok'), "
            "count(*) FILTER (WHERE outcome = 'nok'), "
            "count(*) FILTER (WHERE outcome = 'incomplete'), "
            "count(*) FILTER (WHERE outcome = 'aborted'), "
            "avg((ended_us - started_us) / 1e6), median((ended_us - started_us) / 1e6), "
            "min((ended_us - started_us) / 1e6), max((ended_us - started_us) / 1e6) "
            f"FROM assembly_records WHERE {' AND '.join(conditions)}", params))
    assert row is not None
    total, ok, nok, incomplete, aborted, mean, median, low, high = row
    return {"records": total, "ok": ok, "nok": nok, "incomplete": incomplete,
            "aborted": aborted, "first_pass_yield": round(ok / total, 4) if total else None,
            "cycle_s": {"mean": mean, "median": median, "min": low, "max": high}}


def step_performance(con: duckdb.DuckDBPyConnection, *, assembly_id: int,
                     operator_id: int | None = None) -> list[dict[str, Any]]:
    """Per step of an assembly: how often done, mean/median cycle vs benchmark, reworks."""
    where = "r.assembly_id = ? AND s.ended_us IS NOT NULL"
    params: list[Any] = [assembly_id]
    if operator_id is not None:
        where += " AND r.operator_id = ?"
        params.append(operator_id)
    with translated_errors():
        rows = con.execute(
            "SELECT s.step_index, any_value(s.name), count(*), "
            "count(*) FILTER (WHERE s.ok), count(*) FILTER (WHERE s.reworked), "
            "avg(s.cycle_s), median(s.cycle_s), any_value(s.benchmark_s), "
            "count(*) FILTER (WHERE s.ok AND s.benchmark_s > 0 AND s.cycle_s > s.benchmark_s) "
            "FROM step_records s JOIN assembly_records r ON r.id = s.record_id "
            f"WHERE {where} GROUP BY s.step_index ORDER BY s.step_index", params).fetchall()
    return [{"step_index": i, "name": name, "runs": runs, "ok": ok, "reworked": reworked,
             "cycle_s_mean": mean, "cycle_s_median": median, "benchmark_s": benchmark,
             "over_benchmark": over}
            for i, name, runs, ok, reworked, mean, median, benchmark, over in rows]
