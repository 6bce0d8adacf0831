"""Messages of the inspector actor (writes, inference, models, jobs) and of the inspection
reads the query actors answer, with the views they answer with."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from controller.timefmt import rfc3339
from state.inspection_alerts import AlertFilter
from state.inspection_jobs import Annotation
from state.inspections import InspectionFilter, StoredInspection

__all__ = [
    "AcknowledgeInspectionAlert",
    "ActiveLearningQueue",
    "ActiveLearningStats",
    "AnnotateImage",
    "BenchmarkModel",
    "BenchmarkResult",
    "CancelBatchJob",
    "CountInspections",
    "CreateBatchJob",
    "DeleteInspection",
    "DeployModel",
    "DetectionView",
    "ExportInspections",
    "GetBatchJob",
    "GetInspection",
    "GetInspectionImage",
    "ImportModel",
    "InspectCamera",
    "InspectImage",
    "InspectionStats",
    "InspectionTrend",
    "InspectionView",
    "InspectorBusy",
    "InspectorStatus",
    "ListBatchJobs",
    "ListInspectionAlerts",
    "ListInspections",
    "ListVisionModels",
    "LoadOpenVinoModel",
    "LoadedModel",
    "ModelRefused",
    "NoModel",
    "OpenVinoStatus",
    "ReadText",
    "RollbackModel",
    "StartBatchJob",
    "StartTraining",
    "StopTraining",
    "StoredImage",
    "TextRead",
    "TrainingState",
    "TrainingStatus",
    "Unavailable",
    "inspection_view",
]


class NoModel(RuntimeError):
    """No model is deployed, so nothing can be inspected yet."""


class Unavailable(RuntimeError):
    """A camera or engine the request needs cannot serve it now (no frame, DOWN, no OCR)."""


class ModelRefused(ValueError):
    """A model file that cannot be used: missing, not a model, labels that do not fit."""


class InspectorBusy(RuntimeError):
    """The inspector already runs a job of that kind (a training run)."""


class DetectionView(msgspec.Struct, frozen=True, kw_only=True):
    class_name: str
    confidence: float
    bbox: tuple[int, int, int, int] | None  # x1, y1, x2, y2 in image pixels
    area_mm2: float | None


class InspectionView(msgspec.Struct, frozen=True, kw_only=True):
    """An inspection as seed 001 answers it, plus what Takt knows besides."""

    id: str
    decision: str  # pass | fail | uncertain
    confidence: float
    objects_found: int
    total_time_ms: float
    detections: list[DetectionView]
    image_url: str | None
    label: str
    model: str | None  # "<name> v<version>" of the model that decided
    model_id: str | None
    station_id: str
    part_id: str | None
    camera: str | None
    source: str  # upload | camera | batch
    inference_ms: float
    timestamp: str  # RFC 3339 UTC
    at_us: int


def inspection_view(stored: StoredInspection, model: str | None) -> InspectionView:
    row = stored.inspection
    return InspectionView(
        id=row.id, decision=row.decision, confidence=row.confidence,
        objects_found=row.objects_found, total_time_ms=round(row.total_time_ms, 3),
        detections=[DetectionView(
            class_name=d.class_name, confidence=d.confidence,
            bbox=None if d.x1 is None or d.y1 is None or d.x2 is None or d.y2 is None
            else (d.x1, d.y1, d.x2, d.y2), area_mm2=d.area_mm2) for d in stored.detections],
        image_url=f"/api/v1/inspect/{row.id}/image" if row.image_ref else None,
        label=row.label, model=model, model_id=row.model_id, station_id=row.station_id,
        part_id=row.part_id, camera=row.camera, source=row.source,
        inference_ms=round(row.inference_ms, 3), timestamp=rfc3339(row.at_us), at_us=row.at_us)


class _Msg(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    pass


# ---- inspecting ---------------------------------------------------------------------------------


class InspectImage(_Msg):
    """Inspect an uploaded file; answered with the StoredInspection once it is committed."""

    data: bytes
    station_id: str | None = None  # None: this station
    part_id: str | None = None


class InspectCamera(_Msg):
    """Inspect the newest frame of a camera (the inspector's own camera when None)."""

    camera: str | None = None
    station_id: str | None = None
    part_id: str | None = None


class DeleteInspection(_Msg):
    """Delete an inspection, its detections, queue entry and image; answered True or False."""

    id: str


class GetInspectionImage(_Msg):
    id: str


class StoredImage(msgspec.Struct, frozen=True, kw_only=True):
    media_type: str
    data: bytes


class ReadText(_Msg):
    """Read the text on a camera's newest frame, or on an uploaded image."""

    camera: str | None = None
    image: bytes | None = None
    min_confidence: float = 0.5


class TextRead(msgspec.Struct, frozen=True, kw_only=True):
    text: str  # the lines joined by newlines
    lines: list[dict[str, Any]]  # {text, confidence, box}
    frame_id: str | None
    camera: str | None


# ---- models -------------------------------------------------------------------------------------


class ImportModel(_Msg):
    path: str
    name: str
    labels: list[str] | None = None  # None: the labels the file carries
    # Pixel normalisation of a model trained elsewhere, per channel: (p / 255 - mean) / scale.
    mean: list[float] | None = None
    scale: list[float] | None = None


class DeployModel(_Msg):
    id: str


class RollbackModel(_Msg):
    """Deploy the model that was active before model `id` (which must be the active one)."""

    id: str


class ListVisionModels(_Msg):
    pass


class OpenVinoStatus(_Msg):
    pass


class LoadedModel(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    path: str
    device: str
    precision: str
    labels: list[str]
    input_hw: tuple[int, int]
    load_ms: float


class InspectorStatus(msgspec.Struct, frozen=True, kw_only=True):
    available: bool  # OpenVINO imports and lists a device
    version: str | None
    devices: list[str]
    device: str
    precision: str
    deployed: dict[str, Any] | None  # the deployed model's row
    loaded_models: list[LoadedModel]
    stream: dict[str, Any]  # continuous mode counters
    ocr_loaded: bool
    error: str | None = None


class LoadOpenVinoModel(_Msg):
    model_key: str
    model_path: str
    device: str | None = None
    labels: list[str] | None = None


class BenchmarkModel(_Msg):
    model_key: str
    iterations: int = 50


class BenchmarkResult(msgspec.Struct, frozen=True, kw_only=True):
    model_key: str
    device: str
    precision: str
    iterations: int
    ov_mean_ms: float
    ov_p50_ms: float
    ov_p99_ms: float
    throughput_fps: float  # frames/s with every async infer request busy
    requests: int
    ort_mean_ms: float | None = None  # Takt ships no onnxruntime to compare with
    speedup: float | None = None
    note: str = "onnxruntime is not part of Takt; only OpenVINO is measured"


# ---- batch jobs, active learning, training, alerts -----------------------------------------------


class CreateBatchJob(_Msg):
    name: str
    input_dir: str
    file_pattern: str = "*"
    part_id: str | None = None


class StartBatchJob(_Msg):
    id: str


class CancelBatchJob(_Msg):
    id: str


class AnnotateImage(_Msg):
    id: str
    annotations: list[Annotation]
    reviewed_by: str


class StartTraining(_Msg):
    model_name: str
    epochs: int = 20
    batch_size: int = 8
    learning_rate: float = 0.001
    demo_per_label: int = 8  # rendered frames per demo label (sim.vision.dataset)


class TrainingStatus(_Msg):
    pass


class StopTraining(_Msg):
    pass


TrainingPhase = Literal["idle", "running", "completed", "stopped", "failed"]


class TrainingState(msgspec.Struct, frozen=True, kw_only=True):
    status: TrainingPhase
    model_name: str | None = None
    started_us: int | None = None
    finished_us: int | None = None
    images: int = 0  # labelled images trained on (annotated + demo)
    annotated: int = 0
    metrics: dict[str, Any] | None = None
    model_id: str | None = None  # the registered result (not deployed)
    error: str | None = None


class AcknowledgeInspectionAlert(_Msg):
    id: str
    by: str


# ---- reads (query actors) ------------------------------------------------------------------------


class GetInspection(_Msg):
    id: str


class ListInspections(_Msg):
    filter: InspectionFilter = InspectionFilter()
    limit: int = 50
    offset: int = 0


class CountInspections(_Msg):
    filter: InspectionFilter = InspectionFilter()


class InspectionStats(_Msg):
    since_us: int
    station_id: str | None = None


class InspectionTrend(_Msg):
    since_us: int
    until_us: int
    interval: Literal["hour", "day"] = "hour"
    station_id: str | None = None


class ExportInspections(_Msg):
    after_us: int | None = None
    after_id: str | None = None
    limit: int = 1000
    filter: InspectionFilter = InspectionFilter()


class ListInspectionAlerts(_Msg):
    filter: AlertFilter = AlertFilter()
    limit: int = 100
    offset: int = 0


class ListBatchJobs(_Msg):
    limit: int = 100
    offset: int = 0


class GetBatchJob(_Msg):
    id: str


class ActiveLearningStats(_Msg):
    pass


class ActiveLearningQueue(_Msg):
    limit: int = 1
