"""Wrench result -> stored + published: latency from the controller's wire to the /ws frame.

Path: the Open Protocol controller simulator (`sim.openprotocol_controller`, a child process)
sends a tightening result (MID 0061) -> the station's `OpenProtocolLink` reader thread
decodes and acknowledges it -> `WrenchActor` checks it against Takt's pset limits and stores
it in DuckDB (`state.tightening.store_result`, one durable commit, with the sequence counter)
-> publishes durable `device.wrench.<name>.result` on the bus -> `/ws` frame.
The station (child) is served as `takt run` serves it; the simulator stamps time.time_ns()
just before `tighten()` puts the result on the wire (its call duration is reported too) and
this process watches /ws (`device.wrench.*`) in a thread of its own (same host clock).
A result's latency is its frame's arrival minus its stamp; the split is cut at the result's
`received_us` (the actor's clock when it began handling it, before the store):
`wire_to_actor` (link, ack, actor mailbox) and `actor_to_ws` (check, store + commit, publish,
facade, WebSocket), the latter cut again at the event's bus stamp (the envelope's `ts`, whole
milliseconds, so those two parts are +-0.5 ms): `actor_to_publish` and `publish_to_ws`.
Rates: 5 results/s (a real nutrunner does < 1/s) and 50 results/s (a stress figure), then a
burst sent back to back: `results_per_s` (frames from the first send to the last frame) is
what the path sustains. `load` says how busy the machine was in each phase.
Baselines in the same run: `store_result` alone on a fresh DuckDB file, the same rows and
control changes, one commit each (what the storing alone costs), alternating with
`store_result` followed by the journal's commit of the result event on a second cursor (the
two durable commits a result causes in the station, back to back); stamped durable events
published straight on the station's bus at 50/s -> /ws (the bus -> WS part alone).
Budget: none (issue 5 gives no latency figure; see `reference` in the output).
Run: .venv/bin/python bench/wrench.py [--quick]
"""

from __future__ import annotations

import gc
import json
import os
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import httpx
import msgspec
from _support.common import (
    emit,
    login,
    machine,
    parse_args,
    read_ready,
    spawn,
    stop_child,
    summary,
)
from _support.devices import WsWatch, ask_child, serve_station_child, wait_until
from _support.plc import LoadMeter

from actors.wrench_messages import tightening_row, tightening_view
from controller.wrench_config import WrenchPset
from sim.openprotocol_controller import OpenProtocolControllerSim
from state.batch import WriteBatch, commit_batch
from state.connection import open_database
from state.journal import JournalRow
from state.tightening import WrenchControls, store_result

WRENCH = "nutrunner"
RESULT_TOPIC = f"device.wrench.{WRENCH}.result"
STAMP_TOPIC = "device.wrench.bench.stamp"
RATES = (5, 50)
BUS_RATE_HZ = 50
SELF = str(Path(__file__).resolve())
_JSON = msgspec.json.Encoder()
# Pset 1 as the demo station has it (the simulator's DEMO_PSETS): a sequence of 4, so every
# result also moves the sequence counter in the same transaction, and every 4th publishes
# the batch completion.
PSET = WrenchPset(number=1, name="M6 cover bolts", torque_min_nm=9.0, torque_max_nm=11.0,
                  torque_target_nm=10.0, angle_min=30, angle_max=90, batch_size=4)

STATION = f"""
[station]
id = "bench"
name = "wrench bench"

[[wrenches]]
name = "{WRENCH}"
host = "127.0.0.1"
port = {{port}}
default_pset = 1

  [[wrenches.psets]]
  number = {PSET.number}
  name = "{PSET.name}"
  torque_min_nm = {PSET.torque_min_nm}
  torque_max_nm = {PSET.torque_max_nm}
  torque_target_nm = {PSET.torque_target_nm}
  angle_min = {PSET.angle_min}
  angle_max = {PSET.angle_max}
  batch_size = {PSET.batch_size}
"""


# --- baseline: store_result alone ------------------------------------------------------------


def store_baseline(folder: Path, n: int) -> dict[str, Any]:
    """store_result on a fresh file, one transaction (durable commit) per result, with the
    sequence counter change the actor stores along with it; every other result is followed
    by the journal's own commit of its event, as the store actor makes it."""
    sim = OpenProtocolControllerSim(seed=1)  # never started: tighten() only draws results
    con = open_database(folder / "baseline.duckdb")
    cursor, journal = con.cursor(), con.cursor()
    alone: list[float] = []
    with_journal: list[float] = []
    try:
        for i in range(2 * n + 20):
            result = sim.tighten(ok=True)
            assert result is not None
            now_us = time.time_ns() // 1000
            row = tightening_row(WRENCH, result, PSET, received_us=now_us)
            controls = WrenchControls(wrench=WRENCH, sequence_pset=1, sequence_size=4,
                                      sequence_counter=i % 4 + 1, updated_us=now_us)
            t0 = time.perf_counter_ns()
            stored = store_result(cursor, row, controls)
            journaled = i % 2 == 1
            if journaled:
                batch = WriteBatch()
                batch.add(JournalRow(seq=i, ts_us=now_us, topic=RESULT_TOPIC,
                                     source=f"wrench:{WRENCH}", payload=_JSON.encode(
                                         tightening_view(stored)).decode()))
                commit_batch(journal, batch)
            if i >= 20:  # the first ones load the table's pages
                (with_journal if journaled else alone).append(
                    (time.perf_counter_ns() - t0) / 1000)
    finally:
        cursor.close()
        journal.close()
        con.close()
    return {"rows": len(alone), "store_result_us": summary(alone),
            "store_result_rows_per_s": round(len(alone) / (sum(alone) / 1e6)),
            "store_result_then_journal_commit_us": summary(with_journal)}


