"""Marking codes: validated + stored codes/s and duplicate-check time with many codes stored.

Fills a fresh database with `--rows` codes (10M by default, 1M with --quick; the fill is set-up,
timed but not part of the figures), then measures on it: controller.codes.validate alone,
state.codes.stored_among (the duplicate check) per batch size, and validate + insert_codes
(check, Arrow insert, durable COMMIT) per batch size, every batch with 10% duplicates.
Run: .venv/bin/python bench/code_store.py [--quick] [--rows N] [--db PATH (kept and reused)]
"""

from __future__ import annotations

import base64
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import duckdb
import pyarrow as pa
from _support.common import emit, machine, parse_args
from biip.checksums import gs1_standard_check_digit

from controller.codes import GS, validate
from state.codes import NewCode, code_hash, insert_codes, stored_among
from state.connection import open_database

GTINS = [f"046000000{n:04d}" for n in range(20)]
GTINS = [g + str(gs1_standard_check_digit(g)) for g in GTINS]
FILL_CHUNK = 500_000
DUPLICATE_SHARE = 0.1
BUDGET_S = 2.0


def _serials(n: int) -> list[str]:
    """Random 13-character serials (water-like codes, the longest of the 93-tail layouts)."""
    raw = os.urandom(8 * n)
    return [base64.b32encode(raw[i : i + 8])[:13].decode() for i in range(0, 8 * n, 8)]


def _normalized(serials: list[str]) -> list[str]:
    return [f"01{GTINS[i % len(GTINS)]}21{s}" for i, s in enumerate(serials)]


def _fill(con: duckdb.DuckDBPyConnection, rows: int) -> tuple[float, list[str]]:
    """Insert rows codes straight through Arrow; return seconds and a sample of stored codes."""
    started = time.perf_counter()
    sample: list[str] = []
    done = 0
    while done < rows:
        n = min(FILL_CHUNK, rows - done)
        codes = _normalized(_serials(n))
        sample += codes[:: max(1, rows // 20_000)]
        fill = pa.table(  # noqa: F841 - read by name by the INSERT below
            {
                "code": pa.array(codes, pa.string()),
                "code_hash": pa.array([code_hash(c) for c in codes], pa.int64()),
                "raw": pa.array([c + GS + "93AbCd" for c in codes], pa.string()),
                "industry": pa.array(["water"] * n, pa.string()),
                "created_us": pa.array([1_750_000_000_000_000 + done + k for k in range(n)]),
            }
        )
        con.execute(
            "INSERT INTO codes (code, code_hash, raw, gtin, serial, industry, created_us, "
            "updated_us) SELECT code, code_hash, raw, substr(code, 3, 14), substr(code, 19), "
            "industry, created_us, created_us FROM fill"
        )
        done += n
    con.execute("CHECKPOINT")
    return time.perf_counter() - started, sample


def _incoming(n: int, sample: list[str]) -> list[str]:
    """n normalized codes, DUPLICATE_SHARE of them already stored."""
    fresh = _normalized(_serials(n))
    dups = int(n * DUPLICATE_SHARE)
    return random.sample(sample, dups) + fresh[dups:]


def _scans(codes: list[str]) -> list[str]:
    """What a scanner sends for these codes: AIM prefix, GS, crypto tail, CR."""
    return [f"]d2{c}{GS}93AbCd\r" for c in codes]


def _median_ms(times: list[float]) -> float:
    return round(statistics.median(times) * 1e3, 2)


def _validate_rate(sample: list[str]) -> float:
    scans = _scans(_normalized(_serials(20_000)))
    started = time.perf_counter()
    for text in scans:
        validate(text, "water")
    return round(len(scans) / (time.perf_counter() - started))


def _duplicate_check(
    con: duckdb.DuckDBPyConnection, sample: list[str], sizes: tuple[int, ...]
) -> dict[str, float]:
    result: dict[str, float] = {}
    for size in sizes:
        times: list[float] = []
        started = time.perf_counter()
        while len(times) < 5 or (time.perf_counter() - started < BUDGET_S and len(times) < 50):
            codes = _incoming(size, sample)
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
        [NewCode.from_validation(validate(_scans(_incoming(1, sample))[0], "water"))],
        now_us=now,
    )
    for size in sizes:
        validating: list[float] = []
        storing: list[float] = []
        stored = 0
        started = time.perf_counter()
        while len(storing) < 5 or (time.perf_counter() - started < BUDGET_S and len(storing) < 50):
            scans = _scans(_incoming(size, sample))
            t0 = time.perf_counter()
            items = [NewCode.from_validation(validate(s, "water")) for s in scans]
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
            fill_s, sample = _fill(con, rows)
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
