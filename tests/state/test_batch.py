"""Group commit and the journal, against a real database file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import duckdb
import msgspec
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from state.batch import WriteBatch, checkpoint, commit_batch
from state.connection import open_database, open_reader
from state.errors import ConstraintError, DuplicateError, StateError
from state.journal import JournalRow, append_journal, max_journal_seq, read_journal
from state.probe import ProbeRow, read_probe_writes
from state.tables import TableSpec, register_table, registered_tables


class GaugeRow(msgspec.Struct, frozen=True, kw_only=True):
    """A table that exists only in these tests, to show that later tables plug in."""

    name: str
    value: float


GAUGES = register_table(
    TableSpec(
        table="test_gauges",
        row_type=GaugeRow,
        schema=pa.schema([("value", pa.float64()), ("name", pa.string())]),
    )
)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "station.duckdb"


@pytest.fixture
def con(db_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    con = open_database(db_path)
    yield con
    con.close()


def _journal(seq: int, topic: str = "scanner/read", payload: str = "{}") -> JournalRow:
    return JournalRow(
        seq=seq, ts_us=1_000_000 + seq, topic=topic, source="scanner:1", payload=payload
    )


def _count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    row = con.execute(f"SELECT count(*) FROM {table}").fetchone()
    return int(row[0]) if row else -1


def test_commit_batch_writes_rows_of_every_table_visible_to_readers(
    con: duckdb.DuckDBPyConnection,
) -> None:
    batch = WriteBatch()
    batch.extend([_journal(1), ProbeRow(writer=1, n=1, ts_us=5), _journal(2)])
    batch.add(ProbeRow(writer=1, n=2, ts_us=6))
    assert batch.counts() == {"journal": 2, "probe_writes": 2}
    assert len(batch) == 4

    commit_batch(con, batch)

    reader = open_reader(con)
    assert [r.seq for r in read_journal(reader)] == [1, 2]
    assert read_probe_writes(reader, writer=1) == [
        ProbeRow(writer=1, n=1, ts_us=5),
        ProbeRow(writer=1, n=2, ts_us=6),
    ]
    assert len(batch) == 4  # the caller clears it after acknowledging the writers


def test_failing_second_table_leaves_nothing_of_the_batch_in_the_first(
    con: duckdb.DuckDBPyConnection,
) -> None:
    first = WriteBatch()
    first.add(ProbeRow(writer=1, n=1, ts_us=1))
    commit_batch(con, first)

    batch = WriteBatch()
    batch.extend([_journal(1), _journal(2), _journal(3)])  # journal goes in first ...
    batch.add(ProbeRow(writer=1, n=1, ts_us=2))  # ... then this repeats a stored key

    with pytest.raises(DuplicateError):
        commit_batch(con, batch)

    assert _count(con, "journal") == 0
    assert max_journal_seq(con) == 0
    assert read_probe_writes(con) == [ProbeRow(writer=1, n=1, ts_us=1)]

    # The connection is not left inside the failed transaction.
    retry = WriteBatch()
    retry.extend([_journal(1), ProbeRow(writer=1, n=2, ts_us=3)])
    commit_batch(con, retry)
    assert max_journal_seq(con) == 1


def test_duplicate_seq_inside_one_batch_writes_nothing(con: duckdb.DuckDBPyConnection) -> None:
    batch = WriteBatch()
    batch.extend([ProbeRow(writer=2, n=1, ts_us=1), _journal(7), _journal(7)])

    with pytest.raises(DuplicateError):
        commit_batch(con, batch)
    assert _count(con, "journal") == 0
    assert _count(con, "probe_writes") == 0


@pytest.mark.parametrize(
    "bad_row",
    [
        JournalRow(seq="x", ts_us=1, topic="t", source=None, payload="{}"),  # type: ignore[arg-type]
        JournalRow(seq=9, ts_us=1, topic=None, source=None, payload="{}"),  # type: ignore[arg-type]
        JournalRow(seq=9, ts_us=1, topic="t", source=None, payload="{not json"),
    ],
    ids=["wrong-type", "null-topic", "malformed-json"],
)
def test_bad_row_fails_the_batch_as_constraint_error(
    con: duckdb.DuckDBPyConnection, bad_row: JournalRow
) -> None:
    batch = WriteBatch()
    batch.extend([ProbeRow(writer=3, n=1, ts_us=1), _journal(1), bad_row])

    with pytest.raises(ConstraintError) as raised:
        commit_batch(con, batch)
    assert not isinstance(raised.value, DuplicateError)
    assert _count(con, "journal") == 0
    assert _count(con, "probe_writes") == 0


def test_row_of_unregistered_type_is_refused_when_added(con: duckdb.DuckDBPyConnection) -> None:
    class Stray(msgspec.Struct):
        x: int

    batch = WriteBatch()
    with pytest.raises(TypeError, match="Stray"):
        batch.add(Stray(x=1))
    with pytest.raises(TypeError, match="Stray"):
        batch.extend([_journal(1), Stray(x=1)])
    assert len(batch) == 0
    assert not batch


def test_empty_batch_commits_nothing_and_needs_no_transaction(
    con: duckdb.DuckDBPyConnection,
) -> None:
    con.execute("BEGIN TRANSACTION")  # would make a second BEGIN fail
    commit_batch(con, WriteBatch())
    con.execute("ROLLBACK")


def test_a_later_table_plugs_in_through_the_registry(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE TABLE test_gauges (name VARCHAR NOT NULL, note VARCHAR, value DOUBLE)")
    batch = WriteBatch()
    batch.extend([GaugeRow(name="torque", value=12.5), _journal(1), GaugeRow(name="t", value=-1)])

    commit_batch(con, batch)

    assert "test_gauges" in registered_tables()
    rows = con.execute("SELECT name, note, value FROM test_gauges ORDER BY value").fetchall()
    assert rows == [("t", None, -1.0), ("torque", None, 12.5)]
    assert max_journal_seq(con) == 1


def test_registry_refuses_conflicting_or_mismatched_specs() -> None:
    assert register_table(GAUGES) is GAUGES  # the same spec again is fine
    other_schema = pa.schema([("name", pa.string()), ("value", pa.float32())])
    with pytest.raises(ValueError, match="registered differently"):
        register_table(TableSpec(table="test_gauges", row_type=GaugeRow, schema=other_schema))
    with pytest.raises(ValueError, match="differ from the fields"):
        TableSpec(table="x", row_type=GaugeRow, schema=pa.schema([("name", pa.string())]))


def test_committed_batch_is_there_after_close_and_reopen(db_path: Path) -> None:
    con = open_database(db_path)
    batch = WriteBatch()
    batch.extend([_journal(1, payload='{"a": 1}'), _journal(2), ProbeRow(writer=4, n=1, ts_us=9)])
    commit_batch(con, batch)
    con.close()

    con = open_database(db_path)
    assert read_journal(con) == [_journal(1, payload='{"a": 1}'), _journal(2)]
    assert read_probe_writes(con) == [ProbeRow(writer=4, n=1, ts_us=9)]
    con.close()


def test_checkpoint_empties_the_wal_and_keeps_the_data(db_path: Path) -> None:
    con = open_database(db_path)
    batch = WriteBatch()
    batch.extend(_journal(seq) for seq in range(1, 501))
    commit_batch(con, batch)
    wal = db_path.with_name(db_path.name + ".wal")
    assert wal.exists() and wal.stat().st_size > 0

    checkpoint(con)

    assert not wal.exists() or wal.stat().st_size == 0
    con.close()
    con = open_database(db_path)
    assert max_journal_seq(con) == 500
    con.close()


def test_read_journal_pages_from_a_seq_inclusive(con: duckdb.DuckDBPyConnection) -> None:
    append_journal(con, [_journal(seq) for seq in range(1, 11)])  # autocommit

    assert [r.seq for r in read_journal(con, from_seq=4, limit=3)] == [4, 5, 6]
    assert [r.seq for r in read_journal(con, from_seq=10)] == [10]
    assert read_journal(con, from_seq=11) == []
    assert read_journal(con, limit=0) == []
    assert max_journal_seq(con) == 10
    with pytest.raises(ValueError, match="limit"):
        read_journal(con, limit=-1)


def test_topic_prefix_is_literal_not_a_like_pattern(con: duckdb.DuckDBPyConnection) -> None:
    topics = ["a%b/x", "axb/y", "a_c/z", "abc/w", "plc/1"]
    append_journal(con, [_journal(i, topic=t) for i, t in enumerate(topics, start=1)])

    assert [r.topic for r in read_journal(con, topic_prefix="a%")] == ["a%b/x"]
    assert [r.topic for r in read_journal(con, topic_prefix="a_")] == ["a_c/z"]
    assert [r.topic for r in read_journal(con, topic_prefix="a")] == topics[:4]
    assert [r.topic for r in read_journal(con, topic_prefix="")] == topics


def test_large_json_payload_round_trips_unchanged(con: duckdb.DuckDBPyConnection) -> None:
    payload = json.dumps(
        {"frames": [{"i": i, "label": "ok ✓ \"quoted\" 'single'"} for i in range(60_000)]}
    )
    assert len(payload) > 2_000_000
    batch = WriteBatch()
    batch.add(_journal(1, payload=payload))
    commit_batch(con, batch)

    assert read_journal(con)[0].payload == payload


_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=30)  # no lone surrogates
_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(_text, inner, max_size=5),
    max_leaves=40,
)
_payloads = st.builds(
    lambda value, ascii_only, indent: json.dumps(value, ensure_ascii=ascii_only, indent=indent),
    _json_values,
    st.booleans(),
    st.sampled_from([None, 2]),
)
_events = st.lists(
    st.tuples(_text.filter(bool), st.none() | _text, _payloads), min_size=1, max_size=40
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(events=_events, prefix_len=st.integers(min_value=0, max_value=4))
def test_journal_round_trip_keeps_every_field_byte_for_byte(
    con: duckdb.DuckDBPyConnection, events: list[tuple[str, str | None, str]], prefix_len: int
) -> None:
    start = max_journal_seq(con) + 1  # the database outlives one example
    rows = [
        JournalRow(seq=start + i, ts_us=10 * (start + i), topic=t, source=s, payload=p)
        for i, (t, s, p) in enumerate(events)
    ]
    batch = WriteBatch()
    batch.extend(rows)
    commit_batch(con, batch)

    assert read_journal(con, from_seq=start) == rows
    prefix = rows[0].topic[:prefix_len]
    assert read_journal(con, from_seq=start, topic_prefix=prefix) == [
        r for r in rows if r.topic.startswith(prefix)
    ]


_CRASH_WRITER = """
import sys
from pathlib import Path

