"""/api/v1/scanners: readers configured over the API, their status, test and trigger."""

from __future__ import annotations

from typing import Any

from controller.boot import Station
from sim.scanner import TcpScannerSimulator, demo_codes
from tests.api.conftest import admin, eventually


async def test_scanners_put_status_test_and_trigger(client: Any, station: Station) -> None:
    auth = await admin(client, station)
    assert await (await client.get("/api/v1/scanners", headers=auth)).get_json() == []
    with TcpScannerSimulator(port=0) as line, \
            TcpScannerSimulator(port=0, mode="triggered", extended=True) as dataman:
        body = [{"name": "infeed", "port": line.port, "role": "ADD"},
                {"name": "check", "port": dataman.port, "model": "COGNEX_DATAMAN",
                 "triggered": True, "role": "VERIFY_LOCAL_BUFFER"}]
        response = await client.put("/api/v1/scanners", headers=auth, json=body)
        assert response.status_code == 200, await response.get_data()
        assert (await response.get_json())["started"] == ["scanner:infeed", "scanner:check"]

        async def up() -> bool:
            listed = await (await client.get("/api/v1/scanners", headers=auth)).get_json()
            return all(s["state"] == "UP" for s in listed) and line.connections == 1

        await eventually(up)
        line.emit(demo_codes(1)[0])

        async def read() -> Any:
            r = await client.get("/api/v1/scanners/0/status", headers=auth)
            status = (await r.get_json())["status"]
            return status["reads"] == 1 and status

        status = await eventually(read)
        assert status["last_code"].startswith("]d2") and status["role"] == "ADD"
        response = await client.post("/api/v1/scanners/1/test", headers=auth)
        assert (await response.get_json())["ok"] is True
        assert (await client.post("/api/v1/scanners/1/trigger", headers=auth)).status_code == 202
        assert (await client.post("/api/v1/scanners/0/trigger", headers=auth)).status_code == 409
        assert (await client.get("/api/v1/scanners/5/status", headers=auth)).status_code == 404


async def test_invalid_scanner_lists_are_field_errors(client: Any, station: Station) -> None:
    auth = await admin(client, station)
    body = [{"name": "a", "transport": "USB_HID"}, {"name": "a", "transport": "SERIAL"},
            {"name": "b", "role": "THROW"}]
    response = await client.put("/api/v1/scanners", headers=auth, json=body)
    assert response.status_code == 422
    fields = {e["field"] for e in (await response.get_json())["errors"]}
    assert fields == {"[0].transport", "[1].serial", "[1].name", "[2].role"}
    eleven = [{"name": f"s{i}"} for i in range(11)]
    response = await client.put("/api/v1/scanners", headers=auth, json=eleven)
    assert [e["field"] for e in (await response.get_json())["errors"]] == ["[10]"]
    assert await (await client.get("/api/v1/scanners", headers=auth)).get_json() == []
