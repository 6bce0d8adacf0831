"""Assemblies built over the API, then coached over /ws/coaching as an HMI would: records, step
records, the QA report, and bad messages that change nothing.

The devices' facts (a scan, tightenings, a camera prediction) are published on the station's
bus as their actors publish them; the PLC is a real Modbus simulator behind the real PLC actor,
so the OUTPUT step and the release are written and read back over Modbus.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from api.app import create_app
from controller.boot import Station, start_station
from controller.config import parse_config
from drivers.modbus.codec import make_spec
from sim.modbus_plc import ModbusPlcSimulator
from tests.api.conftest import admin, eventually, login

RELEASE = make_spec("coil", 4, "bool")
PRESENT = make_spec("discrete_input", 0, "bool")

STATION = """
[station]
id = "cell-7"
name = "Cell 7"

[[plcs]]
name = "line1"
port = {port}
poll_interval_ms = 20

  [[plcs.bindings]]
  name = "present"
  kind = "discrete_input"
  address = 0
  type = "bool"

  [[plcs.bindings]]
  name = "lamp"
  kind = "coil"
  address = 3
  type = "bool"
  direction = "out"

  [[plcs.bindings]]
  name = "release"
  kind = "coil"
  address = 4
  type = "bool"
  direction = "out"

[coaching]
release_control = true
[coaching.release]
plc = "line1"
signal = "release"
"""

STEPS = [
    {"name": "Scan contactor", "benchmark_s": 3,
     "data": [{"action": "SCAN", "infos": {"capture": "part", "pattern": r"C\d{4}"}}]},
    {"name": "Tighten", "benchmark_s": 10,
     "data": [{"action": "TORQUE", "infos": {"wrench": "w1", "pset": "1", "count": "2"}}]},
    {"name": "Part present", "data": [{"action": "INPUT",
                                       "infos": {"plc": "line1", "signal": "present"}}]},
    {"name": "Lamp", "data": [{"action": "OUTPUT", "infos": {"plc": "line1", "signal": "lamp"}}]},
    {"name": "Place cover", "data": [{"action": "ML", "infos": {"label": "cover",
                                                                "minimum_predict": "0.8"}}]},
    {"name": "Verify", "data": [{"action": "SCAN", "infos": {"verify": "part"}}]},
    {"name": "Inspect", "data": [{"action": "QA", "infos": {"prompt": "cover seated?"}}]},
]


@pytest.fixture
def plc() -> Iterator[ModbusPlcSimulator]:
    sim = ModbusPlcSimulator(port=0, size=100)
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def station(tmp_path: Path, plc: ModbusPlcSimulator) -> Iterator[Station]:
    st = start_station(parse_config(STATION.format(port=plc.port), "t.toml"), tmp_path / "d")
    yield st
    st.stop()


@pytest.fixture
async def client(station: Station) -> AsyncIterator[Any]:
    app = create_app(station.runtime, station.config, station.token_secret)
    async with app.test_app() as test_app:
        yield test_app.test_client()


async def _json(r: Any) -> Any:
    return await r.get_json()


async def build(client: Any, auth: dict[str, str], steps: list[dict[str, Any]]) -> int:
    r = await client.post("/api/v1/assembly-revisions", headers=auth,
                          json={"name": "Contactor"})
    assert r.status_code == 201, await r.get_data()
    rev = (await _json(r))["id"]
    r = await client.post("/api/v1/assemblies", headers=auth,
                          json={"revision_id": rev, "name": "Contactor Installation"})
    assembly = (await _json(r))["id"]
    for step in steps:
        r = await client.post(f"/api/v1/assemblies/{assembly}/steps", headers=auth, json=step)
        assert r.status_code == 201, await r.get_data()
    return assembly  # type: ignore[no-any-return]


async def test_steps_are_checked_as_they_are_written_and_a_published_version_is_frozen(
        client: Any, station: Station) -> None:
    auth = await admin(client, station)
    assembly = await build(client, auth, STEPS[:1] + STEPS[5:6])
    steps = (await _json(await client.get(f"/api/v1/assemblies/{assembly}", headers=auth))
             )["steps"]
    scan, verify = steps[0]["id"], steps[1]["id"]
    r = await client.delete(f"/api/v1/steps/{scan}", headers=auth)
    assert r.status_code == 409 and "may not be deleted" in (await _json(r))["detail"]
    r = await client.post(f"/api/v1/steps/{verify}/move", headers=auth, json={"position": 0})
    assert r.status_code == 409 and "may move to [1]" in (await _json(r))["detail"]
    moves = await _json(await client.get(f"/api/v1/steps/{scan}/moves", headers=auth))
    assert moves["may_move_to"] == [0] and moves["may_delete"] is False and moves["why_not"]
    r = await client.post(f"/api/v1/assemblies/{assembly}/steps", headers=auth, json={
        "name": "bad", "data": [{"action": "ML", "infos": {"minimum_predict": "2"}}]})
    assert r.status_code == 422 and "label is required" in (await _json(r))["detail"]
    r = await client.post(f"/api/v1/assemblies/{assembly}/steps", headers=auth, json={
        "name": "bad", "data": [{"action": "WELD"}]})
    assert r.status_code == 422 and (await _json(r))["errors"][0]["field"] == "data[0].action"
    variables = await _json(await client.get(
        f"/api/v1/assemblies/{assembly}/ocr_capture_variables", headers=auth))
    assert variables == [{"name": "part", "captured_by": [{"step_index": 0, "step_id": scan}],
                          "verified_by": [{"step_index": 1, "step_id": verify}]}]
    r = await client.patch(f"/api/v1/steps/{verify}", headers=auth, json={
        "perspective_change": True, "mask_perspective": True, "classes": ["label", "no_label"]})
    assert (await _json(r))["perspective_change"] is True
    r = await client.delete(f"/api/v1/assemblies/{assembly}/steps/1/perspective", headers=auth)
    assert await _json(r) == {"id": verify}
    step = await _json(await client.get(f"/api/v1/steps/{verify}", headers=auth))
    assert (step["perspective_change"], step["mask_perspective"]) == (False, False)
    assert json.loads(step["classes"]) == ["label", "no_label"]
    r = await client.delete(f"/api/v1/assemblies/{assembly}/steps/7/perspective", headers=auth)
    assert r.status_code == 404
    r = await client.post(f"/api/v1/assemblies/{assembly}/publish", headers=auth, json={})
    assert (await _json(r))["published"] is True
    r = await client.patch(f"/api/v1/steps/{scan}", headers=auth, json={"name": "x"})
    assert r.status_code == 409 and "copy it" in (await _json(r))["detail"]
    r = await client.post(f"/api/v1/assemblies/{assembly}/copy", headers=auth)
    assert r.status_code == 201 and (await _json(r))["version"] == 2
    after = (await _json(await client.get(f"/api/v1/assemblies/{assembly}", headers=auth)))
    assert [s["name"] for s in after["steps"]] == ["Scan contactor", "Verify"]  # unchanged


async def _receive(ws: Any) -> dict[str, Any]:
    with trio.fail_after(10):
        return json.loads(await ws.receive())  # type: ignore[no-any-return]


async def _until(ws: Any, kind: str) -> dict[str, Any]:
    while True:
        msg = await _receive(ws)
        if msg["status"] == "ok" and msg["msg"]["type"] == kind:
            return msg["msg"]


async def test_an_hmi_coaches_a_whole_assembly_over_ws_coaching(
        client: Any, station: Station, plc: ModbusPlcSimulator) -> None:
    auth = await admin(client, station)
    assembly = await build(client, auth, STEPS)
    await client.post(f"/api/v1/assemblies/{assembly}/publish", headers=auth, json={})
    token = await login(client, "admin", station.admin_password or "")
    bus = station.runtime.bus
    async with client.websocket(f"/ws/coaching?token={token}") as ws:
        assert (await _until(ws, "state"))["phase"] == "idle"
        await ws.send(json.dumps({"start": {"assembly_id": assembly}, "interrupt": {}}))
        error = await _receive(ws)
        assert error["status"] == "error" and "exactly one" in error["msg"]["detail"]
        await ws.send(json.dumps({"start": {"assembly_id": assembly, "work_order": "WO-9",
                                            "part_serial": "P-77"}}))
        advance = await _until(ws, "step_advance")
        record = advance["assembly_record_id"]
        assert advance["step_index"] == 0 and advance["name"] == "Scan contactor"
        await ws.send(json.dumps({"start": {"assembly_id": assembly}}))
        busy = await _receive(ws)
        while busy["status"] == "ok":
            busy = await _receive(ws)
        assert "a coaching session is active" in busy["msg"]["detail"]

        scan(bus, "C1234")
        assert (await _until(ws, "step_advance"))["step_index"] == 1
        for n in (1, 2):
            bus.publish("device.wrench.w1.result", {"id": n, "pset": 1, "ok": True},
                        source="wrench:w1")
        assert (await _until(ws, "step_advance"))["step_index"] == 2
        plc.set_value(PRESENT, True)  # the part arrives: the PLC actor sees the input
        assert (await _until(ws, "step_advance"))["step_index"] == 3
        assert (await _until(ws, "step_advance"))["step_index"] == 4  # lamp written, read back
        bus.publish("vision.cam1.prediction", {"label": "cover", "confidence": 0.97,
                                                "frame_id": "fr-1"}, source="camera")
        prediction = await _until(ws, "prediction")
        assert prediction["label"] == "cover" and prediction["assembly_record_id"] == record
        assert (await _until(ws, "step_advance"))["step_index"] == 5
        scan(bus, "C9999")
        feedback = await _until(ws, "feedback")
        assert "not the captured part" in feedback["reason"]  # the wrong part: no advance
        scan(bus, "C1234")
        assert (await _until(ws, "step_advance"))["step_index"] == 6
        r = await client.post("/api/v1/coaching/confirm", headers=auth, json={})
        assert r.status_code == 200
        done = await _until(ws, "assembly_complete")
        assert (done["outcome"], done["released"], done["assembly_record_id"]) == (
            "ok", True, record)

    await eventually(lambda: _released(plc))
    detail = await _json(await client.get(f"/api/v1/assembly-records/{record}", headers=auth))
    assert (detail["outcome"], detail["work_order"], detail["part_serial"]) == ("ok", "WO-9",
                                                                                "P-77")
    assert [s["name"] for s in detail["steps"]] == [s["name"] for s in STEPS]
    assert json.loads(detail["steps"][1]["evidence"]) == ["1", "2"]
    report = await client.get(f"/api/v1/assembly-records/{record}/report", headers=auth)
    page = (await report.get_data()).decode()
    assert report.content_type.startswith("text/html")
    assert "Outcome: OK" in page and "Scan contactor" in page and "WO-9" in page
    metrics = await _json(await client.get(f"/api/v1/assembly-records/metrics?assembly_id="
                                           f"{assembly}", headers=auth))
    assert metrics["records"] == 1 and metrics["first_pass_yield"] == 1.0


def scan(bus: Any, code: str) -> None:
    """A read of the station's hand scanner, as its actor publishes it."""
    bus.publish("device.scanner.hand.read", {"code": code, "role": "COACHING"},
                source="scanner:hand")


