"""/api/v1/printers: printers configured over the API, templates, print jobs, status and test,
end to end against the ZPL printer simulator."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from controller.boot import Station
from drivers.zpl.gs1 import gs1_element_string
from sim.zpl_printer import ZplPrinterSimulator
from tests.api.conftest import admin, eventually

CODE = "(01)09506000134352(10)LOT-7(21)SN0001"
PART = """^XA
^FO30,30^A0N,30,30^FDPart {{part}}^FS
^FO30,80^BXN,6,200,,,,_^FD{{code|gs1}}^FS
^XZ
"""




@pytest.fixture
def zebra() -> Iterator[ZplPrinterSimulator]:
    with ZplPrinterSimulator(port=0, label_count=100) as sim:
        yield sim


async def configure(client: Any, auth: dict[str, str], sim: ZplPrinterSimulator) -> None:
    body = [{"name": "labels", "port": sim.port, "status_poll_ms": 50,
             "confirm_timeout_ms": 2000}]
    response = await client.put("/api/v1/printers", headers=auth, json=body)
    assert response.status_code == 200, await response.get_data()
    assert (await response.get_json())["started"] == ["printer:labels"]

    async def connected() -> Any:
        r = await client.get("/api/v1/printers/0/status", headers=auth)
        entry = await r.get_json()
        return entry["status"] and entry["status"]["ready"] and entry

    entry = await eventually(connected)
    assert entry["state"] == "UP" and entry["status"]["label_count"] == 100


async def test_print_hold_resume_and_jobs_end_to_end(
        client: Any, station: Station, zebra: ZplPrinterSimulator) -> None:
    auth = await admin(client, station)
    assert await (await client.get("/api/v1/printers", headers=auth)).get_json() == []
    await configure(client, auth, zebra)
    base = "/api/v1/printers/0"
    r = await client.post(f"{base}/templates", headers=auth, json={"name": "part", "body": PART})
    assert r.status_code == 201, await r.get_data()
    assert (await r.get_json())["placeholders"] == ["code", "part"]

    async def jobs(state: str = "") -> list[dict[str, Any]]:
        r = await client.get(f"{base}/jobs?state={state}" if state else f"{base}/jobs",
                             headers=auth)
        assert r.status_code == 200, await r.get_data()
        return await r.get_json()  # type: ignore[no-any-return]

    r = await client.post(f"{base}/print", headers=auth,
                          json={"code": CODE, "params": {"template": "part", "part": "PUMP-7"}})
    assert r.status_code == 202, await r.get_data()
    first = (await r.get_json())["job"]
    await eventually(lambda: jobs("done"))
    (label,) = zebra.labels
    assert [f.text for f in label.fields] == ["Part PUMP-7", gs1_element_string(CODE)]

    zebra.paused = True
    r = await client.post(f"{base}/print", headers=auth,
                          json={"code": CODE, "params": {"template": "part", "part": "2"}})
    assert r.status_code == 202
    second = (await r.get_json())["job"]
    held = await eventually(lambda: jobs("held"))
    assert [(j["id"], j["reason"]) for j in held] == [(second, "paused")]
    status = (await (await client.get(f"{base}/status", headers=auth)).get_json())["status"]
    assert status["paused"] and status["ready"] is False and status["queue"]["held"] == 1
    assert status["problems"] == ["paused"] and status["paper_out"] is False
    assert len(zebra.labels) == 1

    zebra.paused = False
    async def both_done() -> list[int] | None:
        done = await jobs("done")
        return [j["id"] for j in done] if len(done) == 2 else None

    assert await eventually(both_done) == [second, first]
    assert [label.number for label in zebra.labels] == [101, 102]

    r = await client.post(f"{base}/test", headers=auth)
    result = await r.get_json()
    assert result["ok"] is True and result["ready"] is True and result["state"] == "UP"
    assert zebra.formats_received == 2  # the test printed nothing

    async def journaled() -> Any:
        r = await client.get("/api/v1/journal?topic=command.", headers=auth)
        prints = [i["data"] for i in (await r.get_json())["items"] if "print" in i["data"]]
        return len(prints) == 2 and prints

    prints = await eventually(journaled)
    assert prints[0]["print"] == {"code": CODE, "params": {"template": "part", "part": "PUMP-7"}}
    assert prints[0]["printer"] == "labels" and prints[0]["by"] == "admin"


async def test_templates_crud_and_validation(
        client: Any, station: Station, zebra: ZplPrinterSimulator) -> None:
    auth = await admin(client, station)
    await configure(client, auth, zebra)
    base = "/api/v1/printers/0/templates"
    listed = await (await client.get(base, headers=auth)).get_json()
    assert [(t["name"], t["builtin"]) for t in listed] == [("batch", True), ("default", True)]
    assert [t["placeholders"] for t in listed] == [["count", "gtin", "identifier", "kind"],
                                                   ["code"]]
    r = await client.post(base, headers=auth,
                          json={"name": "bad", "body": "^XA^FO{{x}},10^FDa^FS^XZ"})
    assert r.status_code == 422
    assert "outside field data" in (await r.get_json())["detail"]
    r = await client.put(f"{base}/bad", headers=auth, json={"body": "^XA^FD{{code|gs1}}^FS^XZ"})
    assert r.status_code == 422 and "^BX quality 200" in (await r.get_json())["detail"]
    assert (await client.get(f"{base}/bad", headers=auth)).status_code == 404

    r = await client.put(f"{base}/part", headers=auth, json={"body": PART})
    assert r.status_code == 201
    assert (await client.post(base, headers=auth,
                              json={"name": "part", "body": PART})).status_code == 409
    r = await client.put(f"{base}/part", headers=auth, json={"body": PART.replace("Part", "P")})
    assert r.status_code == 200 and (await r.get_json())["updated_by"] == "admin"
    got = await (await client.get(f"{base}/part", headers=auth)).get_json()
    assert got["body"].startswith("^XA\n^FO30,30^A0N,30,30^FDP {{part}}")

    # A print that the template cannot take is refused, and nothing is stored or printed.
    prints = "/api/v1/printers/0/print"
    r = await client.post(prints, headers=auth, json={"code": "no gs1", "params": {
        "template": "part", "part": "1"}})
    assert r.status_code == 422 and (await r.get_json())["errors"][0]["field"] == "code"
    r = await client.post(prints, headers=auth, json={"code": CODE, "params": {"template": "x"}})
    assert (await r.get_json())["errors"][0]["field"] == "params.template"
    r = await client.post(prints, headers=auth, json={"code": CODE, "params": {"template": "part"}})
    assert r.status_code == 422 and "missing field" in (await r.get_json())["detail"]
    r = await client.post(prints, headers=auth, json={"code": 5})
    assert r.status_code == 422

    assert (await client.delete(f"{base}/part", headers=auth)).status_code == 204
    assert (await client.delete(f"{base}/part", headers=auth)).status_code == 404
    jobs = await (await client.get("/api/v1/printers/0/jobs", headers=auth)).get_json()
    assert jobs == [] and zebra.formats_received == 0
    for bad in ("state=lost", "limit=0", f"before={2**64}"):
        r = await client.get(f"/api/v1/printers/0/jobs?{bad}", headers=auth)
        assert r.status_code == 400, bad


async def test_printer_lists_are_checked_and_the_schema_describes_the_model(
        client: Any, station: Station) -> None:
    auth = await admin(client, station)
    body = [{"name": "a", "port": 9100}, {"name": "a", "port": 9101},
            {"name": "b", "host": "127.0.0.1", "port": 9100},
            {"name": "c", "port": 9300, "model": "EPSON"},
            {"name": "d", "port": 9200, "status_poll_ms": 5000, "confirm_timeout_ms": 1000}]
    response = await client.put("/api/v1/printers", headers=auth, json=body)
    assert response.status_code == 422
    fields = {e["field"] for e in (await response.get_json())["errors"]}
    assert fields == {"[1].name", "[2].port", "[3].model", "[4].confirm_timeout_ms"}
    response = await client.put("/api/v1/printers", headers=auth, json=["x", [], {"name": "e"}])
    assert response.status_code == 422
    assert [e["field"] for e in (await response.get_json())["errors"]] == ["[0]", "[1]"]
    eleven = [{"name": f"p{i}", "port": 9100 + i} for i in range(11)]
    response = await client.put("/api/v1/printers", headers=auth, json=eleven)
    assert [e["field"] for e in (await response.get_json())["errors"]] == ["[10]"]
    assert await (await client.get("/api/v1/printers", headers=auth)).get_json() == []
    assert (await client.get("/api/v1/printers/0/status", headers=auth)).status_code == 404

    schema = await (await client.get("/api/v1/printers/schema", headers=auth)).get_json()
    zpl = schema["models"]["ZEBRA_ZPL"]
    config = zpl["config"]["$defs"]["PrinterConfig"]["properties"]
    assert config["port"]["default"] == 9100 and "status_poll_ms" in config
    assert zpl["template"]["gs1_placeholder"] == "{{name|gs1}}" and zpl["template"]["rules"]
    catalog = await (await client.get("/api/v1/catalog/printers", headers=auth)).get_json()
    assert catalog["available"] is True


async def test_an_unreachable_printer_keeps_jobs_and_reconnects_on_test(
        client: Any, station: Station, zebra: ZplPrinterSimulator) -> None:
    auth = await admin(client, station)
    await configure(client, auth, zebra)
    zebra.stop()
    r = await client.post("/api/v1/printers/0/print", headers=auth, json={"code": CODE})
    assert r.status_code == 202

    async def held() -> Any:
        js = await (await client.get("/api/v1/printers/0/jobs?state=held", headers=auth)
                    ).get_json()
        return js and js[0]["reason"].startswith("printer offline") and js

    await eventually(held)
    entry = await (await client.get("/api/v1/printers/0/status", headers=auth)).get_json()
    assert entry["state"] == "DOWN" and entry["status"]["connection"] == "offline"
    r = await client.post("/api/v1/printers/0/test", headers=auth)
    assert (await r.get_json())["ok"] is False
    zebra.start()
    r = await client.post("/api/v1/printers/0/test", headers=auth)
    assert (await r.get_json())["ok"] is True  # reconnected now, not after a backoff

    async def printed() -> bool:
        return len(zebra.labels) == 1

    await eventually(printed)
    assert zebra.labels[0].fields[0].text == gs1_element_string(CODE)
