"""Traceability: codes validated + stored + published per second, and scan -> /ws latency, with
10M codes already stored.

Set-up (timed, not a figure): a database filled with `--rows` codes (10M; 1M with --quick).
Baseline (this process, on that database, before the station opens it): `state.trace.judge_scan`
bare, one transaction and durable COMMIT per scan, and `judge_adds` with 256 scans per
transaction, as the traceability actor judges a full group; fresh codes, 10% duplicates.
Station (child, served as `takt run` serves it): one TCP reader (sim.scanner's simulator, in
this process) in role ADD, industry water, auto batches of 1,000. This process stamps
time.time_ns() before each code goes on the wire and watches /ws (`trace.scan.*`); a code's
latency is its `trace.scan` frame's arrival minus its stamp (validated, judged, stored,
committed, published, through the facade).
- latency: fresh codes paced at each `--rate` (20/s, a fast bottling lane, and 100/s) for a
  while: p50/p99, cut where the traceability actor judged the scan (the result's ts_us);
- throughput: `--burst` codes (10% duplicates of stored ones) sent as fast as the reader link
  takes them: codes/s from the first send to the last frame, and their latency under that load.
Budget (issue 4): >= 500 codes/s; scan -> WS p99 <= 20 ms.
Run: .venv/bin/python bench/traceability.py [--quick] [--rows N] [--db PATH (kept, reused)]
"""

from __future__ import annotations

import gc
import json
import random
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
import trio
import trio_websocket
from _support.codes import DUPLICATE_SHARE, fill, incoming, normalized, serials
from _support.common import (
    emit,
    login,
    machine,
    parse_args,
    read_ready,
    serve_as_takt_run,
    spawn,
    stop_child,
    summary,
)
from _support.plc import paced

from controller.codes import GS
from controller.scanner_config import ScannerRole
from sim.scanner import TcpScannerSimulator
from state._sql import transaction
from state.connection import open_database
from state.trace import ScanOrigin, judge_adds, judge_scan

GROUP = 256  # the traceability actor's MAX_GROUP
BUDGET_CODES_PER_S = 500
BUDGET_P99_MS = 20.0

STATION = """
[station]
id = "bench"
name = "traceability bench"

[[scanners]]
name = "line"
port = {port}

[traceability]
industry = "water"
auto_batch = 1000
"""


def _texts(codes: list[str]) -> list[str]:
    """What the reader sends for normalized codes (without the line terminator)."""
    return [f"]d2{c}{GS}93AbCd" for c in codes]


def _fresh(n: int) -> list[str]:
    return _texts(normalized(serials(n)))


# --- baseline: judge_scan without actors ---------------------------------------------------------


def baseline(con: duckdb.DuckDBPyConnection, sample: list[str], n: int) -> dict[str, Any]:
    origin = ScanOrigin(role=ScannerRole.ADD, source="bench", industry="water",
                        line_id="bench")
    now = [1_900_000_000_000_000]

    def judge(text: str) -> None:
        now[0] += 1
        judge_scan(con, text, origin, now_us=now[0])

    judge(_fresh(1)[0])  # the first write loads index pages
    alone = _texts(incoming(n, sample))
    t0 = time.perf_counter()
    for text in alone:
        with transaction(con):
            judge(text)
    alone_s = time.perf_counter() - t0
    grouped = _texts(incoming(n, sample))
    t0 = time.perf_counter()
    for start in range(0, len(grouped), GROUP):
        now[0] += 1
        with transaction(con):
            judge_adds(con, grouped[start:start + GROUP], origin, now_us=now[0])
    grouped_s = time.perf_counter() - t0
    return {"judge_scan_commit_each_codes_per_s": round(n / alone_s),
            "judge_adds_256_per_commit_codes_per_s": round(n / grouped_s)}


# --- station child -------------------------------------------------------------------------------


