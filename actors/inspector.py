"""Inspector actor: runs the station's vision model on uploaded images and camera frames.

A thin shell over the pure decision and alert rules (controller.inspection_rules) and the
store (state.inspections and friends):

- inspect an upload or a camera's newest frame: decode, predict on the deployed model, decide,
  keep the image if asked, write the rows through the store's group commit, publish
  `inspection.<station>.result`, answer once the rows are committed;
- continuous mode (`camera` set): every new frame goes to the model's async infer queue
  (dropped and counted when all requests are busy) and each result is published as
  `vision.<camera>.prediction`; these are not stored;
- model registry with hot swap: a model is compiled on the loader thread while the old one
  serves, then swapped in one step; the old one is closed once its in-flight work is done;
- batch jobs and training run on threads of their own; OCR and benchmarks on the loader.

OpenVINO is imported only when a model or the OCR engine is loaded.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import json
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import msgspec
import numpy as np

from actors.base import handles
from actors.database import DatabaseActor
from actors.health import HealthState
from actors.inspector_messages import (
    AcknowledgeInspectionAlert,
    AnnotateImage,
    BenchmarkModel,
    BenchmarkResult,
    CancelBatchJob,
    CreateBatchJob,
    DeleteInspection,
    DeployModel,
    GetInspectionImage,
    ImportModel,
    InspectCamera,
    InspectImage,
    InspectorBusy,
    InspectorStatus,
    LoadedModel,
    LoadOpenVinoModel,
    ModelRefused,
    NoModel,
    OpenVinoStatus,
    ReadText,
    RollbackModel,
    StartBatchJob,
    StartTraining,
    StopTraining,
    StoredImage,
    TextRead,
    TrainingState,
    TrainingStatus,
    Unavailable,
    inspection_view,
)
from actors.runtime import ActorUnavailable, Reply, Request, Runtime, call, tell
from actors.store import Write
from controller.inspection_rules import (
    AlertChange,
    AlertKind,
    AlertWatch,
    Decision,
    StreamGate,
    area_mm2,
    decide,
    keeps_image,
)
from controller.inspector_config import InspectorConfig
from drivers.vision.frames import Frame
from drivers.vision.images import ImageError, ImageType, decode_image, encode_jpeg
from state.errors import NotFound, TransitionError
from state.inspection_alerts import (
    acknowledge_alert,
    active_alert_kinds,
    clear_alert,
    raise_alert,
)
from state.inspection_jobs import (
    ActiveLearningRow,
    BatchJobRow,
    annotate,
    create_job,
    fail_interrupted_jobs,
    finish_job,
    get_job,
    job_progress,
    labeled_items,
    mark_trained,
    start_job,
)
from state.inspections import (
    DetectionRow,
    InspectionRow,
    StoredInspection,
    delete_inspection,
    get_inspection,
    inspection_id,
)
from state.vision_models import (
    ModelRow,
    active_model,
    deploy_model,
    get_model,
    list_models,
    register_model,
)

if TYPE_CHECKING:
    import openvino as ov

    from drivers.vision.classifier import ClassScores, VisionModel

__all__ = ["InspectorActor"]

IMAGES = "inspections"  # folder of kept images under the data directory
MODELS = "models"  # folder of trained models under the data directory
_BATCH_FLUSH_ROWS = 256
_BATCH_FLUSH_S = 0.5
_CAMERA_CHECK_S = 2.0
_MEDIA = {t.suffix: t.media_type for t in ImageType}


class _Retired(Exception):
    """The deployment was swapped out while a caller reached for it; take the new one."""


class _Deployment:
    """A loaded model and who is using it, so a swap closes it only once nobody is."""

    def __init__(self, model: VisionModel, row: ModelRow | None = None, key: str = "") -> None:
        self.model = model
        self.row = row
        self.key = key
        self._cond = threading.Condition()
        self._users = 0
        self._retired = False

    @property
    def label(self) -> str:
        return f"{self.row.name} v{self.row.version}" if self.row else self.key

    @contextlib.contextmanager
    def lease(self) -> Iterator[VisionModel]:
        with self._cond:
            if self._retired:
                raise _Retired
            self._users += 1
        try:
            yield self.model
        finally:
            with self._cond:
                self._users -= 1
                self._cond.notify_all()

    def retire(self) -> None:
        """Wait for every caller and in-flight inference, then close (any thread but theirs)."""
        with self._cond:
            self._retired = True
            self._cond.wait_for(lambda: self._users == 0)
        self.model.wait_all()
        self.model.close()


class _Counters:
    """Continuous-mode counters, bumped from the camera and OpenVINO threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # frames = rate_skipped + no_model + submitted + dropped_busy + errors;
        # submitted = published + failed once every result is in.
        self.values = dict.fromkeys(("frames", "rate_skipped", "no_model", "submitted",
                                     "dropped_busy", "errors", "published", "failed"), 0)

    def bump(self, name: str) -> None:
        with self._lock:
            self.values[name] += 1

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.values)


@dataclass(frozen=True, slots=True)
class _Built:
    """One inspection ready to write: its rows and what the caller is answered."""

    rows: list[Any]
    stored: StoredInspection
    decision: Decision
    image_ref: str | None
    model: str


