"""Migrations: applied once each, in order, recorded, and all-or-nothing per file."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from state.connection import open_database
from state.errors import MigrationError, StateError
from state.migrate import load_migrations, migrate

FOUNDATION_TABLES = {
    "journal",
    "users",
    "api_keys",
    "revoked_tokens",
    "settings",
    "probe_writes",
    "schema_migrations",
}


def _tables(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute("SELECT table_name FROM information_schema.tables").fetchall()
    return {name for (name,) in rows}


def _recorded(con: duckdb.DuckDBPyConnection) -> list[tuple[int, str]]:
    rows = con.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall()
    return [(int(version), name) for version, name in rows]


def _write(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(exist_ok=True)
    for name, sql in files.items():
        (folder / name).write_text(sql, encoding="utf-8")
    return folder


def test_fresh_database_gets_every_packaged_migration_recorded_once(tmp_path: Path) -> None:
    con = duckdb.connect(str(tmp_path / "station.duckdb"))
    packaged = load_migrations()

    applied = migrate(con)

    assert applied == [m.version for m in packaged]
    assert applied[0] == 1
    assert _recorded(con) == [(m.version, m.filename) for m in packaged]
    assert _tables(con) >= FOUNDATION_TABLES
    (applied_us,) = con.execute("SELECT applied_us FROM schema_migrations").fetchone() or (0,)
    assert applied_us > 1_700_000_000_000_000  # wall-clock microseconds, not seconds or ns


def test_migrate_is_idempotent_in_one_session_and_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "data" / "station.duckdb"
    con = open_database(path)
    recorded = _recorded(con)
    assert migrate(con) == []
    con.close()

    con = open_database(path)
    assert migrate(con) == []
    assert _recorded(con) == recorded


def test_files_run_in_version_order_not_name_or_listing_order(tmp_path: Path) -> None:
    folder = _write(
        tmp_path / "m",
        {
            "0010_add_column.sql": "ALTER TABLE b ADD COLUMN z INTEGER;",
            "0002_create_b.sql": "CREATE TABLE b (y INTEGER REFERENCES a (x));",
            "0001_create_a.sql": "CREATE TABLE a (x INTEGER PRIMARY KEY);",
            "README.md": "not a migration",
            "__init__.py": "",
        },
    )
    con = duckdb.connect(str(tmp_path / "t.duckdb"))

    assert migrate(con, load_migrations(folder)) == [1, 2, 10]
    assert [c for (c,) in con.execute("SELECT column_name FROM (DESCRIBE b)").fetchall()] == [
        "y",
        "z",
    ]


def test_broken_migration_rolls_back_and_names_the_file(tmp_path: Path) -> None:
    folder = _write(
        tmp_path / "m",
        {
            "0001_base.sql": "CREATE TABLE a (x INTEGER);",
            # The first statement succeeds; the second fails, so the file must leave no trace.
            "0002_broken.sql": (
                "CREATE TABLE b (y INTEGER);\nINSERT INTO a VALUES ('not a number');\n"
            ),
        },
    )
    con = duckdb.connect(str(tmp_path / "t.duckdb"))

    with pytest.raises(MigrationError, match=re.escape("0002_broken.sql")) as raised:
        migrate(con, load_migrations(folder))

    assert "statement 2" in str(raised.value)
    assert isinstance(raised.value, StateError)
    assert "a" in _tables(con)
    assert "b" not in _tables(con)
    assert _recorded(con) == [(1, "0001_base.sql")]

    # Once the file is fixed, only it runs.
    _write(folder, {"0002_broken.sql": "CREATE TABLE b (y INTEGER);"})
    assert migrate(con, load_migrations(folder)) == [2]
    assert {"a", "b"} <= _tables(con)


def test_migration_that_does_not_parse_names_the_file(tmp_path: Path) -> None:
    folder = _write(tmp_path / "m", {"0001_typo.sql": "CREATE TABLEE a (x INTEGER);"})
    con = duckdb.connect(str(tmp_path / "t.duckdb"))

    with pytest.raises(MigrationError, match=re.escape("0001_typo.sql")):
        migrate(con, load_migrations(folder))
    assert _recorded(con) == []


def test_migration_with_its_own_transaction_is_refused_before_running(tmp_path: Path) -> None:
    folder = _write(
        tmp_path / "m", {"0001_own_txn.sql": "BEGIN; CREATE TABLE a (x INTEGER); COMMIT;"}
    )
    con = duckdb.connect(str(tmp_path / "t.duckdb"))

    with pytest.raises(MigrationError, match=re.escape("0001_own_txn.sql")):
        migrate(con, load_migrations(folder))
    assert "a" not in _tables(con)


def test_badly_named_sql_file_is_an_error_not_silently_skipped(tmp_path: Path) -> None:
    folder = _write(tmp_path / "m", {"0001_ok.sql": "SELECT 1;", "2_add_thing.sql": "SELECT 1;"})
    with pytest.raises(MigrationError, match=re.escape("2_add_thing.sql")):
        load_migrations(folder)


def test_two_files_with_one_version_are_an_error(tmp_path: Path) -> None:
    folder = _write(tmp_path / "m", {"0003_one.sql": "SELECT 1;", "0003_two.sql": "SELECT 2;"})
    with pytest.raises(MigrationError, match=re.escape("0003_one.sql and 0003_two.sql")):
        load_migrations(folder)


def test_database_migrated_by_newer_code_is_refused(tmp_path: Path) -> None:
    folder = _write(
        tmp_path / "m",
        {"0001_a.sql": "CREATE TABLE a (x INTEGER);", "0002_b.sql": "CREATE TABLE b (x INTEGER);"},
    )
    con = duckdb.connect(str(tmp_path / "t.duckdb"))
    migrate(con, load_migrations(folder))

    (folder / "0002_b.sql").unlink()
    with pytest.raises(MigrationError, match=r"\[2\]"):
        migrate(con, load_migrations(folder))


def test_open_database_creates_the_folder_and_pins_durable_settings(tmp_path: Path) -> None:
    con = open_database(tmp_path / "new" / "dir" / "station.duckdb", checkpoint_threshold="32MiB")
    settings = dict(
        con.execute(
            "SELECT name, value FROM duckdb_settings() WHERE name IN "
            "('fsync_mode', 'checkpoint_threshold', 'autoinstall_known_extensions')"
        ).fetchall()
    )
    assert settings == {
        "fsync_mode": "STANDARD",
        "checkpoint_threshold": "32.0 MiB",
        "autoinstall_known_extensions": "false",
    }
    con.close()


def test_second_process_on_the_same_file_gets_a_clear_state_error(tmp_path: Path) -> None:
    path = tmp_path / "station.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, duckdb; c = duckdb.connect(sys.argv[1]); print('open', flush=True); "
            "sys.stdin.read()",
            str(path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "open\n"
        with pytest.raises(StateError, match="cannot open database"):
            open_database(path)
    finally:
        holder.communicate(input="", timeout=30)
