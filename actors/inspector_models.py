"""The inspector's models in memory and the thread that loads them.

A deployment is leased by every caller, so that a hot swap closes the old model only once its
last inference is done; `LoadedModels` holds the deployed model and those loaded by key, all
compiled on one OpenVINO core; `LoaderThread` compiles models (and runs OCR and benchmarks) off
the actor's thread and hands each result back to the actor as a `Loaded` message.

Apart from the actor because these pieces are used from several threads (the actor's, the
loader's, the camera's, OpenVINO's and the batch workers') and hold no actor state of their
own. OpenVINO is imported only when a model is loaded.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from actors.inspector_messages import LoadedModel, ModelRefused, NoModel
from actors.runtime import ActorUnavailable, Reply
from controller.inspector_config import InspectorConfig
from state.errors import NotFound

if TYPE_CHECKING:
    import openvino as ov

    from drivers.vision.classifier import VisionModel
    from state.vision_models import ModelRow

__all__ = [
    "Deployment",
    "Loaded",
    "LoadedModels",
    "LoaderThread",
    "Retired",
    "file_stem",
    "loaded_view",
    "model_kind",
]


class Retired(Exception):
    """The deployment was swapped out while a caller reached for it; take the new one."""


class Deployment:
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
                raise Retired
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


class LoadedModels:
    """The models the inspector holds in memory: the deployed one, which every inspection
    leases, and those loaded under a key for the OpenVINO endpoints; all compiled on one
    OpenVINO core made on first use. Changed on the actor's thread, read from any."""

    def __init__(self, config: InspectorConfig, name: str) -> None:
        self.config = config
        self.name = name  # the actor's: retiring threads are named after it
        self.current: Deployment | None = None
        self.by_key: dict[str, Deployment] = {}
        self._core: ov.Core | None = None
        self._core_lock = threading.Lock()

    def core(self) -> ov.Core:
        with self._core_lock:
            if self._core is None:
                import openvino as ov

                self._core = ov.Core()
            return self._core

    def load(self, path: Path, labels: list[str] | None, device: str | None = None
             ) -> VisionModel:
        """Compile a model file with the configured precision and requests. Blocks."""
        from drivers.vision.classifier import ModelError, VisionModel

        if not path.is_file():
            raise ModelRefused(f"no model file at {path}")
        try:
            return VisionModel.load(path, labels=labels or None,
                                    device=device or self.config.device,
                                    precision=self.config.precision,
                                    requests=self.config.requests, core=self.core())
        except ModelError as exc:
            raise ModelRefused(str(exc)) from exc

    def convert(self, path: Path, out: Path, labels: list[str] | None,
                mean: list[float] | None, scale: list[float] | None) -> Path:
        """Save a model trained elsewhere as IR in Takt's convention at `out`. Blocks."""
        from drivers.vision.classifier import ModelError, convert_model

        if not path.is_file():
            raise ModelRefused(f"no model file at {path}")
        try:
            return convert_model(path, out, labels=labels, mean=mean, scale=scale,
                                 core=self.core())
        except ModelError as exc:
            raise ModelRefused(str(exc)) from exc

    def deployed(self) -> Deployment:
        current = self.current
        if current is None:
            raise NoModel("no model is deployed: import one (POST /api/v1/models) and deploy "
                          "it, or set [inspector] model")
        return current

    def deploy(self, model: VisionModel, row: ModelRow) -> None:
        """Serve `model` from now on; the one it replaces is closed once its work is done."""
        old, self.current = self.current, Deployment(model, row)
        if old is not None:
            # Off this thread: retiring waits for the old model's in-flight inferences.
            threading.Thread(target=old.retire, name=f"{self.name}-retire", daemon=True).start()

    def keep(self, key: str, model: VisionModel) -> LoadedModel:
        """Hold `model` under `key`, retiring the one it replaces."""
        old = self.by_key.get(key)
        self.by_key[key] = deployment = Deployment(model, key=key)
        if old is not None:
            threading.Thread(target=old.retire, daemon=True).start()
        return loaded_view(key, deployment)

    def find(self, key: str) -> Deployment:
        """The model loaded under `key`, or the deployed one for "deployed"."""
        deployment = self.current if key == "deployed" else self.by_key.get(key)
        if deployment is None:
            raise NotFound(f"no model loaded under {key!r} (load it with "
                           "/api/v1/openvino/load, or use 'deployed')")
        return deployment

    def views(self) -> list[LoadedModel]:
        return [loaded_view(key, d) for key, d in sorted(self.by_key.items())]

    def close(self) -> None:
        """Retire every model, waiting for its in-flight work."""
        for deployment in [self.current, *self.by_key.values()]:
            if deployment is not None:
                deployment.retire()
        self.current = None
        self.by_key.clear()


