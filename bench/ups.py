"""UPS poll cost: what one poll of the station's UPS costs Takt, and how fast a power change
reaches /ws.

Servers: Debian's NUT (`upsd` + `dummy-ups` from /lib/nut, started as tests/nut_server.py
starts them, in a private folder) and the in-process simulator `sim.nut_ups.NutUpsSimulator`
serving the same variables.
- poll round trip: `NutClient.list_vars(ups)` (what the UPS actor does per poll), sequential
  on one connection: p50/p99 in us, polls/s, and this thread's CPU per poll; blocks of polls
  alternate with blocks of the raw baseline so both see the same machine;
- raw baseline (same run, same servers): `LIST VAR <ups>` written and read with plain
  sockets (TCP_NODELAY, TCP_QUICKACK before each read as NutClient does), no Takt code; plus
  a few exchanges without TCP_QUICKACK, which upsd's line-by-line writes make wait on the
  delayed ACK;
- station CPU per poll: three stations (children, served as `takt run` serves them, run side
  by side): no UPS, a UPS on upsd polled at the default interval, and one polled every
  100 ms. Over one window, each station's process CPU (time.process_time) and the UPS actor
  thread's own CPU (its thread CPU clock): per poll = CPU / polls in the window, and
  `process_marginal` = (the station's process CPU - the no-UPS station's) / polls;
- UPS reaction: the dummy-ups data file goes OL -> OB LB -> OL ...; for each change, the
  time upsd first serves it (a raw GET VAR poller every 5 ms, this process) and the arrival
  of the `device.ups.<name>.power` frame on each station's /ws, from the moment the file
  was written. Dominated by dummy-ups' own refresh (it re-reads the file once per cycle,
  up to ~1 s) plus the poll interval; reported with the interval used. A random pause
  before each change spreads the changes over the poll cycles.
Budget: none (issue 5 gives no figure for the UPS).
Run: .venv/bin/python bench/ups.py [--quick]
"""

from __future__ import annotations

import gc
import os
import random
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
from _support.common import (
    emit,
    login,
    machine,
    parse_args,
    ratio,
    read_ready,
    spawn,
    stop_child,
    summary,
)
from _support.devices import WsWatch, ask_child, serve_station_child, wait_until
from _support.plc import LoadMeter

from drivers.nut.client import NutClient
from sim.nut_ups import NutUpsSimulator
from tests.nut_server import NutServer, running_nut

UPS = "ups1"
SELF = str(Path(__file__).resolve())
DEFAULT_POLL_MS = 2000  # controller.ups_config.UpsConfig.poll_interval_ms
FAST_POLL_MS = 100  # the smallest the config allows
BLOCK = 100  # polls per block; client and raw blocks alternate
INITIAL = {"ups.status": "OL", "battery.charge": "100", "battery.runtime": "3600"}
ON_BATTERY_LOW = {"ups.status": "OB LB", "battery.charge": "8", "battery.runtime": "120"}
POWER_TOPIC = "device.ups.main.power"
STATIONS = {"no_ups": None, "default": DEFAULT_POLL_MS, "fast": FAST_POLL_MS}

_HEAD = """
[station]
id = "bench"
name = "ups bench"
"""


def station_toml(port: int, poll_ms: int | None) -> str:
    if poll_ms is None:
        return _HEAD
    return f"""{_HEAD}
[ups]
name = "main"
ups = "{UPS}"
host = "127.0.0.1"
port = {port}
poll_interval_ms = {poll_ms}
"""


# --- poll round trips ------------------------------------------------------------------------


class RawNut:
    """`LIST VAR` over a plain socket: the bytes of the answer, nothing decoded."""

    def __init__(self, port: int, *, quickack: bool = True) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), 5)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.quickack = quickack

    def list_var(self, ups: str) -> bytes:
        end = f"END LIST VAR {ups}\n".encode()
        self.sock.sendall(f"LIST VAR {ups}\n".encode())
        answer = b""
        while not answer.endswith(end):
            if self.quickack:
                self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
            data = self.sock.recv(65536)
            if not data:
                raise RuntimeError("the server closed the connection")
            answer += data
        return answer

    def get_var(self, ups: str, var: str) -> str:
        self.sock.sendall(f"GET VAR {ups} {var}\n".encode())
        answer = b""
        while not answer.endswith(b"\n"):
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
            answer += self.sock.recv(4096)
        return answer.decode().split('"')[1]

    def close(self) -> None:
        self.sock.close()


