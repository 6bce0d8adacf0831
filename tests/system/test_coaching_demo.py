"""Coaching on the demo station as `takt run` serves it: an HMI starts a session over
/ws/coaching and follows the virtual operator through the whole Contactor Installation on the
demo's simulated devices (hand scanner, nutrunner, PLC, and the pylon camera emulator whose
frames the station's model and OCR read); the record, its step records, the QA report; and a
station killed mid-step that resumes the record at the same step."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import trio
from trio_websocket import open_websocket_url

from sim.assemblies import DEMO_CONTACTOR
from tests.system.procs import NO_CAMERA, demo_config, start_takt

STEPS = len(DEMO_CONTACTOR.steps)
# A quick operator and a line that leaves the coaching alone; the ML and OCR steps are done
# in front of the emulated camera.
FAST = {r"operator = true": "operator = true\noperator_pace = 0.1",
        r"robot = true": "robot = false"}


def deployed(model: Path) -> dict[str, str]:
    """The station deploys `model` at start (`[inspector] model`) instead of training its own
    first: the model the demo trains, trained once for the run (tests/conftest.py). That the
    demo trains and deploys one itself is tests/system/test_demo_station.py's to show."""
    return {r"\[inspector\]": f"[inspector]\nmodel = {json.dumps(str(model))}"}


def _client(port: int, data: Path) -> httpx.Client:
    password = (data / "admin-password").read_text().strip()
    base = f"http://127.0.0.1:{port}"
    token = httpx.post(f"{base}/api/v1/auth/login",
                       json={"username": "admin", "password": password}).json()["access_token"]
    return httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=10)


def _eventually(check: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)
    return result


def _assembly_id(http: httpx.Client) -> int:
    coachable = _eventually(lambda: http.get("/api/v1/assembly-revisions/coachable").json())
    return next(a["id"] for a in coachable if a["name"] == DEMO_CONTACTOR.name)  # type: ignore[no-any-return]


async def _hmi(port: int, token: str, assembly_id: int, http: httpx.Client) -> dict[str, Any]:
    """Start a session over /ws/coaching and follow it to its end, as an HMI does.

    The virtual operator starts sessions of its own when the station is idle; the HMI aborts
    whatever runs and starts its own, again if the operator got in first (a refused start).
    """
    start = json.dumps({"start": {"assembly_id": assembly_id, "work_order": "WO-SYS",
                                  "part_serial": "CT-SYS"}})
    async with open_websocket_url(f"ws://127.0.0.1:{port}/ws/coaching?token={token}") as ws:
        record: int | None = None
        advanced: list[int] = []
        first = True
        with trio.fail_after(120):
            while True:
                message = json.loads(await ws.get_message())
                msg = message["msg"]
                if first or message["status"] == "error":  # the greeting, or a refused start
                    first = False
                    if message["status"] == "error":
                        assert "active" in msg["detail"], msg
                    if msg.get("phase", "busy") not in ("idle", "complete", "aborted"):
                        http.post("/api/v1/coaching/abort", json={"reason": "HMI takes over"})
                    await ws.send_message(start)
                    record, advanced = None, []
                elif msg.get("type") == "step_advance" and msg.get("started"):
                    record, advanced = msg["assembly_record_id"], [0]
                elif msg.get("type") == "step_advance" and msg["assembly_record_id"] == record:
                    advanced.append(msg["step_index"])
                elif msg.get("type") == "assembly_complete" and \
                        msg["assembly_record_id"] == record:
                    return {**msg, "advanced": advanced}


