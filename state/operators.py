"""Shop-floor operators (table of migration 0008), as plain functions over a cursor.

Passwords arrive already hashed: hashing belongs to the operators actor, not here. Every
change is one short transaction; a clash (RFID, email or name held by another operator) is a
DuplicateError naming the other operator, an unknown id a NotFound, and nothing changes.
"""

from __future__ import annotations

from typing import Any

import duckdb
import msgspec

from state._sql import fetch_one, transaction
from state.errors import DuplicateError, NotFound, StateError, translated_errors

__all__ = [
    "Operator",
    "OperatorRow",
    "add_operator",
    "find_operator_by_email",
    "find_operator_by_name",
    "find_operator_by_rfid",
    "get_operator",
    "list_operators",
    "note_record",
    "set_active",
    "set_email",
    "set_name",
    "set_password_hash",
    "set_rfid",
    "set_role",
]


class Operator(msgspec.Struct, frozen=True, kw_only=True):
    """An operator as shown to clients: the password hash stays in the store."""

    id: int
    first_name: str
    last_name: str
    role: str
    active: bool
    rfid: str | None
    email: str | None
    has_password: bool
    num_records: int
    created_us: int
    updated_us: int


class OperatorRow(msgspec.Struct, frozen=True, kw_only=True):
    """A stored operator, hash included."""

    id: int
    first_name: str
    last_name: str
    role: str
    active: bool
    rfid: str | None
    email: str | None
    password_hash: str | None
    num_records: int
    created_us: int
    updated_us: int

    def public(self) -> Operator:
        return Operator(id=self.id, first_name=self.first_name, last_name=self.last_name,
                        role=self.role, active=self.active, rfid=self.rfid, email=self.email,
                        has_password=self.password_hash is not None,
                        num_records=self.num_records, created_us=self.created_us,
                        updated_us=self.updated_us)


_COLUMNS = OperatorRow.__struct_fields__
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM operators"


def _row(row: tuple[Any, ...]) -> OperatorRow:
    return OperatorRow(**dict(zip(_COLUMNS, row, strict=True)))


def _one(con: duckdb.DuckDBPyConnection, where: str, params: list[object]) -> OperatorRow | None:
    row = fetch_one(con, f"{_SELECT} WHERE {where}", params)
    return None if row is None else _row(row)


def _email(email: str | None) -> str | None:
    return None if email is None else email.lower()


# ---- reads -------------------------------------------------------------------------------------


def get_operator(con: duckdb.DuckDBPyConnection, operator_id: int) -> OperatorRow | None:
    return _one(con, "id = ?", [operator_id])


def list_operators(con: duckdb.DuckDBPyConnection, *, active_only: bool = False
                   ) -> list[OperatorRow]:
    """Every operator (or only the active ones), by id."""
    where = " WHERE active" if active_only else ""
    with translated_errors():
        rows = con.execute(f"{_SELECT}{where} ORDER BY id").fetchall()
    return [_row(r) for r in rows]


def find_operator_by_rfid(con: duckdb.DuckDBPyConnection, rfid: str) -> OperatorRow | None:
    return _one(con, "rfid = ?", [rfid])


def find_operator_by_email(con: duckdb.DuckDBPyConnection, email: str) -> OperatorRow | None:
    """The operator with this email, in any case."""
    return _one(con, "email = ?", [email.lower()])


def find_operator_by_name(con: duckdb.DuckDBPyConnection, first_name: str, last_name: str
                          ) -> OperatorRow | None:
    """The operator with this first and last name, in any case (names are unique)."""
    return _one(con, "lower(first_name) = lower(?) AND lower(last_name) = lower(?)",
                [first_name, last_name])


# ---- writes ------------------------------------------------------------------------------------