# Messages to self, from the loader, camera, OpenVINO, batch and training threads.
@dataclass(frozen=True, slots=True)
class _Loaded:
    result: Any
    error: BaseException | None
    then: Callable[[Any], Any]
    cleanup: Callable[[Any], None] | None
    reply: Reply


@dataclass(frozen=True, slots=True)
class _Committed:
    decision: Decision


@dataclass(frozen=True, slots=True)
class _ModelFault:
    error: str | None  # None: the model works again


class _CheckCamera:
    pass


@dataclass(frozen=True, slots=True)
class _JobEnded:
    job_id: str


@dataclass(frozen=True, slots=True)
class _TrainingEnded:
    state: TrainingState


class InspectorActor(DatabaseActor):
    def __init__(self, runtime: Runtime, name: str, config: InspectorConfig,
                 database: duckdb.DuckDBPyConnection, *, station_id: str,
                 data_dir: Path | None = None, **kw: Any) -> None:
        super().__init__(runtime, name, database, **kw)
        self.config = config
        self.station_id = station_id
        self.data_dir = data_dir  # None: the database file's folder (found on start)
        self.topic = f"inspection.{station_id}"
        self.watch = AlertWatch(config)
        self._current: _Deployment | None = None
        self._loaded: dict[str, _Deployment] = {}
        self._loader = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"{name}-load")
        self._core: ov.Core | None = None
        self._core_lock = threading.Lock()
        self._ocr: Any = None
        self._stream = _Counters()
        self._gate = StreamGate(config.stream_fps)
        self._unlisten: Callable[[], None] | None = None
        self._model_failing = False
        self._camera_puts = 0
        self._jobs: dict[str, _BatchRun] = {}
        self._training: _TrainingRun | None = None
        self._training_state = TrainingState(status="idle")

    # ---- life cycle -------------------------------------------------------------------------

    def started(self) -> None:
        super().started()
        if self.data_dir is None:
            self.data_dir = _database_folder(self.con)
        fail_interrupted_jobs(self.con, now_us=self.clock.now_us())
        known = {k.value: k for k in AlertKind}
        self.watch = AlertWatch(self.config, frozenset(
            known[k] for k in active_alert_kinds(self.con) if k in known))
        self._deploy_at_start()
        if self.config.camera is not None:
            slot = self.runtime.frames.slot(self.config.camera)
            self._camera_puts = slot.puts
            self._unlisten = slot.listen(self._on_frame)
            self.tell_self_later(_CAMERA_CHECK_S, _CheckCamera())
        self.set_health(HealthState.UP)  # also with no model: inspections then get a 409

    def stopping(self) -> None:
        self._release()
        super().stopping()

    def failed(self, error: BaseException) -> None:
        self._release()
        super().failed(error)

    def _release(self) -> None:
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None
        for run in list(self._jobs.values()):
            run.cancelled.set()
        for run in list(self._jobs.values()):
            run.join(10.0)
        if self._training is not None:
            self._training.stop_requested.set()
        self._loader.shutdown(wait=True, cancel_futures=True)
        for deployment in [self._current, *self._loaded.values()]:
            if deployment is not None:
                deployment.retire()
        self._current = None
        self._loaded.clear()
        if self._ocr is not None:
            self._ocr.close()

    def _deploy_at_start(self) -> None:
        row = active_model(self.con)
        try:
            if row is None and self.config.model is not None:
                path = self._resolve(self.config.model)
                model = self._load(path, list(self.config.model_labels) or None)
                registered = [m for m in list_models(self.con) if m.path == str(path)]
                row = registered[0] if registered else register_model(
                    self.con, name=path.stem, path=str(path), labels=list(model.labels),
                    kind=_kind(path), source="imported", metrics=None,
                    now_us=self.clock.now_us())
            elif row is not None:
                model = self._load(Path(row.path), row.labels)
            else:
                return
        except Exception as exc:  # a broken model file must not keep the station from starting
            self.log.error("no model deployed at start: %s", exc)
            self._apply(self.watch.error(AlertKind.MODEL_ERROR, f"model not loaded: {exc}"))
            return
        self._current = _Deployment(model, deploy_model(self.con, row.id,
                                                        now_us=self.clock.now_us()))

    # ---- inspecting -------------------------------------------------------------------------

    @handles(InspectImage, deferred=True)
    def _inspect_image(self, msg: InspectImage, reply: Reply) -> None:
        t0 = time.perf_counter()
        self._deployed()  # no model: say so before decoding anything
        decoded = decode_image(msg.data)
        built = self._build(decoded.image, source="upload", camera=None,
                            station_id=msg.station_id, part_id=msg.part_id, t0=t0,
                            original=(msg.data, decoded.type.suffix))
        self._commit(built, reply)

    @handles(InspectCamera, deferred=True)
    def _inspect_camera(self, msg: InspectCamera, reply: Reply) -> None:
        t0 = time.perf_counter()
        self._deployed()
        frame = self._frame(msg.camera or self.config.camera)
        built = self._build(frame.image, source="camera", camera=frame.camera,
                            station_id=msg.station_id, part_id=msg.part_id, t0=t0)
        self._commit(built, reply)

    def _build(self, image: np.ndarray, *, source: str, camera: str | None,
               station_id: str | None, part_id: str | None, t0: float,
               original: tuple[bytes, str] | None = None) -> _Built:
        """Predict, decide, keep the image if asked; the rows to write. Any thread."""
        deployment, scores, inference_ms = self._predict(image)
        config = self.config
        decision = decide(scores.label, scores.confidence, config)
        at_us = self.clock.now_us()
        iid = inspection_id(at_us)
        queued = decision is Decision.UNCERTAIN and config.active_learning
        image_ref = None
        if keeps_image(decision, config.keep_images) or queued:
            data, suffix = original if original is not None else (encode_jpeg(image), ".jpg")
            image_ref = self._save_image(iid, at_us, data, suffix)
        box = scores.box
        detection = DetectionRow(
            inspection_id=iid, class_name=scores.label, confidence=float(scores.confidence),
            x1=box[0] if box else None, y1=box[1] if box else None,
            x2=box[2] if box else None, y2=box[3] if box else None,
            area_mm2=area_mm2(box, config.mm_per_pixel))
        row = InspectionRow(
            id=iid, station_id=station_id or self.station_id, camera=camera, part_id=part_id,
            source=source, decision=decision.value, confidence=float(scores.confidence),
            label=scores.label, objects_found=int(config.is_defect(scores.label)),
            total_time_ms=(time.perf_counter() - t0) * 1000, inference_ms=inference_ms,
            model_id=deployment.row.id if deployment.row else None, image_ref=image_ref,
            at_us=at_us)
        rows: list[Any] = [row, detection]
        if queued and image_ref is not None:
            rows.append(ActiveLearningRow(
                id=str(uuid.uuid4()), inspection_id=iid, image_ref=image_ref, reason="uncertain",
                status="pending", annotations=None, reviewed_by=None, reviewed_us=None,
                at_us=at_us))
        return _Built(rows=rows, stored=StoredInspection(inspection=row, detections=[detection]),
                      decision=decision, image_ref=image_ref, model=deployment.label)

    def _predict(self, image: np.ndarray) -> tuple[_Deployment, ClassScores, float]:
        while True:
            deployment = self._deployed()
            try:
                with deployment.lease() as model:
                    t0 = time.perf_counter()
                    scores = model.predict(image)
                    elapsed_ms = (time.perf_counter() - t0) * 1000
            except _Retired:
                continue  # swapped meanwhile: the new model answers
            except Exception as exc:
                self._tell_self(_ModelFault(f"{type(exc).__name__}: {exc}"))
                raise Unavailable(f"the model {deployment.label} failed: {exc}") from exc
            if self._model_failing:
                self._tell_self(_ModelFault(None))
            return deployment, scores, elapsed_ms

    def _commit(self, built: _Built, reply: Reply) -> None:
        """Write the rows through the store; publish and answer once they are committed."""
        view = inspection_view(built.stored, built.model)

        def committed(_: Any, error: BaseException | None) -> None:  # the store's thread
            if error is not None:
                self._remove_image(built.image_ref)
                reply(None, error)
                return
            self.publish(f"{self.topic}.result", msgspec.to_builtins(view))
            reply(view, None)
            self._tell_self(_Committed(built.decision))

        try:
            store = self.runtime.directory.get("store")
            tell(self.runtime, store, Request(Write(rows=built.rows), committed))
        except ActorUnavailable:
            self._remove_image(built.image_ref)
            raise

    @handles(_Committed)
    def _committed(self, msg: _Committed) -> None:
        self._apply(self.watch.observe(msg.decision))

    @handles(_ModelFault)
    def _model_fault(self, msg: _ModelFault) -> None:
        if msg.error is None:
            self._model_failing = False
            self._apply(self.watch.recovered(AlertKind.MODEL_ERROR, "the model answers again"))
        else:
            self._model_failing = True
            self._apply(self.watch.error(AlertKind.MODEL_ERROR, f"inference failed: {msg.error}"))

    @handles(DeleteInspection)
    def _delete(self, msg: DeleteInspection) -> bool:
        row = delete_inspection(self.con, msg.id)
        if row is None:
            return False
        self._remove_image(row.image_ref)
        self.publish(f"{self.topic}.deleted", {"id": row.id})
        return True

    @handles(GetInspectionImage)
    def _image(self, msg: GetInspectionImage) -> StoredImage:
        stored = get_inspection(self.con, msg.id)
        if stored is None:
            raise NotFound(f"no inspection {msg.id}")
        ref = stored.inspection.image_ref
        if ref is None or self.data_dir is None:
            raise NotFound(f"inspection {msg.id} kept no image")
        try:
            data = (self.data_dir / ref).read_bytes()
        except OSError:
            raise NotFound(f"the image of inspection {msg.id} is gone from the disk") from None
        return StoredImage(media_type=_MEDIA.get(Path(ref).suffix, "application/octet-stream"),
                           data=data)

    # ---- continuous mode (camera and OpenVINO threads) -----------------------------------------

    def _on_frame(self, frame: Frame) -> None:
        counters = self._stream
        counters.bump("frames")
        if not self._gate.allow(frame.at_us):
            counters.bump("rate_skipped")
            return
        deployment = self._current
        if deployment is None:
            counters.bump("no_model")
            return
        done = functools.partial(self._on_prediction, frame, deployment)
        try:
            with deployment.lease() as model:
                accepted = model.submit(frame.image, done)
        except _Retired:
            counters.bump("dropped_busy")  # the next frame goes to the new model
            return
        except Exception as exc:
            counters.bump("errors")
            self._tell_self(_ModelFault(f"{type(exc).__name__}: {exc}"))
            return
        counters.bump("submitted" if accepted else "dropped_busy")

    def _on_prediction(self, frame: Frame, deployment: _Deployment, scores: ClassScores | None,
                       error: BaseException | None) -> None:
        if error is not None or scores is None:
            self._stream.bump("failed")
            self._tell_self(_ModelFault(f"{type(error).__name__}: {error}"))
            return
        decision = decide(scores.label, scores.confidence, self.config)
        self.publish(f"vision.{frame.camera}.prediction", {
            "label": scores.label, "confidence": float(scores.confidence),
            "frame_id": frame.frame_id, "decision": decision.value, "model": deployment.label,
            "box": list(scores.box) if scores.box else None,
            "latency_ms": (self.clock.now_us() - frame.at_us) / 1000})
        self._stream.bump("published")
        if self._model_failing:
            self._tell_self(_ModelFault(None))

    @handles(_CheckCamera)
    def _check_camera(self, _: _CheckCamera) -> None:
        camera = self.config.camera
        if camera is None:
            return
        health = self.runtime.health.snapshot().get(f"camera:{camera}")
        puts = self.runtime.frames.slot(camera).puts
        if health is not None and health.state == HealthState.DOWN:
            self._apply(self.watch.error(AlertKind.CAMERA_ERROR,
                                         f"camera {camera} is DOWN: {health.last_error}"))
        elif puts > self._camera_puts:
            self._apply(self.watch.recovered(AlertKind.CAMERA_ERROR,
                                             f"camera {camera} delivers frames again"))
        self._camera_puts = puts
        self.tell_self_later(_CAMERA_CHECK_S, _CheckCamera())

    # ---- models -------------------------------------------------------------------------------

    @handles(ImportModel, deferred=True)
    def _import(self, msg: ImportModel, reply: Reply) -> None:
        path = self._resolve(msg.path)
        kind = _kind(path)

        def register(model: VisionModel) -> ModelRow:
            try:
                return register_model(self.con, name=msg.name, path=str(path),
                                      labels=list(model.labels), kind=kind, source="imported",
                                      metrics=None, now_us=self.clock.now_us())
            finally:
                model.close()

        self._in_loader(lambda: self._load(path, msg.labels), register, reply,
                        cleanup=lambda model: model.close())

    @handles(DeployModel, deferred=True)
    def _deploy(self, msg: DeployModel, reply: Reply) -> None:
        row = self._model_row(msg.id)
        self._in_loader(lambda: self._load(Path(row.path), row.labels),
                        lambda model: self._swap(row, model, rollback=False), reply,
                        cleanup=lambda model: model.close())

    @handles(RollbackModel, deferred=True)
    def _rollback(self, msg: RollbackModel, reply: Reply) -> None:
        row = self._model_row(msg.id)
        if not row.active:
            raise TransitionError(f"model {msg.id} is not the deployed model; only the "
                                  "deployed model is rolled back")
        if row.previous_id is None:
            raise TransitionError(f"model {row.name} v{row.version} has no earlier deployment "
                                  "to roll back to")
        previous = self._model_row(row.previous_id)
        self._in_loader(lambda: self._load(Path(previous.path), previous.labels),
                        lambda model: self._swap(previous, model, rollback=True), reply,
                        cleanup=lambda model: model.close())

    def _swap(self, row: ModelRow, model: VisionModel, *, rollback: bool) -> ModelRow:
        deployed = deploy_model(self.con, row.id, now_us=self.clock.now_us(), rollback=rollback)
        old, self._current = self._current, _Deployment(model, deployed)
        if old is not None:
            # Off this thread: retiring waits for the old model's in-flight inferences.
            threading.Thread(target=old.retire, name=f"{self.name}-retire", daemon=True).start()
        self.log.info("deployed model %s v%s (%s)", deployed.name, deployed.version, deployed.id)
        self.publish(f"{self.topic}.model", {"id": deployed.id, "name": deployed.name,
                                             "version": deployed.version,
                                             "rollback": rollback})
        self._model_failing = False
        self._apply(self.watch.recovered(AlertKind.MODEL_ERROR,
                                         f"model {deployed.name} v{deployed.version} deployed"))
        return deployed

    @handles(OpenVinoStatus)
    def _status(self, _: OpenVinoStatus) -> InspectorStatus:
        devices: list[str] = []
        version = error = None
        try:
            import openvino as ov

            version = ov.get_version()
            devices = list(self._ov_core().available_devices)
        except Exception as exc:  # OpenVINO missing or broken: say so, do not fail
            error = f"{type(exc).__name__}: {exc}"
        current = self._current
        return InspectorStatus(
            available=bool(devices), version=version, devices=devices,
            device=self.config.device, precision=self.config.precision,
            deployed=msgspec.to_builtins(current.row) if current and current.row else None,
            loaded_models=[_loaded_view(key, d) for key, d in sorted(self._loaded.items())],
            stream={"camera": self.config.camera, **self._stream.snapshot()},
            ocr_loaded=self._ocr is not None, error=error)

    @handles(LoadOpenVinoModel, deferred=True)
    def _ov_load(self, msg: LoadOpenVinoModel, reply: Reply) -> None:
        path = self._resolve(msg.model_path)
        _kind(path)

        def keep(model: VisionModel) -> LoadedModel:
            old = self._loaded.get(msg.model_key)
            self._loaded[msg.model_key] = deployment = _Deployment(model, key=msg.model_key)
            if old is not None:
                threading.Thread(target=old.retire, daemon=True).start()
            return _loaded_view(msg.model_key, deployment)

        self._in_loader(lambda: self._load(path, msg.labels, msg.device), keep, reply,
                        cleanup=lambda model: model.close())

    @handles(BenchmarkModel, deferred=True)
    def _benchmark(self, msg: BenchmarkModel, reply: Reply) -> None:
        deployment = (self._current if msg.model_key == "deployed"
                      else self._loaded.get(msg.model_key))
        if deployment is None:
            raise NotFound(f"no model loaded under {msg.model_key!r} (load it with "
                           "/api/v1/openvino/load, or use 'deployed')")
        self._in_loader(lambda: _benchmark(deployment, msg.model_key, msg.iterations,
                                           self.config.requests), lambda result: result, reply)

    # ---- OCR ------------------------------------------------------------------------------------

    @handles(ReadText, deferred=True)
    def _read_text(self, msg: ReadText, reply: Reply) -> None:
        if not self.config.ocr:
            raise Unavailable("OCR is switched off ([inspector] ocr = false)")
        frame: Frame | None = None
        if msg.image is not None:
            image = decode_image(msg.image).image
        else:
            frame = self._frame(msg.camera or self.config.camera)
            image = frame.image

        def read() -> list[Any]:
            if self._ocr is None:
                from drivers.vision.ocr import OcrEngine

                self._ocr = OcrEngine.load(device=self.config.device,
                                           precision=self.config.precision)
            return list(self._ocr.read(image, min_confidence=msg.min_confidence))

        def answer(found: list[Any]) -> TextRead:
            lines = [{"text": t.text, "confidence": float(t.confidence), "box": list(t.box)}
                     for t in found]
            result = TextRead(text="\n".join(t.text for t in found), lines=lines,
                              frame_id=frame.frame_id if frame else None,
                              camera=frame.camera if frame else None)
            if frame is not None:
                self.publish(f"vision.{frame.camera}.ocr", {
                    "text": result.text, "frame_id": frame.frame_id, "lines": lines})
            return result

        self._in_loader(read, answer, reply)

    # ---- batch jobs -----------------------------------------------------------------------------

    @handles(CreateBatchJob)
    def _create_job(self, msg: CreateBatchJob) -> BatchJobRow:
        folder = self._resolve(msg.input_dir)
        if not folder.is_dir():
            raise ValueError(f"input_dir {msg.input_dir!r} is not an existing folder "
                             f"(relative paths are under the data directory)")
        pattern = msg.file_pattern
        if Path(pattern).is_absolute() or ".." in Path(pattern).parts:
            raise ValueError("file_pattern is a glob inside input_dir, e.g. *.png or **/*.jpg")
        return create_job(self.con, name=msg.name, input_dir=str(folder), file_pattern=pattern,
                          part_id=msg.part_id, now_us=self.clock.now_us())

    @handles(StartBatchJob)
    def _start_job(self, msg: StartBatchJob) -> BatchJobRow:
        self._deployed()
        job = get_job(self.con, msg.id)
        if job is None:
            raise NotFound(f"no batch job {msg.id}")
        if job.status != "pending":
            raise TransitionError(f"batch job {msg.id} is {job.status}; only a pending job "
                                  "starts")
        folder = Path(job.input_dir)
        try:
            files = sorted(p for p in folder.glob(job.file_pattern) if p.is_file())
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot list {folder}: {exc}") from None
        job = start_job(self.con, msg.id, total=len(files), now_us=self.clock.now_us())
        run = self._jobs[job.id] = _BatchRun(self, job, files)
        run.start()
        self.publish(f"{self.topic}.batch", msgspec.to_builtins(job))
        return job

    @handles(CancelBatchJob, deferred=True)
    def _cancel_job(self, msg: CancelBatchJob, reply: Reply) -> None:
        run = self._jobs.get(msg.id)
        if run is not None:
            run.waiting.append(reply)  # answered when the worker has stopped
            run.cancelled.set()
            return
        job = get_job(self.con, msg.id)
        if job is None:
            raise NotFound(f"no batch job {msg.id}")
        reply(finish_job(self.con, msg.id, status="cancelled", now_us=self.clock.now_us()),
              None)

    @handles(_JobEnded)
    def _job_ended(self, msg: _JobEnded) -> None:
        run = self._jobs.pop(msg.job_id, None)
        job = get_job(self.con, msg.job_id)
        if job is not None:
            self.publish(f"{self.topic}.batch", msgspec.to_builtins(job))
        for reply in run.waiting if run else []:
            reply(job, None)

    # ---- active learning, training, alerts ---------------------------------------------------

    @handles(AnnotateImage)
    def _annotate(self, msg: AnnotateImage) -> Any:
        return annotate(self.con, msg.id, msg.annotations, by=msg.reviewed_by,
                        now_us=self.clock.now_us())

    @handles(StartTraining)
    def _start_training(self, msg: StartTraining) -> TrainingState:
        if self._training is not None and self._training.is_alive():
            raise InspectorBusy("a training run is going on; stop it first")
        if self.data_dir is None:
            raise Unavailable("this inspector has no data directory to keep a model in")
        self._training_state = TrainingState(status="running", model_name=msg.model_name,
                                             started_us=self.clock.now_us())
        self._training = _TrainingRun(self, msg)
        self._training.start()
        return self._training_state

    @handles(TrainingStatus)
    def _training_status(self, _: TrainingStatus) -> TrainingState:
        return self._training_state

    @handles(StopTraining)
    def _stop_training(self, _: StopTraining) -> TrainingState:
        if self._training is None or not self._training.is_alive():
            raise TransitionError("no training run is going on")
        self._training.stop_requested.set()
        return self._training_state

    @handles(_TrainingEnded)
    def _training_ended(self, msg: _TrainingEnded) -> None:
        self._training_state = msg.state
        self.publish(f"{self.topic}.training", msgspec.to_builtins(msg.state))

    @handles(AcknowledgeInspectionAlert)
    def _acknowledge(self, msg: AcknowledgeInspectionAlert) -> Any:
        alert = acknowledge_alert(self.con, msg.id, by=msg.by, now_us=self.clock.now_us())
        self.publish(f"{self.topic}.alert", msgspec.to_builtins(alert))
        return alert

    def _apply(self, changes: list[AlertChange]) -> None:
        """Store and publish the alerts the rules raised or cleared."""
        now = self.clock.now_us()
        for change in changes:
            if change.raised:
                alert = raise_alert(self.con, kind=change.kind.value,
                                    severity=change.severity.value, title=change.title,
                                    message=change.message, now_us=now)
                self.log.warning("alert: %s: %s", change.title, change.message)
                self.publish(f"{self.topic}.alert", msgspec.to_builtins(alert))
            else:
                for alert_id in clear_alert(self.con, change.kind.value, now_us=now):
                    self.publish(f"{self.topic}.alert", {
                        "id": alert_id, "kind": change.kind.value, "cleared_us": now,
                        "message": change.message})

    # ---- helpers --------------------------------------------------------------------------------

    def _deployed(self) -> _Deployment:
        current = self._current
        if current is None:
            raise NoModel("no model is deployed: import one (POST /api/v1/models) and deploy "
                          "it, or set [inspector] model")
        return current

    def _frame(self, camera: str | None) -> Frame:
        if camera is None:
            raise Unavailable("no camera named, and [inspector] camera is not set")
        health = self.runtime.health.snapshot().get(f"camera:{camera}")
        if health is not None and health.state == HealthState.DOWN:
            raise Unavailable(f"camera {camera} is DOWN: {health.last_error}")
        frame = self.runtime.frames.slot(camera).latest()
        if frame is None:
            raise Unavailable(f"camera {camera} has no frame yet")
        return frame

    def _model_row(self, model_id: str) -> ModelRow:
        row = get_model(self.con, model_id)
        if row is None:
            raise NotFound(f"no model {model_id}")
        return row

    def _resolve(self, path: str) -> Path:
        p = Path(path)
        if not p.is_absolute() and self.data_dir is not None:
            p = self.data_dir / p
        return p

    def _ov_core(self) -> ov.Core:
        with self._core_lock:
            if self._core is None:
                import openvino as ov

                self._core = ov.Core()
            return self._core

    def _load(self, path: Path, labels: list[str] | None, device: str | None = None
              ) -> VisionModel:
        from drivers.vision.classifier import ModelError, VisionModel

        if not path.is_file():
            raise ModelRefused(f"no model file at {path}")
        try:
            return VisionModel.load(path, labels=labels or None,
                                    device=device or self.config.device,
                                    precision=self.config.precision,
                                    requests=self.config.requests, core=self._ov_core())
        except ModelError as exc:
            raise ModelRefused(str(exc)) from exc

    def _in_loader(self, work: Callable[[], Any], then: Callable[[Any], Any], reply: Reply,
                   cleanup: Callable[[Any], None] | None = None) -> None:
        """Run `work` on the loader thread, then `then(result)` back on this actor's thread,
        and answer with what it returns."""

        def run() -> None:
            try:
                result, error = work(), None
            except BaseException as exc:
                result, error = None, exc
            try:
                tell(self.runtime, self.actor_ref, _Loaded(result, error, then, cleanup, reply))
            except ActorUnavailable:
                if cleanup is not None and error is None:
                    cleanup(result)
                reply(None, ActorUnavailable(f"{self.name} stopped before answering"))

        try:
            self._loader.submit(run)
        except RuntimeError:  # shut down: the actor is stopping
            raise ActorUnavailable(f"{self.name} is stopping") from None

    @handles(_Loaded)
    def _loaded_done(self, msg: _Loaded) -> None:
        if msg.error is not None:
            msg.reply(None, msg.error)
            return
        try:
            answer = msg.then(msg.result)
        except Exception as exc:
            if msg.cleanup is not None:
                msg.cleanup(msg.result)
            msg.reply(None, exc)
            return
        msg.reply(answer, None)

    def _tell_self(self, message: Any) -> None:
        try:
            tell(self.runtime, self.actor_ref, message)
        except ActorUnavailable:
            pass  # stopping: nobody left to tell

    def _save_image(self, iid: str, at_us: int, data: bytes, suffix: str) -> str | None:
        if self.data_dir is None:
            return None
        day = time.strftime("%Y-%m-%d", time.gmtime(at_us / 1e6))
        ref = f"{IMAGES}/{day}/{iid}{suffix}"
        path = self.data_dir / ref
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(path.suffix + ".part")
        partial.write_bytes(data)
        os.replace(partial, path)  # whole or not at all: a row never names half an image
        return ref

    def _remove_image(self, ref: str | None) -> None:
        if ref is not None and self.data_dir is not None:
            with contextlib.suppress(OSError):
                (self.data_dir / ref).unlink()


