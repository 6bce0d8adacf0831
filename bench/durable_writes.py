"""Durable writes through the StoreActor's group commit: events/s and ack latency.

Primary: 64 trio tasks, each asking `Write(rows=[10 ProbeRow])` through the bridge in a loop
(as the facade and actors write); a write's ack comes only after the transaction holding it
committed (fsync). It runs until DuckDB has checkpointed its WAL at least once (the commit that
crosses `checkpoint_threshold`, 16 MiB, also writes the database file: the worst ack), watched
by sampling the WAL file size. Second: 8 plain threads each `call`ing Write with 10 rows.
Baselines, same run, fresh database files, one thread: bare `state.batch.commit_batch` with the
writers' batch size (10 rows per transaction) and with the store's mean group size.
Third: open loop, 512 tasks sending on a schedule that totals exactly 50k events/s,
ack latency counted from when each write was due. Budget: >= 50k events/s sustained (primary,
saturated) and ack p99 <= 20 ms at 50k events/s offered (the paced run); the saturated run's
latency is reported too (it is queueing: writers in flight / throughput).
`--quick` lowers checkpoint_threshold to 2 MiB so a checkpoint still happens in ~10 s.
Run: .venv/bin/python bench/durable_writes.py [--quick]
"""

from __future__ import annotations

import gc
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import trio
from _support.common import emit, machine, parse_args, ratio, summary

from actors.bridge import ask
from actors.runtime import Runtime, call
from actors.store import StoreActor, Write
from controller.boot import freeze_startup_heap, release_heap
from controller.clock import RealClock
from state.batch import WriteBatch, commit_batch
from state.connection import open_database
from state.probe import ProbeRow

EVENTS_BUDGET = 50_000
P99_BUDGET_MS = 20.0
BATCH = 10
TRIO_WRITERS = 64
PACED_WRITERS = 512
THREAD_WRITERS = 8
MAX_BATCH = 5000  # the store's group_commit_max default


class WalWatch:
    """Samples the WAL file size; a drop means a checkpoint moved it into the database file."""

    def __init__(self, wal: Path) -> None:
        self.wal = wal
        self.checkpoints: list[float] = []  # perf_counter times
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wal-watch", daemon=True)

    def start(self) -> WalWatch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _size(self) -> int:
        try:
            return self.wal.stat().st_size
        except FileNotFoundError:
            return 0

    def _run(self) -> None:
        last = self._size()
        while not self._stop.wait(0.02):  # checkpoints empty the WAL: a drop stays visible
            size = self._size()
            self.peak_bytes = max(self.peak_bytes, size)
            if size < last // 2:
                self.checkpoints.append(time.perf_counter())
            last = size


def _rows(writer: int, start: int) -> list[ProbeRow]:
    now = time.time_ns() // 1000
    return [ProbeRow(writer=writer, n=start + i, ts_us=now) for i in range(BATCH)]


def _commit_time_stats(runtime: Runtime) -> dict[str, Any]:
    """From the store's own commit-duration histogram: how many commits took over 10/20/50 ms."""
    buckets: dict[float, float] = {}
    count = 0.0
    for metric in runtime.metrics.store_commit_seconds.collect():
        for s in metric.samples:
            if s.name.endswith("_bucket"):
                buckets[float(s.labels["le"])] = s.value
            elif s.name.endswith("_count"):
                count = s.value
    return {
        "commits": int(count),
        **{f"over_{int(le * 1000)}ms": int(count - buckets.get(le, count))
           for le in (0.01, 0.02, 0.05)},
    }


def _group_stats(runtime: Runtime) -> tuple[int, int]:
    """(commits, rows) observed by the store's batch-size histogram."""
    commits = rows = 0
    for metric in runtime.metrics.store_batch_rows.collect():
        for s in metric.samples:
            if s.name.endswith("_count"):
                commits = int(s.value)
            elif s.name.endswith("_sum"):
                rows = int(s.value)
    return commits, rows


def _start_store(folder: Path, threshold: str) -> tuple[Runtime, Any, Any, WalWatch]:
    db = open_database(folder / "takt.duckdb", checkpoint_threshold=threshold)
    runtime = Runtime(clock=RealClock())
    store = StoreActor.start(runtime, "store", db, max_batch=MAX_BATCH)
    runtime.wait_idle(5)
    freeze_startup_heap()  # as `takt run` does once the station is up
    watch = WalWatch(folder / "takt.duckdb.wal").start()
    return runtime, store, db, watch


