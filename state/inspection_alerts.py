"""Alerts the inspector raises (migration 0012): raised once per occurrence of a condition,
cleared when it ends, acknowledged by a person."""

from __future__ import annotations

import uuid
from typing import Any

import duckdb
import msgspec

from state._sql import fetch_one
from state.errors import NotFound, TransitionError, translated_errors

__all__ = [
    "AlertFilter",
    "AlertRow",
    "acknowledge_alert",
    "active_alert_kinds",
    "clear_alert",
    "get_alert",
    "list_alerts",
    "raise_alert",
]


class AlertRow(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    kind: str
    severity: str
    title: str
    message: str
    at_us: int
    cleared_us: int | None
    acknowledged: bool
    acknowledged_by: str | None
    acknowledged_us: int | None


class AlertFilter(msgspec.Struct, frozen=True, kw_only=True):
    severity: str | None = None
    acknowledged: bool | None = None


_COLUMNS = ", ".join(AlertRow.__struct_fields__)


def _alert(row: tuple[Any, ...]) -> AlertRow:
    return AlertRow(**dict(zip(AlertRow.__struct_fields__, row, strict=True)))


def raise_alert(con: duckdb.DuckDBPyConnection, *, kind: str, severity: str, title: str,
                message: str, now_us: int) -> AlertRow:
    alert = AlertRow(id=str(uuid.uuid4()), kind=kind, severity=severity, title=title,
                     message=message, at_us=now_us, cleared_us=None, acknowledged=False,
                     acknowledged_by=None, acknowledged_us=None)
    with translated_errors():
        con.execute(f"INSERT INTO inspection_alerts ({_COLUMNS}) VALUES "
                    f"({', '.join('?' * len(AlertRow.__struct_fields__))})",
                    list(msgspec.structs.astuple(alert)))
    return alert


def clear_alert(con: duckdb.DuckDBPyConnection, kind: str, *, now_us: int) -> list[str]:
    """End every open alert of a kind; their ids."""
    with translated_errors():
        rows = con.execute("UPDATE inspection_alerts SET cleared_us = ? "
                           "WHERE kind = ? AND cleared_us IS NULL RETURNING id",
                           [now_us, kind]).fetchall()
    return [r[0] for r in rows]


def active_alert_kinds(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Kinds with an alert not yet cleared (so a restarted inspector does not raise them
    again)."""
    with translated_errors():
        rows = con.execute("SELECT DISTINCT kind FROM inspection_alerts "
                           "WHERE cleared_us IS NULL").fetchall()
    return {r[0] for r in rows}


def get_alert(con: duckdb.DuckDBPyConnection, alert_id: str) -> AlertRow | None:
    row = fetch_one(con, f"SELECT {_COLUMNS} FROM inspection_alerts WHERE id = ?", [alert_id])
    return None if row is None else _alert(row)


def list_alerts(con: duckdb.DuckDBPyConnection, flt: AlertFilter, *, limit: int,
                offset: int = 0) -> list[AlertRow]:
    """Alerts, newest first."""
    conditions: list[str] = []
    params: list[object] = []
    if flt.severity is not None:
        conditions.append("severity = ?")
        params.append(flt.severity)
    if flt.acknowledged is not None:
        conditions.append("acknowledged = ?")
        params.append(flt.acknowledged)
    where = (" WHERE " + " AND ".join(conditions)) if conditions else ""
    with translated_errors():
        rows = con.execute(f"SELECT {_COLUMNS} FROM inspection_alerts{where} "
                           "ORDER BY at_us DESC, id LIMIT ? OFFSET ?",
                           [*params, limit, offset]).fetchall()
    return [_alert(r) for r in rows]


def acknowledge_alert(con: duckdb.DuckDBPyConnection, alert_id: str, *, by: str,
                      now_us: int) -> AlertRow:
    """Mark an alert acknowledged; NotFound, or TransitionError if it already is."""
    current = get_alert(con, alert_id)
    if current is None:
        raise NotFound(f"no alert {alert_id}")
    if current.acknowledged:
        raise TransitionError(f"alert {alert_id} was already acknowledged by "
                              f"{current.acknowledged_by}")
    with translated_errors():
        con.execute("UPDATE inspection_alerts SET acknowledged = true, acknowledged_by = ?, "
                    "acknowledged_us = ? WHERE id = ?", [by, now_us, alert_id])
    return msgspec.structs.replace(current, acknowledged=True, acknowledged_by=by,
                                   acknowledged_us=now_us)