# ---- workers -----------------------------------------------------------------------------------


class _BatchRun(threading.Thread):
    """One batch job: inspect each file, write the rows in groups, count, stop on cancel."""

    def __init__(self, actor: InspectorActor, job: BatchJobRow, files: list[Path]) -> None:
        super().__init__(name=f"{actor.name}-batch-{job.id[:8]}", daemon=True)
        self.actor = actor
        self.job = job
        self.files = files
        self.cancelled = threading.Event()
        self.waiting: list[Reply] = []  # cancel requests, answered when the run has ended

    def run(self) -> None:
        actor = self.actor
        con = actor.database.cursor()
        done = failed = 0
        rows: list[Any] = []
        flushed = time.monotonic()
        try:
            for path in self.files:
                if self.cancelled.is_set():
                    break
                t0 = time.perf_counter()
                try:
                    data = path.read_bytes()
                    decoded = decode_image(data)
                    built = actor._build(decoded.image, source="batch", camera=None,
                                         station_id=None, part_id=self.job.part_id, t0=t0,
                                         original=(data, decoded.type.suffix))
                except (OSError, ImageError, NoModel, Unavailable) as exc:
                    failed += 1
                    actor.log.info("batch %s: %s skipped: %s", self.job.id, path.name, exc)
                else:
                    rows += built.rows
                    done += 1
                if len(rows) >= _BATCH_FLUSH_ROWS or time.monotonic() - flushed >= _BATCH_FLUSH_S:
                    self._flush(con, rows, done, failed)
                    rows, flushed = [], time.monotonic()
            self._flush(con, rows, done, failed)
            status = "cancelled" if self.cancelled.is_set() else "completed"
            finish_job(con, self.job.id, status=status, now_us=actor.clock.now_us())
        except Exception as exc:
            actor.log.exception("batch job %s failed", self.job.id)
            with contextlib.suppress(Exception):
                finish_job(con, self.job.id, status="failed", now_us=actor.clock.now_us(),
                           error=f"{type(exc).__name__}: {exc}")
        finally:
            con.close()
            actor._tell_self(_JobEnded(self.job.id))

    def _flush(self, con: duckdb.DuckDBPyConnection, rows: list[Any], done: int,
               failed: int) -> None:
        actor = self.actor
        if rows:
            call(actor.runtime, actor.runtime.directory.get("store"), Write(rows=rows),
                 timeout=60.0)
        job_progress(con, self.job.id, done=done, failed=failed)
        actor.publish(f"{actor.topic}.batch", {"id": self.job.id, "status": "running",
                                               "total": self.job.total, "done": done,
                                               "failed": failed})


