"""Helpers shared by the benchmark scripts.

Percentiles, the `--quick` flag, the JSON report, the hypercorn config `serve_station` uses,
a station config for benchmarks, and the READY handshake with server subprocesses.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import trio

__all__ = [
    "BENCH_DIR",
    "PYTHON",
    "bound_port",
    "emit",
    "machine",
    "parse_args",
    "pct",
    "ratio",
    "read_ready",
    "serve_as_takt_run",
    "spawn",
    "station_toml",
    "stop_child",
    "summary",
]

BENCH_DIR = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def parse_args(doc: str | None, extra: Sequence[tuple[str, dict[str, Any]]] = ()
               ) -> argparse.Namespace:
    """`--quick` (about 10 s) plus any script-specific options."""
    parser = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a ~10 s version")
    for flag, kw in extra:
        parser.add_argument(flag, **kw)
    return parser.parse_args()


def pct(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (q in 0..100)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summary(values_us: Sequence[float], digits: int = 1) -> dict[str, float | int]:
    """p50/p90/p99/p99.9/max/mean of latencies in microseconds."""
    s = sorted(values_us)
    if not s:
        return {"n": 0}
    return {
        "n": len(s),
        "p50": round(pct(s, 50), digits),
        "p90": round(pct(s, 90), digits),
        "p99": round(pct(s, 99), digits),
        "p99_9": round(pct(s, 99.9), digits),
        "max": round(s[-1], digits),
        "mean": round(sum(s) / len(s), digits),
    }


def ratio(a: float, b: float, digits: int = 3) -> float:
    return round(a / b, digits) if b else math.inf


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "switch_interval_s": sys.getswitchinterval(),
    }


def emit(report: dict[str, Any]) -> None:
    """The one JSON object a benchmark prints on stdout."""
    print(json.dumps(report, indent=2), flush=True)


def station_toml(plc_port: int, poll_interval_ms: int, *, group_commit_max: int = 5000) -> str:
    """A station with one Modbus PLC `line1` (a few input tags) on a simulator at plc_port."""
    return f"""
[station]
id = "bench"
name = "Benchmark station"

[store]
group_commit_max = {group_commit_max}

[[plcs]]
name = "line1"
port = {plc_port}
poll_interval_ms = {poll_interval_ms}
timeout_ms = 500

  [[plcs.bindings]]
  name = "part_present"
  kind = "coil"
  address = 0
  type = "bool"

  [[plcs.bindings]]
  name = "counter"
  kind = "holding_register"
  address = 0
  type = "uint16"

  [[plcs.bindings]]
  name = "temperature"
  kind = "holding_register"
  address = 10
  type = "float32"

  [[plcs.bindings]]
  name = "release"
  kind = "coil"
  address = 8
  type = "bool"
  direction = "out"
"""


def serve_as_takt_run(station: Any) -> None:
    """Serve a started station exactly as `takt run` does (heap frozen, same hypercorn
    settings, same stop handling), printing `READY <port> <admin password>` once bound."""
    from controller.boot import freeze_startup_heap, release_heap, serve_station

    def ready(binds: list[str]) -> None:
        print(f"READY {bound_port(binds)} {station.admin_password}", flush=True)

    freeze_startup_heap()
    try:
        trio.run(serve_station, station, "127.0.0.1", 0, ready)
    finally:
        station.stop()
        release_heap()


def bound_port(binds: list[str]) -> int:
    """The port of hypercorn's first bind, e.g. `http://127.0.0.1:43121`."""
    return int(binds[0].rsplit(":", 1)[1])


def stop_child(proc: subprocess.Popen[str], timeout_s: float = 30.0) -> None:
    """SIGTERM, then SIGKILL if it does not exit in time."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def spawn(args: Sequence[str], *, stdin: bool = False) -> subprocess.Popen[str]:
    """Start `python <args>` in bench/ with stdout piped (a READY line, or the child's JSON).

    Run from bench/ so `-m _support.loadgen` and `bench/NAME.py` children import alike.
    """
    return subprocess.Popen(
        [PYTHON, *args], stdout=subprocess.PIPE, stdin=subprocess.PIPE if stdin else None,
        text=True, cwd=BENCH_DIR,
    )


def read_ready(proc: subprocess.Popen[str], timeout_s: float = 30.0) -> list[str]:
    """Wait for the child's `READY <fields...>` line; its fields."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"child exited with {proc.wait()} before READY")
        if line.startswith("READY"):
            return line.split()[1:]
    raise RuntimeError("child did not get READY in time")



def login(port: int, password: str) -> str:
    """Log in as admin on a station at 127.0.0.1:port; the access token."""
    r = httpx.post(f"http://127.0.0.1:{port}/api/v1/auth/login",
                   json={"username": "admin", "password": password}, timeout=10)
    r.raise_for_status()
    token: str = r.json()["access_token"]
    return token
