"""The inspector's long-running work: batch jobs and training runs, each on a thread of its
own, and the model benchmark, run on the loader thread; with the little the actor keeps of the
runs going on (`BatchJobs`, `Training`).

Apart from the actor because this work does not run on the actor's thread: a worker reads and
writes through its own database cursor and the store, and reports back to the actor by messages
(`JobEnded`, `TrainingEnded`), which the actor handles on its own thread.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import msgspec
import numpy as np

from actors.inspector_messages import (
    BenchmarkResult,
    InspectorBusy,
    NoModel,
    StartTraining,
    TrainingState,
    Unavailable,
)
from actors.inspector_models import Deployment, file_stem
from actors.runtime import Reply, call
from actors.store import Write
from drivers.vision.images import ImageError, decode_image
from state.errors import TransitionError
from state.inspection_jobs import (
    BatchJobRow,
    finish_job,
    job_progress,
    labeled_items,
    mark_trained,
)
from state.vision_models import register_model

if TYPE_CHECKING:
    from actors.inspector import InspectorActor
    from actors.inspector_models import LoadedModels

__all__ = [
    "MODELS",
    "BatchJobs",
    "BatchRun",
    "JobEnded",
    "Training",
    "TrainingEnded",
    "TrainingRun",
    "batch_files",
    "benchmark",
    "check_batch_input",
]

MODELS = "models"  # folder of trained models under the data directory
_BATCH_FLUSH_ROWS = 256
_BATCH_FLUSH_S = 0.5


@dataclass(frozen=True, slots=True)
class JobEnded:
    """To the actor: a batch job's worker has finished, whatever the job's outcome."""

    job_id: str


@dataclass(frozen=True, slots=True)
class TrainingEnded:
    """To the actor: the training run has finished, in this state."""

    state: TrainingState


class BatchJobs:
    """The batch jobs running now, by id; started, cancelled and ended on the actor's thread."""

    def __init__(self) -> None:
        self.running: dict[str, BatchRun] = {}

    def start(self, actor: InspectorActor, job: BatchJobRow, files: list[Path]) -> None:
        """Inspect a started job's files on a thread of its own."""
        run = self.running[job.id] = BatchRun(actor, job, files)
        run.start()

    def cancel(self, job_id: str, reply: Reply) -> bool:
        """Stop a running job and answer `reply` once it has ended; False: it is not running."""
        run = self.running.get(job_id)
        if run is None:
            return False
        run.waiting.append(reply)  # answered when the worker has stopped
        run.cancelled.set()
        return True

    def ended(self, job_id: str) -> list[Reply]:
        """Forget an ended job; the cancel requests waiting for it."""
        run = self.running.pop(job_id, None)
        return run.waiting if run else []

    def stop_all(self) -> None:
        """Cancel every job and wait (a while) for their workers."""
        for run in list(self.running.values()):
            run.cancelled.set()
        for run in list(self.running.values()):
            run.join(10.0)


def check_batch_input(folder: Path, input_dir: str, file_pattern: str) -> None:
    """Refuse a batch job whose input is no folder, or whose pattern reaches out of it."""
    if not folder.is_dir():
        raise ValueError(f"input_dir {input_dir!r} is not an existing folder "
                         f"(relative paths are under the data directory)")
    if Path(file_pattern).is_absolute() or ".." in Path(file_pattern).parts:
        raise ValueError("file_pattern is a glob inside input_dir, e.g. *.png or **/*.jpg")


def batch_files(job: BatchJobRow) -> list[Path]:
    """The files a batch job inspects, in name order."""
    folder = Path(job.input_dir)
    try:
        return sorted(p for p in folder.glob(job.file_pattern) if p.is_file())
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot list {folder}: {exc}") from None


class BatchRun(threading.Thread):
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
                    built = actor.build_inspection(
                        decoded.image, source="batch", camera=None, station_id=None,
                        part_id=self.job.part_id, t0=t0, original=(data, decoded.type.suffix))
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
            actor.tell_self(JobEnded(self.job.id))

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


