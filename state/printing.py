"""Print jobs and label templates (tables of migration 0004), as plain functions over a cursor.

Every write is one autocommit statement: a printer's actor stores a job, and its counter before
sending, before any byte of it goes out. The legal changes of a job's state are the table
`JOB_TRANSITIONS`; anything else is refused with `TransitionError`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import duckdb
import msgspec

from state._sql import MAX_LIMIT, first_row
from state.errors import DuplicateError, TransitionError, translated_errors

__all__ = [
    "JOB_TRANSITIONS",
    "MAX_LIMIT",
    "UNFINISHED",
    "JobState",
    "PrintJob",
    "StoredTemplate",
    "count_jobs",
    "delete_template",
    "get_job",
    "get_template",
    "insert_job",
    "insert_template",
    "list_jobs",
    "list_templates",
    "save_template",
    "unfinished_jobs",
    "update_job",
]


class JobState(StrEnum):
    QUEUED = "queued"
    """Stored, waiting for its turn; nothing of it was sent unless counter_before is set."""
    HELD = "held"
    """Kept because the printer cannot print it now (paused, paper out, offline...)."""
    SENT = "sent"
    """Handed to the printer; waiting for its labels to come out."""
    DONE = "done"
    """The printer's label counter shows every label of it printed."""
    PARTIAL = "partial"
    """Only some labels came out and the printer holds no more of it: an operator decides."""
    FAILED = "failed"
    """The printer can never print it (the stored job is not a valid job)."""


JOB_TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset({JobState.HELD, JobState.SENT, JobState.DONE, JobState.PARTIAL,
                                JobState.FAILED}),
    JobState.HELD: frozenset({JobState.QUEUED, JobState.SENT, JobState.DONE, JobState.PARTIAL,
                              JobState.FAILED}),
    JobState.SENT: frozenset({JobState.HELD, JobState.DONE, JobState.PARTIAL, JobState.FAILED}),
    JobState.DONE: frozenset(),
    JobState.PARTIAL: frozenset(),
    JobState.FAILED: frozenset(),
}
UNFINISHED = frozenset(state for state, nexts in JOB_TRANSITIONS.items() if nexts)


class PrintJob(msgspec.Struct, frozen=True, kw_only=True):
    """One print job as stored; zpl is exactly what is (or was) sent."""

    id: int
    printer: str
    template: str
    code: str | None
    fields: dict[str, str]
    zpl: bytes
    labels: int
    state: JobState
    reason: str | None = None
    counter_before: int | None = None
    counter_after: int | None = None
    attempts: int = 0
    requested_by: str | None = None
    created_us: int
    updated_us: int
    done_us: int | None = None


class StoredTemplate(msgspec.Struct, frozen=True, kw_only=True):
    printer: str
    name: str
    body: str
    created_us: int
    updated_us: int
    updated_by: str | None = None


_JOB_COLUMNS = ("id, printer, template, code, fields, zpl, labels, state, reason, counter_before, "
                "counter_after, attempts, requested_by, created_us, updated_us, done_us")
_TEMPLATE_COLUMNS = "printer, name, body, created_us, updated_us, updated_by"
_MUTABLE = ("state", "reason", "counter_before", "counter_after", "attempts", "updated_us",
            "done_us")


def _job(row: tuple[Any, ...]) -> PrintJob:
    (id_, printer, template, code, fields, zpl, labels, state, reason, before, after, attempts,
     by, created, updated, done) = row
    return PrintJob(id=id_, printer=printer, template=template, code=code,
                    fields=msgspec.json.decode(fields), zpl=bytes(zpl), labels=labels,
                    state=JobState(state), reason=reason, counter_before=before,
                    counter_after=after, attempts=attempts, requested_by=by, created_us=created,
                    updated_us=updated, done_us=done)


def _template(row: tuple[Any, ...]) -> StoredTemplate:
    printer, name, body, created, updated, by = row
    return StoredTemplate(printer=printer, name=name, body=body, created_us=created,
                          updated_us=updated, updated_by=by)


# ---- jobs ---------------------------------------------------------------------------------------


def insert_job(con: duckdb.DuckDBPyConnection, *, printer: str, template: str, code: str | None,
               fields: dict[str, str], zpl: bytes, labels: int, requested_by: str | None,
               now_us: int) -> PrintJob:
    """Store a new job (state queued) and return it with its id."""
    with translated_errors():
        row = first_row(con.execute(
            "INSERT INTO print_jobs (printer, template, code, fields, zpl, labels, state, "
            "requested_by, created_us, updated_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            f"RETURNING {_JOB_COLUMNS}",
            [printer, template, code, msgspec.json.encode(fields).decode(), zpl, labels,
             JobState.QUEUED.value, requested_by, now_us, now_us],
        ))
    assert row is not None  # RETURNING of a one-row insert
    return _job(row)


