"""A real station (store, auth, monitor, a PLC on a simulator) behind the in-process app."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from api.app import create_app
from controller.boot import Station, start_station
from controller.config import parse_config
from sim.modbus_plc import ModbusPlcSimulator

STATION = """
[station]
id = "test"
name = "API test station"

[[plcs]]
name = "line1"
port = {port}
poll_interval_ms = 20

  [[plcs.bindings]]
  name = "part_present"
  kind = "coil"
  address = 0
  type = "bool"

  [[plcs.bindings]]
  name = "release"
  kind = "coil"
  address = 8
  type = "bool"
  direction = "out"

  [[plcs.bindings]]
  name = "setpoint"
  kind = "holding_register"
  address = 100
  type = "int16"
  direction = "out"

[[gpio.buttons]]
name = "start"
plc = "line1"
signal = "part_present"

[[gpio.buttons]]
name = "stop"               # simulated

[[gpio.leds]]
name = "ok"
plc = "line1"
signal = "release"

[[gpio.leds]]
name = "fault"              # simulated
"""


@pytest.fixture
def plc_sim() -> Iterator[ModbusPlcSimulator]:
    sim = ModbusPlcSimulator(port=0)
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def station(tmp_path: Path, plc_sim: ModbusPlcSimulator) -> Iterator[Station]:
    config = parse_config(STATION.format(port=plc_sim.port), "test.toml")
    st = start_station(config, tmp_path / "data")
    yield st
    st.stop()


@pytest.fixture
async def client(station: Station) -> AsyncIterator[Any]:
    app = create_app(station.runtime, station.config, station.token_secret)
    async with app.test_app() as test_app:
        yield test_app.test_client()


async def login(client: Any, username: str, password: str) -> str:
    response = await client.post("/api/v1/auth/login",
                                 json={"username": username, "password": password})
    assert response.status_code == 200, await response.get_data()
    return (await response.get_json())["access_token"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def admin(client: Any, station: Station) -> dict[str, str]:
    """Authorization headers of the station's first admin."""
    return bearer(await login(client, "admin", station.admin_password or ""))


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 10.0) -> Any:
    """Await check() until it returns something truthy (the station runs on real time)."""
    with trio.fail_after(timeout):
        while not (result := await check()):
            await trio.sleep(0.02)
    return result