def serve_station_child(config_file: Path, data_dir: Path) -> None:
    from controller.boot import start_station
    from controller.config import parse_config

    station = start_station(parse_config(config_file.read_text(), "bench.toml"), data_dir)
    serve_as_takt_run(station)


# --- the client: stamp sends, watch /ws ----------------------------------------------------------


class Watch:
    """trace.scan frames by the scanned text, with their arrival time."""

    def __init__(self) -> None:
        self.arrived: dict[str, int] = {}
        self.judged: dict[str, int] = {}  # the result's ts_us: when its group was judged
        self.count = 0
        self.gaps = 0
        self.ready = threading.Event()

    async def run(self, url: str, stop: trio.Event) -> None:
        async with trio_websocket.open_websocket_url(url, max_message_size=2**24) as ws:
            await ws.get_message()  # ready
            await ws.send_message(json.dumps({"subscribe": ["trace.scan.*"]}))
            await ws.get_message()  # snapshot
            self.ready.set()
            clock = time.time_ns
            while not stop.is_set():
                with trio.move_on_after(0.2):
                    text = await ws.get_message()
                    t = clock()
                    msg = json.loads(text)
                    if msg["type"] == "gap":
                        self.gaps += 1
                    elif msg["type"] == "bus":
                        self.arrived.setdefault(msg["data"]["raw"], t)
                        self.judged.setdefault(msg["data"]["raw"], msg["data"]["ts_us"] * 1000)
                        self.count += 1


def _latencies(sent: dict[str, int], arrived: dict[str, int]) -> list[float]:
    return sorted((arrived[k] - t) / 1000 for k, t in sent.items() if k in arrived)


