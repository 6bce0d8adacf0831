"""REST GET through the facade and the actors, against a bare quart-trio route on hypercorn.

Takt side: a real station (store, auth, monitor, PLC actor `line1` polling a Modbus simulator
every 50 ms) served by `controller.boot.serve_station`, as `takt run` serves it; the load is
`GET /api/v1/plcs/line1` with a bearer token from the real login (JWT check, then an ask to
the PLC actor through the trio bridge).
Baseline: a bare QuartTrio app with one route returning a small JSON body (encoded with
msgspec like the facade's), served by the same `controller.boot.serve_app` loop. Each server
runs in its own child process; the load generator (bench/_support/loadgen.py: a fixed number
of keep-alive HTTP/1.1 connections, closed loop) in another. Both servers stay up; short
load windows alternate between them, and the budget figure is the median over window pairs
of takt/bare requests/s. Diagnostic, same rotation: the open `GET /api/v1/health` (no JWT,
one ask). Budget: Takt >= 70% of the bare requests/s.
Run: .venv/bin/python bench/rest_get.py [--quick]
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
import msgspec
import trio
from _support.common import (
    bound_port,
    emit,
    login,
    machine,
    parse_args,
    ratio,
    read_ready,
    serve_as_takt_run,
    spawn,
    station_toml,
    stop_child,
)

BUDGET_FRACTION = 0.70
CONNECTIONS = 16
POLL_MS = 50
SELF = str(Path(__file__).resolve())


def serve_bare() -> None:
    from quart import Response
    from quart_trio import QuartTrio

    app = QuartTrio("bare")
    encoder = msgspec.json.Encoder()

    @app.get("/ping")
    async def ping() -> Response:
        return Response(encoder.encode({"ok": True, "name": "line1"}),
                        content_type="application/json")

    def ready(binds: list[str]) -> None:
        print(f"READY {bound_port(binds)}", flush=True)

    from controller.boot import serve_app  # the very server loop `takt run` uses

    trio.run(serve_app, app, "127.0.0.1", 0, ready)


def serve_takt(plc_port: int, data_dir: Path) -> None:
    from controller.boot import start_station
    from controller.config import parse_config

    config = parse_config(station_toml(plc_port, POLL_MS), "bench.toml")
    serve_as_takt_run(start_station(config, data_dir))


def _login(port: int, password: str) -> str:
    token = login(port, password)
    check = httpx.get(f"http://127.0.0.1:{port}/api/v1/plcs/line1",
                      headers={"Authorization": f"Bearer {token}"}, timeout=10)
    check.raise_for_status()
    if check.json()["state"] != "UP":
        raise RuntimeError(f"PLC line1 is not UP: {check.text}")
    return token


def _load(port: int, path: str, headers: list[str], warmup: float, seconds: float
          ) -> dict[str, Any]:
    args = ["-m", "_support.loadgen", "--port", str(port), "--path", path,
            "--conns", str(CONNECTIONS), "--warmup", str(warmup), "--seconds", str(seconds)]
    for h in headers:
        args += ["--header", h]
    proc = spawn(args)
    out, _ = proc.communicate(timeout=warmup + seconds + 60)
    if proc.returncode != 0:
        raise RuntimeError(f"load generator failed with {proc.returncode}")
    result: dict[str, Any] = json.loads(out)
    return result


def main() -> None:
    args = parse_args(__doc__, [
        ("--serve", {"choices": ["bare", "takt"], "help": "internal: be a server child"}),
        ("--plc-port", {"type": int, "help": "internal"}),
        ("--data-dir", {"type": Path, "help": "internal"}),
    ])
    if args.serve == "bare":
        serve_bare()
        return
    if args.serve == "takt":
        serve_takt(args.plc_port, args.data_dir)
        return

    from sim.modbus_plc import ModbusPlcSimulator

    pairs, warmup, seconds = (3, 0.3, 0.8) if args.quick else (5, 0.4, 2.2)
    sim = ModbusPlcSimulator(port=0)
    plc_port = sim.start()
    results: dict[str, list[dict[str, Any]]] = {"bare": [], "takt": [], "takt_health": []}
    servers: list[subprocess.Popen[str]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="takt-bench-rest-") as tmp:
            # Both servers stay up; load windows alternate between them so noise from the
            # rest of the machine lands on both alike.
            servers.append(spawn([SELF, "--serve", "bare"]))
            servers.append(spawn([SELF, "--serve", "takt", "--plc-port", str(plc_port),
                                  "--data-dir", str(Path(tmp) / "data")]))
            bare_port = int(read_ready(servers[0])[0])
            takt_fields = read_ready(servers[1])
            takt_port = int(takt_fields[0])
            token = _login(takt_port, takt_fields[1])
            targets = {
                "bare": (bare_port, "/ping", []),
                "takt": (takt_port, "/api/v1/plcs/line1", [f"Authorization: Bearer {token}"]),
                # Diagnostic: the open health route (no JWT, one ask to the monitor).
                "takt_health": (takt_port, "/api/v1/health", []),
            }
            for r in range(pairs):
                order = ["bare", "takt", "takt_health"]
                for kind in (order if r % 2 == 0 else order[::-1]):
                    port, path, headers = targets[kind]
                    results[kind].append(_load(port, path, headers, warmup, seconds))
            for server in servers:
                stop_child(server)
    finally:
        for server in servers:
            if server.poll() is None:
                server.kill()
        sim.stop()

    rps = {k: [x["requests_per_s"] for x in v] for k, v in results.items()}
    paired = [t / b for t, b in zip(rps["takt"], rps["bare"], strict=True) if b]
    fraction = round(statistics.median(paired), 3)  # median of the paired windows
    errors = sum(x["errors"] for v in results.values() for x in v)

    def pick(kind: str) -> dict[str, Any]:  # the window with the median requests/s
        ordered = sorted(results[kind], key=lambda x: x["requests_per_s"])
        return ordered[len(ordered) // 2]

    emit({
        "bench": "rest_get",
        "quick": args.quick,
        "route": "GET /api/v1/plcs/line1 (bearer JWT; asks monitor + plc:line1)",
        "baseline_route": "GET /ping on a bare QuartTrio app",
        "load": {"connections": CONNECTIONS, "warmup_s": warmup, "seconds": seconds,
                 "window_pairs": pairs, "generator": "bench/_support/loadgen.py, own process"},
        "takt_median_window": pick("takt"),
        "bare_median_window": pick("bare"),
        "windows_requests_per_s": rps,
        "takt_fraction_of_bare": fraction,
        "takt_fraction_of_bare_windows": [round(x, 3) for x in paired],
        "takt_fraction_of_bare_by_medians": ratio(statistics.median(rps["takt"]),
                                                  statistics.median(rps["bare"])),
        "diagnostic_health_route_fraction_of_bare": round(statistics.median(
            t / b for t, b in zip(rps["takt_health"], rps["bare"], strict=True) if b), 3),
        "errors": errors,
        "budget": f"takt >= {BUDGET_FRACTION:.0%} of bare requests/s (median of paired windows)",
        "budget_fraction": BUDGET_FRACTION,
        "within_budget": fraction >= BUDGET_FRACTION and errors == 0,
        "machine": machine(),
    })


if __name__ == "__main__":
    sys.exit(main())
