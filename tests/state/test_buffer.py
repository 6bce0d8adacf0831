"""The batch-accounting buffer, against a real database file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from controller.batches import BufferOutcome
from state.buffer import buffer_summary, consume_from_buffer, load_buffer, unload_buffer
from state.connection import open_database
from tests.state.test_codes import GTIN, NOW, serials


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    con = open_database(tmp_path / "station.duckdb")
    yield con
    con.close()


def test_the_buffer_loads_a_batch_once_and_consumes_each_code_once(
    con: duckdb.DuckDBPyConnection,
) -> None:
    codes = [f"01{GTIN}21{s}" for s in serials(5)]
    assert consume_from_buffer(con, codes[0], consumed_by="line-1", now_us=NOW).outcome == (
        BufferOutcome.NO_BUFFER
    )

    first = load_buffer(con, "PARTY-1", codes, now_us=NOW)
    again = load_buffer(con, "PARTY-1", [*codes, f"01{GTIN}21EXTRA1"], now_us=NOW + 1)
    clash = load_buffer(con, "PARTY-2", [codes[0]], now_us=NOW + 2)

    assert (first.loaded, first.already_loaded, first.conflicts) == (5, 0, [])
    assert (again.loaded, again.already_loaded) == (1, 5)
    assert (clash.loaded, clash.conflicts) == (0, [codes[0]])
    used = consume_from_buffer(con, codes[0], consumed_by="line-1", now_us=NOW + 3)
    twice = consume_from_buffer(con, codes[0], consumed_by="line-2", now_us=NOW + 4)
    stranger = consume_from_buffer(con, f"01{GTIN}21ZZZZZZ", consumed_by=None, now_us=NOW + 5)
    assert (used.ok, used.batch_identifier) == (True, "PARTY-1")
    assert twice.reason == "code of batch PARTY-1 was already consumed by line-1"
    assert stranger.outcome == BufferOutcome.NOT_IN_BUFFER
    (summary,) = buffer_summary(con)
    assert (summary.batch_identifier, summary.loaded, summary.consumed, summary.remaining) == (
        "PARTY-1",
        6,
        1,
        5,
    )

    assert unload_buffer(con, "PARTY-1") == 6
    assert buffer_summary(con) == []
