"""/api/v1/config: overrides set, dropped and reloaded in place; catalogs."""

from __future__ import annotations

from typing import Any

from controller.boot import Station
from state.settings import save_override
from tests.api.conftest import admin
from tests.system.procs import free_port


async def get(client: Any, auth: dict[str, str], path: str) -> Any:
    response = await client.get(path, headers=auth)
    assert response.status_code == 200, await response.get_data()
    return await response.get_json()


async def leds(client: Any, auth: dict[str, str]) -> list[str]:
    return [led["name"] for led in (await get(client, auth, "/api/v1/gpio/status"))["leds"]]


async def test_set_then_drop_overrides_applies_each_in_place(
        client: Any, station: Station) -> None:
    auth = await admin(client, station)
    assert (await get(client, auth, "/api/v1/config"))["overrides"] == {}
    port = free_port()
    change = {"set": {
        "gpio": {"leds": [{"name": "ok", "plc": "line1", "signal": "release"},
                          {"name": "tower"}]},
        "gateways": {"modbus": {"enabled": True, "port": port}},
    }, "actor": "commissioning"}
    response = await client.put("/api/v1/config", headers=auth, json=change)
    assert response.status_code == 200, await response.get_data()
    result = await response.get_json()
    assert result["sections"] == ["gateways", "gpio"]
    started = {s for a in result["applied"] for s in a["started"]}
    assert started == {"gpio", "gateway:modbus"}
    assert await leds(client, auth) == ["ok", "tower"]
    status = await get(client, auth, "/api/v1/modbus/status")
    assert (status["running"], status["port"]) == (True, port)
    stored = (await get(client, auth, "/api/v1/config"))["overrides"]
    assert set(stored) == {"gpio", "gateways"}

    response = await client.delete("/api/v1/config", headers=auth)
    assert response.status_code == 200
    assert (await get(client, auth, "/api/v1/config"))["overrides"] == {}
    assert await leds(client, auth) == ["ok", "fault"]  # the file's LEDs again
    assert (await get(client, auth, "/api/v1/modbus/status"))["enabled"] is False


async def test_invalid_changes_are_field_errors_and_change_nothing(
        client: Any, station: Station) -> None:
    auth = await admin(client, station)
    bad = {"set": {"gpio": {"leds": [{"name": "x", "plc": "nope", "signal": "s"}]},
                   "station": {"id": "other"}}}
    response = await client.put("/api/v1/config", headers=auth, json=bad)
    assert response.status_code == 422
    fields = {e["field"] for e in (await response.get_json())["errors"]}
    assert fields == {"station"}
    response = await client.put("/api/v1/config", headers=auth,
                                json={"set": {"gpio": bad["set"]["gpio"]}})
    assert response.status_code == 422
    assert [e["field"] for e in (await response.get_json())["errors"]] == [
        "gpio.leds[0].plc"]
    response = await client.put("/api/v1/config", headers=auth, json={"sett": {}})
    assert response.status_code == 422
    assert (await get(client, auth, "/api/v1/config"))["overrides"] == {}
    assert await leds(client, auth) == ["ok", "fault"]


async def test_reload_applies_overrides_stored_behind_the_stations_back(
        client: Any, station: Station) -> None:
    auth = await admin(client, station)
    con = station.database.cursor()
    try:
        save_override(con, "gpio", {"leds": [{"name": "beacon"}]}, 0)
    finally:
        con.close()
    assert await leds(client, auth) == ["ok", "fault"]  # not applied until asked
    response = await client.post("/api/v1/config/reload", headers=auth)
    assert (await response.get_json())["sections"] == ["gpio"]
    assert await leds(client, auth) == ["beacon"]
    response = await client.post("/api/v1/config/reload", headers=auth)
    assert (await response.get_json())["sections"] == []  # nothing differs: nothing restarts


async def test_catalogs_list_what_this_version_runs(client: Any, station: Station) -> None:
    auth = await admin(client, station)
    protocols = {p["protocol"]: p for p in await get(client, auth,
                                                      "/api/v1/catalog/plc-protocols")}
    assert protocols["OPC_UA"]["supported"] is True
    assert protocols["PROFINET"]["supported"] is False
    assert "node" in protocols["OPC_UA"]["binding"]
    scanners = await get(client, auth, "/api/v1/catalog/scanners")
    assert "COGNEX_DATAMAN" in scanners["models"]
    assert (await get(client, auth, "/api/v1/catalog/printers"))["models"][0]["model"] == \
        "ZEBRA_ZPL"
