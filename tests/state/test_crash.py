"""SIGKILL the store mid-write, again and again on one database: no acknowledged write is lost.

Each round starts tests/state/crash_writer.py on the same file, lets its writers run for a
seeded random 50-400 ms after their first acknowledgement, kills it with SIGKILL and reopens
the database. Every write the child printed as acknowledged must be stored, each writer's rows
must run 1..max without a hole, and the journal must hold, in seq order and without a hole, the
durable event each writer published before each of its writes, across all the restarts.

Half of the rounds check a copy of the files, so the next child replays the WAL the killed one
left (a real restart after a crash); the other half open the file itself, which checkpoints it.

The default form runs the database as a station does, so kills land in commits (the WAL path).
The slow forms add 200-kill soaks, one of them with frequent checkpoints so kills also land
inside checkpoints.
"""

from __future__ import annotations

import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pytest

from state.connection import open_database
from state.errors import StateError

ROOT = Path(__file__).resolve().parents[2]
WRITERS = 4
SEED = 20_240_611
FIRST_ACK_TIMEOUT_S = 90.0  # start-up plus WAL replay on a loaded 2-core box; never hit normally


@dataclass
class Stored:
    """What a reopened database holds: journal max seq and each writer's max n."""

    seq: int
    max_n: dict[int, int]
    journaled: set[tuple[int, int, int]] = field(default_factory=set)

    def start_line(self) -> str:
        counts = " ".join(f"w{w}={self.max_n.get(w, 0)}" for w in range(1, WRITERS + 1))
        return f"START seq={self.seq} {counts}"


