"""Batch jobs over folders of images and the active-learning queue (migration 0012).

A batch job goes pending -> running -> completed | cancelled | failed; its counters are
written as it goes. Active-learning entries arrive with their inspection through group commit
(ActiveLearningRow is a registered table) and go pending -> labeled -> trained.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

import duckdb
import msgspec
import pyarrow as pa

from state._sql import fetch_one
from state.errors import NotFound, TransitionError, translated_errors
from state.tables import TableSpec, register_table

__all__ = [
    "ACTIVE_LEARNING",
    "ActiveLearningRow",
    "Annotation",
    "BatchJobRow",
    "JobStatus",
    "active_learning_stats",
    "annotate",
    "create_job",
    "fail_interrupted_jobs",
    "finish_job",
    "get_active_learning",
    "get_job",
    "job_progress",
    "labeled_items",
    "list_jobs",
    "mark_trained",
    "pending_items",
    "start_job",
]

JobStatus = Literal["pending", "running", "completed", "cancelled", "failed"]


class BatchJobRow(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    input_dir: str
    file_pattern: str
    part_id: str | None
    status: JobStatus
    total: int
    done: int
    failed: int
    created_us: int
    started_us: int | None
    finished_us: int | None
    error: str | None


class Annotation(msgspec.Struct, frozen=True, kw_only=True):
    class_name: str
    bbox: tuple[int, int, int, int] | None = None


class ActiveLearningRow(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    inspection_id: str
    image_ref: str
    reason: str
    status: str  # pending | labeled | trained
    annotations: str | None  # JSON list of Annotation
    reviewed_by: str | None
    reviewed_us: int | None
    at_us: int


ACTIVE_LEARNING = register_table(TableSpec(
    table="active_learning", row_type=ActiveLearningRow,
    schema=pa.schema([
        ("id", pa.string()), ("inspection_id", pa.string()), ("image_ref", pa.string()),
        ("reason", pa.string()), ("status", pa.string()), ("annotations", pa.string()),
        ("reviewed_by", pa.string()), ("reviewed_us", pa.int64()), ("at_us", pa.int64()),
    ]),
))

_JOB_COLUMNS = ", ".join(BatchJobRow.__struct_fields__)
_AL_COLUMNS = ", ".join(ActiveLearningRow.__struct_fields__)


def _job(row: tuple[Any, ...]) -> BatchJobRow:
    return BatchJobRow(**dict(zip(BatchJobRow.__struct_fields__, row, strict=True)))


def _entry(row: tuple[Any, ...]) -> ActiveLearningRow:
    values = dict(zip(ActiveLearningRow.__struct_fields__, row, strict=True))
    values["id"] = str(values["id"])
    values["inspection_id"] = str(values["inspection_id"])
    return ActiveLearningRow(**values)


# ---- batch jobs ---------------------------------------------------------------------------------


def create_job(con: duckdb.DuckDBPyConnection, *, name: str, input_dir: str, file_pattern: str,
               part_id: str | None, now_us: int) -> BatchJobRow:
    job = BatchJobRow(id=str(uuid.uuid4()), name=name, input_dir=input_dir,
                      file_pattern=file_pattern, part_id=part_id, status="pending", total=0,
                      done=0, failed=0, created_us=now_us, started_us=None, finished_us=None,
                      error=None)
    with translated_errors():
        con.execute(f"INSERT INTO inspection_batch_jobs ({_JOB_COLUMNS}) VALUES "
                    f"({', '.join('?' * len(BatchJobRow.__struct_fields__))})",
                    list(msgspec.structs.astuple(job)))
    return job


def get_job(con: duckdb.DuckDBPyConnection, job_id: str) -> BatchJobRow | None:
    row = fetch_one(con, f"SELECT {_JOB_COLUMNS} FROM inspection_batch_jobs WHERE id = ?",
                    [job_id])
    return None if row is None else _job(row)


def list_jobs(con: duckdb.DuckDBPyConnection, *, limit: int, offset: int = 0
              ) -> list[BatchJobRow]:
    """Jobs, newest first."""
    with translated_errors():
        rows = con.execute(f"SELECT {_JOB_COLUMNS} FROM inspection_batch_jobs "
                           "ORDER BY created_us DESC, id LIMIT ? OFFSET ?",
                           [limit, offset]).fetchall()
    return [_job(r) for r in rows]


def _must_job(con: duckdb.DuckDBPyConnection, job_id: str) -> BatchJobRow:
    job = get_job(con, job_id)
    if job is None:
        raise NotFound(f"no batch job {job_id}")
    return job


def start_job(con: duckdb.DuckDBPyConnection, job_id: str, *, total: int, now_us: int
              ) -> BatchJobRow:
    """pending -> running with the number of files found; TransitionError from any other."""
    job = _must_job(con, job_id)
    if job.status != "pending":
        raise TransitionError(f"batch job {job_id} is {job.status}; only a pending job starts")
    with translated_errors():
        con.execute("UPDATE inspection_batch_jobs SET status = 'running', total = ?, "
                    "started_us = ? WHERE id = ?", [total, now_us, job_id])
    return _must_job(con, job_id)


def job_progress(con: duckdb.DuckDBPyConnection, job_id: str, *, done: int, failed: int) -> None:
    with translated_errors():
        con.execute("UPDATE inspection_batch_jobs SET done = ?, failed = ? WHERE id = ?",
                    [done, failed, job_id])


def finish_job(con: duckdb.DuckDBPyConnection, job_id: str, *, status: JobStatus, now_us: int,
               error: str | None = None) -> BatchJobRow:
    """End a job (completed, cancelled or failed); a pending job may only be cancelled."""
    job = _must_job(con, job_id)
    if job.status not in ("pending", "running") or (
            job.status == "pending" and status != "cancelled"):
        raise TransitionError(f"batch job {job_id} is {job.status}; it cannot become {status}")
    with translated_errors():
        con.execute("UPDATE inspection_batch_jobs SET status = ?, finished_us = ?, error = ? "
                    "WHERE id = ?", [status, now_us, error, job_id])
    return _must_job(con, job_id)


def fail_interrupted_jobs(con: duckdb.DuckDBPyConnection, *, now_us: int) -> int:
    """Jobs still running from before a restart are failed: their worker is gone."""
    with translated_errors():
        rows = con.execute("UPDATE inspection_batch_jobs SET status = 'failed', finished_us = ?, "
                           "error = 'interrupted: the inspector restarted' "
                           "WHERE status = 'running' RETURNING id", [now_us]).fetchall()
    return len(rows)


# ---- active learning ----------------------------------------------------------------------------


def active_learning_stats(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Entries per status: pending, labeled, trained."""
    with translated_errors():
        rows = con.execute("SELECT status, count(*) FROM active_learning GROUP BY status"
                           ).fetchall()
    counts = {"pending": 0, "labeled": 0, "trained": 0}
    counts.update({status: int(n) for status, n in rows})
    return counts


