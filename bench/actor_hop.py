"""Actor hop: tell -> handled throughput of a TaktActor against a bare pykka.ThreadingActor.

One sender thread tells N small msgspec messages as fast as it can; the actor counts them
and sets an event on the last one. Time runs from the first tell to the last message handled.
The Takt side sends through `actors.runtime.tell` (in-flight counted, as all project code does)
to a `@handles` handler; the baseline is `ref.tell` to a bare ThreadingActor whose on_receive
does the same count. Rounds alternate bare/takt so machine noise hits both; the best round
of each is compared. Budget: TaktActor costs at most 1.25x bare pykka per message.
Run: .venv/bin/python bench/actor_hop.py [--quick]
"""

from __future__ import annotations

import gc
import statistics
import threading
import time
from typing import Any

import msgspec
import pykka
from _support.common import emit, machine, parse_args, ratio

from actors.base import TaktActor, handles
from actors.quiescence import InFlight
from actors.runtime import Runtime, tell
from controller.clock import RealClock

BUDGET_RATIO = 1.25


class Tick(msgspec.Struct, frozen=True, tag=True):
    n: int


class TaktCounter(TaktActor):
    def __init__(self, runtime: Runtime, name: str, total: int, done: threading.Event) -> None:
        super().__init__(runtime, name)
        self.total = total
        self.done = done
        self.count = 0

    @handles(Tick)
    def _tick(self, _: Tick) -> None:
        self.count += 1
        if self.count == self.total:
            self.done.set()


class CountedBareCounter(pykka.ThreadingActor):
    """Diagnostic: bare pykka plus only the runtime's in-flight counter (add on send, done
    after handling), to split the Takt overhead into counting and dispatch."""

    def __init__(self, total: int, done: threading.Event, inflight: InFlight) -> None:
        super().__init__()
        self.total = total
        self.done = done
        self.inflight = inflight
        self.count = 0

    def on_receive(self, message: Any) -> None:
        try:
            self.count += 1
            if self.count == self.total:
                self.done.set()
        finally:
            self.inflight.done()


class BareCounter(pykka.ThreadingActor):
    def __init__(self, total: int, done: threading.Event) -> None:
        super().__init__()
        self.total = total
        self.done = done
        self.count = 0

    def on_receive(self, message: Any) -> None:
        self.count += 1
        if self.count == self.total:
            self.done.set()


def _run(kind: str, n: int, messages: list[Tick], runtime: Runtime) -> float:
    """Seconds from the first tell to the last message handled."""
    done = threading.Event()
    if kind == "takt":
        ref = TaktCounter.start(runtime, "hop", n, done)
        runtime.wait_idle(5)

        def send() -> None:
            for m in messages:
                tell(runtime, ref, m)
    elif kind == "bare_counted":
        ref = CountedBareCounter.start(n, done, runtime.inflight)
        inflight = runtime.inflight

        def send() -> None:
            for m in messages:
                inflight.add()
                ref.tell(m)
    else:
        ref = BareCounter.start(n, done)

        def send() -> None:
            for m in messages:
                ref.tell(m)

    gc.collect()
    sender = threading.Thread(target=send, name="sender")
    t0 = time.perf_counter()
    sender.start()
    if not done.wait(120):
        raise RuntimeError(f"{kind}: not every message was handled")
    elapsed = time.perf_counter() - t0
    sender.join()
    ref.stop(block=True)
    return elapsed


def main() -> None:
    args = parse_args(__doc__)
    n = 50_000 if args.quick else 200_000
    rounds = 3 if args.quick else 5
    runtime = Runtime(clock=RealClock())
    messages = [Tick(i) for i in range(n)]
    _run("bare", 10_000, messages[:10_000], runtime)  # warm up both paths
    _run("takt", 10_000, messages[:10_000], runtime)
    seconds: dict[str, list[float]] = {"bare": [], "takt": [], "bare_counted": []}
    for r in range(rounds):
        order = ("bare", "takt", "bare_counted") if r % 2 == 0 else (
            "bare_counted", "takt", "bare")
        for kind in order:
            seconds[kind].append(_run(kind, n, messages, runtime))
    runtime.clock.close()

    def figures(kind: str) -> dict[str, float]:
        best = min(seconds[kind])
        return {
            "msgs_per_s": round(n / best),
            "us_per_msg": round(best / n * 1e6, 3),
            "msgs_per_s_median": round(n / statistics.median(seconds[kind])),
            "rounds_s": [round(s, 3) for s in seconds[kind]],
        }

    takt, bare, counted = figures("takt"), figures("bare"), figures("bare_counted")
    cost_ratio = ratio(takt["us_per_msg"], bare["us_per_msg"])
    emit({
        "bench": "actor_hop",
        "quick": args.quick,
        "messages": n,
        "rounds": rounds,
        "takt_actor": takt,
        "bare_pykka": bare,
        "diagnostic_bare_pykka_plus_inflight_counter": counted,
        "overhead_us_per_msg": {
            "total": round(takt["us_per_msg"] - bare["us_per_msg"], 3),
            "inflight_counter": round(counted["us_per_msg"] - bare["us_per_msg"], 3),
            "takt_dispatch_rest": round(takt["us_per_msg"] - counted["us_per_msg"], 3),
        },
        "cost_ratio_takt_vs_bare": cost_ratio,
        "cost_ratio_median": ratio(statistics.median(seconds["takt"]),
                                   statistics.median(seconds["bare"])),
        "budget": f"TaktActor per-message cost <= {BUDGET_RATIO}x bare pykka",
        "budget_ratio": BUDGET_RATIO,
        "within_budget": cost_ratio <= BUDGET_RATIO,
        "machine": machine(),
    })


if __name__ == "__main__":
    main()