class _TrainingRun(threading.Thread):
    """Train on the annotated queue images plus the demo's rendered frames; register the
    result as a new model version (not deployed)."""

    def __init__(self, actor: InspectorActor, request: StartTraining) -> None:
        super().__init__(name=f"{actor.name}-training", daemon=True)
        self.actor = actor
        self.request = request
        self.stop_requested = threading.Event()

    def run(self) -> None:
        actor = self.actor
        started = actor._training_state.started_us
        con = actor.database.cursor()
        try:
            state = self._train(con)
        except Exception as exc:
            actor.log.exception("training failed")
            state = TrainingState(status="failed", model_name=self.request.model_name,
                                  started_us=started, finished_us=actor.clock.now_us(),
                                  error=f"{type(exc).__name__}: {exc}")
        finally:
            con.close()
        actor._tell_self(_TrainingEnded(state))

    def _train(self, con: duckdb.DuckDBPyConnection) -> TrainingState:
        from drivers.vision.trainer import export, train
        from sim.vision.dataset import make_set

        actor, req = self.actor, self.request
        assert actor.data_dir is not None
        images: list[np.ndarray] = []
        labels: list[str] = []
        used: list[str] = []
        for item in labeled_items(con):
            annotations = json.loads(item.annotations or "[]")
            try:
                image = decode_image((actor.data_dir / item.image_ref).read_bytes()).image
            except (OSError, ImageError):
                continue  # its image is gone: nothing to learn from
            if annotations:
                images.append(image)
                labels.append(annotations[0]["class_name"])
                used.append(item.id)
        if req.demo_per_label:
            # Rendered at the model's input size: full-size demo frames take 2.4 MB each.
            demo, demo_labels = make_set(req.demo_per_label, seed=len(used) + 1, size=224)
            images += list(demo)
            labels += demo_labels
        base = TrainingState(status="stopped", model_name=req.model_name,
                             started_us=actor._training_state.started_us,
                             images=len(images), annotated=len(used))
        if self.stop_requested.is_set():
            return msgspec.structs.replace(base, finished_us=actor.clock.now_us())
        try:
            trained = train(images, labels, core=actor._ov_core())
        except ValueError as exc:  # too few images or labels: the user's to fix
            return msgspec.structs.replace(base, status="failed", error=str(exc),
                                           finished_us=actor.clock.now_us())
        finished = actor.clock.now_us()
        if self.stop_requested.is_set():  # the fit cannot be interrupted; its result is dropped
            return msgspec.structs.replace(base, finished_us=finished)
        slug = re.sub(r"[^a-z0-9_-]+", "-", req.model_name.lower()).strip("-") or "model"
        path = actor.data_dir / MODELS / f"{slug}-{finished}.xml"
        export(trained, path)
        metrics = {"train_accuracy": trained.train_accuracy,
                   "loo_accuracy": trained.loo_accuracy, "ridge": trained.ridge,
                   "fit_s": round(trained.fit_s, 3), "images": len(images),
                   "annotated": len(used), "input_size": trained.backbone.input_size}
        row = register_model(con, name=req.model_name, path=str(path),
                             labels=list(trained.labels), kind="ir", source="trained",
                             metrics=metrics, now_us=finished)
        mark_trained(con, used)
        return msgspec.structs.replace(base, status="completed", finished_us=finished,
                                       metrics=metrics, model_id=row.id)


