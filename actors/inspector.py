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

The models in memory and the loader thread are in `actors.inspector_models`; the batch and
training workers and the benchmark in `actors.inspector_jobs`; the messages in
`actors.inspector_messages`. OpenVINO is imported only when a model or the OCR engine is
loaded.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import msgspec
import numpy as np

from actors.base import handles
from actors.database import DatabaseActor
from actors.health import HealthState
from actors.inspector_jobs import (
    BatchJobs,
    JobEnded,
    Training,
    TrainingEnded,
    batch_files,
    benchmark,
    check_batch_input,
)
from actors.inspector_messages import (
    AcknowledgeInspectionAlert,
    AnnotateImage,
    BenchmarkModel,
    CancelBatchJob,
    CreateBatchJob,
    DeleteInspection,
    DeployModel,
    GetInspectionImage,
    ImportModel,
    InspectCamera,
    InspectImage,
    InspectorStatus,
    LoadOpenVinoModel,
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
from actors.inspector_models import (
    Deployment,
    Loaded,
    LoadedModels,
    LoaderThread,
    Retired,
    file_stem,
    model_kind,
)
from actors.runtime import ActorUnavailable, Reply, Request, Runtime, tell
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
from drivers.vision.images import ImageType, decode_image, encode_jpeg
from state.connection import database_folder
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
    from drivers.vision.classifier import ClassScores, VisionModel

__all__ = ["InspectorActor"]

IMAGES = "inspections"  # folder of kept images under the data directory
_CAMERA_CHECK_S = 2.0
_MEDIA = {t.suffix: t.media_type for t in ImageType}


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


# Messages to self, from other threads: the store's, the camera's, OpenVINO's, the batch workers'.
@dataclass(frozen=True, slots=True)
class _Committed:
    decision: Decision


@dataclass(frozen=True, slots=True)
class _ModelFault:
    error: str | None  # None: the model works again


class _CheckCamera:
    pass


class InspectorActor(DatabaseActor):
    """Inspects images on the deployed model and keeps the station's inspections, models,
    batch jobs, training and alerts."""

    def __init__(self, runtime: Runtime, name: str, config: InspectorConfig,
                 database: duckdb.DuckDBPyConnection, *, station_id: str,
                 data_dir: Path | None = None, **kw: Any) -> None:
        super().__init__(runtime, name, database, **kw)
        self.config = config
        self.station_id = station_id
        self.data_dir = data_dir  # None: the database file's folder (found on start)
        self.topic = f"inspection.{station_id}"
        self.watch = AlertWatch(config)
        self.models = LoadedModels(config, name)
        self._loader = LoaderThread(name, lambda loaded: tell(self.runtime, self.actor_ref, loaded))
        self._ocr: Any = None
        self._stream = _Counters()
        self._gate = StreamGate(config.stream_fps)
        self._unlisten: Callable[[], None] | None = None
        self._model_failing = False
        self._camera_puts = 0
        self._batch = BatchJobs()
        self._training = Training()

    # ---- life cycle -------------------------------------------------------------------------

    def started(self) -> None:
        super().started()
        if self.data_dir is None:
            self.data_dir = database_folder(self.con)
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
        self._batch.stop_all()
        self._training.stop_if_running()
        self._loader.shutdown()
        self.models.close()
        if self._ocr is not None:
            self._ocr.close()

    def _deploy_at_start(self) -> None:
        row = active_model(self.con)
        try:
            if row is None and self.config.model is not None:
                path = self._resolve(self.config.model)
                model = self.models.load(path, list(self.config.model_labels) or None)
                registered = [m for m in list_models(self.con) if m.path == str(path)]
                row = registered[0] if registered else register_model(
                    self.con, name=path.stem, path=str(path), labels=list(model.labels),
                    kind=model_kind(path), source="imported", metrics=None,
                    now_us=self.clock.now_us())
            elif row is not None:
                model = self.models.load(Path(row.path), row.labels)
            else:
                return
        except Exception as exc:  # a broken model file must not keep the station from starting
            self.log.error("no model deployed at start: %s", exc)
            self._apply(self.watch.error(AlertKind.MODEL_ERROR, f"model not loaded: {exc}"))
            return
        self.models.deploy(model, deploy_model(self.con, row.id, now_us=self.clock.now_us()))

    # ---- inspecting -------------------------------------------------------------------------

    @handles(InspectImage, deferred=True)
    def _inspect_image(self, msg: InspectImage, reply: Reply) -> None:
        t0 = time.perf_counter()
        self.models.deployed()  # no model: say so before decoding anything
        decoded = decode_image(msg.data)
        built = self.build_inspection(decoded.image, source="upload", camera=None,
                                      station_id=msg.station_id, part_id=msg.part_id, t0=t0,
                                      original=(msg.data, decoded.type.suffix))
        self._commit(built, reply)

    @handles(InspectCamera, deferred=True)
    def _inspect_camera(self, msg: InspectCamera, reply: Reply) -> None:
        t0 = time.perf_counter()
        self.models.deployed()
        frame = self._frame(msg.camera or self.config.camera)
        built = self.build_inspection(frame.image, source="camera", camera=frame.camera,
                                      station_id=msg.station_id, part_id=msg.part_id, t0=t0)
        self._commit(built, reply)

    def build_inspection(self, image: np.ndarray, *, source: str, camera: str | None,
                         station_id: str | None, part_id: str | None, t0: float,
                         original: tuple[bytes, str] | None = None) -> _Built:
        """Predict, decide, keep the image if asked; the rows to write. Any thread (the batch
        workers call it too)."""
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

    def _predict(self, image: np.ndarray) -> tuple[Deployment, ClassScores, float]:
        while True:
            deployment = self.models.deployed()
            try:
                with deployment.lease() as model:
                    t0 = time.perf_counter()
                    scores = model.predict(image)
                    elapsed_ms = (time.perf_counter() - t0) * 1000
            except Retired:
                continue  # swapped meanwhile: the new model answers
            except Exception as exc:
                self.tell_self(_ModelFault(f"{type(exc).__name__}: {exc}"))
                raise Unavailable(f"the model {deployment.label} failed: {exc}") from exc
            if self._model_failing:
                self.tell_self(_ModelFault(None))
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
            self.tell_self(_Committed(built.decision))

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
        deployment = self.models.current
        if deployment is None:
            counters.bump("no_model")
            return
        done = functools.partial(self._on_prediction, frame, deployment)
        try:
            with deployment.lease() as model:
                accepted = model.submit(frame.image, done)
        except Retired:
            counters.bump("dropped_busy")  # the next frame goes to the new model
            return
        except Exception as exc:
            counters.bump("errors")
            self.tell_self(_ModelFault(f"{type(exc).__name__}: {exc}"))
            return
        counters.bump("submitted" if accepted else "dropped_busy")

    def _on_prediction(self, frame: Frame, deployment: Deployment, scores: ClassScores | None,
                       error: BaseException | None) -> None:
        if error is not None or scores is None:
            self._stream.bump("failed")
            self.tell_self(_ModelFault(f"{type(error).__name__}: {error}"))
            return
        decision = decide(scores.label, scores.confidence, self.config)
        self.publish(f"vision.{frame.camera}.prediction", {
            "label": scores.label, "confidence": float(scores.confidence),
            "frame_id": frame.frame_id, "decision": decision.value, "model": deployment.label,
            "box": list(scores.box) if scores.box else None,
            "latency_ms": (self.clock.now_us() - frame.at_us) / 1000})
        self._stream.bump("published")
        if self._model_failing:
            self.tell_self(_ModelFault(None))

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
        kind = model_kind(path)
        # An ONNX model, or one that needs its pixels normalised, is converted once into the
        # station's models folder as IR with its labels and normalisation built in: the
        # registry then holds a file that loads alone, whatever happens to the original.
        converted = kind == "onnx" or msg.mean is not None or msg.scale is not None
        target = self._resolve(
            f"models/imported/{file_stem(msg.name)}-{uuid.uuid4().hex[:8]}.xml")

        def load() -> VisionModel:
            if not converted:
                return self.models.load(path, msg.labels)
            self.models.convert(path, target, msg.labels, msg.mean, msg.scale)
            return self.models.load(target, None)

        def register(model: VisionModel) -> ModelRow:
            try:
                return register_model(self.con, name=msg.name, path=str(model.path),
                                      labels=list(model.labels), kind=kind, source="imported",
                                      metrics=None, now_us=self.clock.now_us())
            finally:
                model.close()

        self._loader.run(load, register, reply, cleanup=lambda model: model.close())

    @handles(DeployModel, deferred=True)
    def _deploy(self, msg: DeployModel, reply: Reply) -> None:
        row = self._model_row(msg.id)
        self._loader.run(lambda: self.models.load(Path(row.path), row.labels),
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
        self._loader.run(lambda: self.models.load(Path(previous.path), previous.labels),
                         lambda model: self._swap(previous, model, rollback=True), reply,
                         cleanup=lambda model: model.close())

    def _swap(self, row: ModelRow, model: VisionModel, *, rollback: bool) -> ModelRow:
        deployed = deploy_model(self.con, row.id, now_us=self.clock.now_us(), rollback=rollback)
        self.models.deploy(model, deployed)
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
            devices = list(self.models.core().available_devices)
        except Exception as exc:  # OpenVINO missing or broken: say so, do not fail
            error = f"{type(exc).__name__}: {exc}"
        current = self.models.current
        return InspectorStatus(
            available=bool(devices), version=version, devices=devices,
            device=self.config.device, precision=self.config.precision,
            deployed=msgspec.to_builtins(current.row) if current and current.row else None,
            loaded_models=self.models.views(),
            stream={"camera": self.config.camera, **self._stream.snapshot()},
            ocr_loaded=self._ocr is not None, error=error)

    @handles(LoadOpenVinoModel, deferred=True)
    def _ov_load(self, msg: LoadOpenVinoModel, reply: Reply) -> None:
        path = self._resolve(msg.model_path)
        model_kind(path)  # refuse what is no model file before loading anything
        self._loader.run(lambda: self.models.load(path, msg.labels, msg.device),
                         lambda model: self.models.keep(msg.model_key, model), reply,
                         cleanup=lambda model: model.close())

    @handles(BenchmarkModel, deferred=True)
    def _benchmark(self, msg: BenchmarkModel, reply: Reply) -> None:
        deployment = self.models.find(msg.model_key)
        self._loader.run(lambda: benchmark(deployment, msg.model_key, msg.iterations,
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

        self._loader.run(read, answer, reply)

    # ---- batch jobs -----------------------------------------------------------------------------

    @handles(CreateBatchJob)
    def _create_job(self, msg: CreateBatchJob) -> BatchJobRow:
        folder = self._resolve(msg.input_dir)
        check_batch_input(folder, msg.input_dir, msg.file_pattern)
        return create_job(self.con, name=msg.name, input_dir=str(folder),
                          file_pattern=msg.file_pattern, part_id=msg.part_id,
                          now_us=self.clock.now_us())

    @handles(StartBatchJob)
    def _start_job(self, msg: StartBatchJob) -> BatchJobRow:
        self.models.deployed()
        job = get_job(self.con, msg.id)
        if job is None:
            raise NotFound(f"no batch job {msg.id}")
        if job.status != "pending":
            raise TransitionError(f"batch job {msg.id} is {job.status}; only a pending job "
                                  "starts")
        files = batch_files(job)
        job = start_job(self.con, msg.id, total=len(files), now_us=self.clock.now_us())
        self._batch.start(self, job, files)
        self.publish(f"{self.topic}.batch", msgspec.to_builtins(job))
        return job

    @handles(CancelBatchJob, deferred=True)
    def _cancel_job(self, msg: CancelBatchJob, reply: Reply) -> None:
        if self._batch.cancel(msg.id, reply):
            return
        job = get_job(self.con, msg.id)
        if job is None:
            raise NotFound(f"no batch job {msg.id}")
        reply(finish_job(self.con, msg.id, status="cancelled", now_us=self.clock.now_us()),
              None)

    @handles(JobEnded)
    def _job_ended(self, msg: JobEnded) -> None:
        waiting = self._batch.ended(msg.job_id)
        job = get_job(self.con, msg.job_id)
        if job is not None:
            self.publish(f"{self.topic}.batch", msgspec.to_builtins(job))
        for reply in waiting:
            reply(job, None)

    # ---- active learning, training, alerts ---------------------------------------------------

    @handles(AnnotateImage)
    def _annotate(self, msg: AnnotateImage) -> Any:
        return annotate(self.con, msg.id, msg.annotations, by=msg.reviewed_by,
                        now_us=self.clock.now_us())

    @handles(StartTraining)
    def _start_training(self, msg: StartTraining) -> TrainingState:
        return self._training.start(self, msg, data_dir=self.data_dir, models=self.models)

    @handles(TrainingStatus)
    def _training_status(self, _: TrainingStatus) -> TrainingState:
        return self._training.state

    @handles(StopTraining)
    def _stop_training(self, _: StopTraining) -> TrainingState:
        return self._training.stop()

    @handles(TrainingEnded)
    def _training_ended(self, msg: TrainingEnded) -> None:
        self._training.state = msg.state
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

    @handles(Loaded)
    def _loaded_done(self, msg: Loaded) -> None:
        msg.finish()

    def tell_self(self, message: Any) -> None:
        """Tell this actor a message from any thread; dropped once the actor has stopped."""
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


# ---- pieces ----------------------------------------------------------------------------------
