"""/api/v1/events: the operator journal, from real station events to export and /ws."""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from typing import Any

import trio

from controller.boot import Station
from sim.modbus_plc import ModbusPlcSimulator
from tests.api.conftest import admin, eventually


async def page(client: Any, auth: dict[str, str], query: str = "") -> dict[str, Any]:
    response = await client.get(f"/api/v1/events{query}", headers=auth)
    assert response.status_code == 200, await response.get_data()
    return await response.get_json()


async def note(client: Any, auth: dict[str, str], message: str, severity: str = "info"
               ) -> dict[str, Any]:
    response = await client.post("/api/v1/events", headers=auth,
                                 json={"message": message, "severity": severity})
    assert response.status_code == 201, await response.get_data()
    return await response.get_json()


async def test_a_lost_plc_becomes_an_error_entry_that_filters_find(
        client: Any, station: Station, plc_sim: ModbusPlcSimulator) -> None:
    auth = await admin(client, station)
    plc_sim.stop()

    async def lost() -> Any:
        items = (await page(client, auth, "?severity=error&category=device"))["items"]
        return [e for e in items if e["source"] == "plc:line1"]

    (entry,) = (await eventually(lost))[:1]
    assert entry["message"].startswith("plc:line1 unavailable")
    assert entry["acknowledged"] is False and entry["ts"].endswith("Z")
    assert (await page(client, auth, "?source=plc:"))["items"][0]["source"] == "plc:line1"
    assert (await page(client, auth, "?severity=critical"))["items"] == []
    later = entry["ts_us"] + 1
    newer = (await page(client, auth, f"?from_us={later}"))["items"]
    assert all(e["ts_us"] >= later for e in newer)
    assert (await page(client, auth, f"?to_us={entry['ts_us']}&category=device"))["items"] == [
        e for e in (await page(client, auth, "?category=device"))["items"]
        if e["ts_us"] < entry["ts_us"]]


async def test_notes_are_stored_paged_newest_first_and_acknowledged_once(
        client: Any, station: Station) -> None:
    auth = await admin(client, station)
    notes = [await note(client, auth, f"shift note {i}", "warning") for i in range(5)]
    assert notes[0]["category"] == "note" and notes[0]["source"] == "api"
    first = await page(client, auth, "?category=note&limit=2")
    assert [e["message"] for e in first["items"]] == ["shift note 4", "shift note 3"]
    second = await page(client, auth, f"?category=note&limit=2&cursor={first['next_cursor']}")
    assert [e["message"] for e in second["items"]] == ["shift note 2", "shift note 1"]
    last = await page(client, auth, f"?category=note&limit=2&cursor={second['next_cursor']}")
    assert [e["message"] for e in last["items"]] == ["shift note 0"]
    assert last["next_cursor"] is None

    target = notes[2]["id"]
    response = await client.post(f"/api/v1/events/{target}/ack", headers=auth)
    assert (await response.get_json())["ack_by"] == "admin"
    again = await client.post(f"/api/v1/events/{target}/ack", headers=auth)
    assert again.status_code == 409
    assert (await client.post("/api/v1/events/999999/ack", headers=auth)).status_code == 404
    response = await client.post("/api/v1/events/ack-all?category=note", headers=auth)
    assert (await response.get_json())["acknowledged"] == 4
    assert (await page(client, auth, "?category=note&ack=false"))["items"] == []
    got = await (await client.get(f"/api/v1/events/{target}", headers=auth)).get_json()
    assert got["acknowledged"] is True


async def test_export_streams_csv_json_and_xml_that_parse_and_carry_no_formulas(
        client: Any, station: Station) -> None:
    auth = await admin(client, station)
    await note(client, auth, "=HYPERLINK(\"http://evil\")")
    await note(client, auth, "bell \x07 and <tags> & \"quotes\"")
    response = await client.get("/api/v1/events/export?format=csv&category=note", headers=auth)
    assert response.headers["Content-Disposition"].startswith("attachment; filename=\"events-")
    rows = list(csv.DictReader(io.StringIO((await response.get_data()).decode())))
    assert [r["message"] for r in rows] == ["bell \x07 and <tags> & \"quotes\"",
                                            "'=HYPERLINK(\"http://evil\")"]
    response = await client.get("/api/v1/events/export?format=json&category=note", headers=auth)
    assert [e["message"] for e in json.loads(await response.get_data())][1].startswith("=")
    response = await client.get("/api/v1/events/export?format=xml&category=note", headers=auth)
    root = ET.fromstring(await response.get_data())
    assert [e.text for e in root] == ["bell \ufffd and <tags> & \"quotes\"",
                                      "=HYPERLINK(\"http://evil\")"]
    assert root[0].get("category") == "note"


async def test_entries_are_pushed_on_ws_as_event_messages(
        client: Any, station: Station) -> None:
    auth = await admin(client, station)
    token = auth["Authorization"].split()[1]
    async with client.websocket(f"/ws?token={token}") as ws:
        assert json.loads(await ws.receive())["type"] == "ready"
        await ws.send(json.dumps({"subscribe": ["event.warning.*"]}))
        assert json.loads(await ws.receive())["type"] == "snapshot"
        await note(client, auth, "not pushed", "info")
        written = await note(client, auth, "door open", "warning")
        with trio.fail_after(5):
            msg = json.loads(await ws.receive())
        assert msg["type"] == "event" and msg["topic"] == "event.warning.note"
        assert (msg["data"]["id"], msg["data"]["message"]) == (written["id"], "door open")


async def test_bad_queries_are_problems_and_change_nothing(client: Any, station: Station) -> None:
    auth = await admin(client, station)
    for query in ("?severity=loud", "?from_us=10&to_us=5", "?limit=0", "?limit=5000",
                  "?cursor=abc", "?colour=red"):
        response = await client.get(f"/api/v1/events{query}", headers=auth)
        assert response.status_code == 400, query
        assert response.content_type == "application/problem+json"
    for body in ({"message": ""}, {"message": "x", "severity": "loud"}, {"text": "x"}):
        response = await client.post("/api/v1/events", headers=auth, json=body)
        assert response.status_code == 422, body
    assert (await page(client, auth, "?category=note"))["items"] == []
    assert (await client.get("/api/v1/events/export?format=pdf",
                             headers=auth)).status_code == 400