from state.batch import JournalRow, ProbeRow, WriteBatch, commit_batch
from state.connection import open_database

con = open_database(Path(sys.argv[1]))
n = 0
while True:
    batch = WriteBatch()
    for _ in range(25):
        n += 1
        batch.add(ProbeRow(writer=7, n=n, ts_us=n))
        batch.add(JournalRow(seq=n, ts_us=n, topic="probe", source="w7", payload='{"n": %d}' % n))
    commit_batch(con, batch)
    print(n, flush=True)  # the acknowledgement: only after commit_batch returned
"""


def test_every_acknowledged_write_survives_sigkill(db_path: Path) -> None:
    writer = subprocess.Popen(
        [sys.executable, "-c", _CRASH_WRITER, str(db_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None
    acked = 0
    try:
        while acked < 2_000:
            line = writer.stdout.readline()
            if not line:
                break
            acked = int(line)
    finally:
        os.kill(writer.pid, signal.SIGKILL)
        rest, errors = writer.communicate(timeout=30)
    acked = max([acked, *(int(line) for line in rest.split())])
    assert acked >= 2_000, errors
    assert writer.returncode == -signal.SIGKILL

    con = open_database(db_path)
    stored = [row.n for row in read_probe_writes(con, writer=7)]
    # Everything acknowledged is there; at most the one batch in flight beyond it, and whole.
    assert stored[:acked] == list(range(1, acked + 1))
    assert len(stored) in (acked, acked + 25)
    assert [r.seq for r in read_journal(con, limit=len(stored) + 1)] == stored
    con.close()


def test_errors_are_state_errors_not_duckdb_errors(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("DROP TABLE probe_writes")
    batch = WriteBatch()
    batch.add(ProbeRow(writer=1, n=1, ts_us=1))
    with pytest.raises(StateError) as raised:
        commit_batch(con, batch)
    assert isinstance(raised.value.__cause__, duckdb.Error)