def pending_items(con: duckdb.DuckDBPyConnection, *, limit: int) -> list[ActiveLearningRow]:
    """The next entries to annotate, oldest first."""
    with translated_errors():
        rows = con.execute(f"SELECT {_AL_COLUMNS} FROM active_learning WHERE status = 'pending' "
                           "ORDER BY at_us, id LIMIT ?", [limit]).fetchall()
    return [_entry(r) for r in rows]


def labeled_items(con: duckdb.DuckDBPyConnection) -> list[ActiveLearningRow]:
    with translated_errors():
        rows = con.execute(f"SELECT {_AL_COLUMNS} FROM active_learning WHERE status = 'labeled' "
                           "ORDER BY at_us, id").fetchall()
    return [_entry(r) for r in rows]


def get_active_learning(con: duckdb.DuckDBPyConnection, entry_id: str
                        ) -> ActiveLearningRow | None:
    try:
        key = str(uuid.UUID(entry_id))
    except ValueError:
        return None
    row = fetch_one(con, f"SELECT {_AL_COLUMNS} FROM active_learning WHERE id = ?::UUID", [key])
    return None if row is None else _entry(row)


def annotate(con: duckdb.DuckDBPyConnection, entry_id: str, annotations: list[Annotation], *,
             by: str, now_us: int) -> ActiveLearningRow:
    """Label an entry (pending or labeled again); NotFound, or TransitionError once trained."""
    entry = get_active_learning(con, entry_id)
    if entry is None:
        raise NotFound(f"no active-learning entry {entry_id}")
    if entry.status == "trained":
        raise TransitionError(f"entry {entry_id} was already used for training")
    with translated_errors():
        con.execute("UPDATE active_learning SET status = 'labeled', annotations = ?, "
                    "reviewed_by = ?, reviewed_us = ? WHERE id = ?::UUID",
                    [msgspec.json.encode(annotations).decode(), by, now_us, entry.id])
    found = get_active_learning(con, entry.id)
    if found is None:
        raise NotFound(f"active-learning entry {entry_id} vanished")
    return found


def mark_trained(con: duckdb.DuckDBPyConnection, entry_ids: list[str]) -> None:
    if not entry_ids:
        return
    marks = ", ".join(["?::UUID"] * len(entry_ids))
    with translated_errors():
        con.execute(f"UPDATE active_learning SET status = 'trained' WHERE id IN ({marks})",
                    entry_ids)
