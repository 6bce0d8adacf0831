"""Helpers for the PLC benchmarks: station configs, CPU and load meters, pacing, frames and
matching stamped changes with stamped frames.

- `cpu_seconds(pid)`: user + system CPU of a process from /proc (no psutil);
- `LoadMeter`: how busy the whole machine was over a span, and how much of that was not
  the benchmark's own processes (other work on a shared machine shows in latency tails);
- `paced(rate_hz, seconds, step)`: call step(i) at a fixed rate from a plain thread;
- `opcua_bank(n)`: the names of the n bank tags of `OpcuaPlcSimulator(bank_size=n)`;
- `*_station_toml`: a station with no PLC, with one OPC-UA PLC, or with one Modbus PLC;
- `StationClient`: REST calls a benchmark makes to a station child;
- `Frames`, `bus_messages`, `plc_frames`, `match_changes`: /ws frames as latencies.
"""

from __future__ import annotations

import bisect
import json
import os
import subprocess
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import trio_websocket

__all__ = [
    "Change",
    "Frames",
    "LoadMeter",
    "Seen",
    "StationClient",
    "bus_messages",
    "cpu_seconds",
    "idle_station_toml",
    "match_changes",
    "modbus_station_toml",
    "opcua_bank",
    "opcua_station_toml",
    "paced",
    "plc_frames",
    "readline",
    "send_line",
    "signal_name",
]

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

Change = tuple[str, int, int]  # signal, value (unique per signal, rising), wall ns before set
Seen = tuple[str, int, int]  # signal, value, wall ns on arrival
RawFrame = tuple[int, str | bytes]  # wall ns on arrival, the message as received


# --- CPU and load ----------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process pid so far (all its threads), from /proc."""
    text = Path(f"/proc/{pid}/stat").read_text()
    # The command name may hold spaces and parentheses: fields restart after the last ")".
    fields = text[text.rindex(")") + 2:].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / _CLOCK_TICKS


def _machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy since boot, from the first line of /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / _CLOCK_TICKS


class LoadMeter:
    """CPU use from construction to stop(): the machine, the given processes, the rest.

    Percentages of one core (a 2-core machine fully busy is 200).
    """

    def __init__(self, pids: Callable[[], Sequence[int]]) -> None:
        self._pids = pids
        self._start = self._read()

    def _read(self) -> tuple[float, float, float]:
        ours = 0.0
        for pid in self._pids():
            try:
                ours += cpu_seconds(pid)
            except (FileNotFoundError, ProcessLookupError):
                pass  # exited meanwhile
        return time.perf_counter(), _machine_busy_seconds(), ours

    def stop(self) -> dict[str, float]:
        (t0, busy0, ours0), (t1, busy1, ours1) = self._start, self._read()
        machine = (busy1 - busy0) / (t1 - t0) * 100
        ours = (ours1 - ours0) / (t1 - t0) * 100
        return {"machine_busy_pct": round(machine, 1), "bench_processes_pct": round(ours, 1),
                "other_processes_pct": round(max(0.0, machine - ours), 1)}


def paced(rate_hz: int, seconds: float, step: Callable[[int], None]) -> tuple[int, float]:
    """Call step(i) for i = 0.. at rate_hz for `seconds`; (calls, elapsed seconds).

    Fixed rate: a late call does not push the later ones back.
    """
    period = 1.0 / rate_hz
    total = int(rate_hz * seconds)
    t0 = time.perf_counter()
    for i in range(total):
        delay = t0 + i * period - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        step(i)
    return total, time.perf_counter() - t0


# --- simulators and station configs ----------------------------------------------------------


def opcua_bank(n: int) -> list[str]:
    """Names of the n writable float64 tags "Tags.Tag00".. of `OpcuaPlcSimulator(bank_size=n)`."""
    return [f"Tags.Tag{i:02d}" for i in range(n)]


def signal_name(index: int) -> str:
    """The binding name of bank tag / register `index`."""
    return f"t{index:03d}"


_STATION_HEAD = """
[station]
id = "bench"
name = "Benchmark station"
"""


def idle_station_toml() -> str:
    """A station with no device at all."""
    return _STATION_HEAD


def opcua_station_toml(endpoint: str, nodes: Sequence[str], *, name: str) -> str:
    """A station with one OPC-UA PLC subscribing to every node as a float64 binding, with
    publishing and sampling interval 0 (each change is published at once)."""
    bindings = "".join(f"""
  [[plcs.bindings]]
  name = "{signal_name(i)}"
  node = "{node}"
  type = "float64"
  publishing_interval_ms = 0
  sampling_interval_ms = 0
""" for i, node in enumerate(nodes))
    return f"""{_STATION_HEAD}
[[plcs]]
name = "{name}"
protocol = "OPC_UA"
endpoint = "{endpoint}"
timeout_ms = 2000
{bindings}"""


