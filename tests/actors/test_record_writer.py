"""The sequencer's record writer: writes land in the order handed over, flush waits for them,
a failing write is counted and logged and the next ones still land, stop writes what is
queued."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from actors.record_writer import RecordWriter
from state.connection import open_database


@pytest.fixture
def database(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    con = open_database(tmp_path / "takt.duckdb")
    con.execute("CREATE TABLE t (n INTEGER)")
    yield con
    con.close()


def insert(n: int):  # type: ignore[no-untyped-def]
    return lambda con: con.execute("INSERT INTO t VALUES (?)", [n])


def test_writes_land_in_order_and_flush_waits_for_them(
        database: duckdb.DuckDBPyConnection) -> None:
    writer = RecordWriter(database, name="t", log=logging.getLogger("t"))
    gate = threading.Event()
    writer.submit(lambda con: gate.wait(5))  # hold the writer so the others queue up
    for n in range(50):
        writer.submit(insert(n))
    assert writer.pending == 51 and not writer.flush(timeout_s=0.05)
    gate.set()
    assert writer.flush() and writer.pending == 0
    assert [n for (n,) in database.execute("SELECT n FROM t ORDER BY rowid").fetchall()] == \
        list(range(50))
    writer.stop()


def test_a_failing_write_is_counted_and_the_rest_still_land(
        database: duckdb.DuckDBPyConnection, caplog: pytest.LogCaptureFixture) -> None:
    writer = RecordWriter(database, name="t", log=logging.getLogger("t"))
    writer.submit(insert(1))
    writer.submit(lambda con: con.execute("INSERT INTO nowhere VALUES (1)"))
    writer.submit(insert(2))
    writer.stop()  # writes what is queued before it ends
    assert (writer.written, writer.failed) == (2, 1)
    assert "could not be written" in caplog.text
    assert database.execute("SELECT count(*) FROM t").fetchall() == [(2,)]
