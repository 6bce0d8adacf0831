"""PLC register change -> WebSocket frame latency, with the bus -> WebSocket part as baseline.

Three processes on loopback, so no one's GIL skews another's clock readings:
- station (child): `start_station` with PLC `line1` polling a Modbus simulator every 5 ms,
  the facade served by `controller.boot.serve_station`, as `takt run` serves it;
- PLC (child): `ModbusPlcSimulator` and a changer writing holding register 0 (`counter`)
  with 1, 2, 3 ... at 1 kHz; it keeps the wall-clock time of each change (side table by value);
- client (this process): one `/ws?token=` connection (trio-websocket) subscribed to
  `device.plc.*`, stamping every frame on arrival (time.time_ns, same host clock).
Baseline (same station, same connection, PLC polling but the register still): a thread in
the station publishes `device.plc.bench.signal` with its `time.time_ns()` straight on the bus
at 1 kHz; latency is arrival - that stamp: the bus -> trio channel -> WS path alone.
Figures for the PLC path: `change_to_frame` = for every change, the first frame carrying that
value or a later one minus the change time (what an HMI experiences; it includes waiting for
the next poll, 0..poll interval); `frame_value_age` = for every frame, arrival minus the change
time of the value it carries (changes at 1 kHz are coalesced by the 5 ms poll, so most values
are never sent). Budget: change_to_frame p99 <= 5 ms at 1 kHz changes.
Run: .venv/bin/python bench/plc_to_ws.py [--quick]
"""

from __future__ import annotations

import bisect
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import trio
import trio_websocket
from _support.common import (
    emit,
    login,
    machine,
    parse_args,
    read_ready,
    serve_as_takt_run,
    spawn,
    station_toml,
    stop_child,
    summary,
)

BUDGET_P99_MS = 5.0
POLL_MS = 5
RATE_HZ = 1000
SELF = str(Path(__file__).resolve())
BENCH_TOPIC = "device.plc.bench.signal"
PLC_TOPIC = "device.plc.line1.signal"


def _paced(rate_hz: int, seconds: float, step: Any) -> tuple[int, float]:
    """Call step(i) for i = 1.. at rate_hz for `seconds`; (calls, elapsed seconds)."""
    period = 1.0 / rate_hz
    total = int(rate_hz * seconds)
    t0 = time.perf_counter()
    for i in range(1, total + 1):
        due = t0 + (i - 1) * period
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        step(i)
    return total, time.perf_counter() - t0


# --- station child -----------------------------------------------------------------------


def serve_station_child(plc_port: int, data_dir: Path) -> None:
    from controller.boot import start_station
    from controller.config import parse_config

    config = parse_config(station_toml(plc_port, POLL_MS), "bench.toml")
    station = start_station(config, data_dir)
    bus = station.runtime.bus

    def commands() -> None:  # `bus <hz> <seconds>` on stdin: publish stamped events
        for line in sys.stdin:
            parts = line.split()
            if parts and parts[0] == "bus":
                n, elapsed = _paced(int(parts[1]), float(parts[2]), lambda i: bus.publish(
                    BENCH_TOPIC, {"t_ns": time.time_ns(), "n": i}, source="bench"))
                print(f"PUBLISHED {n} {elapsed:.4f}", flush=True)

    threading.Thread(target=commands, name="bench-commands", daemon=True).start()
    serve_as_takt_run(station)


# --- PLC child ---------------------------------------------------------------------------


def _change_counter(sim: Any, spec: Any, rate_hz: int, seconds: float
                    ) -> tuple[list[int], list[int]]:
    """Set the register to 1, 2, 3 ... at rate_hz; (wall time before each set, each set's
    duration in ns, with the whole run's duration in ns appended last)."""
    before: list[int] = []
    call_ns: list[int] = []

    def change(i: int) -> None:
        t = time.time_ns()
        sim.set_value(spec, i)
        before.append(t)
        call_ns.append(time.time_ns() - t)

    _, elapsed = _paced(rate_hz, seconds, change)
    call_ns.append(int(elapsed * 1e9))
    return before, call_ns