def modbus_station_toml(port: int, count: int, poll_interval_ms: int, *, name: str) -> str:
    """A station with one Modbus TCP PLC polling holding registers 0..count-1 (uint16)."""
    bindings = "".join(f"""
  [[plcs.bindings]]
  name = "{signal_name(i)}"
  kind = "holding_register"
  address = {i}
  type = "uint16"
""" for i in range(count))
    return f"""{_STATION_HEAD}
[[plcs]]
name = "{name}"
port = {port}
poll_interval_ms = {poll_interval_ms}
timeout_ms = 500
{bindings}"""


# --- talking to children and stations --------------------------------------------------------


def readline(proc: subprocess.Popen[str], prefix: str) -> str:
    """The rest of the child's next stdout line starting with prefix."""
    assert proc.stdout is not None
    while True:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"child exited before {prefix}")
        if line.startswith(prefix):
            return line[len(prefix):].strip()


def send_line(proc: subprocess.Popen[str], line: str) -> None:
    """A command line to the child's stdin."""
    assert proc.stdin is not None
    proc.stdin.write(line + "\n")
    proc.stdin.flush()


class StationClient:
    """A running station child and an admin token for it."""

    def __init__(self, proc: subprocess.Popen[str], port: int, token: str) -> None:
        self.proc = proc
        self.port = port
        self.token = token

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws?token={self.token}"

    def plc_health(self, name: str) -> dict[str, Any]:
        """GET /api/v1/plcs/<name>/health: state, and the PLC actor's info and counters."""
        r = httpx.get(f"http://127.0.0.1:{self.port}/api/v1/plcs/{name}/health",
                      headers={"Authorization": f"Bearer {self.token}"}, timeout=10)
        r.raise_for_status()
        health: dict[str, Any] = r.json()
        return health

    def wait_plc_up(self, name: str, timeout_s: float = 30.0) -> None:
        """Wait until the PLC is UP and has delivered every binding's value."""
        deadline = time.monotonic() + timeout_s
        health: dict[str, Any] = {}
        while time.monotonic() < deadline:
            health = self.plc_health(name)
            signals = (health.get("info") or {}).get("signals") or {}
            if health["state"] == "UP" and signals and all(
                    s["value"] is not None for s in signals.values()):
                return
            time.sleep(0.05)
        raise RuntimeError(f"PLC {name} not up in time: {health.get('last_error')}")


# --- frames and latencies --------------------------------------------------------------------


class Frames:
    """Every frame of a /ws connection with its arrival time, parsed after the run."""

    def __init__(self) -> None:
        self.raw: list[RawFrame] = []

    async def pump(self, ws: trio_websocket.WebSocketConnection) -> None:
        clock = time.time_ns
        while True:
            msg = await ws.get_message()
            self.raw.append((clock(), msg))


def bus_messages(raw: Sequence[RawFrame], topic: str) -> list[tuple[int, dict[str, Any]]]:
    """The `bus` messages of topic with their arrival times; a `gap` is an error."""
    out = []
    for t, text in raw:
        msg = json.loads(text)
        if msg.get("type") == "gap":
            raise RuntimeError(f"the client lost events: {msg}")
        if msg.get("type") == "bus" and msg.get("topic") == topic:
            out.append((t, msg))
    return out


def plc_frames(raw: Sequence[RawFrame], plc: str
               ) -> tuple[list[Seen], dict[tuple[str, int], int]]:
    """The PLC's signal frames as (signal, value, arrival ns), and the bus publish time of
    each (signal, value) in us, from the envelope's `ts` (millisecond resolution)."""
    seen: list[Seen] = []
    published_us: dict[tuple[str, int], int] = {}
    for t, m in bus_messages(raw, f"device.plc.{plc}.signal"):
        key = (m["data"]["signal"], int(m["data"]["value"]))
        seen.append((key[0], key[1], t))
        published_us[key] = round(datetime.fromisoformat(m["ts"]).timestamp() * 1e6)
    return seen, published_us


def match_changes(changes: Sequence[Change], seen: Sequence[Seen]
                  ) -> tuple[list[float], list[float], int]:
    """(change -> first frame of that signal with that value or a later one, in ms, for every
    change seen; age of every frame's value, in ms; changes never seen).

    Values rise per signal, so "a later one" means a larger value: a change that was
    coalesced into a later one is delivered by that later frame.
    """
    by_signal: dict[str, tuple[list[int], list[int]]] = {}
    changed_at: dict[tuple[str, int], int] = {}
    for signal, value, t in changes:
        changed_at[(signal, value)] = t
    for signal, value, t in sorted(seen, key=lambda s: s[2]):
        if (signal, value) not in changed_at:
            continue  # an initial value or one from another phase
        values, times = by_signal.setdefault(signal, ([], []))
        if values and value <= values[-1]:
            continue  # cannot happen with rising values; ignore rather than mis-match
        values.append(value)
        times.append(t)
    to_frame: list[float] = []
    missed = 0
    for signal, value, t in changes:
        values, times = by_signal.get(signal, ([], []))
        k = bisect.bisect_left(values, value)
        if k == len(values):
            missed += 1
            continue
        to_frame.append((times[k] - t) / 1e6)
    ages = [(t - changed_at[(signal, value)]) / 1e6
            for signal, (values, times) in by_signal.items()
            for value, t in zip(values, times, strict=True)]
    return to_frame, ages, missed
