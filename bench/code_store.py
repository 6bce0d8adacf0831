"""Marking codes: validated + stored codes/s and duplicate-check time with many codes stored.

Fills a fresh database with `--rows` codes (10M by default, 1M with --quick; the fill is set-up,
timed but not part of the figures), then measures on it: controller.codes.validate alone,
state.codes.stored_among (the duplicate check) per batch size, and validate + insert_codes
(check, Arrow insert, durable COMMIT) per batch size, every batch with 10% duplicates.
Run: .venv/bin/python bench/code_store.py [--quick] [--rows N] [--db PATH (kept and reused)]
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import duckdb
from _support.codes import DUPLICATE_SHARE, fill, incoming, normalized, scans, serials
from _support.common import emit, machine, parse_args

from controller.codes import validate
from state.codes import NewCode, insert_codes, stored_among
from state.connection import open_database

BUDGET_S = 2.0


def _median_ms(times: list[float]) -> float:
    return round(statistics.median(times) * 1e3, 2)


def _validate_rate(sample: list[str]) -> float:
    texts = scans(normalized(serials(20_000)))
    started = time.perf_counter()
    for text in texts:
        validate(text, "water")
    return round(len(texts) / (time.perf_counter() - started))


def _duplicate_check(
    con: duckdb.DuckDBPyConnection, sample: list[str], sizes: tuple[int, ...]
) -> dict[str, float]:
    result: dict[str, float] = {}
    for size in sizes:
        times: list[float] = []
        started = time.perf_counter()
        while len(times) < 5 or (time.perf_counter() - started < BUDGET_S and len(times) < 50):
            codes = incoming(size, sample)
            t0 = time.perf_counter()
            found = stored_among(con, codes)
            times.append(time.perf_counter() - t0)
            assert len(found) == int(size * DUPLICATE_SHARE)
        result[str(size)] = _median_ms(times)
    return result


def _validated_and_stored(
    con: duckdb.DuckDBPyConnection, sample: list[str], sizes: tuple[int, ...]
) -> dict[str, dict[str, float]]:
    result: dict[str, dict[str, float]] = {}
    now = 1_800_000_000_000_000
    # The first write after opening loads index pages; keep that out of the figures.
    insert_codes(
        con,
        [NewCode.from_validation(validate(scans(incoming(1, sample))[0], "water"))],
        now_us=now,
    )
    for size in sizes:
        validating: list[float] = []
        storing: list[float] = []
        stored = 0
        started = time.perf_counter()
        while len(storing) < 5 or (time.perf_counter() - started < BUDGET_S and len(storing) < 50):
            texts = scans(incoming(size, sample))
            t0 = time.perf_counter()
            items = [NewCode.from_validation(validate(s, "water")) for s in texts]
            t1 = time.perf_counter()
            outcomes = insert_codes(con, items, now_us=now)
            t2 = time.perf_counter()
            validating.append(t1 - t0)
            storing.append(t2 - t1)
            now += 1
            stored += sum(o.created for o in outcomes)
        both = [v + s for v, s in zip(validating, storing, strict=True)]
        result[str(size)] = {
            "codes_per_s": round(size * len(both) / sum(both)),
            "store_only_codes_per_s": round(size * len(storing) / sum(storing)),
            "batch_ms_p50": _median_ms(both),
            "insert_codes_ms_p50": _median_ms(storing),
            "insert_codes_ms_max": round(max(storing) * 1e3, 1),
            "stored": stored,
        }
    return result


def main() -> None:
    args = parse_args(
        __doc__,
        [
            ("--rows", {"type": int, "default": None, "help": "codes stored before measuring"}),
            ("--db", {"type": Path, "default": None, "help": "database file to keep and reuse"}),
        ],
    )
    rows = args.rows or (1_000_000 if args.quick else 10_000_000)
    sizes = (1, 10, 100, 1000, 5000)
    with tempfile.TemporaryDirectory(prefix="takt-bench-") as tmp:
        path = args.db or Path(tmp) / "codes.duckdb"
        reuse = path.exists()
        con = open_database(path, memory_limit="1GiB")
        if reuse:
            stored = int(con.execute("SELECT count(*) FROM codes").fetchone()[0])  # type: ignore[index]
            sample = [
                c
                for (c,) in con.execute("SELECT code FROM codes USING SAMPLE 20000 ROWS").fetchall()
            ]
            fill_s = 0.0
        else:
            fill_s, sample = fill(con, rows)
            stored = rows
        report = {
            "bench": "code_store",
            "duckdb": duckdb.__version__,
            "machine": machine(),
            "stored_codes": stored,
            "fill_s": round(fill_s, 1),
            "file_mib": round(path.stat().st_size / 2**20),
            "validate_codes_per_s": _validate_rate(sample),
            "duplicate_check_ms_p50": _duplicate_check(con, sample, sizes),
            "validated_and_stored": _validated_and_stored(con, sample, sizes),
            "duplicate_share": DUPLICATE_SHARE,
            "budget": None,
        }
        con.close()
    emit(report)


if __name__ == "__main__":
    main()