class Training:
    """One training run at a time and the state it last reported; used on the actor's thread."""

    def __init__(self) -> None:
        self.state = TrainingState(status="idle")
        self._run: TrainingRun | None = None

    def start(self, actor: InspectorActor, request: StartTraining, *, data_dir: Path | None,
              models: LoadedModels) -> TrainingState:
        """Train on a thread of its own; the run's state now ("running")."""
        if self._run is not None and self._run.is_alive():
            raise InspectorBusy("a training run is going on; stop it first")
        if data_dir is None:
            raise Unavailable("this inspector has no data directory to keep a model in")
        started_us = actor.clock.now_us()
        self.state = TrainingState(status="running", model_name=request.model_name,
                                   started_us=started_us)
        self._run = TrainingRun(actor, request, data_dir=data_dir, started_us=started_us,
                                models=models)
        self._run.start()
        return self.state

    def stop(self) -> TrainingState:
        """Ask the running training to stop; it ends as "stopped" when it can."""
        if self._run is None or not self._run.is_alive():
            raise TransitionError("no training run is going on")
        self._run.stop_requested.set()
        return self.state

    def stop_if_running(self) -> None:
        """Ask a training run, if any, to stop: the actor is stopping."""
        if self._run is not None:
            self._run.stop_requested.set()


class TrainingRun(threading.Thread):
    """Train on the annotated queue images plus the demo's rendered frames; register the
    result as a new model version (not deployed)."""

    def __init__(self, actor: InspectorActor, request: StartTraining, *, data_dir: Path,
                 started_us: int, models: LoadedModels) -> None:
        super().__init__(name=f"{actor.name}-training", daemon=True)
        self.actor = actor
        self.request = request
        self.data_dir = data_dir
        self.started_us = started_us
        self.models = models  # their OpenVINO core builds the feature extractor
        self.stop_requested = threading.Event()

    def run(self) -> None:
        actor = self.actor
        con = actor.database.cursor()
        try:
            state = self._train(con)
        except Exception as exc:
            actor.log.exception("training failed")
            state = TrainingState(status="failed", model_name=self.request.model_name,
                                  started_us=self.started_us, finished_us=actor.clock.now_us(),
                                  error=f"{type(exc).__name__}: {exc}")
        finally:
            con.close()
        actor.tell_self(TrainingEnded(state))

    def _train(self, con: duckdb.DuckDBPyConnection) -> TrainingState:
        from drivers.vision.trainer import export, train
        from sim.vision.dataset import make_set

        actor, req = self.actor, self.request
        images: list[np.ndarray] = []
        labels: list[str] = []
        used: list[str] = []
        for item in labeled_items(con):
            annotations = json.loads(item.annotations or "[]")
            try:
                image = decode_image((self.data_dir / item.image_ref).read_bytes()).image
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
                             started_us=self.started_us, images=len(images),
                             annotated=len(used))
        if self.stop_requested.is_set():
            return msgspec.structs.replace(base, finished_us=actor.clock.now_us())
        try:
            trained = train(images, labels, core=self.models.core())
        except ValueError as exc:  # too few images or labels: the user's to fix
            return msgspec.structs.replace(base, status="failed", error=str(exc),
                                           finished_us=actor.clock.now_us())
        finished = actor.clock.now_us()
        if self.stop_requested.is_set():  # the fit cannot be interrupted; its result is dropped
            return msgspec.structs.replace(base, finished_us=finished)
        path = self.data_dir / MODELS / f"{file_stem(req.model_name)}-{finished}.xml"
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


def benchmark(deployment: Deployment, key: str, iterations: int, requests: int
              ) -> BenchmarkResult:
    """Blocking predict N times on a synthetic frame, then the same frames through the async
    queue with every request busy (throughput). Blocks: run it on the loader thread."""
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
