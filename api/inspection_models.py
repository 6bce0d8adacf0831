"""Request and response bodies of the inspection routes (seed 001), documented by quart-schema."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from actors.inspector_messages import InspectionView
from controller.timefmt import rfc3339
from state.inspection_alerts import AlertRow
from state.inspection_jobs import ActiveLearningRow
from state.vision_models import ModelRow

__all__ = [
    "AlertView",
    "AlertsPage",
    "AlertsQuery",
    "AnnotateBody",
    "AnnotationIn",
    "BenchmarkBody",
    "CameraQuery",
    "ExportQuery",
    "ImportBody",
    "InspectionsPage",
    "InspectionsQuery",
    "JobBody",
    "JobsQuery",
    "LoadBody",
    "ModelView",
    "OcrQuery",
    "QueueItem",
    "QueueQuery",
    "StatisticsQuery",
    "TrainingBody",
    "TrendsQuery",
    "alert_view",
    "model_view",
    "queue_item",
]

Ident = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+(?!\n)$")]
Name = Annotated[str, Meta(min_length=1, max_length=200)]
Path_ = Annotated[str, Meta(min_length=1, max_length=4096)]
Label = Annotated[str, Meta(min_length=1, max_length=64)]
Offset = Annotated[int, Meta(ge=0, le=10_000_000)]
Hours = Annotated[int, Meta(ge=1, le=168)]


class _In(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class CameraQuery(_In):
    station_id: Ident | None = None
    part_id: Ident | None = None
    camera: Annotated[str, Meta(pattern=r"^[a-z0-9_-]{1,32}(?!\n)$")] | None = None


class OcrQuery(_In):
    camera: Annotated[str, Meta(pattern=r"^[a-z0-9_-]{1,32}(?!\n)$")] | None = None
    min_confidence: Annotated[float, Meta(ge=0, le=1)] = 0.5


class InspectionsQuery(_In):
    station_id: Ident | None = None
    decision: Literal["pass", "fail", "uncertain"] | None = None
    limit: Annotated[int, Meta(ge=1, le=500)] = 50
    offset: Offset = 0


class InspectionsPage(msgspec.Struct, frozen=True, kw_only=True):
    inspections: list[InspectionView]
    total: int  # matching inspections, all pages
    limit: int
    offset: int


class StatisticsQuery(_In):
    hours: Hours = 24
    station_id: Ident | None = None


class TrendsQuery(_In):
    hours: Hours = 24
    interval: Literal["hour", "day"] = "hour"
    station_id: Ident | None = None


class ExportQuery(_In):
    station_id: Ident | None = None
    decision: Literal["pass", "fail", "uncertain"] | None = None


class JobsQuery(_In):
    limit: Annotated[int, Meta(ge=1, le=500)] = 50
    offset: Offset = 0


class JobBody(_In):
    name: Name
    input_dir: Path_
    file_pattern: Annotated[str, Meta(min_length=1, max_length=256)] = "*"
    part_id: Ident | None = None


class QueueQuery(_In):
    limit: Annotated[int, Meta(ge=1, le=100)] = 1


class QueueItem(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    inspection_id: str
    image_url: str
    reason: str
    status: str
    annotations: list[dict[str, Any]] | None
    reviewed_by: str | None
    at_us: int


class AnnotationIn(_In):
    class_name: Label
    bbox: tuple[Annotated[int, Meta(ge=0)], Annotated[int, Meta(ge=0)],
                Annotated[int, Meta(ge=0)], Annotated[int, Meta(ge=0)]] | None = None


class AnnotateBody(_In):
    annotations: Annotated[list[AnnotationIn], Meta(min_length=1, max_length=100)]
    reviewed_by: Annotated[str, Meta(min_length=1, max_length=128)] | None = None


class TrainingBody(_In):
    """Seed 001's fields; Takt fits its model's head in closed form (drivers.vision.trainer),
    so epochs, batch_size and learning_rate are accepted and not used."""

    model_name: Name
    epochs: Annotated[int, Meta(ge=1, le=200)] = 20
    batch_size: Annotated[int, Meta(ge=1, le=256)] = 8
    learning_rate: Annotated[float, Meta(gt=0, le=1)] = 0.001
    demo_per_label: Annotated[int, Meta(ge=0, le=100)] = 8
    """Rendered demo frames per label added to the annotated images (0: none)."""


Channels = Annotated[list[Annotated[float, Meta(ge=-1e6, le=1e6)]],
                     Meta(min_length=3, max_length=3)]


class ImportBody(_In):
    path: Path_
    name: Name
    labels: Annotated[list[Label], Meta(min_length=1, max_length=1000)] | None = None
    mean: Channels | None = None
    """Per channel (R, G, B), of pixels scaled to 0..1: what the model was trained with."""
    scale: Channels | None = None
    """Per channel (R, G, B): the divisor after the mean (a standard deviation); not 0."""


class ModelView(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    version: int
    path: str
    labels: list[str]
    kind: str
    source: str
    metrics: dict[str, Any] | None
    created: str
    deployed_at: str | None
    active: bool
    previous_id: str | None


class AlertsQuery(_In):
    severity: Literal["info", "warning", "error", "critical"] | None = None
    acknowledged: bool | None = None
    limit: Annotated[int, Meta(ge=1, le=500)] = 100
    offset: Offset = 0


class AlertView(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    kind: str
    severity: str
    title: str
    message: str
    timestamp: str
    cleared: str | None  # when its condition ended; None while it lasts
    acknowledged: bool
    acknowledged_by: str | None
    acknowledged_at: str | None


class AlertsPage(msgspec.Struct, frozen=True, kw_only=True):
    alerts: list[AlertView]


class LoadBody(_In):
    model_key: Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
    model_path: Path_
    device: Annotated[str, Meta(pattern=r"^[A-Z][A-Z0-9_.:,()-]{0,63}(?!\n)$")] | None = None
    labels: Annotated[list[Label], Meta(min_length=1, max_length=1000)] | None = None


class BenchmarkBody(_In):
    model_key: Annotated[str, Meta(min_length=1, max_length=64)]
    iterations: Annotated[int, Meta(ge=1, le=1000)] = 50


def _time(us: int | None) -> str | None:
    return None if us is None else rfc3339(us)


def model_view(row: ModelRow) -> ModelView:
    return ModelView(id=row.id, name=row.name, version=row.version, path=row.path,
                     labels=row.labels, kind=row.kind, source=row.source, metrics=row.metrics,
                     created=_time(row.created_us) or "", deployed_at=_time(row.deployed_at_us),
                     active=row.active, previous_id=row.previous_id)


def alert_view(row: AlertRow) -> AlertView:
    return AlertView(id=row.id, kind=row.kind, severity=row.severity, title=row.title,
                     message=row.message, timestamp=_time(row.at_us) or "",
                     cleared=_time(row.cleared_us), acknowledged=row.acknowledged,
                     acknowledged_by=row.acknowledged_by,
                     acknowledged_at=_time(row.acknowledged_us))


def queue_item(row: ActiveLearningRow) -> QueueItem:
    return QueueItem(id=row.id, inspection_id=row.inspection_id,
                     image_url=f"/api/v1/inspect/{row.inspection_id}/image", reason=row.reason,
                     status=row.status,
                     annotations=None if row.annotations is None
                     else msgspec.json.decode(row.annotations),
                     reviewed_by=row.reviewed_by, at_us=row.at_us)