async def _released(plc: ModbusPlcSimulator) -> bool:
    return plc.get_value(RELEASE) is True


async def test_rest_commands_refuse_what_does_not_fit(client: Any, station: Station) -> None:
    auth = await admin(client, station)
    r = await client.post("/api/v1/coaching/pause", headers=auth, json={})
    assert r.status_code == 409 and "nothing to pause" in (await _json(r))["detail"]
    r = await client.post("/api/v1/coaching/start", headers=auth, json={"assembly_id": 42})
    assert r.status_code == 409 and "no assembly 42" in (await _json(r))["detail"]
    assembly = await build(client, auth, STEPS[:1])
    r = await client.post("/api/v1/coaching/start", headers=auth,
                          json={"assembly_id": assembly})
    assert r.status_code == 409 and "not published" in (await _json(r))["detail"]
    r = await client.post("/api/v1/coaching/start", headers=auth,
                          json={"assembly_id": assembly, "bogus": 1})
    assert r.status_code == 422
    state = await _json(await client.get("/api/v1/coaching", headers=auth))
    assert state["phase"] == "idle" and state["assembly_record_id"] is None


async def test_an_operator_logs_in_by_badge_or_password_and_owns_the_next_session(
        client: Any, station: Station) -> None:
    auth = await admin(client, station)
    r = await client.post("/api/v1/operators", headers=auth, json={
        "first_name": "Ana", "last_name": "Ruiz", "rfid": "04A1B2C3", "password": "torque-42x"})
    assert r.status_code == 201, await r.get_data()
    ana = (await _json(r))["id"]
    scan(station.runtime.bus, "04A1B2C3")  # the badge on the hand scanner, between sessions

    async def logged_in() -> Any:
        view = await _json(await client.get("/api/v1/coaching", headers=auth))
        return view["operator_id"] == ana and view

    view = await eventually(logged_in)
    assert view["operator_name"] == "Ana Ruiz" and view["phase"] == "idle"
    assembly = await build(client, auth, STEPS[-1:])
    await client.post(f"/api/v1/assemblies/{assembly}/publish", headers=auth, json={})
    started = await _json(await client.post("/api/v1/coaching/start", headers=auth,
                                            json={"assembly_id": assembly}))
    record = await _json(await client.get(
        f"/api/v1/assembly-records/{started['assembly_record_id']}", headers=auth))
    assert record["operator_id"] == ana
    assert (await _json(await client.get(f"/api/v1/operators/{ana}", headers=auth))
            )["num_records"] == 1
    await client.post("/api/v1/coaching/abort", headers=auth, json={})

    wrong = await client.post("/api/v1/coaching/operator", headers=auth, json={
        "first_name": "Ana", "last_name": "Ruiz", "password": "nope-nope"})
    assert wrong.status_code == 401
    both = await client.post("/api/v1/coaching/operator", headers=auth, json={
        "rfid": "04A1B2C3", "first_name": "Ana"})
    assert both.status_code == 422
    out = await client.delete("/api/v1/coaching/operator", headers=auth)
    assert (await _json(out))["operator_id"] is None
    r = await client.post("/api/v1/coaching/operator", headers=auth, json={
        "first_name": "ana", "last_name": "ruiz", "password": "torque-42x"})
    assert r.status_code == 200 and (await _json(r))["operator_id"] == ana