def serve_plc_child() -> None:
    from drivers.modbus.codec import make_spec
    from sim.modbus_plc import ModbusPlcSimulator

    sim = ModbusPlcSimulator(port=0)
    port = sim.start()
    spec = make_spec("holding_register", 0, "uint16")
    print(f"READY {port}", flush=True)
    try:
        for line in sys.stdin:  # `go <hz> <seconds>`: change the counter, then report
            parts = line.split()
            if not parts or parts[0] != "go":
                continue
            before, call_ns = _change_counter(sim, spec, int(parts[1]), float(parts[2]))
            n, elapsed = len(before), call_ns.pop()
            print("TABLE " + json.dumps({"first_value": 1, "t_ns": before, "call_ns": call_ns,
                                         "changes": n, "seconds": elapsed / 1e9}), flush=True)
    finally:
        sim.stop()


# --- client (this process) -----------------------------------------------------------------


class Frames:
    """Every bus frame of the connection with its arrival time, parsed after the run."""

    def __init__(self) -> None:
        self.raw: list[tuple[int, str | bytes]] = []

    async def pump(self, ws: trio_websocket.WebSocketConnection) -> None:
        clock = time.time_ns
        while True:
            msg = await ws.get_message()
            self.raw.append((clock(), msg))

    def take(self, topic: str, start: int) -> list[tuple[int, dict[str, Any]]]:
        out = []
        for t, raw in self.raw[start:]:
            msg = json.loads(raw)
            if msg.get("type") == "gap":
                raise RuntimeError(f"the client lost events: {msg}")
            if msg.get("type") == "bus" and msg.get("topic") == topic:
                out.append((t, msg))
        return out


def _readline(proc: Any, prefix: str) -> str:
    while True:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"child exited before {prefix}")
        if line.startswith(prefix):
            return str(line[len(prefix):].strip())


def _plc_figures(frames: list[tuple[int, dict[str, Any]]], table: dict[str, Any]
                 ) -> dict[str, Any]:
    changes: list[int] = table["t_ns"]
    first = table["first_value"]
    # Frames of the counter in arrival order; the counter only goes up.
    seen = [(t, int(m["data"]["value"])) for t, m in frames if m["data"]["signal"] == "counter"]
    seen = [(t, v) for t, v in seen if first <= v < first + len(changes)]
    if not seen:
        raise RuntimeError("no counter frame arrived")
    ages = [(t - changes[v - first]) / 1e6 for t, v in seen]
    values = [v for _, v in seen]
    to_frame: list[float] = []
    for i, t_change in enumerate(changes):
        k = bisect.bisect_left(values, first + i)  # first frame with this value or later
        if k == len(values):
            break  # changed after the last frame: not seen within the window
        to_frame.append((seen[k][0] - t_change) / 1e6)
    span_s = (seen[-1][0] - seen[0][0]) / 1e9
    return {
        "changes": table["changes"],
        "change_rate_hz": round(table["changes"] / table["seconds"]),
        "set_value_call_ms": summary([c / 1e6 for c in table["call_ns"]], 3),
        "frames": len(seen),
        "changes_coalesced_fraction": round(1 - len(set(values)) / table["changes"], 3),
        "effective_poll_period_ms": round(span_s / max(1, len(seen) - 1) * 1e3, 2),
        "change_to_frame_ms": summary(to_frame, 3),
        "frame_value_age_ms": summary(ages, 3),
    }