@dataclass(frozen=True, slots=True)
class Loaded:
    """To the actor: the loader's work is done; `finish` it on the actor's thread."""

    result: Any
    error: BaseException | None
    then: Callable[[Any], Any]
    cleanup: Callable[[Any], None] | None
    reply: Reply

    def finish(self) -> None:
        """Answer with `then(result)`; if that fails, clean the result up and answer the error."""
        if self.error is not None:
            self.reply(None, self.error)
            return
        try:
            answer = self.then(self.result)
        except Exception as exc:
            if self.cleanup is not None:
                self.cleanup(self.result)
            self.reply(None, exc)
            return
        self.reply(answer, None)


class LoaderThread:
    """One thread for the inspector's slow work (compiling models, OCR, benchmarks), off the
    actor's thread; each result goes back to the actor as a `Loaded` message."""

    def __init__(self, name: str, tell_actor: Callable[[Loaded], None]) -> None:
        self.name = name  # the actor's
        self._tell_actor = tell_actor  # raises ActorUnavailable once the actor is gone
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"{name}-load")

    def run(self, work: Callable[[], Any], then: Callable[[Any], Any], reply: Reply,
            cleanup: Callable[[Any], None] | None = None) -> None:
        """Run `work` here, then `then(result)` back on the actor's thread, and answer with
        what it returns. `cleanup(result)` releases a result nobody takes."""

        def job() -> None:
            try:
                result, error = work(), None
            except BaseException as exc:
                result, error = None, exc
            try:
                self._tell_actor(Loaded(result, error, then, cleanup, reply))
            except ActorUnavailable:
                if cleanup is not None and error is None:
                    cleanup(result)
                reply(None, ActorUnavailable(f"{self.name} stopped before answering"))

        try:
            self._pool.submit(job)
        except RuntimeError:  # shut down: the actor is stopping
            raise ActorUnavailable(f"{self.name} is stopping") from None

    def shutdown(self) -> None:
        """Drop the work not started yet and wait for the running one."""
        self._pool.shutdown(wait=True, cancel_futures=True)


def file_stem(name: str) -> str:
    """A model's name as the start of a file name: its safe letters only (a name is free
    text, never a path)."""
    return re.sub(r"[^a-z0-9_-]+", "-", name.lower()).strip("-")[:48] or "model"


def model_kind(path: Path) -> str:
    """The registry's kind of a model file, from its suffix: "ir" or "onnx"."""
    suffix = path.suffix.lower()
    if suffix == ".xml":
        return "ir"
    if suffix == ".onnx":
        return "onnx"
    raise ValueError(f"{path.name}: a model file is OpenVINO IR (.xml) or ONNX (.onnx)")


def loaded_view(key: str, deployment: Deployment) -> LoadedModel:
    """What the OpenVINO status says of a loaded model."""
    m = deployment.model
    return LoadedModel(key=key, path=str(m.path), device=m.device, precision=m.precision,
                       labels=list(m.labels), input_hw=tuple(m.input_hw),  # type: ignore[arg-type]
                       load_ms=round(m.load_ms, 3))
