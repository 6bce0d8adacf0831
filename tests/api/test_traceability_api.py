"""Traceability through the API: a reader's codes judged, stored and aggregated; codes,
batches and batch accounting as an integrator uses them."""

from __future__ import annotations

from typing import Any

from controller.boot import Station
from sim.scanner import TcpScannerSimulator, demo_codes
from tests.api.conftest import admin, eventually

CODES = [c.decode("latin-1") for c in demo_codes(6)]


async def _json(response: Any, status: int = 200) -> Any:
    assert response.status_code == status, await response.get_data()
    return await response.get_json()


async def test_reader_codes_are_stored_into_the_open_batch_until_it_completes(
        client: Any, station: Station) -> None:
    auth = await admin(client, station)
    batch = await _json(await client.post("/api/v1/batches", headers=auth,
                                          json={"name": "Morning", "capacity": 3}), 201)
    assert batch["batch"]["identifier"].startswith("B-") and batch["batch"]["status"] == "open"
    with TcpScannerSimulator(port=0) as reader:
        await _json(await client.put("/api/v1/scanners", headers=auth,
                                     json=[{"name": "infeed", "port": reader.port}]))
        await eventually(lambda: _connected(reader))
        for raw in demo_codes(3) + demo_codes(1):  # the fourth repeats the first
            reader.emit(raw)

        async def judged() -> Any:
            r = await client.get("/api/v1/scanner/recent?source=scanner.infeed", headers=auth)
            items = await r.get_json()
            return len(items) == 4 and items

        # A generous bound: it only ends a broken run (a loaded CI machine took over 10 s).
        recent = await eventually(judged, timeout=30.0)
    newest = recent[0]
    assert newest["accepted"] is False and newest["duplicate"] is True and newest["eject"]
    assert [r["accepted"] for r in recent[1:]] == [True, True, True]
    assert recent[1]["batch_completed"] is True and recent[1]["batch_count"] == 3
    detail = await _json(await client.get(f"/api/v1/batches/{batch['batch']['id']}",
                                          headers=auth))
    assert detail["batch"]["status"] == "complete"
    assert sorted(c["code"] for c in detail["codes"]) == sorted(
        r["code"] for r in recent[1:])
    counts = await _json(await client.get("/api/v1/codes/count", headers=auth))
    assert counts == {"total": 3, "by_status": {"0": 0, "1": 3, "2": 0, "3": 0, "4": 0,
                                                "5": 0}}
    async def journaled() -> list[str]:  # the store commits the entries on its own time
        r = await client.get("/api/v1/events?category=traceability", headers=auth)
        messages = [e["message"] for e in (await r.get_json())["items"]]
        done = (any("refused" in m and "duplicate" in m for m in messages)
                and any("complete (3 items)" in m for m in messages))
        return messages if done else []

    await eventually(journaled)


async def _connected(reader: TcpScannerSimulator) -> bool:
    return reader.connections == 1


async def test_validate_scan_and_status_moves(client: Any, station: Station) -> None:
    auth = await admin(client, station)
    valid = await _json(await client.post("/api/v1/scanner/validate", headers=auth,
                                          json={"code": CODES[0]}))
    assert valid["valid"] is True and valid["duplicate"] is False and valid["gtin"]
    stored = await _json(await client.get("/api/v1/codes/count", headers=auth))
    assert stored["total"] == 0  # validate stores nothing
    bad = await _json(await client.post("/api/v1/scanner/validate", headers=auth,
                                        json={"code": CODES[0], "industry": "pharma"}))
    assert bad["valid"] is False and "91" in bad["message"]
    scanned = await _json(await client.post("/api/v1/scanner/scan", headers=auth,
                                            json={"code": CODES[0]}))
    assert scanned["accepted"] is True and scanned["code_id"] and scanned["status"] == 0
    again = await _json(await client.post("/api/v1/scanner/validate", headers=auth,
                                          json={"code": CODES[0]}))
    assert again["valid"] is False and again["duplicate"] is True
    code_id = scanned["code_id"]
    moved = await _json(await client.patch(f"/api/v1/codes/{code_id}/status", headers=auth,
                                           json={"status": 4}))
    assert moved["status"] == 4
    refused = await client.patch(f"/api/v1/codes/{code_id}/status", headers=auth,
                                 json={"status": 0})
    body = await _json(refused, 409)
    assert "Rejected" in body["detail"]
    missing = await client.patch("/api/v1/codes/999999/status", headers=auth, json={"status": 5})
    assert missing.status_code == 404
    unknown_industry = await client.post("/api/v1/scanner/validate", headers=auth,
                                         json={"code": CODES[0], "industry": "cheese"})
    assert unknown_industry.status_code == 422