async def _client(port: int, token: str, station: Any, plc: Any, seconds: float
                  ) -> dict[str, Any]:
    frames = Frames()
    url = f"ws://127.0.0.1:{port}/ws?token={token}"
    async with trio_websocket.open_websocket_url(url) as ws:
        ready = json.loads(await ws.get_message())
        if ready["type"] != "ready":
            raise RuntimeError(f"unexpected first message {ready}")
        await ws.send_message(json.dumps({"subscribe": ["device.plc.*"]}))
        snapshot = json.loads(await ws.get_message())
        if snapshot["type"] != "snapshot":
            raise RuntimeError(f"unexpected message {snapshot}")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(frames.pump, ws)
            await trio.sleep(0.5)  # polling settles

            # Baseline: bus -> WS, stamped at publish in the station process.
            mark = len(frames.raw)
            station.stdin.write(f"bus {RATE_HZ} {seconds}\n")
            station.stdin.flush()
            published = await trio.to_thread.run_sync(_readline, station, "PUBLISHED ")
            await trio.sleep(0.3)
            bus_frames = frames.take(BENCH_TOPIC, mark)

            # PLC path: register changes in the PLC process -> poll -> bus -> WS.
            mark = len(frames.raw)
            plc.stdin.write(f"go {RATE_HZ} {seconds}\n")
            plc.stdin.flush()
            table = json.loads(await trio.to_thread.run_sync(_readline, plc, "TABLE "))
            await trio.sleep(0.3)
            plc_frames = frames.take(PLC_TOPIC, mark)
            nursery.cancel_scope.cancel()
    n_pub, pub_s = published.split()
    bus_lat = [(t - m["data"]["t_ns"]) / 1e6 for t, m in bus_frames]
    return {
        "plc": _plc_figures(plc_frames, table),
        "bus": {
            "published": int(n_pub),
            "publish_rate_hz": round(int(n_pub) / float(pub_s)),
            "frames": len(bus_frames),
            "latency_ms": summary(bus_lat, 3),
        },
    }


def main() -> None:
    args = parse_args(__doc__, [
        ("--serve", {"choices": ["station", "plc"], "help": "internal: be a child"}),
        ("--plc-port", {"type": int, "help": "internal"}),
        ("--data-dir", {"type": Path, "help": "internal"}),
    ])
    if args.serve == "station":
        serve_station_child(args.plc_port, args.data_dir)
        return
    if args.serve == "plc":
        serve_plc_child()
        return

    seconds = 2.0 if args.quick else 10.0
    children = []
    try:
        with tempfile.TemporaryDirectory(prefix="takt-bench-ws-") as tmp:
            plc = spawn([SELF, "--serve", "plc"], stdin=True)
            children.append(plc)
            plc_port = int(read_ready(plc)[0])
            station = spawn([SELF, "--serve", "station", "--plc-port", str(plc_port),
                             "--data-dir", str(Path(tmp) / "data")], stdin=True)
            children.append(station)
            port_s, password = read_ready(station)
            token = login(int(port_s), password)
            r = trio.run(_client, int(port_s), token, station, plc, seconds)
            for child in reversed(children):
                stop_child(child)
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()

    p99 = r["plc"]["change_to_frame_ms"]["p99"]
    emit({
        "bench": "plc_to_ws",
        "quick": args.quick,
        "poll_interval_ms": POLL_MS,
        "change_rate_target_hz": RATE_HZ,
        "seconds_per_phase": seconds,
        "plc_change_to_ws": r["plc"],
        "baseline_bus_to_ws": r["bus"],
        "budget": f"change_to_frame p99 <= {BUDGET_P99_MS} ms at {RATE_HZ} Hz changes",
        "budget_p99_ms": BUDGET_P99_MS,
        "within_budget": p99 <= BUDGET_P99_MS,
        "within_budget_frame_value_age": (
            r["plc"]["frame_value_age_ms"]["p99"] <= BUDGET_P99_MS),
        "within_budget_bus_to_ws": r["bus"]["latency_ms"]["p99"] <= BUDGET_P99_MS,
        "note": ("change_to_frame includes the wait for the next poll, uniform in "
                 "0..effective poll period, so its p99 cannot be under ~0.99 x that period "
                 "plus the read -> publish -> WS time: p99 <= 5 ms is out of reach with 5 ms "
                 "polling whatever the rest costs"),
        "machine": machine(),
    })


if __name__ == "__main__":
    main()
