"""Marking codes for the traceability benchmarks: a database filled with many stored codes,
fresh codes, and what a scanner sends for them (water-profile layout, 13-character serials)."""

from __future__ import annotations

import base64
import os
import random
import time

import duckdb
import pyarrow as pa
from biip.checksums import gs1_standard_check_digit

from controller.codes import GS
from state.codes import code_hash

__all__ = ["DUPLICATE_SHARE", "GTINS", "fill", "incoming", "normalized", "scans", "serials"]

GTINS = [f"046000000{n:04d}" for n in range(20)]
GTINS = [g + str(gs1_standard_check_digit(g)) for g in GTINS]
FILL_CHUNK = 500_000
DUPLICATE_SHARE = 0.1


def serials(n: int) -> list[str]:
    """Random 13-character serials (water-like codes, the longest of the 93-tail layouts)."""
    raw = os.urandom(8 * n)
    return [base64.b32encode(raw[i : i + 8])[:13].decode() for i in range(0, 8 * n, 8)]


def normalized(serials: list[str]) -> list[str]:
    return [f"01{GTINS[i % len(GTINS)]}21{s}" for i, s in enumerate(serials)]


def fill(con: duckdb.DuckDBPyConnection, rows: int) -> tuple[float, list[str]]:
    """Insert rows codes straight through Arrow; return seconds and a sample of stored codes."""
    started = time.perf_counter()
    sample: list[str] = []
    done = 0
    while done < rows:
        n = min(FILL_CHUNK, rows - done)
        codes = normalized(serials(n))
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


def incoming(n: int, sample: list[str]) -> list[str]:
    """n normalized codes, DUPLICATE_SHARE of them already stored."""
    fresh = normalized(serials(n))
    dups = int(n * DUPLICATE_SHARE)
    return random.sample(sample, dups) + fresh[dups:]


def scans(codes: list[str]) -> list[str]:
    """What a scanner sends for these codes: AIM prefix, GS, crypto tail, CR."""
    return [f"]d2{c}{GS}93AbCd\r" for c in codes]