# ---- pieces ----------------------------------------------------------------------------------


def _kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".xml":
        return "ir"
    if suffix == ".onnx":
        return "onnx"
    raise ValueError(f"{path.name}: a model file is OpenVINO IR (.xml) or ONNX (.onnx)")


def _database_folder(con: duckdb.DuckDBPyConnection) -> Path | None:
    """The folder of the database file (the station's data directory); None in memory."""
    rows = con.execute("SELECT path FROM duckdb_databases() "
                       "WHERE database_name = current_database()").fetchall()
    return Path(rows[0][0]).parent if rows and rows[0][0] else None


def _loaded_view(key: str, deployment: _Deployment) -> LoadedModel:
    m = deployment.model
    return LoadedModel(key=key, path=str(m.path), device=m.device, precision=m.precision,
                       labels=list(m.labels), input_hw=tuple(m.input_hw),  # type: ignore[arg-type]
                       load_ms=round(m.load_ms, 3))


def _benchmark(deployment: _Deployment, key: str, iterations: int, requests: int
               ) -> BenchmarkResult:
    """Blocking predict N times on a synthetic frame, then the same frames through the async
    queue with every request busy (throughput)."""
    with deployment.lease() as model:
        h, w = model.input_hw
        frame = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
        for _ in range(min(3, iterations)):
            model.predict(frame)  # warm-up: first inferences allocate
        times = []
        for _ in range(iterations):
            t0 = time.perf_counter()
            model.predict(frame)
            times.append((time.perf_counter() - t0) * 1000)
        cond = threading.Condition()
        inflight = [0]

        def done(_: Any, __: BaseException | None) -> None:
            with cond:
                inflight[0] -= 1
                cond.notify_all()

        total = max(iterations, 2 * requests)
        t0 = time.perf_counter()
        submitted = 0
        while submitted < total:
            with cond:
                inflight[0] += 1
            if model.submit(frame, done):
                submitted += 1
                continue
            with cond:
                inflight[0] -= 1
                cond.wait_for(lambda: inflight[0] < requests, timeout=5.0)
        model.wait_all()
        elapsed = time.perf_counter() - t0
    times.sort()
    return BenchmarkResult(
        model_key=key, device=model.device, precision=model.precision, iterations=iterations,
        ov_mean_ms=round(sum(times) / len(times), 3),
        ov_p50_ms=round(times[len(times) // 2], 3),
        ov_p99_ms=round(times[min(len(times) - 1, int(len(times) * 0.99))], 3),
        throughput_fps=round(total / elapsed, 1), requests=requests)

