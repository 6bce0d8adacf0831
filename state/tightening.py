"""Tightening results, run-time torque settings and wrench controls (tables of migration 0005),
as plain functions over a cursor.

A result and the control change it causes (the sequence counter) are written in one
transaction by `store_result`, before the result is published. Torques of results are
integers in hundredths of N·m, as the controller sends them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import duckdb
import msgspec

from state._sql import first_row, transaction
from state.errors import translated_errors

__all__ = [
    "MAX_LIMIT",
    "StoredProgram",
    "Tightening",
    "TighteningCounts",
    "TighteningPage",
    "WrenchControls",
    "get_tightening",
    "last_tightening",
    "list_programs",
    "list_tightenings",
    "load_controls",
    "replace_programs",
    "save_controls",
    "save_program",
    "store_result",
    "tightening_counts",
]

MAX_LIMIT = 1000
"""The most rows one listing returns."""


class Tightening(msgspec.Struct, frozen=True, kw_only=True):
    """One tightening result as stored; id is 0 until it is."""

    id: int = 0
    wrench: str
    tightening_id: int
    controller_name: str
    cell_id: int
    channel_id: int
    job_id: int
    pset: int
    vin: str
    batch_size: int
    batch_counter: int
    batch_status: str  # nok | ok | not_used
    controller_ok: bool
    torque_status: str  # low | ok | high
    angle_status: str
    torque_cnm: int
    torque_min_cnm: int
    torque_max_cnm: int
    torque_target_cnm: int
    angle: int
    angle_min: int
    angle_max: int
    angle_target: int
    takt_torque_min_cnm: int | None = None
    takt_torque_max_cnm: int | None = None
    takt_angle_min: int | None = None
    takt_angle_max: int | None = None
    takt_ok: bool | None = None  # None: Takt has no settings for the pset
    flag: str | None = None  # why Takt's verdict differs from the controller's
    ok: bool
    controller_time: datetime  # the controller's local time, naive
    received_us: int


class TighteningPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of a listing, newest first; pass next_cursor back for the next (None: no more)."""

    items: list[Tightening]
    next_cursor: int | None


class TighteningCounts(msgspec.Struct, frozen=True, kw_only=True):
    results: int
    ok: int
    nok: int
    flagged: int  # results Takt judged NOK although the controller said OK


class StoredProgram(msgspec.Struct, frozen=True, kw_only=True):
    """Takt's torque settings of one pset of one wrench, set at run time (N·m, degrees)."""

    wrench: str
    pset: int
    name: str = ""
    torque_min_nm: float
    torque_max_nm: float
    torque_target_nm: float
    angle_min: int | None = None
    angle_max: int | None = None
    batch_size: int = 0
    updated_us: int
    updated_by: str | None = None


class WrenchControls(msgspec.Struct, frozen=True, kw_only=True):
    """What Takt holds for a wrench across reconnects and restarts."""

    wrench: str
    tool_enabled: bool = True
    locked: bool = False
    selected_pset: int | None = None
    sequence_pset: int | None = None
    sequence_size: int = 0
    sequence_counter: int = 0
    cleared_through: int = 0  # the last result id ClearState cleared
    malformed: int = 0
    updated_us: int = 0


_COLUMNS = tuple(f.name for f in msgspec.structs.fields(Tightening))
_SELECT = ", ".join(_COLUMNS)
_INSERT_COLUMNS = _COLUMNS[1:]  # id comes from the sequence
_PROGRAM_COLUMNS = tuple(f.name for f in msgspec.structs.fields(StoredProgram))
_CONTROL_COLUMNS = tuple(f.name for f in msgspec.structs.fields(WrenchControls))


def _tightening(row: tuple[Any, ...]) -> Tightening:
    return Tightening(**dict(zip(_COLUMNS, row, strict=True)))


# ---- results ---------------------------------------------------------------------------------


def store_result(con: duckdb.DuckDBPyConnection, result: Tightening,
                 controls: WrenchControls | None = None) -> Tightening:
    """Store a result (and the controls it changed) in one transaction; the row with its id."""
    values = [getattr(result, name) for name in _INSERT_COLUMNS]
    marks = ", ".join("?" * len(values))
    with transaction(con):
        with translated_errors():
            row = first_row(con.execute(
                f"INSERT INTO tightenings ({', '.join(_INSERT_COLUMNS)}) VALUES ({marks}) "
                f"RETURNING {_SELECT}", values))
        if controls is not None:
            save_controls(con, controls)
    assert row is not None  # RETURNING of a one-row insert
    return _tightening(row)


def get_tightening(con: duckdb.DuckDBPyConnection, row_id: int) -> Tightening | None:
    with translated_errors():
        row = first_row(con.execute(f"SELECT {_SELECT} FROM tightenings WHERE id = ?", [row_id]))
    return None if row is None else _tightening(row)