def update_job(con: duckdb.DuckDBPyConnection, job: PrintJob, *, now_us: int,
               **changes: Any) -> PrintJob:
    """Write changes of a job's state, reason, counters or attempts; the updated job.

    The row must still be as `job` says (same state), and a new state must be allowed by
    JOB_TRANSITIONS (TransitionError otherwise). done_us is set on reaching a final state.
    """
    unknown = set(changes) - set(_MUTABLE)
    if unknown:
        raise ValueError(f"cannot change {', '.join(sorted(unknown))} of a print job")
    new = msgspec.structs.replace(job, updated_us=now_us, **changes)
    if new.state != job.state:
        if new.state not in JOB_TRANSITIONS[job.state]:
            raise TransitionError(f"print job {job.id}: {job.state} -> {new.state} is not allowed")
        if new.state not in UNFINISHED:
            new = msgspec.structs.replace(new, done_us=now_us)
    with translated_errors():
        row = first_row(con.execute(
            "UPDATE print_jobs SET state = ?, reason = ?, counter_before = ?, counter_after = ?, "
            "attempts = ?, updated_us = ?, done_us = ? WHERE id = ? AND state = ? RETURNING id",
            [new.state.value, new.reason, new.counter_before, new.counter_after, new.attempts,
             new.updated_us, new.done_us, job.id, job.state.value],
        ))
    if row is None:
        raise TransitionError(f"print job {job.id} is no longer {job.state} (changed meanwhile)")
    return new


def get_job(con: duckdb.DuckDBPyConnection, job_id: int) -> PrintJob | None:
    with translated_errors():
        row = first_row(con.execute(f"SELECT {_JOB_COLUMNS} FROM print_jobs WHERE id = ?",
                          [job_id]))
    return None if row is None else _job(row)


def unfinished_jobs(con: duckdb.DuckDBPyConnection, printer: str) -> list[PrintJob]:
    """The printer's jobs not yet done, partial or failed, oldest first (the print order)."""
    states = [s.value for s in sorted(UNFINISHED)]
    with translated_errors():
        rows = con.execute(
            f"SELECT {_JOB_COLUMNS} FROM print_jobs WHERE printer = ? AND list_contains(?, state) "
            "ORDER BY id", [printer, states]).fetchall()
    return [_job(row) for row in rows]


def list_jobs(con: duckdb.DuckDBPyConnection, printer: str, *, state: JobState | None = None,
              before_id: int | None = None, limit: int = 100) -> list[PrintJob]:
    """The printer's jobs, newest first; `before_id` continues a listing (a cursor)."""
    if not 0 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be between 0 and {MAX_LIMIT}, not {limit}")
    sql = f"SELECT {_JOB_COLUMNS} FROM print_jobs WHERE printer = ?"
    params: list[object] = [printer]
    if state is not None:
        sql += " AND state = ?"
        params.append(state.value)
    if before_id is not None:
        sql += " AND id < ?"
        params.append(before_id)
    sql += " ORDER BY id DESC LIMIT ?"
    params.append(limit)
    with translated_errors():
        rows = con.execute(sql, params).fetchall()
    return [_job(row) for row in rows]


def count_jobs(con: duckdb.DuckDBPyConnection, printer: str) -> dict[JobState, int]:
    """How many of the printer's jobs are in each state (every state present, 0 included)."""
    with translated_errors():
        rows = con.execute("SELECT state, count(*) FROM print_jobs WHERE printer = ? "
                           "GROUP BY state", [printer]).fetchall()
    counts = dict.fromkeys(JobState, 0)
    counts.update({JobState(state): int(n) for state, n in rows})
    return counts


# ---- templates ----------------------------------------------------------------------------------


def list_templates(con: duckdb.DuckDBPyConnection, printer: str) -> list[StoredTemplate]:
    with translated_errors():
        rows = con.execute(f"SELECT {_TEMPLATE_COLUMNS} FROM printer_templates WHERE printer = ? "
                           "ORDER BY name", [printer]).fetchall()
    return [_template(row) for row in rows]


def get_template(con: duckdb.DuckDBPyConnection, printer: str,
                 name: str) -> StoredTemplate | None:
    with translated_errors():
        row = first_row(con.execute(f"SELECT {_TEMPLATE_COLUMNS} FROM printer_templates "
                          "WHERE printer = ? AND name = ?", [printer, name]))
    return None if row is None else _template(row)


def insert_template(con: duckdb.DuckDBPyConnection, printer: str, name: str, body: str, *,
                    by: str | None, now_us: int) -> StoredTemplate:
    """Store a new template; DuplicateError if the printer has one of that name."""
    with translated_errors():
        row = first_row(con.execute(
            "INSERT INTO printer_templates (printer, name, body, created_us, updated_us, "
            f"updated_by) VALUES (?, ?, ?, ?, ?, ?) RETURNING {_TEMPLATE_COLUMNS}",
            [printer, name, body, now_us, now_us, by]))
    assert row is not None
    return _template(row)


def save_template(con: duckdb.DuckDBPyConnection, printer: str, name: str, body: str, *,
                  by: str | None, now_us: int) -> tuple[StoredTemplate, bool]:
    """Create or replace a template; (the stored template, True if it was created)."""
    with translated_errors():
        row = first_row(con.execute(
            "UPDATE printer_templates SET body = ?, updated_us = ?, updated_by = ? "
            f"WHERE printer = ? AND name = ? RETURNING {_TEMPLATE_COLUMNS}",
            [body, now_us, by, printer, name]))
    if row is not None:
        return _template(row), False
    try:
        return insert_template(con, printer, name, body, by=by, now_us=now_us), True
    except DuplicateError:
        # Another writer created it between the two statements; replace what it wrote.
        return save_template(con, printer, name, body, by=by, now_us=now_us)[0], False


def delete_template(con: duckdb.DuckDBPyConnection, printer: str, name: str) -> bool:
    """Drop a template; False if there was none."""
    with translated_errors():
        row = first_row(con.execute("DELETE FROM printer_templates WHERE printer = ? AND name = ? "
                          "RETURNING name", [printer, name]))
    return row is not None
