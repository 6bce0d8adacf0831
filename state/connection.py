"""Opening the station database: one write connection for the store actor, cursors for readers.

What makes a commit durable (checked with strace on duckdb 2.0): COMMIT appends the transaction
to `<file>.wal` and calls fdatasync on it before returning, so once commit_batch returns the
writes survive a SIGKILL or a power cut, and duckdb replays the WAL on the next open. When the
WAL passes `checkpoint_threshold` (16 MiB by default) the commit that crossed it also checkpoints:
it writes the WAL's contents into the database file, syncs it and empties the WAL, so that
commit takes longer; state.batch.checkpoint lets the store do this while idle instead. Very large
commits may skip the WAL and checkpoint directly (`auto_checkpoint_skip_wal_threshold`); they too
are on disk when COMMIT returns.

Sizes measured here: a journal row takes ~110 bytes of WAL; a checkpoint of 8 MiB of WAL took
~70 ms and of 64 MiB ~300 ms; replaying 16 MiB of WAL on open took ~130 ms.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from state.errors import StateError
from state.migrate import migrate

__all__ = ["database_folder", "open_database", "open_reader"]

_CONFIG: dict[str, str | bool] = {
    # Pinned because every acknowledgement relies on it; NONE would skip the fsync on commit.
    "fsync_mode": "STANDARD",
    # A controller never downloads code at run time; json and parquet are built into the wheel.
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
}


def open_database(
    path: Path, *, memory_limit: str = "1GiB", checkpoint_threshold: str = "16MiB"
) -> duckdb.DuckDBPyConnection:
    """Open (creating it if needed) the database file and apply pending migrations.

    memory_limit caps duckdb's buffers, which otherwise take up to 80% of RAM on a box that also
    runs vision; bigger queries spill to `<file>.tmp` instead of failing. checkpoint_threshold
    is the WAL size at which a commit checkpoints (see above): larger means rarer but longer
    stalls and a longer WAL replay at start-up.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    config = {
        **_CONFIG,
        "memory_limit": memory_limit,
        "checkpoint_threshold": checkpoint_threshold,
    }
    try:
        con = duckdb.connect(str(path), config=config)
    except duckdb.Error as exc:
        # Most often another process holds the file's lock: a second `takt run` on one data dir.
        raise StateError(f"cannot open database {path}: {exc}") from exc
    try:
        migrate(con)
    except BaseException:
        con.close()
        raise
    return con


def open_reader(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """A cursor on the same database for one query thread; it sees only committed data.

    A cursor is not safe to share between threads: give each reader thread its own.
    """
    return con.cursor()


def database_folder(con: duckdb.DuckDBPyConnection) -> Path | None:
    """The folder of the database file: the station's data directory (None in memory)."""
    rows = con.execute("SELECT path FROM duckdb_databases() "
                       "WHERE database_name = current_database()").fetchall()
    return Path(rows[0][0]).parent if rows and rows[0][0] else None
