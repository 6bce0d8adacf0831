"""Child processes for system tests: `takt run` and the Modbus PLC simulator."""

from __future__ import annotations

import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

TAKT = [sys.executable, "-m", "controller.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proc:
    """A child process whose stdout lines we wait for."""

    def __init__(self, args: list[str], cwd: Path | None = None) -> None:
        self.p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, cwd=cwd, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        self.lines: list[str] = []

    def wait_for(self, needle: str, timeout: float = 15.0, *, stderr: bool = False) -> str:
        stream = self.p.stderr if stderr else self.p.stdout
        assert stream is not None
        sel = selectors.DefaultSelector()
        sel.register(stream, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sel.select(timeout=0.1):
                line = stream.readline()
                if not line:
                    break
                self.lines.append(line)
                if needle in line:
                    return line
        err = self.p.stderr.read() if self.p.poll() is not None and self.p.stderr else ""
        raise AssertionError(f"never saw {needle!r}; stdout={self.lines} stderr={err[-2000:]}")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.p.poll() is None:
            self.p.send_signal(sig)
        try:
            return self.p.wait(15)
        finally:
            if self.p.poll() is None:
                self.p.kill()


DEMO_PORTS = (8080, 5020, 5021, 4840, 4841, 5023, 5024, 9101, 4545, 8765)


# The demo without its camera world: no emulated camera, no model trained at start (the tests
# that leave it out prove other things and should not pay for it).
NO_CAMERA = {r"camera = true": "camera = false",
             r"emulation = true": "emulation = true\nenabled = false",
             r"active = true": "active = false"}


def demo_config(tmp: Path, replace: dict[str, str] | None = None) -> tuple[Path, dict[int, int]]:
    """The embedded demo config with every port moved to a free one (the demo's own port ->
    the one this run uses) and `replace` (a regex of a whole line -> its new text) applied."""
    import re

    from controller.config import embedded_demo_config_path

    ports = {p: free_port() for p in DEMO_PORTS}
    text = embedded_demo_config_path().read_text()
    for old, new in ports.items():
        text = re.sub(rf"\b{old}\b", str(new), text)
    for pattern, line in (replace or {}).items():
        text = re.sub(rf"(?m)^{pattern}", line, text)
    config = tmp / "demo.toml"
    config.write_text(text)
    return config, ports


def start_sim(port: int) -> Proc:
    sim = Proc([sys.executable, "-m", "sim.modbus_plc", "--port", str(port)])
    sim.wait_for("READY")
    return sim


def start_takt(config: Path, data_dir: Path, port: int) -> Proc:
    takt = Proc([*TAKT, "run", "--config", str(config), "--data-dir", str(data_dir),
                 "--port", str(port)])
    takt.wait_for("ready on")
    return takt
