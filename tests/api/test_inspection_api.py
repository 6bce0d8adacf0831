"""Seed 001's inspection API on a real station with a real OpenVINO model: uploads and their
bad forms, stored inspections, statistics, trends, CSV, batch jobs, active learning, models,
alerts, OpenVINO and results on /ws."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pykka
import pytest
import trio
from werkzeug.datastructures import FileStorage

from actors.runtime import call
from actors.store import Write
from controller.boot import Station, start_station
from controller.config import parse_config
from drivers.vision.frames import Frame
from state.inspections import InspectionRow, inspection_id
from tests.api import conftest
from tests.api.conftest import bearer, eventually, login
from tests.vision_fixtures import (
    COLOURS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    SWAPPED,
    colour_classifier,
    encoded,
    halfway,
    onnx_colour_classifier,
    solid,
)

GREEN, RED = COLOURS["screws_tight"], COLOURS["scratch"]

STATION = """
[station]
id = "test"
name = "Inspection API test station"

[inspector]
model = "{model}"
camera = "cam1"
consecutive_fails = 3
pass_rate_window = 1000
"""


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("models")
    return {"a": colour_classifier(folder / "a.xml"),
            "b": colour_classifier(folder / "b.xml", SWAPPED)}


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory, models: dict[str, Path]
            ) -> Iterator[Station]:
    """One station for the module (starting one takes a second): each test works on its own
    station_id or counts what it adds."""
    config = parse_config(STATION.format(model=models["a"]), "test.toml")
    st = start_station(config, tmp_path_factory.mktemp("station") / "data")
    yield st
    st.stop()
    pykka.ActorRegistry.stop_all(block=True, timeout=10)


@pytest.fixture(autouse=True)
def _stop_all_actors() -> Iterator[None]:
    """The station outlives each test here (tests/conftest.py would stop its actors)."""
    yield


_tokens: dict[int, dict[str, str]] = {}


async def admin(client: Any, station: Station) -> dict[str, str]:
    """The admin's headers, logged in once per station (a login is an argon2 check)."""
    if id(station) not in _tokens:
        _tokens[id(station)] = await conftest.admin(client, station)
    return _tokens[id(station)]


def upload(data: bytes, filename: str = "x.png", content_type: str = "image/png"
           ) -> dict[str, FileStorage]:
    return {"file": FileStorage(io.BytesIO(data), filename=filename, content_type=content_type)}


async def inspect(client: Any, headers: dict[str, str], image: np.ndarray, *,
                  suffix: str = ".png", **form: str) -> dict[str, Any]:
    response = await client.post("/api/v1/inspect", headers=headers,
                                 files=upload(encoded(image, suffix), f"x{suffix}"), form=form)
    assert response.status_code == 200, await response.get_data()
    return await response.get_json()  # type: ignore[no-any-return]


async def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, await response.get_data()
    assert response.content_type == "application/problem+json"
    doc = await response.get_json()
    assert doc["status"] == status and doc["detail"]
    return doc  # type: ignore[no-any-return]


async def total(client: Any, headers: dict[str, str], **params: str) -> int:
    response = await client.get("/api/v1/inspections", headers=headers,
                                query_string={"limit": "1", **params})
    return (await response.get_json())["total"]  # type: ignore[no-any-return]


