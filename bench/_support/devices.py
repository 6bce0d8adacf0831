"""Helpers for the device benchmarks (`wrench.py`, `ups.py`): a station child that answers
commands on stdin, a /ws watcher in its own thread, and CPU clocks of single threads.

- `serve_station_child(config_file, data_dir, commands)`: start a station from a config file,
  serve it as `takt run` does, and answer `<command> <args...>` lines on stdin with one
  `REPLY <json>` line each (commands are the script's own, plus `cpu` and `publish`);
- `ask_child(proc, line)`: send a command line to such a child and return its reply;
- `WsWatch`: one `/ws?token=` connection in a thread of its own, subscribed to some topic
  patterns, keeping every `bus` message with its arrival time (time.time_ns, the clock the
  station's stamps use too: same host);
- `thread_cpu_s(thread)`: CPU seconds one thread of this process has used (ns resolution,
  where /proc's per-process figures count 10 ms ticks).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import trio
import trio_websocket

from _support.common import serve_as_takt_run
from _support.plc import paced, readline, send_line

__all__ = [
    "Command",
    "WsWatch",
    "ask_child",
    "serve_station_child",
    "thread_cpu_s",
    "wait_until",
]

Command = Callable[[Any, list[str]], Any]
"""A station child's command: (the running station, the line's arguments) -> JSON-able."""


def thread_cpu_s(thread: threading.Thread) -> float:
    """User + system CPU seconds of a live thread of this process."""
    if thread.ident is None:
        raise ValueError(f"thread {thread.name} was never started")
    return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))


def _threads_named(prefix: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(prefix) and t.is_alive()]


def _cpu(_station: Any, args: list[str]) -> dict[str, Any]:
    """`cpu [thread-prefix]`: CPU seconds of the whole process, and of its live threads whose
    name starts with the prefix (pykka names an actor's thread `<ActorClass>-<n>`)."""
    reply: dict[str, Any] = {"process_s": time.process_time(), "wall_s": time.perf_counter()}
    if args:
        threads = _threads_named(args[0])
        reply["threads"] = [t.name for t in threads]
        reply["thread_s"] = sum(thread_cpu_s(t) for t in threads)
    return reply


def _publish(station: Any, args: list[str]) -> dict[str, Any]:
    """`publish <topic> <hz> <seconds>`: durable events carrying their publish time
    (`t_ns`, time.time_ns) straight on the station's bus, at a fixed rate."""
    topic, hz, seconds = args[0], int(args[1]), float(args[2])
    bus = station.runtime.bus
    n, elapsed = paced(hz, seconds, lambda i: bus.publish(
        topic, {"t_ns": time.time_ns(), "n": i}, source="bench", durable=True))
    return {"published": n, "seconds": elapsed}


def serve_station_child(config_file: Path, data_dir: Path,
                        commands: Mapping[str, Command] | None = None) -> None:
    """Start the station of config_file and serve it as `takt run` does (READY line first);
    a daemon thread answers the command lines arriving on stdin."""
    from controller.boot import start_station
    from controller.config import parse_config

    station = start_station(parse_config(config_file.read_text(), "bench.toml"), data_dir)
    table: dict[str, Command] = {"cpu": _cpu, "publish": _publish, **(commands or {})}

    def answer() -> None:
        for line in sys.stdin:
            parts = line.split()
            if not parts:
                continue
            try:
                reply = table[parts[0]](station, parts[1:])
            except Exception as exc:  # reported to the parent, which fails the run
                reply = {"error": f"{type(exc).__name__}: {exc}"}
            print("REPLY " + json.dumps(reply), flush=True)

    threading.Thread(target=answer, name="bench-commands", daemon=True).start()
    serve_as_takt_run(station)


def ask_child(proc: Any, line: str) -> dict[str, Any]:
    """A command to a `serve_station_child` child; its reply (RuntimeError if it failed)."""
    send_line(proc, line)
    reply: dict[str, Any] = json.loads(readline(proc, "REPLY "))
    if "error" in reply:
        raise RuntimeError(f"station child: {line!r}: {reply['error']}")
    return reply


def wait_until(predicate: Callable[[], bool], timeout_s: float, step_s: float = 0.01) -> bool:
    """Poll predicate until it holds or timeout_s passes; whether it held."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(step_s)


class WsWatch:
    """A /ws connection in its own thread (its own trio loop): every `bus` message of the
    subscribed patterns, parsed, with its arrival time in ns; `gap` messages counted."""

    def __init__(self, url: str, patterns: Sequence[str]) -> None:
        self._url = url
        self._patterns = list(patterns)
        self._lock = threading.Lock()
        self._messages: list[tuple[int, dict[str, Any]]] = []
        self.gaps = 0
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._stop: trio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="ws-watch", daemon=True)

    def start(self, timeout_s: float = 10.0) -> None:
        """Connect and subscribe; returns once the snapshot arrived."""
        self._thread.start()
        if not self._ready.wait(timeout_s) or self._error is not None:
            raise RuntimeError(f"/ws client did not subscribe: {self._error}")

    def stop(self) -> None:
        if self._token is not None and self._stop is not None:
            try:
                self._token.run_sync_soon(self._stop.set)
            except trio.RunFinishedError:
                pass
        self._thread.join(5)

    def count(self) -> int:
        with self._lock:
            return len(self._messages)

    def messages(self, topic: str | None = None, since: int = 0
                 ) -> list[tuple[int, dict[str, Any]]]:
        """(arrival ns, message) of every bus message from index `since`, of topic if given."""
        with self._lock:
            taken = self._messages[since:]
        return [(t, m) for t, m in taken if topic is None or m.get("topic") == topic]

    def _run(self) -> None:
        try:
            trio.run(self._main)
        except BaseException as exc:  # reported by start() or noticed as missing frames
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._stop = trio.Event()
        async with trio_websocket.open_websocket_url(self._url, max_message_size=2**24) as ws:
            first = json.loads(await ws.get_message())
            if first.get("type") != "ready":
                raise RuntimeError(f"unexpected first message {first}")
            await ws.send_message(json.dumps({"subscribe": self._patterns}))
            snapshot = json.loads(await ws.get_message())
            if snapshot.get("type") != "snapshot":
                raise RuntimeError(f"unexpected message {snapshot}")
            self._ready.set()
            clock = time.time_ns
            while not self._stop.is_set():
                with trio.move_on_after(0.2):
                    text = await ws.get_message()
                    t = clock()
                    msg = json.loads(text)
                    if msg.get("type") == "gap":
                        self.gaps += 1
                    elif msg.get("type") == "bus":
                        with self._lock:
                            self._messages.append((t, msg))
