"""Bad requests get RFC 9457 problems, never a 500, and change nothing."""

from __future__ import annotations

import re
from typing import Any

from controller.boot import Station
from drivers.modbus.codec import make_spec
from sim.modbus_plc import ModbusPlcSimulator
from tests.api.conftest import bearer, login

RELEASE = make_spec("coil", 8, "bool")
SETPOINT = make_spec("holding_register", 100, "int16")


async def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, await response.get_data()
    assert response.content_type == "application/problem+json"
    doc = await response.get_json()
    assert doc["status"] == status and doc["title"] and doc["detail"]
    assert "Traceback" not in doc["detail"]
    return doc  # type: ignore[no-any-return]


async def test_unknown_route_and_method(client: Any) -> None:
    await problem(await client.get("/api/v1/nowhere"), 404)
    await problem(await client.delete("/api/v1/health"), 405)


async def test_invalid_json_wrong_type_and_media_type(
    client: Any, station: Station, plc_sim: ModbusPlcSimulator
) -> None:
    auth = bearer(await login(client, "admin", station.admin_password or ""))
    url = "/api/v1/plcs/line1/signals/setpoint"
    await problem(await client.put(url, headers={**auth, "content-type": "application/json"},
                                   data=b"{value: 1"), 400)
    doc = await problem(await client.put(url, headers=auth, json={"value": [1]}), 422)
    assert doc["errors"][0]["field"] == "value"
    doc = await problem(await client.put(url, headers=auth, json={"value": 1, "extra": 2}), 422)
    await problem(await client.put(url, headers={**auth, "content-type": "text/plain"},
                                   data=b"1"), 415)
    await problem(await client.put(url, headers=auth, json={"value": 40000}), 422)
    await problem(await client.put("/api/v1/plcs/line1/signals/nope", headers=auth,
                                   json={"value": 1}), 404)
    await problem(await client.put("/api/v1/plcs/nope/signals/x", headers=auth,
                                   json={"value": 1}), 404)
    assert plc_sim.get_value(SETPOINT) == 0  # none of it reached the PLC


async def test_oversized_body_is_413(client: Any, station: Station) -> None:
    auth = bearer(await login(client, "admin", station.admin_password or ""))
    big = b'{"value": "' + b"x" * (2 << 20) + b'"}'
    r = await client.put("/api/v1/plcs/line1/signals/release",
                         headers={**auth, "content-type": "application/json"}, data=big)
    await problem(r, 413)


async def test_plc_that_is_down_answers_503_at_once(
    client: Any, station: Station, plc_sim: ModbusPlcSimulator
) -> None:
    auth = bearer(await login(client, "admin", station.admin_password or ""))
    plc_sim.stop()
    import trio

    with trio.fail_after(10):
        while True:  # the next poll notices the lost link
            r = await client.put("/api/v1/plcs/line1/signals/release", headers=auth,
                                 json={"value": True})
            if r.status_code == 503:
                break
            await trio.sleep(0.02)
    doc = await problem(r, 503)
    # Refused before it was sent, or the PLC actor died with the write in its mailbox.
    assert re.search(r"plc:line1 (is not running|stopped before answering)", doc["detail"])
    assert r.headers["Retry-After"]
    listed = await (await client.get("/api/v1/plcs", headers=auth)).get_json()
    assert listed[0]["state"] == "DOWN" and listed[0]["info"] is None
    assert "DeviceUnavailable" in listed[0]["last_error"]


async def test_health_needs_no_auth_and_lists_components(client: Any) -> None:
    r = await client.get("/api/v1/health")
    assert r.status_code == 200
    doc = await r.get_json()
    assert doc["status"] == "healthy"
    assert {"store", "auth", "monitor", "devices", "plc:line1", "root"} <= set(doc["components"])
    c = doc["components"]["store"]
    assert set(c) == {"state", "since", "restarts", "last_error", "mailbox"}


async def test_metrics_exposition(client: Any) -> None:
    await client.get("/api/v1/health")
    r = await client.get("/metrics")
    assert r.status_code == 200
    text = (await r.get_data()).decode()
    for name in ("takt_actor_mailbox_depth{actor=\"store\"}", "takt_actor_handled_total",
                 "takt_actor_restarts_total", "takt_bus_dropped_total",
                 "takt_bus_unjournaled_total",
                 "takt_store_commit_seconds_bucket", "takt_http_request_seconds_bucket"):
        assert name in text, name


async def test_root_serves_the_live_view(client: Any) -> None:
    r = await client.get("/")
    assert r.status_code == 200
    assert r.content_type.startswith("text/html")
    page = (await r.get_data()).decode()
    assert "/api/v1/auth/login" in page and "/ws?token=" in page


async def test_ids_beyond_64_bits_are_not_found_not_errors(client: Any, station: Station) -> None:
    auth = bearer(await login(client, "admin", station.admin_password or ""))
    huge = 2**80
    for method, path in (("GET", f"/api/v1/events/{huge}"),
                         ("POST", f"/api/v1/events/{huge}/ack"),
                         ("DELETE", f"/api/v1/api-keys/{huge}"),
                         ("GET", f"/api/v1/codes/{huge}"),
                         ("GET", f"/api/v1/batches/{huge}"),
                         ("POST", f"/api/v1/batches/{huge}/complete")):
        response = await client.open(path, method=method, headers=auth)
        assert response.status_code == 404, (method, path)
        await problem(response, 404)


async def test_a_list_item_that_is_not_a_table_is_a_field_error(
        client: Any, station: Station) -> None:
    auth = bearer(await login(client, "admin", station.admin_password or ""))
    for path in ("/api/v1/scanners", "/api/v1/plcs", "/api/v1/printers"):
        response = await client.put(path, headers=auth, json=["x", 3])
        doc = await problem(response, 422)
        assert [e["field"] for e in doc["errors"]] == ["[0]", "[1]"], path