async def test_upload_is_inspected_stored_and_read_back(client: Any, station: Station) -> None:
    h = await admin(client, station)
    good = await inspect(client, h, solid(GREEN), part_id="P-1")
    assert {"id", "decision", "confidence", "objects_found", "total_time_ms", "detections",
            "image_url", "label", "model"} <= set(good)
    assert (good["decision"], good["label"], good["station_id"]) == ("pass", "screws_tight",
                                                                    "test")
    assert good["detections"] == [{"class_name": "screws_tight",
                                   "confidence": good["confidence"], "bbox": None,
                                   "area_mm2": None}]
    assert good["model"] == "a v1" and good["image_url"] is None
    bad = await inspect(client, h, solid(RED), suffix=".jpg", station_id="line-2")
    assert (bad["decision"], bad["objects_found"], bad["station_id"]) == ("fail", 1, "line-2")

    stored = await client.get(f"/api/v1/inspect/{bad['id']}", headers=h)
    assert (await stored.get_json()) == bad
    image = await client.get(bad["image_url"], headers=h)
    assert image.status_code == 200 and image.content_type == "image/jpeg"
    assert await image.get_data() == encoded(solid(RED), ".jpg")
    await problem(await client.get(f"/api/v1/inspect/{good['id']}/image",
                                   headers=h), 404)
    await problem(await client.get("/api/v1/inspect/not-a-uuid", headers=h), 404)
    await problem(await client.get(
        "/api/v1/inspect/0190a000-0000-7000-8000-000000000000", headers=h), 404)

    deleted = await client.delete(f"/api/v1/inspect/{bad['id']}", headers=h)
    assert deleted.status_code == 204
    await problem(await client.get(f"/api/v1/inspect/{bad['id']}", headers=h), 404)
    await problem(await client.delete(f"/api/v1/inspect/{bad['id']}", headers=h), 404)
    await problem(await client.get("/api/v1/inspections"), 401)


async def test_bad_uploads_are_problems_and_store_nothing(client: Any, station: Station) -> None:
    h = await admin(client, station)
    before = await total(client, h)
    post = "/api/v1/inspect"
    too_big = b"\xff\xd8\xff" + b"\0" * (20 * 1024 * 1024 + 10)
    doc = await problem(await client.post(post, headers=h, files=upload(too_big, "big.jpg")),
                        413)
    assert "20 MB" in doc["detail"]
    await problem(await client.post(post, headers=h, files=upload(
        b"hello, I am text", "a.txt", "text/plain")), 415)
    await problem(await client.post(post, headers=h, files=upload(
        b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "a.pdf", "application/pdf")), 415)
    await problem(await client.post(post, headers=h, json={"file": "x"}), 415)
    await problem(await client.post(post, headers=h, files=upload(b"", "empty.png")), 400)
    png = encoded(solid(RED))
    await problem(await client.post(post, headers=h, files=upload(png[:-40], "cut.png")), 422)
    await problem(await client.post(post, headers=h, form={"part_id": "x"}), 415)
    await problem(await client.post(post, headers=h, files={"image": upload(png)["file"]}), 400)
    assert await total(client, h) == before
    # Larger than the app's 1 MiB body limit but within 20 MB: accepted on this route only.
    big_bmp = encoded(solid(GREEN, (600, 800)), ".bmp")
    assert len(big_bmp) > 1 << 20
    assert (await inspect(client, h, solid(GREEN, (600, 800)), suffix=".bmp"))["decision"] == (
        "pass")
    assert await total(client, h) == before + 1
    await problem(await client.post("/api/v1/models", headers=h,
                                    json={"path": "x" * 2_000_000, "name": "n"}), 413)


async def test_list_filters_and_limits(client: Any, station: Station) -> None:
    h = await admin(client, station)
    for colour in (GREEN, RED, GREEN):
        await inspect(client, h, solid(colour), station_id="s-list")
    listed = await (await client.get("/api/v1/inspections", headers=h,
                                     query_string={"station_id": "s-list"})).get_json()
    assert listed["total"] == 3 and [i["decision"] for i in listed["inspections"]] == [
        "pass", "fail", "pass"]
    fails = await (await client.get("/api/v1/inspections", headers=h, query_string={
        "station_id": "s-list", "decision": "fail"})).get_json()
    assert [i["decision"] for i in fails["inspections"]] == ["fail"] and fails["total"] == 1
    page = await (await client.get("/api/v1/inspections", headers=h, query_string={
        "station_id": "s-list", "limit": "1", "offset": "1"})).get_json()
    assert page["inspections"][0]["id"] == listed["inspections"][1]["id"]
    for bad in ({"limit": "501"}, {"limit": "0"}, {"offset": "-1"}, {"decision": "maybe"}):
        await problem(await client.get("/api/v1/inspections", headers=h, query_string=bad),
                      400)