async def test_bulk_codes_listing_and_batches(client: Any, station: Station) -> None:
    auth = await admin(client, station)
    created = await _json(await client.post(
        "/api/v1/codes", headers=auth,
        json={"codes": [{"code": c} for c in [*CODES[:4], CODES[0], "garbage"]]}), 201)
    assert (created["created"], created["duplicates"], created["refused"]) == (4, 1, 1)
    assert created["items"][5]["reason"]
    page = await _json(await client.get("/api/v1/codes?limit=3", headers=auth))
    assert len(page["items"]) == 3 and page["next_cursor"]
    rest = await _json(await client.get(f"/api/v1/codes?limit=3&cursor={page['next_cursor']}",
                                        headers=auth))
    assert len(rest["items"]) == 1 and rest["next_cursor"] is None
    codes = [i["code"] for i in page["items"] + rest["items"]]
    box = await _json(await client.post("/api/v1/batches", headers=auth, json={
        "kind": "box", "identifier": "BOX-1", "codes": codes[:2]}), 201)
    assert box["added"] == 2
    added = await _json(await client.post(f"/api/v1/batches/{box['batch']['id']}/codes",
                                          headers=auth, json={"codes": [codes[0], "nope"]}))
    assert [i["ok"] for i in added["items"]] == [False, False]
    done = await _json(await client.post(f"/api/v1/batches/{box['batch']['id']}/complete",
                                         headers=auth))
    assert done["status"] == "complete"
    one = await _json(await client.get(f"/api/v1/codes?code={codes[0]}", headers=auth))
    detail = await _json(await client.get(f"/api/v1/codes/{one['items'][0]['id']}",
                                          headers=auth))
    assert detail["code"]["status"] == 1 and detail["batches"][0]["batch_id"] == box["batch"]["id"]
    clash = await client.post("/api/v1/batches", headers=auth, json={"identifier": "BOX-1"})
    assert clash.status_code == 409
    bad = await client.get("/api/v1/codes?status=9", headers=auth)
    assert bad.status_code == 400


async def test_batch_accounting_buffer(client: Any, station: Station) -> None:
    auth = await admin(client, station)
    loaded = await _json(await client.post("/api/v1/batch-accounting/buffer/load", headers=auth,
                                           json={"batch_identifier": "PB-7",
                                                 "codes": CODES[:3]}))
    assert loaded["loaded"] == 3
    summary = await _json(await client.get("/api/v1/batch-accounting/buffer", headers=auth))
    assert [(s["batch_identifier"], s["remaining"]) for s in summary] == [("PB-7", 3)]
    first = await _json(await client.post("/api/v1/batch-accounting/verify", headers=auth,
                                          json={"code": CODES[0], "consumed_by": "line-2"}))
    assert first["ok"] is True and first["batch_identifier"] == "PB-7"
    twice = await _json(await client.post("/api/v1/batch-accounting/verify", headers=auth,
                                          json={"code": CODES[0]}))
    assert twice["ok"] is False and twice["outcome"] == "already_consumed"
    stranger = await _json(await client.post("/api/v1/batch-accounting/verify", headers=auth,
                                             json={"code": CODES[5]}))
    assert stranger["outcome"] == "not_in_buffer"
    gone = await _json(await client.delete("/api/v1/batch-accounting/buffer?batch=PB-7",
                                           headers=auth))
    assert gone["dropped"] == 3
    again = await client.delete("/api/v1/batch-accounting/buffer?batch=PB-7", headers=auth)
    assert again.status_code == 404
    empty = await _json(await client.post("/api/v1/batch-accounting/verify", headers=auth,
                                          json={"code": CODES[1]}))
    assert empty["outcome"] == "no_buffer"
