"""/api/v1/ups: a simulated UPS switched to battery and back through the API, and a real
upsd (Debian's, with dummy-ups) that refuses to be simulated."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from api.app import create_app
from controller.boot import Station, start_station
from controller.config import parse_config
from tests.api.conftest import admin, eventually
from tests.nut_server import running_nut

STATION = """
[station]
id = "ups-test"
name = "UPS test station"

[ups]
name = "wet"
{ups}
poll_interval_ms = 200
"""


def _station(tmp_path: Path, ups: str) -> Station:
    return start_station(parse_config(STATION.format(ups=ups), "t.toml"), tmp_path / "data")


@pytest.fixture
def simulated(tmp_path: Path) -> Iterator[Station]:
    station = _station(tmp_path, "simulated = true\nlow_battery_percent = 25")
    yield station
    station.stop()


async def _client(station: Station) -> Any:
    return create_app(station.runtime, station.config, station.token_secret)


@pytest.fixture
async def sim_client(simulated: Station) -> AsyncIterator[Any]:
    async with (await _client(simulated)).test_app() as app:
        yield app.test_client()


async def test_simulated_power_loss_is_shown_and_journaled(
        sim_client: Any, simulated: Station) -> None:
    auth = await admin(sim_client, simulated)

    async def status() -> Any:
        body = await (await sim_client.get("/api/v1/ups/status", headers=auth)).get_json()
        return body if body["status"] and body["status"]["polls"] else None

    first = await eventually(status)
    assert (first["state"], first["status"]["state"], first["status"]["simulated"]) == (
        "UP", "online", True)
    r = await sim_client.post("/api/v1/ups/simulate", headers=auth,
                              json={"on_battery": True, "battery_percent": 60})
    assert r.status_code == 200 and (await r.get_json())["state"] == "on_battery"
    r = await sim_client.post("/api/v1/ups/simulate", headers=auth,
                              json={"on_battery": True, "battery_percent": 20})
    assert (await r.get_json())["state"] == "low_battery"
    r = await sim_client.post("/api/v1/ups/simulate", headers=auth, json={"on_battery": False})
    assert (await r.get_json())["state"] == "online"

    async def journaled() -> Any:
        r = await sim_client.get("/api/v1/events?category=power", headers=auth)
        items = (await r.get_json())["items"]
        return len(items) == 3 and items

    entries = await eventually(journaled)
    assert [e["severity"] for e in entries] == ["info", "critical", "warning"]  # newest first
    bad = await sim_client.post("/api/v1/ups/simulate", headers=auth,
                                json={"on_battery": True, "battery_percent": 150})
    assert bad.status_code == 422
    test = await (await sim_client.post("/api/v1/ups/test", headers=auth)).get_json()
    assert test["ok"] is True and test["state"] == "online"


async def test_a_station_without_a_ups_answers_404(client: Any, station: Station) -> None:
    auth = await admin(client, station)
    r = await client.get("/api/v1/ups/status", headers=auth)
    assert r.status_code == 404 and "[ups]" in (await r.get_json())["detail"]


async def test_a_real_ups_is_read_and_refuses_simulation(tmp_path: Path) -> None:
    with running_nut(tmp_path, ups="cabinet") as nut:
        station = _station(tmp_path, f'ups = "cabinet"\nport = {nut.port}')
        try:
            async with (await _client(station)).test_app() as app:
                client = app.test_client()
                auth = await admin(client, station)

                async def status() -> Any:
                    r = await client.get("/api/v1/ups/status", headers=auth)
                    body = await r.get_json()
                    return body if body["status"] and body["status"]["polls"] else None

                body = await eventually(status)
                assert body["status"]["state"] == "online" and not body["status"]["simulated"]
                r = await client.post("/api/v1/ups/simulate", headers=auth,
                                      json={"on_battery": True})
                assert r.status_code == 409 and "real UPS" in (await r.get_json())["detail"]
                nut.stop()

                async def down() -> Any:
                    r = await client.post("/api/v1/ups/test", headers=auth)
                    return r.status_code == 503
                await eventually(down)
        finally:
            station.stop()