async def test_statistics_and_trends_count_what_was_stored(client: Any,
                                                         station: Station) -> None:
    h = await admin(client, station)
    for colour in (GREEN, GREEN, RED, COLOURS["missing_screw"]):
        await inspect(client, h, solid(colour), station_id="s-stats")
    await inspect(client, h, halfway(GREEN, RED), station_id="s-stats")
    await inspect(client, h, solid(RED), station_id="elsewhere")
    stats = await (await client.get("/api/v1/statistics", headers=h,
                                    query_string={"station_id": "s-stats"})).get_json()
    assert (stats["total_inspections"], stats["passed"], stats["failed"],
            stats["uncertain"]) == (5, 2, 2, 1)
    assert stats["pass_rate"] == pytest.approx(0.4)
    assert stats["defect_breakdown"] == {"scratch": 1, "missing_screw": 1}
    assert stats["avg_inspection_time_ms"] > 0
    everything = await (await client.get("/api/v1/statistics", headers=h)).get_json()
    assert everything["total_inspections"] >= 6
    trend = await (await client.get("/api/v1/trends", headers=h, query_string={
        "hours": "3", "station_id": "s-stats"})).get_json()
    assert len(trend["labels"]) == 4 and trend["labels"][-1].endswith(":00:00")
    assert (sum(trend["total"]), sum(trend["passed"]), sum(trend["failed"])) == (5, 2, 2)
    daily = await (await client.get("/api/v1/trends", headers=h, query_string={
        "interval": "day", "hours": "48", "station_id": "s-stats"})).get_json()
    assert sum(daily["total"]) == 5 and daily["labels"][-1].endswith("00:00:00")
    for path, params in (("statistics", {"hours": "0"}), ("statistics", {"hours": "169"}),
                         ("trends", {"interval": "week"}), ("trends", {"hours": "x"})):
        await problem(await client.get(f"/api/v1/{path}", headers=h, query_string=params),
                      400)


async def test_csv_export_streams_every_row(client: Any, station: Station) -> None:
    h = await admin(client, station)
    runtime = station.runtime
    now = runtime.clock.now_us()
    rows = [InspectionRow(id=inspection_id(now + i), station_id="bulk", camera=None,
                          part_id=f"=SUM(A{i})" if i == 7 else f"P{i}", source="batch",
                          decision=("pass", "fail")[i % 2], confidence=0.9, label="screws_tight",
                          objects_found=0, total_time_ms=10.0, inference_ms=5.0, model_id=None,
                          image_ref=None, at_us=now + i) for i in range(4500)]
    await trio.to_thread.run_sync(lambda: call(runtime, runtime.directory.get("store"),
                                               Write(rows=rows), timeout=30))
    response = await client.get("/api/v1/export/csv", headers=h,
                                query_string={"station_id": "bulk"})
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    table = list(csv.DictReader(io.StringIO((await response.get_data()).decode())))
    assert [r["id"] for r in table] == [r.id for r in rows]  # all of them, oldest first
    assert table[7]["part_id"] == "'=SUM(A7)"  # a formula is data, not code
    assert {r["decision"] for r in table} == {"pass", "fail"}