def test_an_hmi_follows_a_whole_assembly_coached_on_the_demo_devices(
        tmp_path: Path, demo_model_file: Path) -> None:
    config, ports = demo_config(tmp_path, FAST | deployed(demo_model_file))
    takt = start_takt(config, tmp_path / "data", ports[8080])
    try:
        http = _client(ports[8080], tmp_path / "data")
        token = http.headers["Authorization"].removeprefix("Bearer ")
        assembly = _assembly_id(http)
        done = trio.run(_hmi, ports[8080], token, assembly, http)
        assert done["advanced"] == list(range(STEPS))
        record = http.get(f"/api/v1/assembly-records/{done['assembly_record_id']}").json()
        assert record["outcome"] == done["outcome"] and record["outcome"] in ("ok", "nok")
        assert (record["work_order"], record["part_serial"]) == ("WO-SYS", "CT-SYS")
        steps = record["steps"]
        assert [s["step_index"] for s in steps] == list(range(STEPS)) or any(
            s["reworked"] for s in steps)
        assert all(s["ended_us"] and s["cycle_s"] is not None for s in steps)
        tightened = json.loads(steps[5]["evidence"])
        assert len([x for x in tightened if x.isdigit()]) >= 4  # stored tightening ids
        # The ML step saw the camera's frames through the model; the OCR steps read the label
        # the camera saw: the rating, the coil voltage, and the serial scanned at step 0.
        placed = json.loads(steps[1]["evidence"])
        assert placed and all(e.startswith("bench:") for e in placed), placed
        serial = json.loads(steps[0]["evidence"])[-1]
        assert json.loads(steps[2]["evidence"]) == ["32A"]
        assert json.loads(steps[3]["evidence"]) == ["24V DC"]
        assert json.loads(steps[9]["evidence"]) == [serial]
        assert record["released"] == (record["outcome"] == "ok")
        # Every coached step is a step event of machine 1, the station (seed 004).
        days = http.get("/api/v1/step_events", params={"machine_ids": "1"}).json()["data"]
        assert sum(d["events_count"] for d in days) >= STEPS
        assert {(d["machine_id"], d["machine"]) for d in days} == {(1, "Demo station")}
        report = http.get(f"/api/v1/assembly-records/{record['id']}/report")
        assert f"Outcome: {record['outcome'].upper()}" in report.text
        assert "Tighten the terminal screws" in report.text
    finally:
        assert takt.stop(signal.SIGINT) == 0
    assert "Traceback" not in (takt.p.stderr.read() if takt.p.stderr else "")


def test_a_station_killed_mid_step_resumes_the_record_at_the_same_step(tmp_path: Path) -> None:
    config, ports = demo_config(tmp_path, FAST | NO_CAMERA)
    data = tmp_path / "data"
    takt = start_takt(config, data, ports[8080])
    http = _client(ports[8080], data)
    view = _eventually(lambda: (v := http.get("/api/v1/coaching").json())["phase"] ==
                       "step_active" and (v["step_index"] or 0) >= 2 and v)
    # Killed once the step's start is on disk (its messages go out a few ms before).
    stored = _eventually(lambda: (r := http.get(
        f"/api/v1/assembly-records/{view['assembly_record_id']}").json())["current_step"] >=
        view["step_index"] and r)
    takt.stop(signal.SIGKILL)  # no goodbye: the power is cut mid-step
    view = {**view, "step_index": stored["current_step"]}

    # Start again without the virtual operator, so the step stays where it was.
    text = config.read_text().replace("operator = true", "operator = false")
    config.write_text(text)
    again = start_takt(config, data, ports[8080])
    try:
        http = _client(ports[8080], data)
        resumed = http.get("/api/v1/coaching").json()
        assert resumed["phase"] == "step_active"
        assert resumed["assembly_record_id"] == view["assembly_record_id"]
        assert resumed["step_index"] >= view["step_index"]  # the step it was in when killed
        record = http.get(f"/api/v1/assembly-records/{view['assembly_record_id']}").json()
        assert record["ended_us"] is None and record["current_step"] == resumed["step_index"]
        open_steps = [s for s in record["steps"] if s["ended_us"] is None]
        assert [s["step_index"] for s in open_steps] == [resumed["step_index"]]
    finally:
        assert again.stop(signal.SIGINT) == 0