def _timed(call: Callable[[], object], n: int, into: list[float]) -> tuple[float, float]:
    """n calls, each timed into `into` (us); (wall seconds, this thread's CPU seconds)."""
    clock = time.perf_counter_ns
    cpu0, t0 = time.thread_time(), time.perf_counter()
    for _ in range(n):
        start = clock()
        call()
        into.append((clock() - start) / 1000)
    return time.perf_counter() - t0, time.thread_time() - cpu0


def poll_figures(port: int, polls: int) -> dict[str, Any]:
    """NutClient.list_vars and the raw exchange, alternating blocks on one connection each."""
    client = NutClient("127.0.0.1", port, timeout_s=2.0)
    client.connect()
    raw = RawNut(port)
    variables = len(client.list_vars(UPS))
    answer_bytes = len(raw.list_var(UPS))
    for _ in range(50):  # warm both connections
        client.list_vars(UPS)
        raw.list_var(UPS)
    times: dict[str, list[float]] = {"client": [], "raw": []}
    wall = {"client": 0.0, "raw": 0.0}
    cpu = {"client": 0.0, "raw": 0.0}
    calls = {"client": lambda: client.list_vars(UPS), "raw": lambda: raw.list_var(UPS)}
    for _ in range(polls // BLOCK):
        for name, call in calls.items():
            w, c = _timed(call, BLOCK, times[name])
            wall[name] += w
            cpu[name] += c
    stats = client.statistics()
    client.close()
    raw.close()
    out: dict[str, Any] = {"variables": variables, "answer_bytes": answer_bytes}
    for name in calls:
        n = len(times[name])
        out[name] = {"round_trip_us": summary(times[name]),
                     "polls_per_s": round(n / wall[name]),
                     "cpu_us_per_poll": round(cpu[name] / n * 1e6, 1)}
    out["ratio_client_to_raw"] = {
        "p50": ratio(out["client"]["round_trip_us"]["p50"], out["raw"]["round_trip_us"]["p50"]),
        "p99": ratio(out["client"]["round_trip_us"]["p99"], out["raw"]["round_trip_us"]["p99"]),
        "cpu_per_poll": ratio(out["client"]["cpu_us_per_poll"], out["raw"]["cpu_us_per_poll"]),
    }
    out["client_errors"] = stats.err_answers + stats.malformed
    return out


def raw_without_quickack(port: int, n: int) -> dict[str, Any]:
    raw = RawNut(port, quickack=False)
    times: list[float] = []
    _timed(lambda: raw.list_var(UPS), n, times)
    raw.close()
    return {"round_trip_us": summary(times)}


# --- stations ----------------------------------------------------------------------------------


def _ups_polls(station: Any, _args: list[str]) -> dict[str, Any]:
    """`polls`: the UPS actor's poll count, asked of the actor itself (no HTTP in the way)."""
    from actors.runtime import ActorUnavailable, call
    from actors.ups import GetUpsStatus

    try:
        view = call(station.runtime, station.runtime.directory.get("ups"), GetUpsStatus())
    except ActorUnavailable:
        return {"polls": None, "state": None}
    return {"polls": view.polls, "state": view.state, "errors": view.errors}


class Station:
    """A station child, its token and its /ws watch."""

    def __init__(self, name: str, poll_ms: int | None, folder: Path, nut_port: int) -> None:
        self.name = name
        self.poll_ms = poll_ms
        config = folder / f"{name}.toml"
        config.write_text(station_toml(nut_port, poll_ms))
        self.proc = spawn([SELF, "--serve", "station", "--config", str(config),
                           "--data-dir", str(folder / f"data-{name}")], stdin=True)
        self.port = 0
        self.token = ""
        self.watch: WsWatch | None = None

    def ready(self) -> None:
        port_text, password = read_ready(self.proc, timeout_s=60)
        self.port = int(port_text)
        self.token = login(self.port, password)
        if self.poll_ms is not None:
            if not wait_until(lambda: (self.polls() or 0) >= 1, 20, 0.05):
                raise RuntimeError(f"station {self.name}: the UPS never polled")
            self.watch = WsWatch(f"ws://127.0.0.1:{self.port}/ws?token={self.token}",
                                 ["device.ups.*"])
            self.watch.start()

    def polls(self) -> int | None:
        reply = ask_child(self.proc, "polls")
        return None if reply["polls"] is None else int(reply["polls"])

    def cpu(self) -> dict[str, Any]:
        return ask_child(self.proc, "cpu UpsActor-")

    def status(self) -> dict[str, Any]:
        r = httpx.get(f"http://127.0.0.1:{self.port}/api/v1/ups/status",
                      headers={"Authorization": f"Bearer {self.token}"}, timeout=10)
        r.raise_for_status()
        body: dict[str, Any] = r.json()
        return body

    def stop(self) -> None:
        """Close the watch and ask the child to stop; `wait()` for it."""
        if self.watch is not None:
            self.watch.stop()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def wait(self) -> None:
        stop_child(self.proc)


def cpu_window(stations: Sequence[Station], seconds: float) -> dict[str, Any]:
    """Each station's CPU and polls over the same window."""
    load = LoadMeter(lambda: [os.getpid(), *(s.proc.pid for s in stations)])
    start = {s.name: (s.cpu(), s.polls()) for s in stations}
    time.sleep(seconds)
    end = {s.name: (s.cpu(), s.polls()) for s in stations}
    busy = load.stop()
    idle_rate = None
    out: dict[str, Any] = {}
    for s in stations:
        (c0, p0), (c1, p1) = start[s.name], end[s.name]
        wall = c1["wall_s"] - c0["wall_s"]
        process = c1["process_s"] - c0["process_s"]
        entry: dict[str, Any] = {"poll_interval_ms": s.poll_ms, "window_s": round(wall, 2),
                                 "process_cpu_pct": round(process / wall * 100, 3)}
        if s.poll_ms is None:
            idle_rate = process / wall
        else:
            polls = (p1 or 0) - (p0 or 0)
            thread = c1["thread_s"] - c0["thread_s"]
            restarted = c0["threads"] != c1["threads"]
            entry.update({
                "polls": polls, "polls_per_s": round(polls / wall, 2),
                "ups_thread_cpu_us_per_poll": (round(thread / polls * 1e6, 1)
                                               if polls and not restarted else None),
                "process_cpu_us_per_poll": round(process / polls * 1e6, 1) if polls else None,
                "_process_rate": process / wall,
            })
        out[s.name] = entry
    for entry in out.values():
        rate = entry.pop("_process_rate", None)
        if rate is not None and idle_rate is not None and entry["polls"]:
            entry["process_marginal_cpu_us_per_poll"] = round(
                (rate - idle_rate) / entry["polls_per_s"] * 1e6, 1)
    out["load"] = busy
    return out


# --- reaction ----------------------------------------------------------------------------------


class ServedWatch:
    """Polls upsd's ups.status every 5 ms over a raw socket; when each value was first seen."""

    def __init__(self, port: int) -> None:
        self._raw = RawNut(port)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.changes: list[tuple[int, str]] = []  # (wall ns first seen, ups.status)
        self._thread = threading.Thread(target=self._run, name="upsd-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        last = None
        while not self._stop.wait(0.005):
            value = self._raw.get_var(UPS, "ups.status")
            if value != last:
                with self._lock:
                    self.changes.append((time.time_ns(), value))
                last = value

    def first_seen(self, value: str, after_ns: int) -> int | None:
        with self._lock:
            return next((t for t, v in self.changes if v == value and t >= after_ns), None)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self._raw.close()


def reaction(nut: NutServer, stations: Sequence[Station], changes: int) -> dict[str, Any]:
    """Toggle the UPS between OL and OB LB `changes` times; per station, file -> frame."""
    served = ServedWatch(nut.port)
    watched = [s for s in stations if s.watch is not None]
    to_served: list[float] = []
    to_frame: dict[str, list[float]] = {s.name: [] for s in watched}
    after_served: dict[str, list[float]] = {s.name: [] for s in watched}
    missed = {s.name: 0 for s in watched}
    # A random pause before each change, so it falls anywhere within the stations' poll
    # cycles: without it, changing again right after the last frame keeps the same phase.
    pause = random.Random(5)
    longest_s = max(s.poll_ms or 0 for s in watched) / 1000
    try:
        for i in range(changes):
            time.sleep(pause.uniform(0, longest_s))
            values, state = (ON_BATTERY_LOW, "low_battery") if i % 2 == 0 else (
                INITIAL, "online")
            since = {s.name: s.watch.count() for s in watched if s.watch is not None}
            nut.set_vars(values)
            written = time.time_ns()

            def frame(s: Station, state: str = state, since: dict[str, int] = since
                      ) -> int | None:
                assert s.watch is not None
                hits = [t for t, m in s.watch.messages(POWER_TOPIC, since[s.name])
                        if m["data"].get("state") == state]
                return hits[0] if hits else None

            wait_until(lambda: all(frame(s) is not None for s in watched), 15, 0.005)
            seen = served.first_seen(values["ups.status"], written)
            if seen is not None:
                to_served.append((seen - written) / 1e6)
            for s in watched:
                t = frame(s)
                if t is None:
                    missed[s.name] += 1
                    continue
                to_frame[s.name].append((t - written) / 1e6)
                if seen is not None:
                    after_served[s.name].append((t - seen) / 1e6)
    finally:
        served.stop()
    return {
        "changes": changes,
        "file_to_upsd_serves_ms": summary(to_served, 1),
        "stations": {s.name: {"poll_interval_ms": s.poll_ms,
                              "file_to_ws_frame_ms": summary(to_frame[s.name], 1),
                              "upsd_serves_to_ws_frame_ms": summary(after_served[s.name], 1),
                              "missed": missed[s.name]} for s in watched},
    }


def main() -> None:
    args = parse_args(__doc__, [
        ("--serve", {"choices": ["station"], "help": "internal: a child"}),
        ("--config", {"type": Path, "help": "internal"}),
        ("--data-dir", {"type": Path, "help": "internal"}),
    ])
    if args.serve == "station":
        serve_station_child(args.config, args.data_dir, {"polls": _ups_polls})
        return
    polls = 300 if args.quick else 10000
    window_s = 2.0 if args.quick else 20.0
    changes = 2 if args.quick else 6
    gc.collect()
    gc.freeze()
    with tempfile.TemporaryDirectory(prefix="takt-bench-ups-") as tmp:
        folder = Path(tmp)
        with running_nut(folder, UPS, INITIAL) as nut:
            probe = NutClient("127.0.0.1", nut.port, timeout_s=2.0)
            probe.connect()
            served_vars = probe.list_vars(UPS)
            probe.close()
            upsd = poll_figures(nut.port, polls)
            upsd["raw_without_quickack"] = raw_without_quickack(nut.port, 10 if args.quick else 20)
            with NutUpsSimulator(port=0, upses={UPS: served_vars}) as sim:
                simulated = poll_figures(sim.port, polls)
            stations = [Station(name, poll_ms, folder, nut.port)
                        for name, poll_ms in STATIONS.items()]
            try:
                for s in stations:
                    s.ready()
                cpu = cpu_window(stations, window_s)
                react = reaction(nut, stations, changes)
                ups_status = {s.name: (s.status().get("status") or {}).get("errors")
                              for s in stations if s.poll_ms is not None}
                gaps = {s.name: s.watch.gaps for s in stations if s.watch is not None}
            finally:
                for s in stations:  # all at once: each takes a moment to shut down
                    s.stop()
                for s in stations:
                    s.wait()
    emit({
        "bench": "ups",
        "quick": args.quick,
        "machine": machine(),
        "nut": {"server": "upsd + dummy-ups (Debian NUT)", "ups": UPS},
        "poll_round_trip_upsd": upsd,
        "poll_round_trip_simulator": simulated,
        "station_cpu": cpu,
        "ups_reaction": react,
        "ups_actor_errors": ups_status,
        "ws_gaps": gaps,
        "budget": None,
        "within_budget": None,
        "note": ("reaction = dummy-ups noticing its data file (once per driver cycle, up to "
                 "~1 s: file_to_upsd_serves) + the wait for the next poll (0..poll interval) + "
                 "the poll, publish and /ws; process_cpu_us_per_poll charges all of a "
                 "station's idle CPU to its polls, process_marginal subtracts the no-UPS "
                 "station's"),
    })


if __name__ == "__main__":
    main()
