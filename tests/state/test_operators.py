"""Operators (migration 0008) against a real database file: uniqueness of RFID, email and name,
changes, and the record count the sequencer keeps."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from state.connection import open_database
from state.errors import DuplicateError, NotFound
from state.operators import (
    Operator,
    add_operator,
    find_operator_by_email,
    find_operator_by_name,
    find_operator_by_rfid,
    get_operator,
    list_operators,
    note_record,
    set_active,
    set_email,
    set_name,
    set_password_hash,
    set_rfid,
    set_role,
)

NOW = 1_750_000_000_000_000


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    con = open_database(tmp_path / "station.duckdb")
    yield con
    con.close()


def _ada(con: duckdb.DuckDBPyConnection, *, first_name: str = "Ada",
         last_name: str = "Lovelace", **kw: Any) -> int:
    return add_operator(con, first_name=first_name, last_name=last_name, role="operator",
                        now_us=NOW, **kw).id


def test_an_operator_is_stored_and_shown_without_its_hash(con: duckdb.DuckDBPyConnection) -> None:
    row = add_operator(con, first_name="Ada", last_name="Lovelace", role="lead", rfid="B1",
                       email="Ada@Example.COM", password_hash="$argon2id$h", now_us=NOW)
    assert get_operator(con, row.id) == row
    assert row.email == "ada@example.com" and row.num_records == 0 and row.active
    assert row.public() == Operator(
        id=row.id, first_name="Ada", last_name="Lovelace", role="lead", active=True, rfid="B1",
        email="ada@example.com", has_password=True, num_records=0, created_us=NOW,
        updated_us=NOW)
    assert "password_hash" not in Operator.__struct_fields__
    assert find_operator_by_rfid(con, "B1") == row
    assert find_operator_by_rfid(con, "b1") is None  # badge codes are exact
    assert find_operator_by_email(con, "ADA@example.com") == row
    assert find_operator_by_name(con, "ada", "LOVELACE") == row
    assert get_operator(con, 999) is None


def test_listing_all_or_only_active_operators(con: duckdb.DuckDBPyConnection) -> None:
    ada = _ada(con)
    bob = _ada(con, first_name="Bob", active=False)
    cy = _ada(con, first_name="Cy")
    assert [o.id for o in list_operators(con)] == [ada, bob, cy]
    assert [o.id for o in list_operators(con, active_only=True)] == [ada, cy]
    set_active(con, bob, True, NOW + 1)
    assert [o.id for o in list_operators(con, active_only=True)] == [ada, bob, cy]


@pytest.mark.parametrize("clash", [
    {"first_name": "Bob", "rfid": "B1"},
    {"first_name": "Bob", "email": "ADA@x.io"},
    {"first_name": "ADA", "last_name": "lovelace"},
])
def test_a_taken_rfid_email_or_name_is_refused(con: duckdb.DuckDBPyConnection,
                                               clash: dict[str, str]) -> None:
    ada = _ada(con, rfid="B1", email="ada@x.io")
    with pytest.raises(DuplicateError, match=f"operator {ada} already has"):
        _ada(con, **clash)
    assert [o.id for o in list_operators(con)] == [ada]


def test_operators_without_rfid_or_email_do_not_clash(con: duckdb.DuckDBPyConnection) -> None:
    _ada(con)
    _ada(con, first_name="Bob")
    assert len(list_operators(con)) == 2


def test_changing_rfid_email_and_name(con: duckdb.DuckDBPyConnection) -> None:
    ada = _ada(con, rfid="B1", email="ada@x.io")
    bob = _ada(con, first_name="Bob", rfid="B2")
    with pytest.raises(DuplicateError):
        set_rfid(con, bob, "B1", NOW + 1)
    with pytest.raises(DuplicateError):
        set_email(con, bob, "Ada@X.io", NOW + 1)
    with pytest.raises(DuplicateError):
        set_name(con, bob, "Ada", "Lovelace", NOW + 1)
    unchanged = get_operator(con, bob)
    assert unchanged is not None and unchanged.rfid == "B2" and unchanged.first_name == "Bob"
    assert unchanged.updated_us == NOW
    assert set_rfid(con, ada, "B1", NOW + 2).rfid == "B1"  # keeping one's own is no clash
    assert set_name(con, ada, "ADA", "Lovelace", NOW + 2).first_name == "ADA"
    assert set_rfid(con, ada, None, NOW + 3).rfid is None
    moved = set_rfid(con, bob, "B1", NOW + 4)
    assert moved.rfid == "B1" and moved.updated_us == NOW + 4
    assert set_email(con, bob, "Bob@X.io", NOW + 5).email == "bob@x.io"
    assert set_role(con, bob, "trainee", NOW + 6).role == "trainee"


def test_password_hash_is_set_and_removed(con: duckdb.DuckDBPyConnection) -> None:
    ada = _ada(con)
    assert set_password_hash(con, ada, "$argon2id$h", NOW).public().has_password
    row = set_password_hash(con, ada, None, NOW)
    assert row.password_hash is None and not row.public().has_password


def test_changes_to_an_unknown_operator_are_not_found(con: duckdb.DuckDBPyConnection) -> None:
    for change in (lambda: set_active(con, 9, False, NOW), lambda: set_role(con, 9, "x", NOW),
                   lambda: set_name(con, 9, "A", "B", NOW), lambda: set_rfid(con, 9, "R", NOW),
                   lambda: set_email(con, 9, "a@b.c", NOW),
                   lambda: set_password_hash(con, 9, None, NOW)):
        with pytest.raises(NotFound, match="no operator 9"):
            change()


def test_note_record_counts_the_operators_records(con: duckdb.DuckDBPyConnection) -> None:
    ada = _ada(con)
    assert note_record(con, ada) and note_record(con, ada)
    row = get_operator(con, ada)
    assert row is not None and row.num_records == 2 and row.updated_us == NOW
    assert not note_record(con, 999)


def test_the_schema_keeps_emails_lower_case_and_counts_positive(
        con: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(duckdb.ConstraintException):
        con.execute("INSERT INTO operators (first_name, last_name, role, email, created_us, "
                    "updated_us) VALUES ('A', 'B', 'operator', 'Upper@x.io', 0, 0)")
    ada = _ada(con)
    with pytest.raises(duckdb.ConstraintException):
        con.execute("UPDATE operators SET num_records = -1 WHERE id = ?", [ada])
