"""/api/v1 routes of visual inspection (seed 001): inspect uploads and camera frames, the
stored inspections with statistics, trends and a CSV export, batch jobs, active learning,
training, the model registry, the inspector's alerts and OpenVINO.

Inspecting, models, jobs and training go to the inspector actor; stored rows are read from
the query actors, so reads never wait behind inference.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

from flask.sansio.blueprints import BlueprintSetupState
from quart import Blueprint, Response, request
from quart_schema import document_response, tag
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import RequestEntityTooLarge

from actors.bridge import ask
from actors.inspector_messages import (
    AcknowledgeInspectionAlert,
    ActiveLearningQueue,
    ActiveLearningStats,
    AnnotateImage,
    BenchmarkModel,
    BenchmarkResult,
    CancelBatchJob,
    CountInspections,
    CreateBatchJob,
    DeleteInspection,
    DeployModel,
    ExportInspections,
    GetBatchJob,
    GetInspection,
    GetInspectionImage,
    ImportModel,
    InspectCamera,
    InspectImage,
    InspectionStats,
    InspectionTrend,
    InspectionView,
    InspectorBusy,
    InspectorStatus,
    ListBatchJobs,
    ListInspectionAlerts,
    ListInspections,
    ListVisionModels,
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
    TextRead,
    TrainingState,
    TrainingStatus,
    Unavailable,
)
from actors.query import pick_query_actor
from api.http import Facade, ask_actor, body, facade, json_response, query
from api.inspection_models import (
    AlertsPage,
    AlertsQuery,
    AnnotateBody,
    BenchmarkBody,
    CameraQuery,
    ExportQuery,
    ImportBody,
    InspectionsPage,
    InspectionsQuery,
    JobBody,
    JobsQuery,
    LoadBody,
    ModelView,
    OcrQuery,
    QueueItem,
    QueueQuery,
    StatisticsQuery,
    TrainingBody,
    TrendsQuery,
    alert_view,
    model_view,
    queue_item,
)
from api.problems import Problem
from api.security import current_principal, requires
from controller.access import Role
from controller.timefmt import rfc3339
from drivers.vision.images import ImageError
from state.errors import DuplicateError, NotFound, StateError, TransitionError
from state.inspection_alerts import AlertFilter
from state.inspection_jobs import Annotation, BatchJobRow
from state.inspections import InspectionFilter, InspectionStatistics, InspectionTrends

__all__ = ["UPLOAD_LIMIT", "blueprint"]

blueprint = Blueprint("inspection", __name__, url_prefix="/api/v1")

UPLOAD_LIMIT = 20 * 1024 * 1024
"""The largest image accepted (seed 001: 20 MB)."""
_UPLOAD_BODY = UPLOAD_LIMIT + 256 * 1024  # the file plus multipart framing and form fields
_UPLOAD_PATHS = frozenset({"/api/v1/inspect", "/api/v1/inspect/ocr"})
_HOUR_US = 3_600_000_000
_EXPORT_PAGE = 2000
_INSPECT_TIMEOUT_S = 60.0
_LOAD_TIMEOUT_S = 120.0
_IMAGE_STATUS = {"empty": 400, "unsupported": 415, "corrupt": 422, "dimensions": 422}


def _allow_uploads(state: BlueprintSetupState) -> None:
    """Raise the app's body limit (1 MiB) for the upload routes only.

    The limit must be known when the request is made: quart's body buffer takes its maximum
    then and drops whatever comes beyond it, before any route code runs.
    """
    base = state.app.request_class

    class UploadRequest(base):  # type: ignore[misc, valid-type]
        def __init__(self, method: str, scheme: str, path: str, *args: Any, **kw: Any) -> None:
            upload = method == "POST" and path in _UPLOAD_PATHS
            if upload:
                kw["max_content_length"] = _UPLOAD_BODY
            super().__init__(method, scheme, path, *args, **kw)
            if upload:
                self.max_content_length = _UPLOAD_BODY

    state.app.request_class = UploadRequest


blueprint.record_once(_allow_uploads)


@contextmanager
def _refusals() -> Iterator[None]:
    """What the inspector and the store refuse, as problems."""
    try:
        yield
    except ImageError as exc:
        raise Problem(_IMAGE_STATUS[exc.reason], str(exc)) from None
    except NotFound as exc:
        raise Problem(404, str(exc)) from None
    except (TransitionError, DuplicateError, NoModel, InspectorBusy) as exc:
        raise Problem(409, str(exc)) from None
    except Unavailable as exc:
        raise Problem(503, str(exc), headers={"Retry-After": "5"}) from None
    except (ModelRefused, ValueError) as exc:
        raise Problem(422, str(exc)) from None
    except StateError as exc:  # the store failed, not the request
        raise Problem(503, f"the inspection could not be stored: {exc}",
                      headers={"Retry-After": "5"}) from None


async def _inspector(message: Any, timeout: float | None = None) -> Any:
    with _refusals():
        return await ask_actor("inspector", message, timeout)


async def _read(message: Any, f: Facade | None = None) -> Any:
    f = f or facade()  # passed in where the request context is gone (a streamed body)
    with _refusals():
        return await ask(f.runtime, pick_query_actor(f.runtime.directory), message,
                         f.ask_timeout_s)


async def _upload() -> tuple[bytes | None, MultiDict[str, str]]:
    """The uploaded `file` (None when absent) and the other form fields."""
    if request.mimetype != "multipart/form-data":
        raise Problem(415, "send the image as multipart/form-data in the field 'file'")
    try:
        files = await request.files
        form = await request.form
    except RequestEntityTooLarge:
        raise Problem(413, f"the upload is larger than {UPLOAD_LIMIT // (1024 * 1024)} MB"
                      ) from None
    except ValueError as exc:  # a malformed multipart body
        raise Problem(400, f"the multipart body cannot be read: {exc}") from None
    storage = files.get("file")
    if storage is None:
        return None, form
    data = storage.read(UPLOAD_LIMIT + 1)
    if len(data) > UPLOAD_LIMIT:
        raise Problem(413, f"the image is larger than {UPLOAD_LIMIT // (1024 * 1024)} MB")
    return data, form


def _field(form: MultiDict[str, str], name: str) -> str | None:
    value = (form.get(name) or "").strip()
    if not value:
        return None
    if len(value) > 64 or not value.isprintable():
        raise Problem(422, f"{name} must be at most 64 printable characters")
    return value


# ---- inspecting --------------------------------------------------------------------------------


@blueprint.post("/inspect")
@tag(["inspection"])
@requires(Role.OPERATOR, write=True)
@document_response(InspectionView)
async def inspect() -> object:
    """Inspect an uploaded image (multipart `file`: JPEG, PNG, BMP, TIFF or WebP, at most
    20 MB; optional `station_id`, `part_id`). Answered once the inspection is stored."""
    data, form = await _upload()
    if data is None:
        raise Problem(400, "no image: send it in the multipart field 'file'")
    view = await _inspector(InspectImage(data=data, station_id=_field(form, "station_id"),
                                         part_id=_field(form, "part_id")), _INSPECT_TIMEOUT_S)
    return json_response(view)


@blueprint.post("/inspect/camera")
@tag(["inspection"])
@requires(Role.OPERATOR, write=True)
@query(CameraQuery)
@document_response(InspectionView)
async def inspect_camera(q: CameraQuery) -> object:
    """Inspect the newest frame of a camera (the inspector's camera unless `camera` is given);
    503 while the camera is down or has no frame."""
    view = await _inspector(InspectCamera(camera=q.camera, station_id=q.station_id,
                                          part_id=q.part_id), _INSPECT_TIMEOUT_S)
    return json_response(view)


@blueprint.post("/inspect/ocr")
@tag(["inspection"])
@requires(Role.OPERATOR, write=True)
@query(OcrQuery)
@document_response(TextRead)
async def read_text(q: OcrQuery) -> object:
    """Read the text on an uploaded image (multipart `file`) or on a camera's newest frame
    (`?camera=`; also published as `vision.<camera>.ocr`)."""
    data = None
    if request.mimetype == "multipart/form-data":
        data, _ = await _upload()
    if (data is None) == (q.camera is None):
        raise Problem(400, "give either an image (multipart 'file') or ?camera=, not both")
    return json_response(await _inspector(
        ReadText(camera=q.camera, image=data, min_confidence=q.min_confidence),
        _LOAD_TIMEOUT_S))


@blueprint.get("/inspect/<id_>")
@tag(["inspection"])
@requires(Role.OPERATOR)
@document_response(InspectionView)
async def get_inspection(id_: str) -> object:
    return json_response(await _read(GetInspection(id=id_)))


@blueprint.delete("/inspect/<id_>")
@tag(["inspection"])
@requires(Role.ENGINEER, write=True)
async def delete_inspection(id_: str) -> object:
    """Delete an inspection with its detections and its kept image."""
    if not await _inspector(DeleteInspection(id=id_)):
        raise Problem(404, f"no inspection {id_}")
    return Response("", status=204)


@blueprint.get("/inspect/<id_>/image")
@tag(["inspection"])
@requires(Role.OPERATOR)
async def inspection_image(id_: str) -> object:
    """The image kept with an inspection (see [inspector] keep_images); 404 when none was."""
    image = await _inspector(GetInspectionImage(id=id_))
    return Response(image.data, mimetype=image.media_type,
                    headers={"Cache-Control": "private, max-age=86400"})


@blueprint.get("/inspections")
@tag(["inspection"])
@requires(Role.OPERATOR)
@query(InspectionsQuery)
@document_response(InspectionsPage)
async def list_inspections(q: InspectionsQuery) -> object:
    """Stored inspections, newest first."""
    flt = InspectionFilter(station_id=q.station_id, decision=q.decision)
    items = await _read(ListInspections(filter=flt, limit=q.limit, offset=q.offset))
    total = await _read(CountInspections(filter=flt)) if items or q.offset else 0
    return json_response(InspectionsPage(inspections=items, total=total, limit=q.limit,
                                         offset=q.offset))


@blueprint.get("/statistics")
@tag(["inspection"])
@requires(Role.OPERATOR)
@query(StatisticsQuery)
@document_response(InspectionStatistics)
async def statistics(q: StatisticsQuery) -> object:
    """Counts per decision, pass rate, mean inspection time and failed labels over the last
    `hours`, computed from the stored rows on every request."""
    since = facade().runtime.clock.now_us() - q.hours * _HOUR_US
    return json_response(await _read(InspectionStats(since_us=since, station_id=q.station_id)))


@blueprint.get("/trends")
@tag(["inspection"])
@requires(Role.OPERATOR)
@query(TrendsQuery)
@document_response(InspectionTrends)
async def trends(q: TrendsQuery) -> object:
    """Inspections per UTC hour or day over the last `hours` (empty buckets as zeros)."""
    now = facade().runtime.clock.now_us()
    return json_response(await _read(InspectionTrend(
        since_us=now - q.hours * _HOUR_US, until_us=now, interval=q.interval,
        station_id=q.station_id)))


_CSV_FIELDS = ("id", "timestamp", "station_id", "camera", "part_id", "source", "decision",
               "confidence", "label", "objects_found", "total_time_ms", "inference_ms",
               "model_id", "image_ref")


@blueprint.get("/export/csv")
@tag(["inspection"])
@requires(Role.OPERATOR)
@query(ExportQuery)
async def export_csv(q: ExportQuery) -> object:
    """Every stored inspection (optionally of a station or decision) as CSV, oldest first,
    streamed page by page."""
    f = facade()
    flt = InspectionFilter(station_id=q.station_id, decision=q.decision)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(f.runtime.clock.now_us() / 1e6))
    name = f"inspections-{f.station.station.id}-{stamp}.csv"

    async def rows() -> AsyncIterator[bytes]:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(_CSV_FIELDS)
        after: tuple[int, str] | None = None
        while True:
            page = await _read(ExportInspections(
                after_us=after[0] if after else None, after_id=after[1] if after else None,
                limit=_EXPORT_PAGE, filter=flt), f)
            for r in page:
                writer.writerow([r.id, rfc3339(r.at_us), _cell(r.station_id), _cell(r.camera),
                                 _cell(r.part_id), r.source, r.decision, r.confidence,
                                 _cell(r.label), r.objects_found, round(r.total_time_ms, 3),
                                 round(r.inference_ms, 3), r.model_id, r.image_ref])
            yield out.getvalue().encode()
            out.seek(0)
            out.truncate()
            if len(page) < _EXPORT_PAGE:
                return
            after = (page[-1].at_us, page[-1].id)

    return Response(rows(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _cell(value: str | None) -> str | None:
    # A spreadsheet runs a cell that starts like a formula; a part id is data.
    if value is not None and value.startswith(("=", "+", "-", "@", "\t", "\r")):
        return "'" + value
    return value


# ---- batch jobs ---------------------------------------------------------------------------------


@blueprint.get("/batch/jobs")
@tag(["inspection batch"])
@requires(Role.OPERATOR)
@query(JobsQuery)
@document_response(list[BatchJobRow])
async def list_jobs(q: JobsQuery) -> object:
    return json_response(await _read(ListBatchJobs(limit=q.limit, offset=q.offset)))


@blueprint.post("/batch/jobs")
@tag(["inspection batch"])
@requires(Role.ENGINEER, write=True)
@body(JobBody)
@document_response(BatchJobRow, 201)
async def create_job(data: JobBody) -> object:
    """A pending job over the files of `input_dir` (absolute, or under the data directory)
    matching `file_pattern` (a glob, e.g. `*.jpg` or `**/*.png`)."""
    job = await _inspector(CreateBatchJob(name=data.name, input_dir=data.input_dir,
                                          file_pattern=data.file_pattern, part_id=data.part_id))
    return json_response(job, 201)


@blueprint.get("/batch/jobs/<id_>")
@tag(["inspection batch"])
@requires(Role.OPERATOR)
@document_response(BatchJobRow)
async def get_job(id_: str) -> object:
    """A job's status and progress (total, done, failed)."""
    return json_response(await _read(GetBatchJob(id=id_)))


@blueprint.post("/batch/jobs/<id_>/start")
@tag(["inspection batch"])
@requires(Role.ENGINEER, write=True)
@document_response(BatchJobRow)
async def start_job(id_: str) -> object:
    return json_response(await _inspector(StartBatchJob(id=id_)))


@blueprint.post("/batch/jobs/<id_>/cancel")
@tag(["inspection batch"])
@requires(Role.ENGINEER, write=True)
@document_response(BatchJobRow)
async def cancel_job(id_: str) -> object:
    """Cancel a pending or running job; answered once it has stopped."""
    return json_response(await _inspector(CancelBatchJob(id=id_), _INSPECT_TIMEOUT_S))


# ---- active learning and training ---------------------------------------------------------------


@blueprint.get("/active-learning/stats")
@tag(["active learning"])
@requires(Role.OPERATOR)
@document_response(dict[str, int])
async def active_learning_stats() -> object:
    """Queue counts: pending, labeled, trained."""
    return json_response(await _read(ActiveLearningStats()))


@blueprint.get("/active-learning/queue")
@tag(["active learning"])
@requires(Role.OPERATOR)
@query(QueueQuery)
@document_response(list[QueueItem])
async def active_learning_queue(q: QueueQuery) -> object:
    """The next images to annotate, oldest first."""
    return json_response([queue_item(r) for r in
                          await _read(ActiveLearningQueue(limit=q.limit))])


@blueprint.post("/active-learning/annotate/<id_>")
@tag(["active learning"])
@requires(Role.OPERATOR, write=True)
@body(AnnotateBody)
@document_response(QueueItem)
async def annotate(id_: str, data: AnnotateBody) -> object:
    """Label a queued image; the first annotation's class is its label for training."""
    row = await _inspector(AnnotateImage(
        id=id_, annotations=[Annotation(class_name=a.class_name, bbox=a.bbox)
                             for a in data.annotations],
        reviewed_by=data.reviewed_by or current_principal().name))
    return json_response(queue_item(row))


@blueprint.post("/training/start")
@tag(["training"])
@requires(Role.ENGINEER, write=True)
@body(TrainingBody)
@document_response(TrainingState, 202)
async def start_training(data: TrainingBody) -> object:
    """Train a new model version on the annotated images plus rendered demo frames; it is
    registered, not deployed. 409 while a run is going on."""
    state = await _inspector(StartTraining(
        model_name=data.model_name, epochs=data.epochs, batch_size=data.batch_size,
        learning_rate=data.learning_rate, demo_per_label=data.demo_per_label))
    return json_response(state, 202)


@blueprint.get("/training/status")
@tag(["training"])
@requires(Role.OPERATOR)
@document_response(TrainingState)
async def training_status() -> object:
    return json_response(await _inspector(TrainingStatus()))


@blueprint.post("/training/stop")
@tag(["training"])
@requires(Role.ENGINEER, write=True)
@document_response(TrainingState)
async def stop_training() -> object:
    return json_response(await _inspector(StopTraining()))


# ---- models ------------------------------------------------------------------------------------


@blueprint.get("/models")
@tag(["models"])
@requires(Role.OPERATOR)
@document_response(list[ModelView])
async def list_models() -> object:
    """Every registered model version, newest first; `active` marks the deployed one."""
    return json_response([model_view(m) for m in await _read(ListVisionModels())])


@blueprint.post("/models")
@tag(["models"])
@requires(Role.ENGINEER, write=True)
@body(ImportBody)
@document_response(ModelView, 201)
async def import_model(data: ImportBody) -> object:
    """Register a model file (OpenVINO IR .xml or ONNX; absolute or under the data directory)
    as a new version of `name`; it is loaded once to check it, not deployed. An ONNX model,
    or one given `mean`/`scale` (its training's pixel normalisation, per R, G, B channel:
    (p / 255 - mean) / scale), is stored converted to IR under the data directory's
    models/imported/, labels and normalisation built in; `path` in the answer is that copy."""
    row = await _inspector(ImportModel(path=data.path, name=data.name, labels=data.labels,
                                       mean=data.mean, scale=data.scale), _LOAD_TIMEOUT_S)
    return json_response(model_view(row), 201)


@blueprint.post("/models/<id_>/deploy")
@tag(["models"])
@requires(Role.ENGINEER, write=True)
@document_response(ModelView)
async def deploy_model(id_: str) -> object:
    """Hot swap: the model is compiled while the current one serves, then takes over."""
    return json_response(model_view(await _inspector(DeployModel(id=id_), _LOAD_TIMEOUT_S)))


@blueprint.post("/models/<id_>/rollback")
@tag(["models"])
@requires(Role.ENGINEER, write=True)
@document_response(ModelView)
async def rollback_model(id_: str) -> object:
    """Deploy again the model that was active before `id_` (the deployed model)."""
    return json_response(model_view(await _inspector(RollbackModel(id=id_), _LOAD_TIMEOUT_S)))


# ---- alerts ------------------------------------------------------------------------------------


async def _alerts(q: AlertsQuery) -> object:
    rows = await _read(ListInspectionAlerts(
        filter=AlertFilter(severity=q.severity, acknowledged=q.acknowledged), limit=q.limit,
        offset=q.offset))
    return json_response(AlertsPage(alerts=[alert_view(r) for r in rows]))


async def _acknowledge(id_: str) -> object:
    row = await _inspector(AcknowledgeInspectionAlert(id=id_, by=current_principal().name))
    return json_response(alert_view(row))


@blueprint.get("/inspection-alerts")
@tag(["inspection alerts"])
@requires(Role.OPERATOR)
@query(AlertsQuery)
@document_response(AlertsPage)
async def list_alerts(q: AlertsQuery) -> object:
    """The inspector's alerts (pass rate, fails in a row, model and camera errors), newest
    first."""
    return await _alerts(q)


@blueprint.post("/inspection-alerts/<id_>/acknowledge")
@tag(["inspection alerts"])
@requires(Role.OPERATOR, write=True)
async def acknowledge_alert(id_: str) -> object:
    return await _acknowledge(id_)


@blueprint.get("/alerts")
@tag(["inspection alerts"])
@requires(Role.OPERATOR)
@query(AlertsQuery)
@document_response(AlertsPage)
async def list_alerts_seed(q: AlertsQuery) -> object:
    """Seed 001's path for /api/v1/inspection-alerts."""
    return await _alerts(q)


@blueprint.post("/alerts/<id_>/acknowledge")
@tag(["inspection alerts"])
@requires(Role.OPERATOR, write=True)
async def acknowledge_alert_seed(id_: str) -> object:
    """Seed 001's path for /api/v1/inspection-alerts/<id>/acknowledge."""
    return await _acknowledge(id_)


# ---- OpenVINO ----------------------------------------------------------------------------------


@blueprint.get("/openvino/status")
@tag(["openvino"])
@requires(Role.OPERATOR)
@document_response(InspectorStatus)
async def openvino_status() -> object:
    """OpenVINO's version and devices, the deployed and loaded models, continuous-mode counts."""
    return json_response(await _inspector(OpenVinoStatus(), _LOAD_TIMEOUT_S))


@blueprint.post("/openvino/load")
@tag(["openvino"])
@requires(Role.ENGINEER, write=True)
@body(LoadBody)
@document_response(LoadedModel)
async def openvino_load(data: LoadBody) -> object:
    """Load a model file under `model_key` (for benchmarks; it does not inspect)."""
    loaded = await _inspector(LoadOpenVinoModel(model_key=data.model_key,
                                                model_path=data.model_path, device=data.device,
                                                labels=data.labels), _LOAD_TIMEOUT_S)
    return json_response({"status": "loaded", "model_key": loaded.key, "device": loaded.device,
                          "model": loaded})


@blueprint.post("/openvino/benchmark")
@tag(["openvino"])
@requires(Role.ENGINEER, write=True)
@body(BenchmarkBody)
@document_response(BenchmarkResult)
async def openvino_benchmark(data: BenchmarkBody) -> object:
    """Latency of `iterations` predictions on a synthetic frame and async throughput, for a
    loaded model key or `deployed`. Takt ships no onnxruntime, so `ort_mean_ms` is null."""
    return json_response(await _inspector(
        BenchmarkModel(model_key=data.model_key, iterations=data.iterations), _LOAD_TIMEOUT_S))
