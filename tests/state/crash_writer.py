"""Child process of the SIGKILL crash test: writers that print each acknowledgement.

    python -m tests.state.crash_writer DB_PATH [--writers N] [--seed S] [--wait-go]
                                              [--flush-ms LOW HIGH] [--checkpoint-threshold SIZE]

Starts a Runtime on a RealClock with a StoreActor on DB_PATH and runs N writer threads. Each
writer continues its n from what the database holds, publishes a durable `probe.write` event
and writes a few ProbeRows per request, one request at a time, and prints
`ACK writer n_first n_last` only after the store acknowledged it. By default the database runs
as a station's does (checkpoints only when the WAL passes 16 MiB); `--flush-ms` adds a thread
that asks for a Flush (commit and checkpoint) every LOW..HIGH ms and `--checkpoint-threshold`
makes commits checkpoint sooner, so that kills land inside checkpoints. Lines on stdout:

    READY                              imports done (with --wait-go: waiting for "go" on stdin)
    START seq=S w1=N1 w2=N2 ...        database open: journal max seq and each writer's max n
    ACK w first last                   rows first..last of writer w are committed
    FLUSH / FLUSHED                    around each Flush
    ERROR what: message                a write or flush failed; the traceback goes to stderr

The process never ends by itself; the parent kills it.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import threading
import time
import traceback
from pathlib import Path

from actors.bus import Bus
from actors.quiescence import InFlight
from actors.runtime import Runtime, call
from actors.store import Flush, StoreActor, Write
from controller.clock import RealClock
from state.connection import open_database
from state.journal import max_journal_seq
from state.probe import ProbeRow

MAX_ROWS_PER_WRITE = 6


def _say(line: str) -> None:
    # One write(2) per line: atomic on a pipe, so lines of different threads never interleave.
    os.write(1, f"{line}\n".encode())


def _fail(what: str, exc: BaseException) -> None:
    traceback.print_exception(exc, file=sys.stderr)
    sys.stderr.flush()
    text = str(exc).replace("\n", " | ")
    _say(f"ERROR {what}: {type(exc).__name__}: {text}")
    os._exit(3)  # at once, no cleanup: the parent wants the files as the error left them


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("db", type=Path)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--wait-go", action="store_true")
    parser.add_argument("--checkpoint-threshold", default="16MiB")
    parser.add_argument("--flush-ms", type=float, nargs=2, default=(0.0, 0.0),
                        help="a Flush every uniform(LOW, HIGH) ms (default: none)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    _say("READY")
    if args.wait_go and sys.stdin.readline().strip() != "go":
        return  # the parent went away before letting us start

    database = open_database(args.db, checkpoint_threshold=args.checkpoint_threshold)
    seq_start = max_journal_seq(database)
    stored = dict(
        database.execute("SELECT writer, max(n) FROM probe_writes GROUP BY writer").fetchall()
    )
    clock = RealClock()
    inflight = InFlight()
    # As controller.boot does: the bus numbers on after the journal, so keys never collide.
    runtime = Runtime(clock=clock, inflight=inflight, bus=Bus(clock, inflight, seq_start=seq_start))
    store = StoreActor.start(runtime, "store", database)
    next_n = {w: int(stored.get(w, 0)) + 1 for w in range(1, args.writers + 1)}
    _say(f"START seq={seq_start} " + " ".join(f"w{w}={n - 1}" for w, n in next_n.items()))

    def write(writer: int) -> None:
        rng = random.Random(args.seed * 1000 + writer)
        n = next_n[writer]
        try:
            while True:
                last = n + rng.randint(1, MAX_ROWS_PER_WRITE) - 1
                runtime.bus.publish(
                    "probe.write", {"writer": writer, "first": n, "last": last},
                    source=f"writer:{writer}", durable=True,
                )
                now = clock.now_us()
                rows = [ProbeRow(writer=writer, n=i, ts_us=now) for i in range(n, last + 1)]
                call(runtime, store, Write(rows=rows), timeout=60)
                _say(f"ACK {writer} {n} {last}")
                n = last + 1
        except BaseException as exc:
            _fail(f"writer {writer}", exc)

    def flush() -> None:
        rng = random.Random(args.seed * 1000)
        try:
            while True:
                time.sleep(rng.uniform(*args.flush_ms) / 1000)
                _say("FLUSH")
                call(runtime, store, Flush(), timeout=60)
                _say("FLUSHED")
        except BaseException as exc:
            _fail("flush", exc)

    threads = [threading.Thread(target=write, args=(w,), daemon=True) for w in next_n]
    if args.flush_ms[1] > 0:
        threads.append(threading.Thread(target=flush, daemon=True))
    for t in threads:
        t.start()
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