def _stop_store(runtime: Runtime, store: Any, db: Any, watch: WalWatch) -> None:
    watch.stop()
    store.stop(block=True)
    db.close()
    runtime.clock.close()
    release_heap()


def run_trio(folder: Path, threshold: str, min_s: float, max_s: float) -> dict[str, Any]:
    runtime, store, db, watch = _start_store(folder, threshold)
    latencies: list[float] = []
    acked = [0]

    async def main() -> float:
        deadline = [time.perf_counter() + max_s]
        t0 = time.perf_counter()

        def done() -> bool:
            now = time.perf_counter()
            return now >= deadline[0] or (now - t0 >= min_s and bool(watch.checkpoints))

        async def writer(w: int) -> None:
            n = 0
            clock = time.perf_counter_ns
            while not done():
                rows = _rows(w, n)
                n += BATCH
                s = clock()
                await ask(runtime, store, Write(rows=rows), timeout=30)
                latencies.append((clock() - s) / 1e6)
                acked[0] += BATCH

        async with trio.open_nursery() as nursery:
            for w in range(TRIO_WRITERS):
                nursery.start_soon(writer, w)
        return time.perf_counter() - t0

    gc.collect()
    elapsed = trio.run(main)
    commits, group_rows = _group_stats(runtime)
    commit_times = _commit_time_stats(runtime)
    _stop_store(runtime, store, db, watch)
    return {
        "writers": f"{TRIO_WRITERS} trio tasks via actors.bridge.ask",
        "rows_per_write": BATCH,
        "events_per_s": round(acked[0] / elapsed),
        "events": acked[0],
        "seconds": round(elapsed, 2),
        "ack_latency_ms": summary(latencies, 2),
        "commits": commits,
        "mean_rows_per_commit": round(group_rows / commits, 1) if commits else 0,
        "store_commit_durations": commit_times,
        "wal_checkpoints_seen": len(watch.checkpoints),
        "wal_peak_mib": round(watch.peak_bytes / 2**20, 2),
    }


def run_paced(folder: Path, threshold: str, rate: int, seconds: float) -> dict[str, Any]:
    """Open loop: writers send on a fixed schedule totalling `rate` events/s; each ack's
    latency counts from the moment its write was due, so a stall is not hidden by writers
    that waited for it (no coordinated omission)."""
    runtime, store, db, watch = _start_store(folder, threshold)
    latencies: list[float] = []
    acked = [0]
    # Enough writers that none is still waiting for its last ack when its next write is due
    # (one outstanding write each), so the offered rate really is offered.
    writers = PACED_WRITERS
    period = writers * BATCH / rate  # each writer's interval between writes

    async def main() -> float:
        t0 = trio.current_time()

        async def writer(w: int) -> None:
            due = t0 + period * w / writers
            n = 0
            while due < t0 + seconds:
                await trio.sleep_until(due)
                await ask(runtime, store, Write(rows=_rows(w, n)), timeout=30)
                latencies.append((trio.current_time() - due) * 1000)
                acked[0] += BATCH
                n += BATCH
                due += period

        async with trio.open_nursery() as nursery:
            for w in range(writers):
                nursery.start_soon(writer, w)
        return trio.current_time() - t0

    gc.collect()
    elapsed = trio.run(main)
    _stop_store(runtime, store, db, watch)
    return {
        "offered_events_per_s": rate,
        "writers": f"{writers} trio tasks, one {BATCH}-row write every {period * 1000:.0f} ms each",
        "events_per_s": round(acked[0] / elapsed),
        "seconds": round(elapsed, 2),
        "ack_latency_from_due_ms": summary(latencies, 2),
        "wal_checkpoints_seen": len(watch.checkpoints),
    }