# --- the station path ------------------------------------------------------------------------


def _tighten(sim: OpenProtocolControllerSim, count: int, rate_hz: float) -> dict[str, Any]:
    """count tightenings at rate_hz (0: back to back): tightening id -> wall ns just before
    it went on the wire, the tighten() call durations in us, and the elapsed seconds."""
    sent: dict[int, int] = {}
    calls: list[float] = []
    period = 1.0 / rate_hz if rate_hz else 0.0
    t0 = time.perf_counter()
    for i in range(count):
        delay = t0 + i * period - time.perf_counter()
        if delay > 0:
            time.sleep(delay)  # fixed rate: a late one does not push the later ones back
        t = time.time_ns()
        result = sim.tighten(ok=True)
        calls.append((time.time_ns() - t) / 1000)
        if result is None:
            raise RuntimeError("the simulated tool is disabled")
        sent[result.tightening_id] = t
    return {"sent": sent, "calls_us": calls, "seconds": time.perf_counter() - t0}


def serve_sim_child() -> None:
    """The controller simulator in a process of its own (so nothing of the client's competes
    for its GIL while it sends): `READY <port>`, then commands on stdin, `REPLY <json>` each:
    `tighten <count> <rate_hz>` (rate 0: back to back) or `status`."""
    with OpenProtocolControllerSim(port=0) as sim:
        print(f"READY {sim.port}", flush=True)
        for line in sys.stdin:
            parts = line.split()
            if not parts:
                continue
            if parts[0] == "tighten":
                reply = _tighten(sim, int(parts[1]), float(parts[2]))
            else:
                reply = {"subscribers": sim.subscribers, "selected_pset": sim.selected_pset}
            print("REPLY " + json.dumps(reply), flush=True)


def _arrived(watch: WsWatch, since: int) -> dict[int, tuple[int, int, int]]:
    """tightening id -> (frame arrival ns, the result's received_us, its bus stamp in us,
    to the millisecond) of result frames."""
    return {m["data"]["tightening_id"]: (
        t, m["data"]["received_us"], round(datetime.fromisoformat(m["ts"]).timestamp() * 1e6))
        for t, m in watch.messages(RESULT_TOPIC, since)}


def _phase(sim: Any, watch: WsWatch, count: int, rate_hz: float, pids: list[int]
           ) -> dict[str, Any]:
    since = watch.count()
    load = LoadMeter(lambda: pids)
    table = ask_child(sim, f"tighten {count} {rate_hz}")
    sent = {int(tid): t for tid, t in table["sent"].items()}
    calls, elapsed = table["calls_us"], table["seconds"]
    complete = wait_until(lambda: set(sent) <= set(_arrived(watch, since)), 60, 0.05)
    busy = load.stop()
    arrived = _arrived(watch, since)
    total: list[float] = []
    to_actor: list[float] = []
    to_ws: list[float] = []
    to_publish: list[float] = []
    publish_to_ws: list[float] = []
    for tid, t_sent in sent.items():
        if tid not in arrived:
            continue
        t_frame, received_us, published_ms_us = arrived[tid]
        published_us = published_ms_us + 500  # the middle of its millisecond
        total.append((t_frame - t_sent) / 1000)
        to_actor.append(received_us - t_sent / 1000)
        to_ws.append(t_frame / 1000 - received_us)
        to_publish.append((published_us - received_us) / 1000)
        publish_to_ws.append((t_frame / 1000 - published_us) / 1000)
    last = max((arrived[tid][0] for tid in sent if tid in arrived), default=0)
    return {
        "results": len(sent), "frames": len(total), "all_arrived": complete,
        "send_rate_hz": round(len(sent) / elapsed, 1),
        "results_per_s": round(len(total) / ((last - min(sent.values())) / 1e9), 1),
        "wire_to_ws_us": summary(total),
        "split_wire_to_actor_us": summary(to_actor),
        "split_actor_to_ws_us": summary(to_ws),
        "split_actor_to_publish_ms": summary(to_publish, 2),
        "split_publish_to_ws_ms": summary(publish_to_ws, 2),
        "sim_tighten_call_us": summary(calls),
        "load": busy,
    }


