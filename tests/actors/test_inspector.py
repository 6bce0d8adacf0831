"""The inspector actor on real OpenVINO models and a real store: uploads and camera frames
decided, stored, published; hot swap and rollback; continuous mode; batch jobs; alerts."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import msgspec
import numpy as np
import pykka
import pytest

from actors.bus import Event
from actors.health import HealthState
from actors.inspector import InspectorActor
from actors.inspector_messages import (
    AcknowledgeInspectionAlert,
    BenchmarkModel,
    CancelBatchJob,
    CreateBatchJob,
    DeleteInspection,
    DeployModel,
    GetInspectionImage,
    ImportModel,
    InspectCamera,
    InspectImage,
    LoadOpenVinoModel,
    ModelRefused,
    NoModel,
    OpenVinoStatus,
    RollbackModel,
    StartBatchJob,
    Unavailable,
)
from actors.runtime import Runtime, call
from actors.store import StoreActor
from controller.clock import VirtualClock
from controller.inspector_config import InspectorConfig
from drivers.vision.frames import Frame
from drivers.vision.images import ImageError
from state.connection import open_database
from state.errors import TransitionError
from state.inspection_jobs import get_job
from tests.actors.probe import Probe
from tests.vision_fixtures import COLOURS, SWAPPED, colour_classifier, encoded, halfway, solid
from tests.waiting import wait_for

GREEN, RED, BLUE = COLOURS["screws_tight"], COLOURS["scratch"], COLOURS["missing_screw"]


@pytest.fixture
def database(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    con = open_database(tmp_path / "data" / "takt.duckdb")
    yield con
    pykka.ActorRegistry.stop_all(block=True, timeout=10)  # no cursor may outlive the file
    con.close()


@pytest.fixture
def reader(database: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    cursor = database.cursor()
    yield cursor
    cursor.close()


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("models")
    return {"a": colour_classifier(folder / "a.xml"),
            "b": colour_classifier(folder / "b.xml", SWAPPED)}


@pytest.fixture
def store(runtime: Runtime, database: duckdb.DuckDBPyConnection) -> Any:
    ref = StoreActor.start(runtime, "store", database)
    runtime.directory.set("store", ref)
    return ref


def start(runtime: Runtime, database: duckdb.DuckDBPyConnection, **config: Any) -> Any:
    ref = InspectorActor.start(runtime, "inspector", InspectorConfig(**config), database,
                               station_id="t")
    runtime.directory.set("inspector", ref)
    call(runtime, ref, OpenVinoStatus(), timeout=60)  # answered once started
    return ref


def watch(runtime: Runtime, *patterns: str) -> Any:
    probe = Probe.start(runtime, "watch")
    runtime.bus.subscribe_actor(list(patterns), probe)
    return probe


def events(probe: Any, topic: str) -> list[Event]:
    return [e for e in probe.proxy().events.get() if e.topic == topic]


def count(reader: duckdb.DuckDBPyConnection, table: str) -> int:
    return int(reader.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])


def inspect(runtime: Runtime, ref: Any, image: np.ndarray, suffix: str = ".png",
            **kw: Any) -> Any:
    return call(runtime, ref, InspectImage(data=encoded(image, suffix), **kw), timeout=30)


def test_an_upload_is_decided_stored_published_and_answered(
        runtime: Runtime, database: duckdb.DuckDBPyConnection,
        reader: duckdb.DuckDBPyConnection, store: Any, models: dict[str, Path],
        tmp_path: Path) -> None:
    probe = watch(runtime, "inspection.*")
    ref = start(runtime, database, model=str(models["a"]))
    good = inspect(runtime, ref, solid(GREEN), part_id="P-1")
    assert (good.decision, good.label, good.objects_found) == ("pass", "screws_tight", 0)
    assert good.confidence > 0.99 and good.part_id == "P-1" and good.station_id == "t"
    assert good.model == "a v1" and good.image_url is None  # keep_images=uncertain: no pass
    assert good.detections[0].class_name == "screws_tight"
    bad = inspect(runtime, ref, solid(RED), suffix=".bmp")
    assert (bad.decision, bad.label, bad.objects_found) == ("fail", "scratch", 1)
    unsure = inspect(runtime, ref, halfway(GREEN, RED))
    assert unsure.decision == "uncertain" and 0.4 < unsure.confidence < 0.6

    rows = reader.execute("SELECT id::VARCHAR, decision::VARCHAR, label, source::VARCHAR, "
                          "image_ref FROM inspections ORDER BY at_us, id").fetchall()
    assert {r[0]: (r[1], r[3]) for r in rows} == {
        good.id: ("pass", "upload"), bad.id: ("fail", "upload"),
        unsure.id: ("uncertain", "upload")}
    assert count(reader, "detections") == 3
    # The failed one is kept byte for byte in its own format; the uncertain one is queued.
    kept = {r[0]: r[4] for r in rows}
    assert kept[good.id] is None
    data_dir = tmp_path / "data"
    assert (data_dir / kept[bad.id]).read_bytes() == encoded(solid(RED), ".bmp")
    image = call(runtime, ref, GetInspectionImage(id=bad.id))
    assert image.media_type == "image/bmp" and image.data == encoded(solid(RED), ".bmp")
    assert reader.execute("SELECT inspection_id::VARCHAR, status FROM active_learning"
                          ).fetchall() == [(unsure.id, "pending")]

    assert runtime.wait_idle(10)
    published = events(probe, "inspection.t.result")
    assert [e.data["id"] for e in published] == [good.id, bad.id, unsure.id]
    assert published[1].data["decision"] == "fail" and not published[1].durable

    assert call(runtime, ref, DeleteInspection(id=bad.id)) is True
    assert not (data_dir / kept[bad.id]).exists()
    assert call(runtime, ref, DeleteInspection(id=bad.id)) is False
    assert count(reader, "inspections") == 2 and count(reader, "detections") == 2


def test_with_no_model_it_is_up_and_says_so(runtime: Runtime,
                                            database: duckdb.DuckDBPyConnection,
                                            reader: duckdb.DuckDBPyConnection,
                                            store: Any) -> None:
    ref = start(runtime, database)
    assert runtime.health.state("inspector") == HealthState.UP
    with pytest.raises(NoModel, match="no model is deployed"):
        inspect(runtime, ref, solid(GREEN))
    assert count(reader, "inspections") == 0


def test_bad_bytes_change_nothing(runtime: Runtime, database: duckdb.DuckDBPyConnection,
                                  reader: duckdb.DuckDBPyConnection, store: Any,
                                  models: dict[str, Path], tmp_path: Path) -> None:
    ref = start(runtime, database, model=str(models["a"]), keep_images="all")
    png = encoded(solid(RED))
    for data, reason in ((b"", "empty"), (b"%PDF-1.4 not an image", "unsupported"),
                         (png[: len(png) // 2], "corrupt")):
        with pytest.raises(ImageError) as error:
            call(runtime, ref, InspectImage(data=data))
        assert error.value.reason == reason
    assert count(reader, "inspections") == 0 and count(reader, "detections") == 0
    assert not (tmp_path / "data" / "inspections").exists()
    assert runtime.health.state("inspector") == HealthState.UP


def test_a_missing_model_file_at_start_raises_an_alert_not_a_failure(
        runtime: Runtime, database: duckdb.DuckDBPyConnection,
        reader: duckdb.DuckDBPyConnection, store: Any, tmp_path: Path) -> None:
    ref = start(runtime, database, model=str(tmp_path / "nowhere.xml"))
    assert runtime.health.state("inspector") == HealthState.UP
    with pytest.raises(NoModel):
        inspect(runtime, ref, solid(GREEN))
    assert reader.execute("SELECT kind, severity FROM inspection_alerts").fetchall() == [
        ("model_error", "error")]


def _register(runtime: Runtime, ref: Any, path: Path, name: str) -> Any:
    return call(runtime, ref, ImportModel(path=str(path), name=name), timeout=60)


def test_hot_swap_while_inferences_run_then_rollback(
        runtime: Runtime, database: duckdb.DuckDBPyConnection, store: Any,
        models: dict[str, Path], tmp_path: Path) -> None:
    ref = start(runtime, database, model=str(models["a"]), keep_images="none",
                active_learning=False)
    b = _register(runtime, ref, models["b"], "b")
    assert not b.active and b.labels == list(SWAPPED)
    labels: list[str] = []
    errors: list[BaseException] = []
    swapped = threading.Event()

    def hammer() -> None:
        # Inspections keep coming while the new model compiles and takes over.
        while not swapped.is_set() or labels.count("scratch") < 50:
            try:
                labels.append(inspect(runtime, ref, solid(GREEN)).label)
            except BaseException as exc:  # every one must succeed
                errors.append(exc)
                return

    threads = [threading.Thread(target=hammer) for _ in range(2)]
    for t in threads:
        t.start()
    wait_for(lambda: len(labels) >= 20)
    deployed = call(runtime, ref, DeployModel(id=b.id), timeout=60)
    swapped.set()
    for t in threads:
        t.join(60)
    assert errors == []
    assert deployed.active and deployed.previous_id is not None
    # Green passes on model a and is a scratch on model b; never anything else.
    first_b = labels.index("scratch")
    assert set(labels[:first_b]) == {"screws_tight"}
    assert set(labels[first_b:]) == {"scratch"} and len(labels) - first_b >= 50

    back = call(runtime, ref, RollbackModel(id=b.id), timeout=60)
    assert back.id == deployed.previous_id and back.active
    assert inspect(runtime, ref, solid(GREEN)).model == "a v1"
    with pytest.raises(TransitionError):
        call(runtime, ref, RollbackModel(id=b.id), timeout=60)  # b is no longer deployed

    # A model whose file went missing cannot be deployed, and the deployed one still serves.
    gone = tmp_path / "gone.xml"
    colour_classifier(gone, SWAPPED)
    c = _register(runtime, ref, gone, "c")
    gone.unlink()
    with pytest.raises(ModelRefused, match="no model file"):
        call(runtime, ref, DeployModel(id=c.id), timeout=60)
    corrupt = tmp_path / "corrupt.xml"
    corrupt.write_text("<net>not really</net>")
    with pytest.raises(ModelRefused):
        _register(runtime, ref, corrupt, "d")
    assert inspect(runtime, ref, solid(GREEN)).model == "a v1"


def _frame(camera: str, seq: int, image: np.ndarray, at_us: int) -> Frame:
    image = image.copy()
    image.flags.writeable = False
    return Frame(camera=camera, seq=seq, at_us=at_us, image=image)


def test_continuous_mode_publishes_predictions_and_stores_none(
        runtime: Runtime, vclock: VirtualClock, database: duckdb.DuckDBPyConnection,
        reader: duckdb.DuckDBPyConnection, store: Any, models: dict[str, Path]) -> None:
    probe = watch(runtime, "vision.*")
    ref = start(runtime, database, model=str(models["a"]), camera="cam1", requests=1)
    slot = runtime.frames.slot("cam1")
    colours = [GREEN, RED, BLUE]

    def stream(first: int, last: int) -> dict[str, int]:
        for seq in range(first, last + 1):
            slot.put(_frame("cam1", seq, solid(colours[seq % 3]), vclock.now_us()))
            vclock.advance(0.001)
        return wait_for(lambda: (s := call(runtime, ref, OpenVinoStatus(), timeout=30).stream)
                        ["submitted"] == s["published"] + s["failed"] and s)

    counts = stream(1, 60)
    assert counts["frames"] == 60
    assert counts["submitted"] + counts["dropped_busy"] == 60  # every frame accounted for
    assert counts["submitted"] >= 1 and counts["errors"] == counts["failed"] == 0
    published = events(probe, "vision.cam1.prediction")
    assert len(published) == counts["published"]
    expected = {"screws_tight": "pass", "scratch": "fail", "missing_screw": "fail"}
    for e in published:
        seq = int(e.data["frame_id"].split(":")[1])
        assert e.data["label"] == list(expected)[[GREEN, RED, BLUE].index(colours[seq % 3])]
        assert e.data["decision"] == expected[e.data["label"]]
        assert e.data["model"] == "a v1" and e.data["latency_ms"] >= 0
    assert count(reader, "inspections") == 0

    # Hot swap while frames stream: nothing fails, and the predictions move to model b.
    b = _register(runtime, ref, models["b"], "b")
    swapping = threading.Thread(target=lambda: call(runtime, ref, DeployModel(id=b.id),
                                                    timeout=60))
    swapping.start()
    seq = 61
    while swapping.is_alive():
        stream(seq, seq + 9)
        seq += 10
    swapping.join()
    counts = stream(seq, seq + 29)
    assert counts["errors"] == counts["failed"] == 0
    models_seen = [e.data["model"] for e in events(probe, "vision.cam1.prediction")]
    switch = models_seen.index("b v1")
    assert set(models_seen[:switch]) == {"a v1"} and set(models_seen[switch:]) == {"b v1"}


def test_stream_fps_limits_what_is_published(runtime: Runtime, vclock: VirtualClock,
                                             database: duckdb.DuckDBPyConnection,
                                             store: Any, models: dict[str, Path]) -> None:
    probe = watch(runtime, "vision.*")
    ref = start(runtime, database, model=str(models["a"]), camera="cam1", stream_fps=10)
    slot = runtime.frames.slot("cam1")
    for seq in range(1, 31):  # one second of 30 fps
        slot.put(_frame("cam1", seq, solid(GREEN), vclock.now_us()))
        vclock.advance(1 / 30)
        wait_for(lambda seq=seq: call(runtime, ref, OpenVinoStatus(), timeout=30)
                 .stream["published"] + call(runtime, ref, OpenVinoStatus(), timeout=30)
                 .stream["rate_skipped"] >= seq)
    assert 9 <= len(events(probe, "vision.cam1.prediction")) <= 11


def test_camera_inspection_needs_a_frame_and_a_live_camera(
        runtime: Runtime, vclock: VirtualClock, database: duckdb.DuckDBPyConnection,
        reader: duckdb.DuckDBPyConnection, store: Any, models: dict[str, Path]) -> None:
    ref = start(runtime, database, model=str(models["a"]), camera="cam1", keep_images="all")
    with pytest.raises(Unavailable, match="no frame yet"):
        call(runtime, ref, InspectCamera(), timeout=30)
    runtime.frames.slot("cam1").put(_frame("cam1", 1, solid(RED), vclock.now_us()))
    view = call(runtime, ref, InspectCamera(part_id="P-9"), timeout=30)
    assert (view.decision, view.source, view.camera, view.part_id) == (
        "fail", "camera", "cam1", "P-9")
    assert view.image_url is not None
    image = call(runtime, ref, GetInspectionImage(id=view.id))
    assert image.media_type == "image/jpeg"
    runtime.health.register("camera:cam1")
    runtime.health.set_state("camera:cam1", HealthState.DOWN, "link lost")
    with pytest.raises(Unavailable, match="DOWN: link lost"):
        call(runtime, ref, InspectCamera(), timeout=30)
    # The camera check raises one alert for it, not one per check.
    for _ in range(3):
        vclock.advance(2.5)
        assert runtime.wait_idle(10)
    assert reader.execute("SELECT kind FROM inspection_alerts").fetchall() == [
        ("camera_error",)]
    assert count(reader, "inspections") == 1


def test_consecutive_fails_raise_one_alert_which_is_acknowledged_and_cleared(
        runtime: Runtime, database: duckdb.DuckDBPyConnection,
        reader: duckdb.DuckDBPyConnection, store: Any, models: dict[str, Path]) -> None:
    probe = watch(runtime, "inspection.*")
    ref = start(runtime, database, model=str(models["a"]), consecutive_fails=3,
                keep_images="none")
    for _ in range(6):
        inspect(runtime, ref, solid(RED))
    assert runtime.wait_idle(10)
    alerts = reader.execute("SELECT id, kind, severity, cleared_us FROM inspection_alerts"
                            ).fetchall()
    assert [a[1:] for a in alerts] == [("consecutive_fails", "error", None)]
    done = call(runtime, ref, AcknowledgeInspectionAlert(id=alerts[0][0], by="eng"))
    assert done.acknowledged and done.acknowledged_by == "eng"
    with pytest.raises(TransitionError):
        call(runtime, ref, AcknowledgeInspectionAlert(id=alerts[0][0], by="eng"))
    inspect(runtime, ref, solid(GREEN))
    assert runtime.wait_idle(10)
    assert reader.execute("SELECT count(*) FROM inspection_alerts WHERE cleared_us IS NOT NULL"
                          ).fetchall() == [(1,)]
    raised = [e for e in events(probe, "inspection.t.alert") if e.data.get("severity")]
    assert len(raised) == 2  # raised, then acknowledged; never once per fail


def _folder(path: Path, n: int, broken: int = 0) -> Path:
    path.mkdir(parents=True)
    for i in range(n):
        (path / f"img{i:04d}.png").write_bytes(encoded(solid((GREEN, RED)[i % 2], (16, 16))))
    for i in range(broken):
        (path / f"broken{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (path / "notes.txt").write_text("not matched by *.png")
    return path


def test_batch_job_runs_counts_and_is_cancelled(
        runtime: Runtime, database: duckdb.DuckDBPyConnection,
        reader: duckdb.DuckDBPyConnection, store: Any, models: dict[str, Path],
        tmp_path: Path) -> None:
    ref = start(runtime, database, model=str(models["a"]), keep_images="none")
    with pytest.raises(ValueError, match="not an existing folder"):
        call(runtime, ref, CreateBatchJob(name="x", input_dir=str(tmp_path / "nope")))
    small = _folder(tmp_path / "data" / "shift_a", 20, broken=2)
    job = call(runtime, ref, CreateBatchJob(name="Shift A", input_dir="shift_a",
                                            file_pattern="*.png"))
    assert job.status == "pending" and job.input_dir == str(small)
    started = call(runtime, ref, StartBatchJob(id=job.id))
    assert (started.status, started.total) == ("running", 22)
    done = wait_for(lambda: (j := get_job(reader, job.id)) and j.status == "completed" and j)
    assert (done.done, done.failed) == (20, 2)
    assert reader.execute("SELECT decision::VARCHAR, count(*) FROM inspections WHERE "
                          "source = 'batch' GROUP BY ALL ORDER BY 1").fetchall() == [
        ("fail", 10), ("pass", 10)]
    with pytest.raises(TransitionError):
        call(runtime, ref, StartBatchJob(id=job.id))

    big = _folder(tmp_path / "big", 3000)
    long_job = call(runtime, ref, CreateBatchJob(name="big", input_dir=str(big),
                                                 file_pattern="*.png"))
    call(runtime, ref, StartBatchJob(id=long_job.id))
    wait_for(lambda: get_job(reader, long_job.id).done > 0)  # type: ignore[union-attr]
    cancelled = call(runtime, ref, CancelBatchJob(id=long_job.id), timeout=30)
    assert cancelled.status == "cancelled" and 0 < cancelled.done < 3000
    stored = reader.execute("SELECT count(*) FROM inspections WHERE source = 'batch'"
                            ).fetchall()[0][0]
    assert stored == 20 + cancelled.done  # what it counted is what it wrote

    pending = call(runtime, ref, CreateBatchJob(name="later", input_dir=str(big)))
    assert call(runtime, ref, CancelBatchJob(id=pending.id)).status == "cancelled"


def test_openvino_status_load_and_benchmark(runtime: Runtime,
                                            database: duckdb.DuckDBPyConnection, store: Any,
                                            models: dict[str, Path]) -> None:
    ref = start(runtime, database, model=str(models["a"]))
    status = call(runtime, ref, OpenVinoStatus(), timeout=30)
    assert status.available and "CPU" in status.devices and status.precision == "f32"
    assert status.deployed is not None and status.deployed["name"] == "a"
    loaded = call(runtime, ref, LoadOpenVinoModel(model_key="other",
                                                  model_path=str(models["b"])), timeout=60)
    assert loaded.labels == list(SWAPPED) and loaded.input_hw == (32, 32)
    result = call(runtime, ref, BenchmarkModel(model_key="other", iterations=20), timeout=60)
    assert result.iterations == 20 and 0 < result.ov_p50_ms <= result.ov_p99_ms
    assert result.throughput_fps > 0 and result.ort_mean_ms is None
    deployed = call(runtime, ref, BenchmarkModel(model_key="deployed", iterations=5),
                    timeout=60)
    assert deployed.model_key == "deployed"
    assert [m.key for m in call(runtime, ref, OpenVinoStatus(), timeout=30).loaded_models] == [
        "other"]
    assert msgspec.to_builtins(result)["ort_mean_ms"] is None