class WriterChild:
    """One crash_writer process; a thread collects its stdout lines as they come."""

    def __init__(self, db: Path, seed: int, stderr_path: Path, args: Sequence[str] = ()) -> None:
        self.stderr_path = stderr_path
        self._stderr = stderr_path.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.state.crash_writer", str(db),
             "--writers", str(WRITERS), "--seed", str(seed), "--wait-go", *args],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
            text=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def go(self) -> None:
        """Let the child open the database (it has done its imports meanwhile)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.close()

    def wait_for(self, prefix: str, timeout: float) -> str:
        """The next line starting with prefix; fails on an ERROR line, EOF or timeout."""
        while True:
            try:
                line = self._queue.get(timeout=timeout)
            except queue.Empty:
                self.kill()
                pytest.fail(f"crash_writer printed no {prefix} line in {timeout}s\n{self.report()}")
            if line is None:
                self.kill()
                pytest.fail(f"crash_writer ended before {prefix}\n{self.report()}")
            self.lines.append(line)
            if line.startswith("ERROR"):
                self.kill()
                pytest.fail(f"crash_writer: {line}\n{self.report()}")
            if line.startswith(prefix):
                return line

    def kill(self) -> None:
        """SIGKILL, reap, and collect every line it printed before dying (idempotent)."""
        if self._stderr.closed:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=60)
        self._reader.join(timeout=60)
        while (line := self._queue.get_nowait()) is not None:
            self.lines.append(line)
        self._stderr.close()

    def acks(self) -> list[tuple[int, int, int]]:
        fields = (line.split()[1:] for line in self.lines if line.startswith("ACK "))
        return [(int(w), int(first), int(last)) for w, first, last in fields]

    def report(self) -> str:
        tail = "\n".join(self.lines[-10:])
        marks = [line for line in self.lines if line in ("FLUSH", "FLUSHED")]
        flushing = bool(marks) and marks[-1] == "FLUSH"
        return (f"killed while a Flush (checkpoint) ran: {flushing}\nstdout tail:\n{tail}\n"
                f"stderr:\n{self.stderr_path.read_text()[-4000:]}")


def read_stored(db: Path) -> Stored:
    """Open the database (replaying its WAL) and check the invariants that hold after any kill."""
    con = open_database(db)
    try:
        per_writer = con.execute(
            "SELECT writer, count(*), min(n), max(n) FROM probe_writes GROUP BY writer"
        ).fetchall()
        for writer, count, low, high in per_writer:
            # (writer, n) is the primary key, so count == max and min == 1 means 1..max, no hole.
            assert (low, count) == (1, high), f"writer {writer}: {count} rows in {low}..{high}"
        (seq,) = con.execute("SELECT coalesce(max(seq), 0) FROM journal").fetchone()
        events = con.execute(
            "SELECT CAST(payload->>'writer' AS INT), CAST(payload->>'first' AS BIGINT), "
            "CAST(payload->>'last' AS BIGINT) FROM journal WHERE topic = 'probe.write' ORDER BY seq"
        ).fetchall()
    finally:
        con.close()
    # Each writer publishes its event just before sending the write, so in seq order a writer's
    # events leave no hole in n and reach at least as far as its stored rows. An event whose
    # write was lost in a kill is published again by the next child, hence `<=`. (Seqs have
    # gaps of their own: events that are not durable take numbers too.)
    covered: dict[int, int] = {}
    for writer, first, last in events:
        done = covered.get(writer, 0)
        assert first <= done + 1, f"writer {writer}: event for {first}..{last} after {done}"
        covered[writer] = max(done, last)
    for writer, _, _, high in per_writer:
        done = covered.get(writer, 0)
        assert done >= high, f"writer {writer}: rows up to {high}, events up to {done}"
    return Stored(
        seq=seq,
        max_n={w: high for w, _, _, high in per_writer},
        journaled=set(events),
    )


def _copy_database(db: Path, to_dir: Path) -> Path:
    shutil.rmtree(to_dir, ignore_errors=True)
    to_dir.mkdir()
    for f in db.parent.glob(db.name + "*"):
        shutil.copy2(f, to_dir / f.name)
    return to_dir / db.name


class DatabaseWontOpen(AssertionError):
    """The files a kill left do not open at all (as opposed to opening with writes missing)."""


def run_kills(tmp_path: Path, kills: int, seed: int = SEED, child_args: Sequence[str] = ()) -> None:
    db = tmp_path / "data" / "takt.duckdb"
    db.parent.mkdir()
    rng = random.Random(seed)
    expected = Stored(seq=0, max_n={})
    acked_max: dict[int, int] = {}
    total_acks = 0
    children = [WriterChild(db, 0, tmp_path / "child-0.stderr", child_args)]
    try:
        for round_ in range(kills):
            where = f"round {round_} (seed {seed}, files under {tmp_path})"
            child = children[round_]
            child.go()
            start = child.wait_for("START", FIRST_ACK_TIMEOUT_S)
            # After its own WAL replay the child sees exactly what the parent saw after the kill.
            assert start == expected.start_line(), where
            if round_ + 1 < kills:  # the next child does its imports while this one runs
                children.append(WriterChild(
                    db, round_ + 1, tmp_path / f"child-{round_ + 1}.stderr", child_args
                ))
            child.wait_for("ACK", FIRST_ACK_TIMEOUT_S)
            time.sleep(rng.uniform(0.05, 0.4))  # a random moment in the middle of writing
            child.kill()
            errors = [line for line in child.lines if line.startswith("ERROR")]
            assert not errors, f"{where}: {errors}\n{child.report()}"
            assert child.proc.returncode == -signal.SIGKILL, f"{where}\n{child.report()}"
            acks = child.acks()
            total_acks += len(acks)
            for writer, _, last in acks:
                acked_max[writer] = max(acked_max.get(writer, 0), last)

            evidence = _copy_database(db, tmp_path / f"evidence-{round_}").parent
            replay_in_child = round_ % 2 == 0
            opened = _copy_database(db, tmp_path / "check") if replay_in_child else db
            try:
                stored = read_stored(opened)
            except (StateError, duckdb.Error) as exc:
                raise DatabaseWontOpen(
                    f"{where}: the killed child left a database that does not open: "
                    f"{exc}\nfiles as the kill left them: {evidence}\n{child.report()}"
                ) from exc
            shutil.rmtree(evidence)
            for writer, _, last in acks:
                assert stored.max_n.get(writer, 0) >= last, (
                    f"{where}: writer {writer} was acknowledged up to n={last} "
                    f"but only {stored.max_n.get(writer, 0)} survived"
                )
            missing = [a for a in acks if a not in stored.journaled]
            assert not missing, f"{where}: no journal event for acknowledged writes {missing[:5]}"
            # Nothing acknowledged in an earlier round went missing since.
            assert all(stored.max_n.get(w, 0) >= n for w, n in acked_max.items()), where
            expected = stored
    finally:
        for child in children:
            child.kill()  # a child left waiting for "go" would start writing once we exit
    # Every round wrote something, or the test proved nothing about mid-write kills.
    assert total_acks >= kills


@pytest.mark.timeout(300)
def test_every_acknowledged_write_survives_repeated_sigkill(tmp_path: Path) -> None:
    run_kills(tmp_path, kills=20)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_every_acknowledged_write_survives_200_sigkills(tmp_path: Path) -> None:
    run_kills(tmp_path, kills=200)


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.xfail(
    raises=DatabaseWontOpen, strict=False,
    reason="DuckDB 2.0 rewrites block 0 in place when it checkpoints; a SIGKILL in the middle "
           "of that write can leave a file that no longer opens (docs/known-issues.md). A lost "
           "acknowledged write still fails this test.",
)
def test_sigkill_inside_checkpoints_loses_nothing_and_leaves_a_database_that_opens(
    tmp_path: Path,
) -> None:
    # A Flush every 20-150 ms and commits that checkpoint past 256 KiB of WAL: some of the
    # kills land while the WAL is being moved into the database file.
    run_kills(tmp_path, kills=200, child_args=(
        "--flush-ms", "20", "150", "--checkpoint-threshold", "256KiB",
    ))
