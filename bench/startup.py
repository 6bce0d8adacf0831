"""`takt run` to ready: time from process start until the facade answers, demo station.

Baseline in the same run: a bare interpreter start (`python -c pass`) and the import of
everything Takt loads, so the figure separates Takt's own start work from Python's.
Budget (ARCHITECTURE.md): ready within 3 s.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

BUDGET_S = 3.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _time_command(args: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True)
    return time.perf_counter() - t0


def _time_to_ready(data_dir: str) -> float:
    port, plc_port = _free_port(), _free_port()
    config = os.path.join(data_dir, "station.toml")
    with open("sim/stations/demo.toml") as f:
        text = f.read().replace("port = 5020", f"port = {plc_port}")
        text = text.replace("modbus_plc_port = 5020", f"modbus_plc_port = {plc_port}")
    with open(config, "w") as f:
        f.write(text)
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "controller.cli", "run", "--config", config, "--data-dir",
         os.path.join(data_dir, "data"), "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            if "ready on" in line:
                return time.perf_counter() - t0
        raise RuntimeError("takt run exited before it was ready")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    runs = 3 if parser.parse_args().quick else 7
    bare = [_time_command([sys.executable, "-c", "pass"]) for _ in range(runs)]
    imports = [_time_command([sys.executable, "-c", "import controller.boot"])
               for _ in range(runs)]
    first, again = [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            first.append(_time_to_ready(tmp))  # first start: migrations, admin user
            again.append(_time_to_ready(tmp))  # restart on an existing data dir
    ready_p50 = statistics.median(first + again)
    print(json.dumps({
        "bench": "startup",
        "runs": runs,
        "baseline_bare_python_s": round(statistics.median(bare), 3),
        "baseline_import_all_s": round(statistics.median(imports), 3),
        "ready_first_start_s": {"p50": round(statistics.median(first), 3),
                                "max": round(max(first), 3)},
        "ready_restart_s": {"p50": round(statistics.median(again), 3),
                            "max": round(max(again), 3)},
        "takt_own_start_work_s": round(ready_p50 - statistics.median(imports), 3),
        "budget_s": BUDGET_S,
        "within_budget": max(first + again) <= BUDGET_S,
    }))


if __name__ == "__main__":
    main()
