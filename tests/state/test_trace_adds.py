"""A run of ADD scans judged together (state.trace.judge_adds, the line's hot path) does exactly
what judging them one by one (judge_scan) does: the same answers and the same rows."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import duckdb
import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controller.batches import BatchKind
from controller.scanner_config import ScannerRole
from state._sql import transaction
from state.batches import create_batch
from state.codes import insert_codes
from state.connection import open_database
from state.trace import ScanOrigin, judge_adds, judge_scan
from tests.state.test_codes import GTIN, NOW, OTHER_GTIN, new, scanned

_runs = itertools.count()

# What a line's reader meets: fresh codes (some of another product), codes stored before the
# run, repeats within the run, and unreadable ones.
_item = st.one_of(
    st.tuples(st.just("fresh"), st.integers(0, 40), st.booleans()),
    st.tuples(st.just("stored"), st.integers(0, 3), st.just(False)),
    st.tuples(st.just("garbage"), st.sampled_from(["", "]d2", "0104600000000000", "hello"]),
              st.just(False)),
)


def _text(item: tuple[str, Any, bool]) -> str:
    kind, value, other = item
    if kind == "fresh":
        return scanned(f"F{value:05d}", OTHER_GTIN if other else GTIN)
    if kind == "stored":
        return scanned(f"S{value:05d}")
    return str(value)


def _database(path: Path, open_batch: tuple[int, str | None] | None) -> duckdb.DuckDBPyConnection:
    con = open_database(path)
    insert_codes(con, [new(f"S{i:05d}") for i in range(4)], now_us=NOW)
    if open_batch is not None:
        capacity, gtin = open_batch
        create_batch(con, identifier="B-OPEN", kind=BatchKind.BATCH, now_us=NOW,
                     capacity=capacity, gtin=gtin, line_id="line-1")
    return con


def _rows(con: duckdb.DuckDBPyConnection) -> dict[str, list[tuple[Any, ...]]]:
    return {
        "codes": con.execute("SELECT id, code, status, batch_id, source FROM codes "
                             "ORDER BY id").fetchall(),
        "batches": con.execute("SELECT id, identifier, status, capacity, member_count, closed_us "
                               "FROM batches ORDER BY id").fetchall(),
        "members": con.execute("SELECT batch_id, code, removed_us FROM batch_members "
                               "ORDER BY batch_id, code").fetchall(),
    }


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=st.lists(_item, min_size=1, max_size=30),
       auto_batch=st.one_of(st.none(), st.integers(1, 5)),
       open_batch=st.one_of(st.none(), st.tuples(st.integers(1, 6),
                                                 st.sampled_from([None, GTIN]))))
def test_a_run_of_adds_equals_the_same_scans_one_by_one(
        tmp_path: Path, items: list[tuple[str, Any, bool]], auto_batch: int | None,
        open_batch: tuple[int, str | None] | None) -> None:
    run = next(_runs)
    origin = ScanOrigin(role=ScannerRole.ADD, source="scanner.add", industry="dairy",
                        line_id="line-1", auto_batch=auto_batch)
    texts = [_text(item) for item in items]
    together = _database(tmp_path / f"together-{run}.duckdb", open_batch)
    alone = _database(tmp_path / f"alone-{run}.duckdb", open_batch)
    try:
        with transaction(together):
            grouped = judge_adds(together, texts, origin, now_us=NOW + 1).results
        one_by_one = [judge_scan(alone, text, origin, now_us=NOW + 1) for text in texts]
        assert [msgspec.to_builtins(r) for r in grouped] == [
            msgspec.to_builtins(r) for r in one_by_one]
        assert _rows(together) == _rows(alone)
    finally:
        together.close()
        alone.close()


def test_the_context_a_run_leaves_serves_the_next_run(tmp_path: Path) -> None:
    """Runs chained through AddRun.context store what runs reading it afresh store."""
    origin = ScanOrigin(role=ScannerRole.ADD, source="scanner.add", industry="dairy",
                        line_id="line-1", auto_batch=3)
    texts = [scanned(f"C{i:05d}") for i in range(8)] + [scanned("C00001")]
    chained = _database(tmp_path / "chained.duckdb", (2, None))
    fresh = _database(tmp_path / "fresh.duckdb", (2, None))
    context = None
    for start in range(0, len(texts), 2):
        run = judge_adds(chained, texts[start:start + 2], origin, now_us=NOW, context=context)
        context = run.context
        judge_adds(fresh, texts[start:start + 2], origin, now_us=NOW)
    assert _rows(chained) == _rows(fresh)
    # B-OPEN (2) and two auto batches of 3 fill up; the repeated code opens none.
    assert [(row[2], row[4]) for row in _rows(chained)["batches"]] == [("complete", 2),
                                                                     ("complete", 3),
                                                                     ("complete", 3)]
    chained.close()
    fresh.close()


def test_judge_adds_refuses_other_roles(tmp_path: Path) -> None:
    con = open_database(tmp_path / "x.duckdb")
    origin = ScanOrigin(role=ScannerRole.REMOVE, source="s", industry="dairy")
    with pytest.raises(ValueError, match="ADD"):
        judge_adds(con, [scanned("S00001")], origin, now_us=NOW)
    con.close()