def _bus_baseline(station: Any, watch: WsWatch, seconds: float) -> dict[str, Any]:
    since = watch.count()
    published = ask_child(station, f"publish {STAMP_TOPIC} {BUS_RATE_HZ} {seconds}")
    wait_until(lambda: len(watch.messages(STAMP_TOPIC, since)) >= published["published"], 10)
    frames = watch.messages(STAMP_TOPIC, since)
    return {"published": published["published"],
            "rate_hz": round(published["published"] / published["seconds"], 1),
            "frames": len(frames),
            "latency_us": summary([(t - m["data"]["t_ns"]) / 1000 for t, m in frames])}


def _wrench_status(port: int, token: str) -> dict[str, Any]:
    r = httpx.get(f"http://127.0.0.1:{port}/api/v1/wrenches/{WRENCH}/status",
                  headers={"Authorization": f"Bearer {token}"}, timeout=10)
    r.raise_for_status()
    entry: dict[str, Any] = r.json()
    return {"state": entry["state"], **(entry.get("status") or {})}


def measure(folder: Path, seconds: tuple[float, ...], bus_seconds: float, burst: int
            ) -> dict[str, Any]:
    sim = spawn([SELF, "--serve", "sim"], stdin=True)
    try:
        config = folder / "bench.toml"
        config.write_text(STATION.format(port=int(read_ready(sim)[0])))
        station = spawn([SELF, "--serve", "station", "--config", str(config),
                         "--data-dir", str(folder / "data")], stdin=True)
        try:
            port_text, password = read_ready(station, timeout_s=60)
            port = int(port_text)
            token = login(port, password)
            if not wait_until(lambda: ask_child(sim, "status") == {
                    "subscribers": 1, "selected_pset": 1}, 20, 0.05):
                raise RuntimeError("the station's wrench did not subscribe to results")
            watch = WsWatch(f"ws://127.0.0.1:{port}/ws?token={token}", ["device.wrench.*"])
            watch.start()
            try:
                pids = [os.getpid(), sim.pid, station.pid]
                warm = _phase(sim, watch, 10, 20, pids)
                if not warm["all_arrived"]:
                    raise RuntimeError("warm-up results did not reach /ws")
                bus = _bus_baseline(station, watch, bus_seconds)
                phases = {f"{rate}_per_s": _phase(sim, watch, round(rate * s), rate, pids)
                          for rate, s in zip(RATES, seconds, strict=True)}
                phases["burst"] = _phase(sim, watch, burst, 0, pids)
            finally:
                watch.stop()
            status = _wrench_status(port, token)
        finally:
            stop_child(station)
    finally:
        stop_child(sim)
    return {"phases": phases, "baseline_bus_to_ws": bus, "ws_gaps": watch.gaps,
            "station_counters": {k: status.get(k) for k in (
                "state", "results", "ok", "nok", "malformed", "error")},
            "link": {k: (status.get("link") or {}).get(k) for k in (
                "results", "malformed", "dropped_bytes", "unexpected")}}


def main() -> None:
    args = parse_args(__doc__, [
        ("--serve", {"choices": ["station", "sim"], "help": "internal: a child"}),
        ("--config", {"type": Path, "help": "internal"}),
        ("--data-dir", {"type": Path, "help": "internal"}),
    ])
    if args.serve == "station":
        serve_station_child(args.config, args.data_dir)
        return
    if args.serve == "sim":
        serve_sim_child()
        return
    seconds = (2.0, 2.0) if args.quick else (20.0, 15.0)
    bus_seconds = 1.0 if args.quick else 10.0
    burst = 60 if args.quick else 300
    gc.collect()
    gc.freeze()
    with tempfile.TemporaryDirectory(prefix="takt-bench-wrench-") as tmp:
        folder = Path(tmp)
        bare = store_baseline(folder, 50 if args.quick else 300)
        result = measure(folder, seconds, bus_seconds, burst)
    phases = result.pop("phases")
    worst_p99_us = max(p["wire_to_ws_us"].get("p99", float("nan"))
                       for name, p in phases.items() if name != "burst")
    emit({
        "bench": "wrench",
        "quick": args.quick,
        "machine": machine(),
        "duckdb": duckdb.__version__,
        "seconds_per_rate": dict(zip([f"{r}_per_s" for r in RATES], seconds, strict=True)),
        "result_to_ws": phases,
        "baseline_store_result": bare,
        **result,
        "ratio_p50_store_of_actor_to_ws": {
            name: round(bare["store_result_us"]["p50"] / p["split_actor_to_ws_us"]["p50"], 3)
            for name, p in phases.items()},
        "worst_steady_wire_to_ws_p99_ms": round(worst_p99_us / 1000, 3),
        "budget": None,
        "within_budget": None,
        "reference": ("no budget: issue 5 gives none and ARCHITECTURE's table has no wrench "
                      "row; the nearest are PLC change -> HMI frame p99 <= 5 ms and durable "
                      "write ack p99 <= 20 ms"),
    })


if __name__ == "__main__":
    main()
