"""Robot telemetry logs and alerts (tables of migration 0006), as plain functions over a cursor.

A robot's actor copies its telemetry here and stores each alert before it publishes it; the
query actors read both back, so history is there while the robot is offline.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb
import msgspec
import pyarrow as pa

from state._sql import capped, first_row, transaction
from state.errors import translated_errors
from state.tables import TableSpec, insert_rows, register_table

__all__ = [
    "LOG_KINDS",
    "MAX_LOGS",
    "ROBOT_LOGS",
    "RobotAlertRow",
    "RobotLogRow",
    "Watermark",
    "count_alerts",
    "list_alerts",
    "list_logs",
    "log_watermarks",
    "store_alert",
    "store_logs",
]

LOG_KINDS = ("activity", "connectivity", "location", "battery", "system")
MAX_LOGS = 500
"""The most entries one read returns (the robot's own limit, seed 003's `no_of_logs`)."""

_decode = msgspec.json.Decoder().decode


class RobotLogRow(msgspec.Struct, frozen=True, kw_only=True):
    """One telemetry entry; `entry` is its JSON as the robot sent it."""

    robot: str
    kind: str
    log_id: int
    recorded_us: int
    stored_us: int
    entry: str


ROBOT_LOGS = register_table(
    TableSpec(
        table="robot_logs",
        row_type=RobotLogRow,
        schema=pa.schema([("robot", pa.string()), ("kind", pa.string()),
                          ("log_id", pa.int64()), ("recorded_us", pa.int64()),
                          ("stored_us", pa.int64()), ("entry", pa.string())]),
    )
)


class Watermark(msgspec.Struct, frozen=True):
    """The newest stored entry of a kind: (robot stamp, log_id)."""

    recorded_us: int
    log_id: int

    def older_than(self, recorded_us: int, log_id: int) -> bool:
        return (self.recorded_us, self.log_id) < (recorded_us, log_id)


class RobotAlertRow(msgspec.Struct, frozen=True, kw_only=True):
    uuid: str
    robot: str
    device_id: str
    raised_us: int
    received_us: int
    via: str  # stream | webhook | backfill: whichever brought it first
    source: str
    severity: int
    header: str
    body: str
    action_required: str | None


def store_logs(con: duckdb.DuckDBPyConnection, rows: Sequence[RobotLogRow]) -> None:
    """Insert entries in one statement and one transaction."""
    if rows:
        with transaction(con):
            insert_rows(con, ROBOT_LOGS, rows)


def log_watermarks(con: duckdb.DuckDBPyConnection, robot: str) -> dict[str, Watermark]:
    """Per kind, the newest stored entry of the robot."""
    with translated_errors():
        rows = con.execute(
            "SELECT kind, arg_max(recorded_us, (recorded_us, log_id)), "
            "arg_max(log_id, (recorded_us, log_id)) FROM robot_logs WHERE robot = ? "
            "GROUP BY kind", [robot]).fetchall()
    return {kind: Watermark(int(at), int(log_id)) for kind, at, log_id in rows}


def list_logs(con: duckdb.DuckDBPyConnection, robot: str, kind: str,
              limit: int) -> list[dict[str, Any]]:
    """The newest `limit` entries of a kind, newest first, as the robot sent them."""
    if kind not in LOG_KINDS:
        raise ValueError(f"no log kind {kind!r}; one of {', '.join(LOG_KINDS)}")
    with translated_errors():
        rows = con.execute(
            "SELECT entry FROM robot_logs WHERE robot = ? AND kind = ? "
            "ORDER BY recorded_us DESC, log_id DESC LIMIT ?",
            [robot, kind, min(capped(limit), MAX_LOGS)]).fetchall()
    return [_decode(entry) for (entry,) in rows]


def store_alert(con: duckdb.DuckDBPyConnection, row: RobotAlertRow) -> bool:
    """Store an alert; False if its uuid is stored already (it came another way first)."""
    values = msgspec.structs.astuple(row)
    with translated_errors():
        inserted = con.execute(
            f"INSERT INTO robot_alerts VALUES ({', '.join('?' * len(values))}) "
            "ON CONFLICT DO NOTHING RETURNING uuid", list(values)).fetchall()
    return bool(inserted)


def list_alerts(con: duckdb.DuckDBPyConnection, robot: str, limit: int, *,
                max_severity: int = 5) -> list[RobotAlertRow]:
    """The robot's newest alerts, newest first; max_severity 2 keeps severities 1 and 2."""
    with translated_errors():
        rows = con.execute(
            "SELECT * FROM robot_alerts WHERE robot = ? AND severity <= ? "
            "ORDER BY raised_us DESC, received_us DESC LIMIT ?",
            [robot, max_severity, capped(limit)]).fetchall()
    fields = RobotAlertRow.__struct_fields__
    return [RobotAlertRow(**dict(zip(fields, row, strict=True))) for row in rows]


def count_alerts(con: duckdb.DuckDBPyConnection, robot: str) -> int:
    with translated_errors():
        row = first_row(con.execute("SELECT count(*) FROM robot_alerts WHERE robot = ?",
                          [robot]))
    return int(row[0]) if row else 0
