"""`takt run` in a subprocess, used as a user would: log in, watch /ws, lose the PLC."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from trio_websocket import open_websocket_url

from drivers.modbus.transport import ModbusTcpTransport
from tests.system.procs import (
    NO_CAMERA,
    TAKT,
    Proc,
    demo_config,
    free_port,
    start_sim,
    start_takt,
)

STATION = """
[station]
id = "system"
name = "System test station"

[[plcs]]
name = "line1"
port = {port}
poll_interval_ms = 20

  [[plcs.bindings]]
  name = "part_present"
  kind = "coil"
  address = 0
  type = "bool"
  durable = true
"""


@pytest.fixture
def sim_port() -> int:
    return free_port()


@dataclass
class Running:
    takt: Proc
    sim: Proc
    base: str
    password: str


@pytest.fixture
def station(tmp_path: Path, sim_port: int) -> Iterator[Running]:
    sim = start_sim(sim_port)
    config = tmp_path / "station.toml"
    config.write_text(STATION.format(port=sim_port))
    port = free_port()
    takt = start_takt(config, tmp_path / "data", port)
    password = (tmp_path / "data" / "admin-password").read_text().strip()
    assert any(password in line for line in takt.lines)  # printed once, on first start
    running = Running(takt=takt, sim=sim, base=f"http://127.0.0.1:{port}", password=password)
    yield running
    running.sim.stop()
    assert takt.stop(signal.SIGINT) == 0  # Ctrl-C: a clean stop
    assert takt.p.stderr is not None
    log = takt.p.stderr.read()
    assert "stopping" in log and "Traceback" not in log and "leaked" not in log, log[-3000:]


async def wait_health(http: httpx.AsyncClient, state: str) -> dict[str, Any]:
    with trio.fail_after(15):
        while True:
            doc = (await http.get("/api/v1/health")).json()
            if doc["components"].get("plc:line1", {}).get("state") == state:
                return doc  # type: ignore[no-any-return]
            await trio.sleep(0.05)


async def test_plc_signal_reaches_the_websocket_and_the_plc_can_fail(
    station: Running, sim_port: int
) -> None:
    base, password = station.base, station.password
    async with httpx.AsyncClient(base_url=base) as http:
        r = await http.post("/api/v1/auth/login", json={"username": "admin", "password": password})
        token = r.json()["access_token"]
        ws_url = base.replace("http", "ws") + f"/ws?token={token}"
        async with open_websocket_url(ws_url) as ws:
            assert json.loads(await ws.get_message())["type"] == "ready"
            await ws.send_message(json.dumps({"subscribe": ["device.plc.*"]}))
            snap = json.loads(await ws.get_message())
            assert snap["type"] == "snapshot"
            plc = ModbusTcpTransport("127.0.0.1", sim_port)
            await trio.to_thread.run_sync(plc.connect)
            await trio.to_thread.run_sync(plc.write_coils, 0, [True])
            plc.close()
            with trio.fail_after(10):
                while True:
                    msg = json.loads(await ws.get_message())
                    if msg["type"] == "bus" and msg["data"]["signal"] == "part_present":
                        break
            assert msg["data"] == {"signal": "part_present", "value": True, "previous": False}

        assert (await wait_health(http, "UP"))["status"] == "healthy"
        # Kill the simulator: the PLC goes DOWN and the station is degraded.
        station.sim.stop(signal.SIGKILL)
        down = await wait_health(http, "DOWN")
        assert down["status"] == "degraded"
        assert down["components"]["plc:line1"]["last_error"]
        station.sim = start_sim(sim_port)
        up = await wait_health(http, "UP")
        assert up["status"] == "healthy"
        assert up["components"]["plc:line1"]["restarts"] >= 1


def test_check_config_lists_every_mistake(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[station]\nid = "Bad Id"\nname = "x"\n\n[[plcs]]\nname = "p"\nport = 70000\n'
                   'protocol = "PROFINET"\n')
    r = subprocess.run([*TAKT, "check-config", str(bad)], capture_output=True, text=True,
                       check=False)
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 3, lines
    assert all(line.startswith(f"{bad}:") for line in lines)
    assert any(":2: station.id:" in line for line in lines)
    assert any(":7: plcs[0].port:" in line for line in lines)
    assert any(":8: plcs[0].protocol:" in line and "PROFINET" in line for line in lines)
    good = subprocess.run([*TAKT, "check-config", "sim/stations/demo.toml"], capture_output=True,
                          text=True, check=False)
    assert good.returncode == 0, good.stderr


def test_help_explains_the_commands() -> None:
    r = subprocess.run([*TAKT, "--help"], capture_output=True, text=True, check=True)
    for words in ("takt run", "check-config", "demo station"):
        assert words in r.stdout


LEAN = {r"robot = true": "robot = false", r"operator = true": "operator = false", **NO_CAMERA}


def test_ctrl_c_during_start_up_still_stops_everything(tmp_path: Path) -> None:
    # The demo station starts its own simulators; give them free ports (and leave out the
    # robot and the virtual operator, which add nothing to starting and stopping).
    config, ports = demo_config(tmp_path, LEAN)
    port = ports[8080]
    for moment in ("starting station", "ready on"):
        takt = Proc([*TAKT, "run", "--config", str(config), "--data-dir",
                     str(tmp_path / "data"), "--port", str(port)])
        takt.wait_for(moment, stderr=moment == "starting station")
        takt.p.send_signal(signal.SIGINT)
        try:
            code = takt.p.wait(20)
        finally:
            takt.stop(signal.SIGKILL)
        assert code == 0, (moment, code, takt.p.stderr.read()[-3000:])


def test_ports_in_use_and_a_held_data_dir_get_one_clear_line(tmp_path: Path) -> None:
    config, _ = demo_config(tmp_path, LEAN)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = subprocess.run([*TAKT, "run", "--config", str(config), "--data-dir",
                            str(tmp_path / "a"), "--port", str(port)],
                           capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 1
    assert f"takt: cannot serve on 127.0.0.1:{port}" in r.stderr
    assert "Traceback" not in r.stderr
    # A second station on a data dir the first one holds.
    first = start_takt(config, tmp_path / "b", free_port())
    try:
        (tmp_path / "o").mkdir()
        other, _ = demo_config(tmp_path / "o", LEAN)
        r = subprocess.run([*TAKT, "run", "--config", str(other), "--data-dir",
                            str(tmp_path / "b"), "--port", str(free_port())],
                           capture_output=True, text=True, timeout=60, check=False)
        assert r.returncode == 1
        assert "takt: cannot start: cannot open database" in r.stderr
        assert "Traceback" not in r.stderr
    finally:
        assert first.stop(signal.SIGINT) == 0
