"""The journal holds durable events; clients page through it by seq."""

from __future__ import annotations

from typing import Any

import trio

from controller.boot import Station
from drivers.modbus.codec import make_spec
from sim.modbus_plc import ModbusPlcSimulator
from tests.api.conftest import bearer, login


async def test_journal_pages_by_seq_and_filters_by_topic(
    client: Any, station: Station, plc_sim: ModbusPlcSimulator
) -> None:
    auth = bearer(await login(client, "admin", station.admin_password or ""))
    # Writes through the API are commands: journaled before they are carried out.
    for value in (True, False, True):
        r = await client.put("/api/v1/plcs/line1/signals/release", headers=auth,
                             json={"value": value})
        assert r.status_code == 200
    plc_sim.set_value(make_spec("coil", 0, "bool"), True)  # not durable in this station
    with trio.fail_after(10):
        while True:  # the journal is written behind the answer: wait for all three
            r = await client.get("/api/v1/journal?topic=command.", headers=auth)
            assert r.status_code == 200, await r.get_data()
            if len((await r.get_json())["items"]) == 3:
                break
            await trio.sleep(0.02)
    page = await (await client.get("/api/v1/journal?topic=command.&limit=2",
                                   headers=auth)).get_json()
    assert [i["data"]["write"]["value"] for i in page["items"]] == [True, False]
    assert all(i["topic"] == "command.api" and i["data"]["by"] == "admin" for i in page["items"])
    r = await client.get(f"/api/v1/journal?topic=command.&from_seq={page['next_seq']}",
                         headers=auth)
    rest = await r.get_json()
    assert [i["data"]["write"]["value"] for i in rest["items"]] == [True]
    assert rest["next_seq"] is None
    everything = await (await client.get("/api/v1/journal", headers=auth)).get_json()
    assert not any(i["topic"].startswith("device.") for i in everything["items"])


async def test_bad_journal_queries_are_400(client: Any, station: Station) -> None:
    auth = bearer(await login(client, "admin", station.admin_password or ""))
    for q in ("limit=0", "limit=5000", "from_seq=-1", "limit=abc", "bogus=1"):
        r = await client.get(f"/api/v1/journal?{q}", headers=auth)
        assert r.status_code == 400, q
        assert r.content_type == "application/problem+json"
