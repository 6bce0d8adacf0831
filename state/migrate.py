"""Schema migrations: numbered SQL files, each applied once, in order, at start-up."""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from contextlib import suppress
from importlib.resources import files
from importlib.resources.abc import Traversable
from itertools import pairwise

import duckdb
import msgspec

from state.errors import MigrationError

__all__ = ["MIGRATIONS_PACKAGE", "Migration", "load_migrations", "migrate"]

MIGRATIONS_PACKAGE = "state.migrations"

_FILE_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")

_BOOKKEEPING = (
    "CREATE TABLE IF NOT EXISTS schema_migrations "
    "(version INTEGER PRIMARY KEY, name VARCHAR, applied_us BIGINT)"
)


class Migration(msgspec.Struct, frozen=True, kw_only=True):
    """One migration file: its version (the NNNN prefix), file name and SQL text."""

    version: int
    filename: str
    sql: str


def load_migrations(source: str | Traversable = MIGRATIONS_PACKAGE) -> list[Migration]:
    """The `NNNN_name.sql` migrations in a package (or a directory), sorted by version."""
    root = files(source) if isinstance(source, str) else source
    found: list[Migration] = []
    for entry in root.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE_NAME.match(entry.name)
        if match is None:
            # A .sql file that would silently never run is a mistake worth stopping for.
            raise MigrationError(f"{entry.name}: migration files are named NNNN_lower_snake.sql")
        found.append(
            Migration(
                version=int(match[1]), filename=entry.name, sql=entry.read_text(encoding="utf-8")
            )
        )
    found.sort(key=lambda m: (m.version, m.filename))
    for before, after in pairwise(found):
        if before.version == after.version:
            raise MigrationError(f"{before.filename} and {after.filename} share one version")
    return found


def migrate(
    con: duckdb.DuckDBPyConnection, migrations: Sequence[Migration] | None = None
) -> list[int]:
    """Apply every migration not yet recorded in schema_migrations; return the versions applied.

    Each migration runs in its own transaction together with its schema_migrations row, so a
    failing file leaves the database as the previous migration left it.
    """
    known = load_migrations() if migrations is None else sorted(migrations, key=lambda m: m.version)
    try:
        con.execute(_BOOKKEEPING)
        rows = con.execute("SELECT version FROM schema_migrations").fetchall()
    except duckdb.Error as exc:
        raise MigrationError(f"schema_migrations: {exc}") from exc
    applied = {int(version) for (version,) in rows}
    unknown = applied - {m.version for m in known}
    if unknown:
        # The file was migrated by a newer Takt; running older code on it risks corrupting it.
        raise MigrationError(
            f"database has migrations {sorted(unknown)} that this version does not know"
        )
    done: list[int] = []
    for migration in known:
        if migration.version not in applied:
            _apply(con, migration)
            done.append(migration.version)
    return done


def _apply(con: duckdb.DuckDBPyConnection, migration: Migration) -> None:
    try:
        statements = con.extract_statements(migration.sql)
    except duckdb.Error as exc:
        raise MigrationError(f"migration {migration.filename} does not parse: {exc}") from exc
    if any(s.type == duckdb.StatementType.TRANSACTION for s in statements):
        raise MigrationError(
            f"migration {migration.filename} has its own BEGIN/COMMIT/ROLLBACK; "
            "each migration already runs in one transaction"
        )
    con.execute("BEGIN TRANSACTION")
    try:
        for number, statement in enumerate(statements, start=1):
            try:
                con.execute(statement)
            except duckdb.Error as exc:
                raise MigrationError(
                    f"migration {migration.filename} failed at statement {number}: {exc}"
                ) from exc
        con.execute(
            "INSERT INTO schema_migrations VALUES (?, ?, ?)",
            [migration.version, migration.filename, time.time_ns() // 1000],
        )
        con.execute("COMMIT")
    except BaseException as exc:
        # A failed COMMIT has already ended the transaction; nothing is left to roll back.
        with suppress(duckdb.TransactionException):
            con.execute("ROLLBACK")
        if isinstance(exc, duckdb.Error):
            raise MigrationError(f"migration {migration.filename} failed: {exc}") from exc
        raise