def _wait_for(watch: Watch, keys: list[str], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all(k in watch.arrived for k in keys[-50:]) and all(k in watch.arrived for k in keys):
            return True
        time.sleep(0.05)
    return False


def measure(reader: TcpScannerSimulator, port: int, token: str, sample: list[str], *,
            rates: tuple[int, ...], seconds: float, burst: int) -> dict[str, Any]:
    watch = Watch()
    stop = trio.Event()
    url = f"ws://127.0.0.1:{port}/ws?token={token}"
    token_box: list[Any] = []

    def client() -> None:
        async def main() -> None:
            token_box.append(trio.lowlevel.current_trio_token())
            await watch.run(url, stop)
        trio.run(main)

    thread = threading.Thread(target=client, name="ws-client", daemon=True)
    thread.start()
    if not watch.ready.wait(10):
        raise RuntimeError("the /ws client did not subscribe")

    def send(texts: list[str], sent: dict[str, int], i: int) -> None:
        sent[texts[i]] = time.time_ns()
        reader.emit(texts[i].encode("latin-1"))

    warm = _fresh(50)
    warm_sent: dict[str, int] = {}
    paced(100, 0.5, lambda i: send(warm, warm_sent, i))
    _wait_for(watch, list(warm_sent), 20)

    steady = {}
    for r in rates:
        n = int(r * seconds)
        fresh = _fresh(n)
        sent: dict[str, int] = {}
        paced(r, seconds, lambda i, fresh=fresh, sent=sent, n=n: send(fresh, sent, i)
              if i < n else None)
        complete = _wait_for(watch, list(sent), 30)
        # Cut at the judging: reader -> scanner actor -> bus -> traceability actor, then the
        # judging, commit, publish and /ws.
        steady[f"{r}_per_s"] = {
            "codes": len(sent), "all_arrived": complete,
            "scan_to_ws_us": summary(_latencies(sent, watch.arrived)),
            "split_scan_to_judging_us": summary(_latencies(sent, watch.judged)),
            "split_judging_to_ws_us": summary(sorted(
                (watch.arrived[k] - watch.judged[k]) / 1000 for k in sent
                if k in watch.arrived)),
        }

    texts = _texts(incoming(burst, sample))
    random.shuffle(texts)
    burst_sent: dict[str, int] = {}
    t0 = time.time_ns()
    for i in range(len(texts)):
        send(texts, burst_sent, i)
    complete_burst = _wait_for(watch, texts, 120)
    last = max(watch.arrived.get(k, 0) for k in texts)
    burst_lat = _latencies(burst_sent, watch.arrived)
    token_box[0].run_sync_soon(stop.set)
    thread.join(5)
    return {
        "steady": steady,
        "burst": {"codes": len(texts), "duplicate_share": DUPLICATE_SHARE,
                  "all_arrived": complete_burst,
                  "codes_per_s": round(len(texts) / ((last - t0) / 1e9)) if last else 0,
                  "scan_to_ws_us": summary(burst_lat)},
        "ws_gaps": watch.gaps,
    }


def main() -> None:
    args = parse_args(__doc__, [
        ("--rows", {"type": int, "default": None, "help": "codes stored before measuring"}),
        ("--db", {"type": Path, "default": None, "help": "database file to keep and reuse"}),
        ("--rate", {"type": int, "nargs": "+", "default": [20, 100],
                    "help": "steady scans per second, one phase per rate"}),
        ("--burst", {"type": int, "default": None, "help": "codes in the throughput burst"}),
        ("--serve", {"choices": ["station"], "help": "internal: a child"}),
        ("--config", {"type": Path, "help": "internal"}),
        ("--data-dir", {"type": Path, "help": "internal"}),
    ])
    if args.serve == "station":
        serve_station_child(args.config, args.data_dir)
        return
    rows = args.rows or (1_000_000 if args.quick else 10_000_000)
    burst = args.burst or (1000 if args.quick else 5000)
    seconds = 3.0 if args.quick else 10.0
    gc.collect()
    gc.freeze()
    with tempfile.TemporaryDirectory(prefix="takt-bench-trace-") as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        db = data / "takt.duckdb"
        if args.db is not None:
            db = args.db
        reuse = db.exists()
        con = open_database(db)
        if reuse:
            stored = int(con.execute("SELECT count(*) FROM codes").fetchone()[0])  # type: ignore[index]
            sample = [c for (c,) in con.execute(
                "SELECT code FROM codes USING SAMPLE 20000 ROWS").fetchall()]
            fill_s = 0.0
        else:
            fill_s, sample = fill(con, rows)
            stored = rows
        bare = baseline(con, sample, 500 if args.quick else 2000)
        con.close()
        if args.db is not None:  # the station opens takt.duckdb in its data dir
            (data / "takt.duckdb").symlink_to(args.db.resolve())
        with TcpScannerSimulator(port=0) as reader:
            config = Path(tmp) / "bench.toml"
            config.write_text(STATION.format(port=reader.port))
            child = spawn([__file__, "--serve", "station", "--config", str(config),
                           "--data-dir", str(data)])
            try:
                port_text, password = read_ready(child, timeout_s=120)
                port = int(port_text)
                deadline = time.monotonic() + 20
                while reader.connections < 1 and time.monotonic() < deadline:
                    time.sleep(0.05)
                result = measure(reader, port, login(port, password), sample,
                                 rates=tuple(args.rate), seconds=seconds, burst=burst)
            finally:
                stop_child(child)
    steady_p99_ms = max(phase["scan_to_ws_us"].get("p99", float("nan"))
                        for phase in result["steady"].values()) / 1000
    emit({
        "bench": "traceability",
        "machine": machine(),
        "duckdb": duckdb.__version__,
        "stored_codes": stored,
        "fill_s": round(fill_s, 1),
        "bare_judge_scan": bare,
        **result,
        "budget": {"codes_per_s": BUDGET_CODES_PER_S, "scan_to_ws_p99_ms": BUDGET_P99_MS,
                   "met": bool(result["burst"]["codes_per_s"] >= BUDGET_CODES_PER_S
                               and steady_p99_ms <= BUDGET_P99_MS)},
    })


if __name__ == "__main__":
    sys.exit(main())
