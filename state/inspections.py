"""Inspections and their detections (migration 0012): rows for group commit, reads, the
statistics and trends computed from the rows on every call, and the export pages.

Rows are written through the store actor's group commit (InspectionRow, DetectionRow and
state.inspection_jobs.ActiveLearningRow are registered tables); everything here reads, except
`delete_inspection`.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from typing import Any, Literal

import duckdb
import msgspec
import pyarrow as pa

from state._sql import transaction
from state.errors import translated_errors
from state.tables import TableSpec, register_table

__all__ = [
    "DETECTIONS",
    "INSPECTIONS",
    "DetectionRow",
    "InspectionFilter",
    "InspectionRow",
    "InspectionStatistics",
    "InspectionTrends",
    "StoredInspection",
    "count_inspections",
    "delete_inspection",
    "export_page",
    "get_inspection",
    "inspection_id",
    "inspection_statistics",
    "inspection_trends",
    "list_inspections",
    "parse_id",
]

Interval = Literal["hour", "day"]
_BUCKET_US = {"hour": 3_600_000_000, "day": 86_400_000_000}


class InspectionRow(msgspec.Struct, frozen=True, kw_only=True):
    id: str  # UUIDv7 text, see inspection_id
    station_id: str
    camera: str | None
    part_id: str | None
    source: str  # upload | camera | batch | stream
    decision: str  # pass | fail | uncertain
    confidence: float
    label: str
    objects_found: int
    total_time_ms: float
    inference_ms: float
    model_id: str | None
    image_ref: str | None
    at_us: int


class DetectionRow(msgspec.Struct, frozen=True, kw_only=True):
    inspection_id: str
    class_name: str
    confidence: float
    x1: int | None
    y1: int | None
    x2: int | None
    y2: int | None
    area_mm2: float | None


INSPECTIONS = register_table(TableSpec(
    table="inspections", row_type=InspectionRow,
    schema=pa.schema([
        ("id", pa.string()), ("station_id", pa.string()), ("camera", pa.string()),
        ("part_id", pa.string()), ("source", pa.string()), ("decision", pa.string()),
        ("confidence", pa.float64()), ("label", pa.string()), ("objects_found", pa.int32()),
        ("total_time_ms", pa.float64()), ("inference_ms", pa.float64()),
        ("model_id", pa.string()), ("image_ref", pa.string()), ("at_us", pa.int64()),
    ]),
))

DETECTIONS = register_table(TableSpec(
    table="detections", row_type=DetectionRow,
    schema=pa.schema([
        ("inspection_id", pa.string()), ("class_name", pa.string()),
        ("confidence", pa.float64()), ("x1", pa.int32()), ("y1", pa.int32()),
        ("x2", pa.int32()), ("y2", pa.int32()), ("area_mm2", pa.float64()),
    ]),
))


class StoredInspection(msgspec.Struct, frozen=True, kw_only=True):
    inspection: InspectionRow
    detections: list[DetectionRow]


class InspectionFilter(msgspec.Struct, frozen=True, kw_only=True):
    station_id: str | None = None
    decision: str | None = None


class InspectionStatistics(msgspec.Struct, frozen=True, kw_only=True):
    total_inspections: int
    passed: int
    failed: int
    uncertain: int
    pass_rate: float | None  # None without inspections
    avg_inspection_time_ms: float | None
    defect_breakdown: dict[str, int]  # label of failed inspections -> count


class InspectionTrends(msgspec.Struct, frozen=True, kw_only=True):
    labels: list[str]  # bucket starts, "YYYY-MM-DD HH:MM:SS" UTC
    total: list[int]
    passed: list[int]
    failed: list[int]
    uncertain: list[int]


def inspection_id(at_us: int) -> str:
    """A UUIDv7 (RFC 9562) whose time is at_us: ids rise with the rows, so the zonemap of
    `id` finds one without an index. The 12 bits after the milliseconds hold the sub-ms part,
    so ids made in one millisecond still sort in time order."""
    ms, sub_us = divmod(max(at_us, 0), 1000)
    rand = int.from_bytes(os.urandom(8), "big")
    value = ((ms & 0xFFFF_FFFF_FFFF) << 80) | (0x7 << 76) | ((sub_us * 4096 // 1000) << 64)
    value |= (0b10 << 62) | (rand & 0x3FFF_FFFF_FFFF_FFFF)
    return str(uuid.UUID(int=value))


def parse_id(text: str) -> str | None:
    """The canonical form of a UUID text, or None if it is not one."""
    try:
        return str(uuid.UUID(text))
    except (ValueError, TypeError, AttributeError):
        return None


_COLUMNS = ", ".join(InspectionRow.__struct_fields__)
_DETECTION_COLUMNS = ", ".join(DetectionRow.__struct_fields__)


def _inspection(row: tuple[Any, ...]) -> InspectionRow:
    values = dict(zip(InspectionRow.__struct_fields__, row, strict=True))
    values["id"] = str(values["id"])
    return InspectionRow(**values)


def _detection(row: tuple[Any, ...]) -> DetectionRow:
    values = dict(zip(DetectionRow.__struct_fields__, row, strict=True))
    values["inspection_id"] = str(values["inspection_id"])
    return DetectionRow(**values)


def get_inspection(con: duckdb.DuckDBPyConnection, id_: str) -> StoredInspection | None:
    """One inspection with its detections, or None (also for a text that is no UUID)."""
    key = parse_id(id_)
    if key is None:
        return None
    with translated_errors():
        rows = con.execute(f"SELECT {_COLUMNS} FROM inspections WHERE id = ?::UUID",
                           [key]).fetchall()
        if not rows:
            return None
        found = con.execute(
            f"SELECT {_DETECTION_COLUMNS} FROM detections WHERE inspection_id = ?::UUID "
            "ORDER BY confidence DESC", [key]).fetchall()
    return StoredInspection(inspection=_inspection(rows[0]),
                            detections=[_detection(d) for d in found])


_ALL = InspectionFilter()


def _where(flt: InspectionFilter, since_us: int | None = None) -> tuple[str, list[object]]:
    conditions: list[str] = []
    params: list[object] = []
    if since_us is not None:
        conditions.append("at_us >= ?")
        params.append(since_us)
    if flt.station_id is not None:
        conditions.append("station_id = ?")
        params.append(flt.station_id)
    if flt.decision is not None:
        conditions.append("decision = ?")
        params.append(flt.decision)
    return (" WHERE " + " AND ".join(conditions)) if conditions else "", params


def list_inspections(con: duckdb.DuckDBPyConnection, flt: InspectionFilter, *, limit: int,
                     offset: int = 0) -> list[StoredInspection]:
    """A page of inspections, newest first, each with its detections."""
    where, params = _where(flt)
    with translated_errors():
        rows = con.execute(
            f"SELECT {_COLUMNS} FROM inspections{where} ORDER BY at_us DESC, id DESC "
            "LIMIT ? OFFSET ?", [*params, limit, offset]).fetchall()
        page = [_inspection(r) for r in rows]
        found: dict[str, list[DetectionRow]] = {r.id: [] for r in page}
        if page:
            marks = ", ".join(["?::UUID"] * len(page))
            for d in con.execute(
                    f"SELECT {_DETECTION_COLUMNS} FROM detections WHERE inspection_id IN "
                    f"({marks}) ORDER BY confidence DESC", list(found)).fetchall():
                detection = _detection(d)
                found[detection.inspection_id].append(detection)
    return [StoredInspection(inspection=r, detections=found[r.id]) for r in page]


def count_inspections(con: duckdb.DuckDBPyConnection, flt: InspectionFilter | None = None) -> int:
    where, params = _where(flt or _ALL)
    with translated_errors():
        return int(con.execute(f"SELECT count(*) FROM inspections{where}",
                               params).fetchall()[0][0])


def delete_inspection(con: duckdb.DuckDBPyConnection, id_: str) -> InspectionRow | None:
    """Delete an inspection with its detections and its active-learning entry, in one
    transaction; the row as it was (its image_ref is the caller's to remove), or None."""
    stored = get_inspection(con, id_)
    if stored is None:
        return None
    with transaction(con):
        con.execute("DELETE FROM detections WHERE inspection_id = ?::UUID", [stored.inspection.id])
        con.execute("DELETE FROM active_learning WHERE inspection_id = ?::UUID",
                    [stored.inspection.id])
        con.execute("DELETE FROM inspections WHERE id = ?::UUID", [stored.inspection.id])
    return stored.inspection


def inspection_statistics(con: duckdb.DuckDBPyConnection, *, since_us: int,
                          station_id: str | None = None) -> InspectionStatistics:
    """Counts per decision, pass rate, mean time and failed labels since since_us, read from
    the rows themselves (one scan of the time range, pruned by the zonemap of at_us)."""
    where, params = _where(InspectionFilter(station_id=station_id), since_us)
    # Two plain scans beat one grouped by (decision, label): hashing the label of every row
    # cost ~4x here. One transaction, so both read the same snapshot.
    with transaction(con):
        total, passed, failed, uncertain, avg_ms = con.execute(
            "SELECT count(*), count_if(decision = 'pass'), count_if(decision = 'fail'), "
            f"count_if(decision = 'uncertain'), avg(total_time_ms) FROM inspections{where}",
            params).fetchall()[0]
        defects = con.execute(
            f"SELECT label, count(*) AS n FROM inspections{where} AND decision = 'fail' "
            "GROUP BY label ORDER BY n DESC, label", params).fetchall()
    passed, failed, uncertain = passed or 0, failed or 0, uncertain or 0  # NULL when none
    return InspectionStatistics(
        total_inspections=total, passed=passed, failed=failed, uncertain=uncertain,
        pass_rate=passed / total if total else None, avg_inspection_time_ms=avg_ms,
        defect_breakdown={label: int(n) for label, n in defects})


def _bucket_label(start_us: int) -> str:
    return dt.datetime.fromtimestamp(start_us / 1e6, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def inspection_trends(con: duckdb.DuckDBPyConnection, *, since_us: int, until_us: int,
                      interval: Interval, station_id: str | None = None) -> InspectionTrends:
    """Counts per UTC hour or day from the bucket holding since_us to the one holding until_us;
    buckets without inspections are there with zeros, so a chart's axis is even."""
    width = _BUCKET_US[interval]
    first = since_us // width
    where, params = _where(InspectionFilter(station_id=station_id), first * width)
    with translated_errors():
        rows = con.execute(
            "SELECT at_us // ? AS bucket, count(*), count_if(decision = 'pass'), "
            "count_if(decision = 'fail'), count_if(decision = 'uncertain') "
            f"FROM inspections{where} AND at_us < ? GROUP BY bucket",
            [width, *params, (until_us // width + 1) * width]).fetchall()
    by_bucket = {int(b): (int(t), int(p), int(f), int(u)) for b, t, p, f, u in rows}
    buckets = range(first, until_us // width + 1)
    empty = (0, 0, 0, 0)
    return InspectionTrends(
        labels=[_bucket_label(b * width) for b in buckets],
        total=[by_bucket.get(b, empty)[0] for b in buckets],
        passed=[by_bucket.get(b, empty)[1] for b in buckets],
        failed=[by_bucket.get(b, empty)[2] for b in buckets],
        uncertain=[by_bucket.get(b, empty)[3] for b in buckets])


def export_page(con: duckdb.DuckDBPyConnection, *, after: tuple[int, str] | None, limit: int,
                flt: InspectionFilter | None = None) -> list[InspectionRow]:
    """The next `limit` inspections in (at_us, id) order after the key `after` (keyset paging:
    each page costs the same however deep the export is)."""
    where, params = _where(flt or _ALL, None if after is None else after[0])
    if after is not None:
        where += " AND (at_us > ? OR id > ?::UUID)"
        params += [after[0], after[1]]
    with translated_errors():
        rows = con.execute(f"SELECT {_COLUMNS} FROM inspections{where} ORDER BY at_us, id "
                           "LIMIT ?", [*params, limit]).fetchall()
    return [_inspection(r) for r in rows]

