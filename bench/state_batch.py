"""Group-commit throughput of state.batch.commit_batch against raw duckdb baselines; prints JSON.

Every method writes journal rows in one transaction per batch into a fresh database file and
includes the fsync of its COMMIT; figures are rows per second over about `BUDGET_S` per cell.
Run: .venv/bin/python bench/state_batch.py
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import pyarrow as pa
from msgspec.structs import astuple

from state.batch import WriteBatch, checkpoint, commit_batch
from state.connection import open_database
from state.journal import JournalRow

BATCH_SIZES = (1, 100, 1000, 5000)
BUDGET_S = 0.7
MIN_BATCHES = 3

Writer = Callable[[duckdb.DuckDBPyConnection, list[JournalRow]], None]

_SCHEMA = pa.schema(
    [
        ("seq", pa.int64()),
        ("ts_us", pa.int64()),
        ("topic", pa.string()),
        ("source", pa.string()),
        ("payload", pa.string()),
    ]
)


def _rows(start: int, count: int) -> list[JournalRow]:
    return [
        JournalRow(
            seq=seq,
            ts_us=1_750_000_000_000_000 + seq * 37,
            topic="device/scanner/read",
            source="scanner:1",
            payload=f'{{"code":"0104012345678901","station":"st-1","n":{seq}}}',
        )
        for seq in range(start, start + count)
    ]


def _with_commit_batch(con: duckdb.DuckDBPyConnection, rows: list[JournalRow]) -> None:
    batch = WriteBatch()
    batch.extend(rows)
    commit_batch(con, batch)


def _with_bare_arrow(con: duckdb.DuckDBPyConnection, rows: list[JournalRow]) -> None:
    arrow_rows = pa.Table.from_arrays(  # noqa: F841 - read by name by the INSERT below
        [
            pa.array([r.seq for r in rows], pa.int64()),
            pa.array([r.ts_us for r in rows], pa.int64()),
            pa.array([r.topic for r in rows], pa.string()),
            pa.array([r.source for r in rows], pa.string()),
            pa.array([r.payload for r in rows], pa.string()),
        ],
        schema=_SCHEMA,
    )
    con.execute("BEGIN TRANSACTION")
    con.execute("INSERT INTO journal SELECT * FROM arrow_rows")
    con.execute("COMMIT")


def _with_executemany(con: duckdb.DuckDBPyConnection, rows: list[JournalRow]) -> None:
    con.execute("BEGIN TRANSACTION")
    con.executemany("INSERT INTO journal VALUES (?, ?, ?, ?, ?)", [astuple(r) for r in rows])
    con.execute("COMMIT")


def _with_appender(con: duckdb.DuckDBPyConnection, rows: list[JournalRow]) -> None:
    con.execute("BEGIN TRANSACTION")
    with con.appender("journal") as appender:
        appender.append_rows([astuple(r) for r in rows])
    con.execute("COMMIT")


METHODS: dict[str, Writer] = {
    "commit_batch": _with_commit_batch,
    "bare_arrow_insert": _with_bare_arrow,
    "appender": _with_appender,
    "executemany": _with_executemany,
}


def _run_cell(folder: Path, name: str, write: Writer, size: int) -> dict[str, float]:
    con = open_database(folder / f"{name}-{size}.duckdb")
    seconds: list[float] = []
    seq = 1
    started = time.perf_counter()
    while len(seconds) < MIN_BATCHES or time.perf_counter() - started < BUDGET_S:
        if name == "executemany" and seconds and time.perf_counter() - started > BUDGET_S:
            break  # one 5000-row executemany batch already takes seconds
        rows = _rows(seq, size)
        seq += size
        t0 = time.perf_counter()
        write(con, rows)
        seconds.append(time.perf_counter() - t0)
    result = {
        "rows_per_s": round(size * len(seconds) / sum(seconds)),
        "batch_ms_p50": round(statistics.median(seconds) * 1e3, 3),
        "batches": len(seconds),
    }
    if name == "commit_batch" and size == max(BATCH_SIZES):
        wal = folder / f"{name}-{size}.duckdb.wal"
        wal_mib = wal.stat().st_size / 2**20 if wal.exists() else 0.0
        t0 = time.perf_counter()
        checkpoint(con)
        result["checkpoint_ms"] = round((time.perf_counter() - t0) * 1e3, 1)
        result["checkpoint_wal_mib"] = round(wal_mib, 2)
    con.close()
    return result


def main() -> None:
    cells: dict[str, dict[str, dict[str, float]]] = {name: {} for name in METHODS}
    with tempfile.TemporaryDirectory(prefix="takt-bench-") as tmp:
        for size in BATCH_SIZES:
            for name, write in METHODS.items():
                cells[name][str(size)] = _run_cell(Path(tmp), name, write, size)
    rows_per_s = {
        name: {size: cell["rows_per_s"] for size, cell in by_size.items()}
        for name, by_size in cells.items()
    }
    report = {
        "bench": "state_batch",
        "duckdb": duckdb.__version__,
        "pyarrow": pa.__version__,
        "python": sys.version.split()[0],
        "unit": "journal rows per second, one durable transaction per batch",
        "rows_per_s": rows_per_s,
        "commit_batch_vs_bare_arrow": {
            size: round(rows_per_s["commit_batch"][size] / rows_per_s["bare_arrow_insert"][size], 2)
            for size in rows_per_s["commit_batch"]
        },
        "batch_ms_p50": {
            name: {size: cell["batch_ms_p50"] for size, cell in by_size.items()}
            for name, by_size in cells.items()
        },
        "checkpoint_after_commit_batch_5000": {
            "wal_mib": cells["commit_batch"][str(max(BATCH_SIZES))]["checkpoint_wal_mib"],
            "ms": cells["commit_batch"][str(max(BATCH_SIZES))]["checkpoint_ms"],
        },
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
