"""Helpers for the PLC benchmarks: station configs, a CPU meter, pacing, change matching.

- `cpu_seconds(pid)`: user + system CPU of a process from /proc (no psutil);
- `paced(rate_hz, seconds, step)`: call step(i) at a fixed rate from a plain thread;
- `opcua_bank(n)`: make the OPC-UA simulator hold n writable Double tags (bench processes
  only: it widens the simulator's tag table before start);
- `*_station_toml`: a station with no PLC, with one OPC-UA PLC, or with one Modbus PLC;
- `match_changes`: stamped changes against stamped frames, as latencies.
"""

from __future__ import annotations

import bisect
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = [
    "Change",
    "Seen",
    "cpu_seconds",
    "idle_station_toml",
    "match_changes",
    "modbus_station_toml",
    "opcua_bank",
    "opcua_station_toml",
    "paced",
    "signal_name",
]

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

Change = tuple[str, int, int]  # signal, value (unique per signal, rising), wall ns before set
Seen = tuple[str, int, int]  # signal, value, wall ns on arrival


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process pid so far (all its threads), from /proc."""
    text = Path(f"/proc/{pid}/stat").read_text()
    # The command name may hold spaces and parentheses: fields restart after the last ")".
    fields = text[text.rindex(")") + 2:].split()
    utime, stime = int(fields[11]), int(fields[12])  # fields 14 and 15 of proc(5)
    return (utime + stime) / _CLOCK_TICKS


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


def opcua_bank(n: int) -> list[str]:
    """Names of n writable float64 tags "Tags.Tag00".. on the OPC-UA simulator.

    The simulator ships 20 ("Tags.Tag00".."Tags.Tag19") and builds its address space from
    its module-level tag table at start(); for more, the extra tags are added to that table
    here, in the benchmark's own PLC process, before the simulator starts.
    """
    from sim.opcua_plc import LINE1_TAGS, SimTag

    names = [f"Tags.Tag{i:02d}" for i in range(n)]
    for name in names:
        LINE1_TAGS.setdefault(name, SimTag("float64", writable=True))
    return names


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


def opcua_station_toml(endpoint: str, nodes: Sequence[str], *, name: str = "cell") -> str:
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


def modbus_station_toml(port: int, count: int, poll_interval_ms: int, *,
                        name: str = "line") -> str:
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