def run_threads(folder: Path, threshold: str, seconds: float) -> dict[str, Any]:
    runtime, store, db, watch = _start_store(folder, threshold)
    latencies: list[list[float]] = [[] for _ in range(THREAD_WRITERS)]
    counts = [0] * THREAD_WRITERS
    stop_at = time.perf_counter() + seconds

    def writer(w: int) -> None:
        n = 0
        clock = time.perf_counter_ns
        while time.perf_counter() < stop_at:
            rows = _rows(1000 + w, n)
            n += BATCH
            s = clock()
            call(runtime, store, Write(rows=rows), timeout=30)
            latencies[w].append((clock() - s) / 1e6)
            counts[w] += BATCH

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(THREAD_WRITERS)]
    gc.collect()
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    commits, group_rows = _group_stats(runtime)
    commit_times = _commit_time_stats(runtime)
    _stop_store(runtime, store, db, watch)
    return {
        "writers": f"{THREAD_WRITERS} threads via actors.runtime.call",
        "rows_per_write": BATCH,
        "events_per_s": round(sum(counts) / elapsed),
        "events": sum(counts),
        "seconds": round(elapsed, 2),
        "ack_latency_ms": summary([x for lat in latencies for x in lat], 2),
        "commits": commits,
        "mean_rows_per_commit": round(group_rows / commits, 1) if commits else 0,
        "store_commit_durations": commit_times,
        "wal_checkpoints_seen": len(watch.checkpoints),
    }


def run_bare(folder: Path, threshold: str, rows_per_commit: int, seconds: float
             ) -> dict[str, Any]:
    """One thread, commit_batch on a fresh file, `rows_per_commit` rows per transaction."""
    con = open_database(folder / "bare.duckdb", checkpoint_threshold=threshold)
    latencies: list[float] = []
    n = 0
    stop_at = time.perf_counter() + seconds
    t0 = time.perf_counter()
    while time.perf_counter() < stop_at:
        now = time.time_ns() // 1000
        batch = WriteBatch()
        batch.extend([ProbeRow(writer=1, n=n + i, ts_us=now) for i in range(rows_per_commit)])
        s = time.perf_counter_ns()
        commit_batch(con, batch)
        latencies.append((time.perf_counter_ns() - s) / 1e6)
        n += rows_per_commit
    elapsed = time.perf_counter() - t0
    con.close()
    return {
        "rows_per_commit": rows_per_commit,
        "events_per_s": round(n / elapsed),
        "commit_ms": summary(latencies, 2),
    }


def main() -> None:
    args = parse_args(__doc__)
    if args.quick:
        threshold, min_s, max_s, thread_s, bare_s = "2MiB", 3.0, 8.0, 2.0, 0.8
    else:
        threshold, min_s, max_s, thread_s, bare_s = "16MiB", 8.0, 35.0, 6.0, 2.5
    with tempfile.TemporaryDirectory(prefix="takt-bench-writes-") as tmp:
        folder = Path(tmp)
        (folder / "trio").mkdir()
        (folder / "threads").mkdir()
        (folder / "paced").mkdir()
        primary = run_trio(folder / "trio", threshold, min_s, max_s)
        paced = run_paced(folder / "paced", threshold, EVENTS_BUDGET, max(min_s, 8.0))
        threads = run_threads(folder / "threads", threshold, thread_s)
        group = max(1, round(primary["mean_rows_per_commit"]))
        bare_small = run_bare(folder, threshold, BATCH, bare_s)
        os.remove(folder / "bare.duckdb")
        bare_group = run_bare(folder, threshold, group, bare_s)
    p99 = paced["ack_latency_from_due_ms"]["p99"]
    emit({
        "bench": "durable_writes",
        "quick": args.quick,
        "checkpoint_threshold": threshold,
        "store_group_commit_max": MAX_BATCH,
        "store_trio_bridge": primary,
        "store_paced_at_budget_rate": paced,
        "store_threads_call": threads,
        "baseline_bare_commit_batch_writer_batch": bare_small,
        "baseline_bare_commit_batch_store_group_size": bare_group,
        "ratios": {
            "store_vs_bare_same_group_size": ratio(primary["events_per_s"],
                                                   bare_group["events_per_s"]),
            "store_vs_bare_writer_batch": ratio(primary["events_per_s"],
                                                bare_small["events_per_s"]),
        },
        "budget": {"events_per_s_min": EVENTS_BUDGET, "ack_p99_ms_max": P99_BUDGET_MS},
        "within_budget_threads": (threads["events_per_s"] >= EVENTS_BUDGET
                                  and threads["ack_latency_ms"]["p99"] <= P99_BUDGET_MS),
        "checkpoint_seen": primary["wal_checkpoints_seen"] >= 1,
        # Throughput: the saturated run; latency: the run offered exactly the budget rate.
        "within_budget": (primary["events_per_s"] >= EVENTS_BUDGET and p99 <= P99_BUDGET_MS
                          and paced["events_per_s"] >= 0.98 * EVENTS_BUDGET
                          and primary["wal_checkpoints_seen"] >= 1),
        "machine": machine(),
    })


if __name__ == "__main__":
    main()