async def test_batch_jobs(client: Any, station: Station) -> None:
    h = await admin(client, station)
    folder = station.data_dir / "shift_a"
    folder.mkdir()
    for i in range(6):
        (folder / f"{i}.png").write_bytes(encoded(solid((GREEN, RED)[i % 2], (16, 16))))
    (folder / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnope")
    await problem(await client.post("/api/v1/batch/jobs", headers=h, json={
        "name": "x", "input_dir": "/does/not/exist"}), 422)
    await problem(await client.post("/api/v1/batch/jobs", headers=h, json={"name": "x"}), 422)
    created = await client.post("/api/v1/batch/jobs", headers=h, json={
        "name": "Shift A", "input_dir": "shift_a", "file_pattern": "*.png"})
    assert created.status_code == 201
    job = await created.get_json()
    started = await (await client.post(f"/api/v1/batch/jobs/{job['id']}/start",
                                       headers=h)).get_json()
    assert started["status"] == "running" and started["total"] == 7

    async def finished() -> Any:
        got = await (await client.get(f"/api/v1/batch/jobs/{job['id']}", headers=h)).get_json()
        return got if got["status"] == "completed" else None

    done = await eventually(finished)
    assert (done["done"], done["failed"]) == (6, 1)
    await problem(await client.post(f"/api/v1/batch/jobs/{job['id']}/start", headers=h), 409)
    listed = await (await client.get("/api/v1/batch/jobs", headers=h)).get_json()
    assert job["id"] in [j["id"] for j in listed]
    other = await (await client.post("/api/v1/batch/jobs", headers=h, json={
        "name": "later", "input_dir": str(folder)})).get_json()
    cancelled = await client.post(f"/api/v1/batch/jobs/{other['id']}/cancel", headers=h)
    assert (await cancelled.get_json())["status"] == "cancelled"
    await problem(await client.get("/api/v1/batch/jobs/nope", headers=h), 404)
    await problem(await client.post("/api/v1/batch/jobs/nope/start", headers=h), 404)


async def test_active_learning_queue_and_annotation(client: Any, station: Station) -> None:
    h = await admin(client, station)
    before = await (await client.get("/api/v1/active-learning/stats", headers=h)).get_json()
    unsure = await inspect(client, h, halfway(GREEN, RED))
    assert unsure["decision"] == "uncertain" and unsure["image_url"]
    stats = await (await client.get("/api/v1/active-learning/stats", headers=h)).get_json()
    assert stats == {**before, "pending": before["pending"] + 1}
    queue = await (await client.get("/api/v1/active-learning/queue", headers=h,
                                    query_string={"limit": "100"})).get_json()
    mine = [q for q in queue if q["inspection_id"] == unsure["id"]]
    assert len(mine) == 1 and mine[0]["image_url"] == unsure["image_url"]
    assert mine[0]["status"] == "pending"
    await problem(await client.post(f"/api/v1/active-learning/annotate/{mine[0]['id']}",
                                    headers=h, json={"annotations": []}), 422)
    done = await client.post(f"/api/v1/active-learning/annotate/{mine[0]['id']}", headers=h,
                             json={"annotations": [{"class_name": "scratch",
                                                    "bbox": [10, 20, 100, 80]}],
                                   "reviewed_by": "operator1"})
    labeled = await done.get_json()
    assert labeled["status"] == "labeled" and labeled["reviewed_by"] == "operator1"
    assert labeled["annotations"] == [{"class_name": "scratch", "bbox": [10, 20, 100, 80]}]
    stats = await (await client.get("/api/v1/active-learning/stats", headers=h)).get_json()
    assert stats == {**before, "labeled": before["labeled"] + 1}
    await problem(await client.post("/api/v1/active-learning/annotate/nope", headers=h,
                                    json={"annotations": [{"class_name": "x"}]}), 404)
    await problem(await client.get("/api/v1/active-learning/queue", headers=h,
                                   query_string={"limit": "0"}), 400)


async def test_models_import_deploy_rollback(client: Any, station: Station,
                                            models: dict[str, Path]) -> None:
    h = await admin(client, station)
    listed = await (await client.get("/api/v1/models", headers=h)).get_json()
    assert [m["name"] for m in listed if m["active"]] == ["a"]
    first = next(m for m in listed if m["active"])
    imported = await client.post("/api/v1/models", headers=h,
                                 json={"path": str(models["b"]), "name": "contactor"})
    assert imported.status_code == 201
    b = await imported.get_json()
    assert (b["version"], b["active"], b["labels"]) == (1, False, list(SWAPPED))
    await problem(await client.post("/api/v1/models", headers=h,
                                    json={"path": "/no/such/model.xml", "name": "x"}), 422)
    await problem(await client.post("/api/v1/models", headers=h,
                                    json={"path": str(models["b"]), "name": "x",
                                          "labels": ["only", "two"]}), 422)
    deployed = await (await client.post(f"/api/v1/models/{b['id']}/deploy",
                                        headers=h)).get_json()
    assert deployed["active"] and deployed["previous_id"] == first["id"]
    assert (await inspect(client, h, solid(GREEN)))["label"] == "scratch"  # model b now
    await problem(await client.post(f"/api/v1/models/{first['id']}/rollback", headers=h), 409)
    back = await (await client.post(f"/api/v1/models/{b['id']}/rollback",
                                    headers=h)).get_json()
    assert back["id"] == first["id"] and back["active"]
    assert (await inspect(client, h, solid(GREEN)))["label"] == "screws_tight"
    await problem(await client.post("/api/v1/models/nope/deploy", headers=h), 404)


async def test_an_onnx_model_trained_elsewhere_is_imported_converted_and_deployed(
        client: Any, station: Station, tmp_path: Path) -> None:
    h = await admin(client, station)
    external = onnx_colour_classifier(tmp_path / "external.onnx")  # no labels inside
    before = await (await client.get("/api/v1/models", headers=h)).get_json()
    await problem(await client.post("/api/v1/models", headers=h,
                                    json={"path": str(external), "name": "ext"}), 422)
    await problem(await client.post("/api/v1/models", headers=h, json={
        "path": str(external), "name": "ext", "labels": list(COLOURS),
        "scale": [1, 0, 1]}), 422)
    short = await problem(await client.post("/api/v1/models", headers=h, json={
        "path": str(external), "name": "ext", "labels": list(COLOURS), "mean": [0.5]}), 422)
    assert [e["field"] for e in short["errors"]] == ["mean"]
    assert await (await client.get("/api/v1/models", headers=h)).get_json() == before

    r = await client.post("/api/v1/models", headers=h, json={
        "path": str(external), "name": "../../ext", "labels": list(COLOURS),
        "mean": list(IMAGENET_MEAN), "scale": list(IMAGENET_STD)})
    assert r.status_code == 201, await r.get_json()
    ext = await r.get_json()
    # The registry keeps its own IR copy, labels and normalisation inside.
    stored = Path(ext["path"])
    assert (ext["kind"], ext["labels"], stored.suffix) == ("onnx", list(COLOURS), ".xml")
    # A name is not a path: the copy stays in the station's folder whatever it is called.
    assert stored.parent == station.data_dir / "models" / "imported"
    assert stored.name.startswith("ext-") and ext["name"] == "../../ext"
    external.unlink()  # the original may go: the copy is what is deployed
    deployed = await (await client.post(f"/api/v1/models/{ext['id']}/deploy",
                                        headers=h)).get_json()
    assert deployed["active"]
    try:
        for label, colour in COLOURS.items():
            result = await inspect(client, h, solid(colour))
            assert (result["label"], result["model_id"]) == (label, ext["id"])
    finally:
        await client.post(f"/api/v1/models/{ext['id']}/rollback", headers=h)


async def test_alerts_are_raised_once_and_acknowledged(client: Any, station: Station) -> None:
    h = await admin(client, station)
    await inspect(client, h, solid(GREEN))  # ends any run of fails an earlier test left
    old = {a["id"] for a in (await (await client.get("/api/v1/inspection-alerts", headers=h)
                                    ).get_json())["alerts"]}
    for _ in range(5):  # consecutive_fails = 3
        await inspect(client, h, solid(RED))

    async def raised() -> Any:
        got = await (await client.get("/api/v1/inspection-alerts", headers=h)).get_json()
        return [a for a in got["alerts"] if a["id"] not in old]

    alerts = await eventually(raised)
    assert [(a["kind"], a["severity"], a["acknowledged"]) for a in alerts] == [
        ("consecutive_fails", "error", False)]
    assert alerts[0]["title"] and alerts[0]["timestamp"].endswith("Z")
    seed_path = await (await client.get("/api/v1/alerts", headers=h,
                                        query_string={"severity": "error"})).get_json()
    assert [a["id"] for a in seed_path["alerts"]] == [alerts[0]["id"]]
    done = await client.post(f"/api/v1/inspection-alerts/{alerts[0]['id']}/acknowledge",
                             headers=h)
    assert (await done.get_json())["acknowledged_by"] == "admin"
    await problem(await client.post(f"/api/v1/alerts/{alerts[0]['id']}/acknowledge",
                                    headers=h), 409)
    await problem(await client.post("/api/v1/inspection-alerts/nope/acknowledge", headers=h),
                  404)
    open_ones = await (await client.get("/api/v1/inspection-alerts", headers=h,
                                        query_string={"acknowledged": "false"})).get_json()
    assert alerts[0]["id"] not in [a["id"] for a in open_ones["alerts"]]
    await problem(await client.get("/api/v1/inspection-alerts", headers=h,
                                   query_string={"severity": "loud"}), 400)


async def test_camera_inspection(client: Any, station: Station) -> None:
    h = await admin(client, station)
    await problem(await client.post("/api/v1/inspect/camera", headers=h), 503)
    image = solid(RED)
    image.flags.writeable = False
    station.runtime.frames.slot("cam1").put(
        Frame(camera="cam1", seq=1, at_us=station.runtime.clock.now_us(), image=image))
    got = await client.post("/api/v1/inspect/camera", headers=h,
                            query_string={"part_id": "P-7"})
    view = await got.get_json()
    assert (view["decision"], view["camera"], view["source"], view["part_id"]) == (
        "fail", "cam1", "camera", "P-7")
    await problem(await client.post("/api/v1/inspect/camera", headers=h,
                                    query_string={"camera": "Bad Name"}), 400)


async def test_openvino_status_load_and_benchmark(client: Any, station: Station,
                                                  models: dict[str, Path]) -> None:
    h = await admin(client, station)
    status = await (await client.get("/api/v1/openvino/status", headers=h)).get_json()
    assert status["available"] and "CPU" in status["devices"] and status["version"]
    assert status["deployed"]["name"] == "a" and status["stream"]["camera"] == "cam1"
    loaded = await client.post("/api/v1/openvino/load", headers=h, json={
        "model_key": "encoder", "model_path": str(models["b"]), "device": "CPU"})
    assert (await loaded.get_json())["status"] == "loaded"
    result = await (await client.post("/api/v1/openvino/benchmark", headers=h, json={
        "model_key": "encoder", "iterations": 10})).get_json()
    assert result["ov_mean_ms"] > 0 and result["ort_mean_ms"] is None and result["note"]
    await problem(await client.post("/api/v1/openvino/benchmark", headers=h, json={
        "model_key": "nope"}), 404)
    await problem(await client.post("/api/v1/openvino/benchmark", headers=h, json={
        "model_key": "encoder", "iterations": 0}), 422)
    await problem(await client.post("/api/v1/openvino/load", headers=h, json={
        "model_key": "x", "model_path": "/nope.onnx"}), 422)


async def test_results_reach_ws_subscribers_of_inspection(client: Any,
                                                          station: Station) -> None:
    h = await admin(client, station)
    token = h["Authorization"].split()[1]
    async with client.websocket(f"/ws?token={token}") as ws:
        with trio.fail_after(10):
            assert json.loads(await ws.receive())["type"] == "ready"
            await ws.send(json.dumps({"subscribe": ["inspection.*"]}))
            while json.loads(await ws.receive())["type"] != "snapshot":
                pass
            view = await inspect(client, h, solid(RED))
            while (msg := json.loads(await ws.receive()))["type"] != "bus" or (
                    msg["topic"] != "inspection.test.result"):
                pass
    assert msg["data"]["id"] == view["id"] and msg["data"]["decision"] == "fail"


async def test_training_registers_a_new_version_from_annotated_images(
        client: Any, station: Station) -> None:
    h = await admin(client, station)
    await problem(await client.post("/api/v1/training/stop", headers=h), 409)
    unsure = await inspect(client, h, halfway(GREEN, RED))
    queue = await (await client.get("/api/v1/active-learning/queue", headers=h,
                                    query_string={"limit": "100"})).get_json()
    entry = next(q for q in queue if q["inspection_id"] == unsure["id"])
    await client.post(f"/api/v1/active-learning/annotate/{entry['id']}", headers=h,
                      json={"annotations": [{"class_name": "scratch"}]})
    started = await client.post("/api/v1/training/start", headers=h, json={
        "model_name": "Contactor retrained", "demo_per_label": 2, "epochs": 5})
    assert started.status_code == 202 and (await started.get_json())["status"] == "running"
    await problem(await client.post("/api/v1/training/start", headers=h,
                                    json={"model_name": "again"}), 409)

    async def finished() -> Any:
        state = await (await client.get("/api/v1/training/status", headers=h)).get_json()
        return state if state["status"] != "running" else None

    state = await eventually(finished, timeout=60)
    assert state["status"] == "completed", state
    assert state["annotated"] >= 1 and state["images"] == state["annotated"] + 14
    assert 0 <= state["metrics"]["loo_accuracy"] <= 1
    models = await (await client.get("/api/v1/models", headers=h)).get_json()
    trained = next(m for m in models if m["id"] == state["model_id"])
    assert (trained["name"], trained["source"], trained["active"]) == (
        "Contactor retrained", "trained", False)
    assert "scratch" in trained["labels"]
    stats = await (await client.get("/api/v1/active-learning/stats", headers=h)).get_json()
    assert stats["trained"] >= 1 and stats["labeled"] == 0
    # The new version deploys and inspects; then the test model serves again.
    deployed = await (await client.post(f"/api/v1/models/{trained['id']}/deploy",
                                        headers=h)).get_json()
    assert deployed["active"]
    assert (await inspect(client, h, solid(GREEN)))["label"] in trained["labels"]
    await client.post(f"/api/v1/models/{trained['id']}/rollback", headers=h)


def _text_frame(text: str) -> np.ndarray:
    frame = np.full((240, 640, 3), 235, np.uint8)
    cv2.putText(frame, text, (40, 140), cv2.FONT_HERSHEY_SIMPLEX, 2.0, (20, 20, 20), 4,
                cv2.LINE_AA)
    return frame


async def test_ocr_reads_an_upload_and_a_camera_frame(client: Any, station: Station) -> None:
    h = await admin(client, station)
    read = await client.post("/api/v1/inspect/ocr", headers=h,
                             files=upload(encoded(_text_frame("CT-123456"))))
    assert read.status_code == 200, await read.get_data()
    body = await read.get_json()
    assert body["text"] == "CT-123456" and body["frame_id"] is None
    assert body["lines"][0]["confidence"] > 0.5 and len(body["lines"][0]["box"]) == 4
    image = _text_frame("32A 24V DC")
    image.flags.writeable = False
    station.runtime.frames.slot("cam1").put(
        Frame(camera="cam1", seq=50, at_us=station.runtime.clock.now_us(), image=image))
    camera = await (await client.post("/api/v1/inspect/ocr", headers=h,
                                      query_string={"camera": "cam1"})).get_json()
    assert camera["text"] == "32A 24V DC" and camera["frame_id"] == "cam1:50"
    _, published = station.runtime.bus.snapshot(["vision.cam1.ocr"])
    assert [(e.data["text"], e.data["frame_id"]) for e in published] == [
        ("32A 24V DC", "cam1:50")]
    await problem(await client.post("/api/v1/inspect/ocr", headers=h), 400)
    await problem(await client.post("/api/v1/inspect/ocr", headers=h,
                                    files=upload(b"not an image", "a.txt", "text/plain")), 415)


async def test_who_may_do_what(client: Any, station: Station) -> None:
    h = await admin(client, station)
    r = await client.post("/api/v1/users", headers=h, json={
        "username": "op1", "password": "Str0ng-pass-xyz", "role": "operator"})
    assert r.status_code == 201
    operator = bearer(await login(client, "op1", "Str0ng-pass-xyz"))
    key = await (await client.post("/api/v1/api-keys", headers=h,
                                   json={"name": "mes-read", "scope": "read"})).get_json()
    reader = bearer(key["key"])
    mine = await inspect(client, operator, solid(GREEN))  # operators inspect
    assert (await client.get("/api/v1/inspections", headers=reader)).status_code == 200
    await problem(await client.post("/api/v1/inspect", headers=reader,
                                    files=upload(encoded(solid(GREEN)))), 403)
    await problem(await client.delete(f"/api/v1/inspect/{mine['id']}", headers=operator), 403)
    await problem(await client.post("/api/v1/models", headers=operator,
                                    json={"path": "x.xml", "name": "x"}), 403)
    await problem(await client.post("/api/v1/training/start", headers=operator,
                                    json={"model_name": "x"}), 403)
    await problem(await client.get("/api/v1/export/csv", headers=reader,
                                   query_string={"decision": "maybe"}), 400)