def last_tightening(con: duckdb.DuckDBPyConnection, wrench: str,
                    after_id: int = 0) -> Tightening | None:
    """The wrench's newest result, if it is newer than after_id."""
    with translated_errors():
        row = first_row(con.execute(
            f"SELECT {_SELECT} FROM tightenings WHERE wrench = ? AND id > ? "
            "ORDER BY id DESC LIMIT 1", [wrench, after_id]))
    return None if row is None else _tightening(row)


def list_tightenings(con: duckdb.DuckDBPyConnection, wrench: str, *, ok: bool | None = None,
                     cursor: int | None = None, limit: int = 100) -> TighteningPage:
    """The wrench's results, newest first; `cursor` (a row id) continues a listing."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LIMIT}, not {limit}")
    sql = f"SELECT {_SELECT} FROM tightenings WHERE wrench = ?"
    params: list[object] = [wrench]
    if ok is not None:
        sql += " AND ok = ?"
        params.append(ok)
    if cursor is not None:
        sql += " AND id < ?"
        params.append(cursor)
    sql += " ORDER BY id DESC LIMIT ?"
    params.append(limit + 1)  # one more tells whether a next page exists
    with translated_errors():
        rows = con.execute(sql, params).fetchall()
    items = [_tightening(row) for row in rows[:limit]]
    return TighteningPage(items=items,
                          next_cursor=items[-1].id if len(rows) > limit else None)


def tightening_counts(con: duckdb.DuckDBPyConnection, wrench: str) -> TighteningCounts:
    with translated_errors():
        row = first_row(con.execute(
            "SELECT count(*), count(*) FILTER (WHERE ok), count(*) FILTER (WHERE flag IS NOT NULL)"
            " FROM tightenings WHERE wrench = ?", [wrench]))
    results, ok, flagged = (int(n) for n in row) if row is not None else (0, 0, 0)
    return TighteningCounts(results=results, ok=ok, nok=results - ok, flagged=flagged)


# ---- torque settings set at run time ---------------------------------------------------------


def _program(row: tuple[Any, ...]) -> StoredProgram:
    return StoredProgram(**dict(zip(_PROGRAM_COLUMNS, row, strict=True)))


def list_programs(con: duckdb.DuckDBPyConnection, wrench: str) -> list[StoredProgram]:
    """The wrench's stored programs, by pset number."""
    with translated_errors():
        rows = con.execute(f"SELECT {', '.join(_PROGRAM_COLUMNS)} FROM wrench_programs "
                           "WHERE wrench = ? ORDER BY pset", [wrench]).fetchall()
    return [_program(row) for row in rows]


def _insert_program(con: duckdb.DuckDBPyConnection, program: StoredProgram) -> None:
    values = [getattr(program, name) for name in _PROGRAM_COLUMNS]
    with translated_errors():
        con.execute(f"INSERT OR REPLACE INTO wrench_programs ({', '.join(_PROGRAM_COLUMNS)}) "
                    f"VALUES ({', '.join('?' * len(values))})", values)


def save_program(con: duckdb.DuckDBPyConnection, program: StoredProgram) -> StoredProgram:
    """Create or replace one pset's program."""
    _insert_program(con, program)
    return program


def replace_programs(con: duckdb.DuckDBPyConnection, wrench: str,
                     programs: Sequence[StoredProgram]) -> list[StoredProgram]:
    """Make the wrench's stored programs exactly `programs`, in one transaction."""
    if any(p.wrench != wrench for p in programs):
        raise ValueError(f"every program must belong to wrench {wrench!r}")
    with transaction(con):
        with translated_errors():
            con.execute("DELETE FROM wrench_programs WHERE wrench = ?", [wrench])
        for program in programs:
            _insert_program(con, program)
    return sorted(programs, key=lambda p: p.pset)


# ---- controls --------------------------------------------------------------------------------


def load_controls(con: duckdb.DuckDBPyConnection, wrench: str) -> WrenchControls | None:
    with translated_errors():
        row = first_row(con.execute(f"SELECT {', '.join(_CONTROL_COLUMNS)} FROM wrench_controls "
                          "WHERE wrench = ?", [wrench]))
    return None if row is None else WrenchControls(**dict(zip(_CONTROL_COLUMNS, row,
                                                              strict=True)))


def save_controls(con: duckdb.DuckDBPyConnection, controls: WrenchControls) -> None:
    values = [getattr(controls, name) for name in _CONTROL_COLUMNS]
    with translated_errors():
        con.execute(f"INSERT OR REPLACE INTO wrench_controls ({', '.join(_CONTROL_COLUMNS)}) "
                    f"VALUES ({', '.join('?' * len(values))})", values)
