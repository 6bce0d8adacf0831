"""The demo station as `takt run` serves it, met by the clients a line uses: a Modbus TCP
client and an OPC-UA client on Takt's own servers, the REST API and the /ws stream.

The demo config is used as shipped except for its ports, which are moved to free ones so
the test never collides with a demo someone is running.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import trio
from asyncua import ua
from asyncua.sync import Client as OpcuaClient
from pymodbus.client import ModbusTcpClient
from trio_websocket import open_websocket_url

from drivers.modbus.codec import decode, make_spec
from tests.system.procs import Proc, demo_config, start_takt

HEARTBEAT = make_spec("input_register", 21, "uint16")
SYSTEM_STATUS = make_spec("input_register", 18, "uint16")


class Demo:
    def __init__(self, takt: Proc, ports: dict[int, int], password: str) -> None:
        self.takt = takt
        self.ports = ports  # the demo's own port -> the one this run uses
        self.base = f"http://127.0.0.1:{ports[8080]}"
        self.http = httpx.Client(base_url=self.base, timeout=10)
        token = self.http.post("/api/v1/auth/login", json={
            "username": "admin", "password": password}).json()["access_token"]
        self.http.headers["Authorization"] = f"Bearer {token}"

    def get(self, path: str) -> Any:
        response = self.http.get(path)
        assert response.status_code == 200, response.text
        return response.json()


def eventually(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    tmp = tmp_path_factory.mktemp("demo")
    # The line as shipped, only faster: an item every 0.25 s, and a batch of 3 items.
    config, ports = demo_config(tmp, {r"scanner_period_s = [0-9.]+": "scanner_period_s = 0.25",
                                      r"auto_batch = \d+": "auto_batch = 3"})
    takt = start_takt(config, tmp / "data", ports[8080])
    running = Demo(takt, ports, (tmp / "data" / "admin-password").read_text().strip())
    yield running
    running.http.close()
    assert takt.stop(signal.SIGINT) == 0
    assert takt.p.stderr is not None
    log = takt.p.stderr.read()
    assert "Traceback" not in log, log[-3000:]


def test_both_plcs_come_up_with_live_signals(demo: Demo) -> None:
    def up() -> Any:
        plcs = {p["name"]: p for p in demo.get("/api/v1/plcs")}
        return all(p["state"] == "UP" for p in plcs.values()) and plcs

    plcs = eventually(up)
    assert plcs["cell"]["info"]["signals"]["takt_heartbeat"]["value"] is not None

    def serial_number() -> str:  # the OPC-UA PLC program brings a part every 2 s
        cell = {p["name"]: p for p in demo.get("/api/v1/plcs")}["cell"]
        return str(cell["info"]["signals"]["serial_number"]["value"] or "")

    assert eventually(serial_number).startswith("SN")
    health = demo.get("/api/v1/plcs/cell/health")
    assert health["info"]["heartbeat"]["in"] is not None


def test_a_plc_reads_station_state_and_writes_an_input_over_modbus(demo: Demo) -> None:
    client = ModbusTcpClient("127.0.0.1", port=demo.ports[5020])
    assert client.connect()
    try:
        def registers(spec: Any) -> Any:
            words = client.read_input_registers(spec.address, count=spec.count, device_id=1)
            return decode(spec, words.registers)

        first = registers(HEARTBEAT)
        eventually(lambda: registers(HEARTBEAT) != first, timeout=5)
        assert registers(SYSTEM_STATUS) in (1, 2)  # healthy or degraded
        refused = client.write_register(0, 1, device_id=1)  # station state is read-only
        assert refused.isError()
        before = demo.get("/api/v1/modbus/status")["inputs_published"]
        assert not client.write_coil(0, True, device_id=1).isError()  # PartPresent
        eventually(lambda: demo.get("/api/v1/modbus/status")["inputs_published"] == before + 1)
    finally:
        client.close()


def test_a_scada_reads_station_nodes_and_writes_an_input_over_opcua(demo: Demo) -> None:
    status = eventually(lambda: (s := demo.get("/api/v1/opcua/status"))["running"] and s)
    assert status["nodes"] == ["station/demo", "SystemStatus"]
    with OpcuaClient(status["endpoint"].replace("4840", str(demo.ports[4840]))) as client:
        system = client.get_node("ns=2;s=Stations.demo.SystemStatus").read_value()
        assert system in ("healthy", "degraded")
        beat = client.get_node("ns=2;s=Stations.demo.Heartbeat")
        first = beat.read_value()
        eventually(lambda: beat.read_value() != first, timeout=5)
        client.get_node("ns=2;s=Stations.demo.PartPresent").write_value(True)
        with pytest.raises(ua.UaStatusCodeError):  # station state is read-only
            client.get_node("ns=2;s=Stations.demo.LastDecision").write_value("pass")


async def test_line_codes_are_stored_batched_labelled_and_journaled_live(demo: Demo) -> None:
    """The demo reader's codes: validated, stored, batched by 3, the full batch's label printed
    and confirmed; refusals ejected through the PLC; each step in the journal and on /ws."""
    token = demo.http.headers["Authorization"].removeprefix("Bearer ")
    ws_url = demo.base.replace("http", "ws") + f"/ws?token={token}"
    seen: dict[str, list[dict[str, Any]]] = {"scan_ok": [], "refused": [], "batch": [],
                                              "label": [], "journal": []}
    async with open_websocket_url(ws_url) as ws:
        assert json.loads(await ws.get_message())["type"] == "ready"
        await ws.send_message(json.dumps({"subscribe": ["trace.*", "event.*"]}))
        assert json.loads(await ws.get_message())["type"] == "snapshot"
        with trio.fail_after(30):
            while not (seen["label"] and seen["refused"] and _journaled(seen["journal"])):
                msg = json.loads(await ws.get_message())
                topic, data = msg.get("topic", ""), msg["data"]
                if msg["type"] == "event":
                    seen["journal"].append(data)
                elif topic == "trace.scan.infeed":
                    seen["scan_ok" if data["accepted"] else "refused"].append(data)
                elif topic == "trace.batch.batch" and data["status"] == "complete":
                    seen["batch"].append(data)
                elif topic == "trace.label.batch":
                    seen["label"].append(data)
    label = seen["label"][0]
    assert label["error"] is None and label["printer"] == "labels"
    assert label["identifier"] in {b["identifier"] for b in seen["batch"]}
    assert seen["refused"][0]["eject"] is True and seen["refused"][0]["reason"]
    batch = next(b for b in demo.get("/api/v1/batches?status=complete")["items"]
                 if b["identifier"] == label["identifier"])
    detail = demo.get(f"/api/v1/batches/{batch['id']}")
    assert detail["batch"]["member_count"] == 3
    assert {(c["status"], c["batch_id"], c["source"]) for c in detail["codes"]} == {
        (1, batch["id"], "scanner.infeed")}  # In Batch, from the reader
    assert seen["scan_ok"][0]["valid"] and seen["scan_ok"][0]["code_id"]
    jobs = eventually(lambda: [j for j in demo.get("/api/v1/printers/0/jobs")
                               if j["id"] == label["job"] and j["state"] == "done"])
    assert jobs[0]["template"] == "batch"
    # The refused item was pushed off: Takt wrote the reject coil on the line PLC.
    plc = ModbusTcpClient("127.0.0.1", port=demo.ports[5021])
    assert plc.connect()
    try:
        assert plc.read_coils(10, count=1, device_id=1).bits[0] is True
    finally:
        plc.close()


def _journaled(entries: list[dict[str, Any]]) -> bool:
    """The journal shows a refusal, a completed batch and its label printed."""
    messages = [e["message"] for e in entries]
    return (any(e["category"] == "traceability" and "refused" in e["message"] for e in entries)
            and any("complete (3 items)" in m for m in messages)
            and any(e["category"] == "printer" and " done" in e["message"] for e in entries))


def test_the_ups_goes_to_battery_and_back(demo: Demo) -> None:
    status = eventually(lambda: (s := demo.get("/api/v1/ups/status"))["status"] and s)
    assert status["status"]["state"] == "online" and status["status"]["simulated"]
    r = demo.http.post("/api/v1/ups/simulate", json={"on_battery": True, "battery_percent": 15})
    assert r.status_code == 200 and r.json()["state"] == "low_battery"
    r = demo.http.post("/api/v1/ups/simulate", json={"on_battery": False})
    assert r.json()["state"] == "online"
    entries = eventually(lambda: len(
        items := demo.get("/api/v1/events?category=power")["items"]) >= 2 and items)
    assert [e["severity"] for e in entries[:2]] == ["info", "critical"]


def test_the_robot_runs_errands_and_its_alerts_reach_takt_by_webhook(demo: Demo) -> None:
    status = eventually(lambda: (e := demo.get("/api/v1/robots/runner"))["status"] and e)
    assert status["state"] == "UP" and status["status"]["device"]["serial_number"]
    assert status["status"]["webhook_url"].endswith("/api/v1/robots/runner/alerts")
    # The robot posts to Takt's server itself, over TCP, with the key Takt gave it.
    robot = f"http://127.0.0.1:{demo.ports[8765]}"
    raised = httpx.post(f"{robot}/sim/alerts", timeout=5,
                        json={"severity": 1, "header": "Emergency stop", "body": "e-stop hit"})
    assert raised.status_code == 200
    uuid = raised.json()["data"]["uuid"]
    stored = eventually(lambda: [a for a in demo.get("/api/v1/robots/runner/alerts")
                                 if a["uuid"] == uuid])
    assert stored[0]["severity"] == 1 and stored[0]["via"] in ("stream", "webhook")
    delivered = eventually(lambda: [
        e for e in httpx.get(f"{robot}/logs/connectivity?no_of_logs=50", timeout=5
                             ).json()["data"] if e["connection_status"] == "webhook_delivered"])
    assert delivered  # the webhook answered 2xx: Takt acknowledged it
    entries = eventually(lambda: [e for e in demo.get("/api/v1/events?category=robot")["items"]
                                  if "Emergency stop" in e["message"]])
    assert entries[0]["severity"] == "critical"
    # A goal sent through Takt: the robot leaves its dock and arrives a metre away.
    r = demo.http.post("/api/v1/robots/runner/commands/go_to_location",
                       json={"x": 2.0, "y": 1.0, "yaw": 0.0})
    assert r.status_code == 200, r.text
    moved = eventually(lambda: (s := demo.get("/api/v1/robots/runner")["status"])
                       and s["goal_outcomes"].get("arrived", 0) >= 1 and s, timeout=30.0)
    assert moved["telemetry_copied"] > 0


def test_the_camera_sees_the_fixture_and_the_trained_model_inspects_it(demo: Demo) -> None:
    """The emulated Basler serves what the virtual operator does; the model the demo trained
    at its first start is deployed and inspects the camera's newest frame."""
    import cv2
    import numpy as np

    cameras = eventually(lambda: [c for c in demo.get("/api/v1/cameras") if c["state"] == "UP"])
    assert cameras[0]["name"] == "bench" and cameras[0]["status"]["model"] == "Emulation"
    assert demo.get("/api/v1/cameras/device-user-names") == ["RAP_CAM_01"]
    r = demo.http.get("/api/v1/camera/capture")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    frame = cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_COLOR)
    assert frame.shape == (896, 896, 3)
    models = eventually(lambda: [m for m in demo.get("/api/v1/models") if m["active"]],
                        timeout=90.0)
    assert "scratch" in models[0]["labels"]
    r = demo.http.post("/api/v1/inspect/camera", params={"camera": "bench", "part_id": "P-1"})
    assert r.status_code == 200, r.text
    result = r.json()
    assert result["decision"] in ("pass", "fail", "uncertain") and result["label"]
    stored = demo.get(f"/api/v1/inspect/{result['id']}")
    assert (stored["decision"], stored["part_id"]) == (result["decision"], "P-1")