def _check_free(con: duckdb.DuckDBPyConnection, *, first_name: str | None = None,
                last_name: str | None = None, rfid: str | None = None,
                email: str | None = None, other_than: int | None = None) -> None:
    """DuplicateError naming the other operator if one holds this name, RFID or email."""
    clashes: list[tuple[str, OperatorRow | None]] = []
    if first_name is not None and last_name is not None:
        clashes.append((f"the name {first_name} {last_name}",
                        find_operator_by_name(con, first_name, last_name)))
    if rfid is not None:
        clashes.append(("this RFID", find_operator_by_rfid(con, rfid)))
    if email is not None:
        clashes.append((f"the email {email}", find_operator_by_email(con, email)))
    for what, holder in clashes:
        if holder is not None and holder.id != other_than:
            raise DuplicateError(f"operator {holder.id} already has {what}")


def add_operator(con: duckdb.DuckDBPyConnection, *, first_name: str, last_name: str, role: str,
                 active: bool = True, rfid: str | None = None, email: str | None = None,
                 password_hash: str | None = None, now_us: int) -> OperatorRow:
    """Store a new operator; DuplicateError if its name, RFID or email is taken."""
    email = _email(email)
    with transaction(con):
        _check_free(con, first_name=first_name, last_name=last_name, rfid=rfid, email=email)
        row = fetch_one(
            con,
            "INSERT INTO operators (first_name, last_name, role, active, rfid, email, "
            "password_hash, created_us, updated_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            f"RETURNING {', '.join(_COLUMNS)}",
            [first_name, last_name, role, active, rfid, email, password_hash, now_us, now_us])
    if row is None:
        raise StateError("insert returned no operator")
    return _row(row)


def _update(con: duckdb.DuckDBPyConnection, operator_id: int, assignments: str,
            params: list[object], now_us: int) -> OperatorRow:
    row = fetch_one(
        con,
        f"UPDATE operators SET {assignments}, updated_us = ? WHERE id = ? "
        f"RETURNING {', '.join(_COLUMNS)}",
        [*params, now_us, operator_id])
    if row is None:
        raise NotFound(f"no operator {operator_id}")
    return _row(row)


def set_active(con: duckdb.DuckDBPyConnection, operator_id: int, active: bool, now_us: int
               ) -> OperatorRow:
    return _update(con, operator_id, "active = ?", [active], now_us)


def set_role(con: duckdb.DuckDBPyConnection, operator_id: int, role: str, now_us: int
             ) -> OperatorRow:
    return _update(con, operator_id, "role = ?", [role], now_us)


def set_name(con: duckdb.DuckDBPyConnection, operator_id: int, first_name: str, last_name: str,
             now_us: int) -> OperatorRow:
    """Rename; DuplicateError if another operator has that name."""
    with transaction(con):
        _check_free(con, first_name=first_name, last_name=last_name, other_than=operator_id)
        return _update(con, operator_id, "first_name = ?, last_name = ?",
                       [first_name, last_name], now_us)


def set_password_hash(con: duckdb.DuckDBPyConnection, operator_id: int,
                      password_hash: str | None, now_us: int) -> OperatorRow:
    """Replace the password hash; None removes the password."""
    return _update(con, operator_id, "password_hash = ?", [password_hash], now_us)


def set_rfid(con: duckdb.DuckDBPyConnection, operator_id: int, rfid: str | None, now_us: int
             ) -> OperatorRow:
    """Give the operator this RFID (None takes it away); DuplicateError if another has it."""
    with transaction(con):
        _check_free(con, rfid=rfid, other_than=operator_id)
        return _update(con, operator_id, "rfid = ?", [rfid], now_us)


def set_email(con: duckdb.DuckDBPyConnection, operator_id: int, email: str | None, now_us: int
              ) -> OperatorRow:
    """Give the operator this email (None takes it away); DuplicateError if another has it."""
    email = _email(email)
    with transaction(con):
        _check_free(con, email=email, other_than=operator_id)
        return _update(con, operator_id, "email = ?", [email], now_us)


def note_record(con: duckdb.DuckDBPyConnection, operator_id: int) -> bool:
    """Count one more assembly record for the operator; False if there is no such operator.

    Called by the sequencer when it opens a record, in the record's transaction if it has one.
    updated_us is left alone: it tells when an engineer last changed the operator.
    """
    row = fetch_one(con, "UPDATE operators SET num_records = num_records + 1 WHERE id = ?",
                    [operator_id])
    return row is not None and int(row[0]) > 0
