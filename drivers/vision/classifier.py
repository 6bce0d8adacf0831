"""Load, compile and run any Takt vision model (see `drivers.vision.model_format`).

Models trained elsewhere (ONNX, or IR with an f32 NCHW input and logits) are wrapped on load:
a u8 NHWC RGB input is put in front of them and their outputs become probabilities.
"""

from __future__ import annotations

import atexit
import json
import logging
import math
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import openvino as ov
from openvino.frontend import FrontEndManager

from drivers.vision.model_format import (
    EVIDENCE,
    PROBABILITIES,
    read_info,
    rgb_u8_input,
    write_info,
)

__all__ = [
    "PRECISIONS",
    "ClassScores",
    "InferenceStats",
    "ModelError",
    "VisionModel",
    "convert_model",
    "evidence_box",
    "fit_frame",
    "save_model",
]

log = logging.getLogger(__name__)

PRECISIONS = ("f32", "bf16", "f16")
_SUFFIXES = (".xml", ".onnx")


class ModelError(Exception):
    """A model that cannot be used as it is: missing, unreadable, inconsistent or misconfigured.
    The message says which and is fit to show a user."""


@dataclass(frozen=True, slots=True)
class ClassScores:
    label: str
    confidence: float
    scores: dict[str, float]
    # x1, y1, x2, y2 in the input image's pixels, where the evidence for `label` is strongest;
    # None when the model has no evidence output
    box: tuple[int, int, int, int] | None


Done = Callable[[ClassScores | None, BaseException | None], None]


@dataclass(frozen=True, slots=True)
class InferenceStats:
    submitted: int  # frames accepted by submit()
    dropped: int  # frames submit() refused because every request was busy
    completed: int
    failed: int


def fit_frame(image: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """An H x W x 3 uint8 RGB frame resized (INTER_AREA) to `hw`; the same for training and
    serving, so a model sees in service what it was fitted on."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 \
            or image.shape[2] != 3:
        shape = getattr(image, "shape", None)
        dtype = getattr(image, "dtype", type(image).__name__)
        raise ValueError(f"expected an H x W x 3 uint8 RGB frame, got {dtype} {shape}")
    h, w = hw
    if image.shape[:2] != (h, w):
        image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(image)


def save_model(model: ov.Model, path: Path, labels: Sequence[str]) -> Path:
    """Write a model that follows the convention as IR (xml + bin), labels in its rt_info.
    Weights are kept in f32 so the file predicts exactly what the model in memory does."""
    path = Path(path)
    if path.suffix != ".xml":
        raise ModelError(f"an OpenVINO IR file name ends in .xml: {path}")
    outputs = model.output(0).get_partial_shape()
    if outputs.rank.is_static and outputs[-1].is_static \
            and outputs[-1].get_length() != len(labels):
        raise ModelError(f"model has {outputs[-1].get_length()} output classes but "
                         f"{len(labels)} labels")
    write_info(model, _checked_labels(labels, path))
    path.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(model, str(path), compress_to_fp16=False)
    return path


class VisionModel:
    """A compiled classifier. `predict` blocks; `submit` runs on an AsyncInferQueue."""

    path: Path
    labels: tuple[str, ...]
    input_hw: tuple[int, int]
    device: str
    precision: str
    load_ms: float

    def __init__(self, *, path: Path, labels: tuple[str, ...], input_hw: tuple[int, int],
                 device: str, precision: str, load_ms: float, compiled: ov.CompiledModel,
                 requests: int) -> None:
        self.path, self.labels, self.input_hw = path, labels, input_hw
        self.device, self.precision, self.load_ms = device, precision, load_ms
        self._compiled = compiled
        self._probs = _find_output(compiled, PROBABILITIES, 0)
        self._evidence = _find_output(compiled, EVIDENCE, None)
        self._lock = threading.Lock()  # the queue, the counters, closing
        self._predict_lock = threading.Lock()  # the one request predict() uses
        self._request = compiled.create_infer_request()
        self._queue = ov.AsyncInferQueue(compiled, requests)
        # Held weakly: a queue whose callback holds its owner is a cycle, and the collector
        # could then free the queue on one of its own worker threads (see _bury).
        self._queue.set_callback(_callback(weakref.ref(self)))
        self._closed = False
        self._submitted = self._dropped = self._completed = self._failed = 0

    @classmethod
    def load(cls, path: Path, *, labels: Sequence[str] | None = None, device: str = "CPU",
             precision: str = "f32", requests: int = 2, core: ov.Core | None = None,
             mean: Sequence[float] | None = None, scale: Sequence[float] | None = None
             ) -> VisionModel:
        """Read and compile a model. Labels: the `labels` argument, else the model's rt_info,
        else a `<stem>.labels.json` beside it. `mean`/`scale` only apply to models that take
        f32 pixels: (p / 255 - mean) / scale."""
        path = Path(path)
        if precision not in PRECISIONS:
            raise ModelError(f"unknown precision {precision!r}: use one of {', '.join(PRECISIONS)}")
        if requests < 1:
            raise ModelError("requests must be at least 1")
        core = core or ov.Core()
        started = time.perf_counter()
        model, names = _prepared(core, path, labels, mean, scale)
        shape = model.input(0).get_shape()
        config = {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY"}
        try:
            compiled = core.compile_model(model, device, config)
        except Exception as exc:
            raise ModelError(f"cannot compile {path.name} for {device} at {precision}: "
                             f"{_first_line(exc)}") from exc
        load_ms = (time.perf_counter() - started) * 1000
        return cls(path=path, labels=names, input_hw=(int(shape[1]), int(shape[2])),
                   device=device, precision=precision, load_ms=load_ms, compiled=compiled,
                   requests=requests)

    def predict(self, image: np.ndarray) -> ClassScores:
        """Classify one H x W x 3 uint8 RGB frame (any size: it is resized to input_hw)."""
        frame = fit_frame(image, self.input_hw)[None]
        with self._predict_lock:
            self._check_open()
            self._request.infer({0: frame})
            return self._scores(self._request, image.shape[:2])

    def submit(self, image: np.ndarray, done: Done) -> bool:
        """Start classifying a frame; `done(scores, None)` or `done(None, error)` follows on an
        OpenVINO thread. False, and nothing runs, when every request is busy: the caller
        drops the frame and sends a newer one later."""
        with self._lock:
            self._check_open()
            if not self._queue.is_ready():  # before the resize: a dropped frame costs nothing
                self._dropped += 1
                return False
        frame = fit_frame(image, self.input_hw)[None]
        with self._lock:
            self._check_open()
            if not self._queue.is_ready():
                self._dropped += 1
                return False
            self._submitted += 1
            self._queue.start_async({0: frame}, (done, image.shape[:2]))
        return True

    def wait_all(self) -> None:
        """Wait until every submitted frame's `done` has run. Never from inside a `done`:
        it would wait for itself."""
        with self._lock:
            if self._closed:
                return
            queue = self._queue
        queue.wait_all()

    def close(self) -> None:
        """Finish what was submitted and release the compiled model; idempotent. Like
        wait_all, never from inside a `done`."""
        with self._predict_lock, self._lock:
            if self._closed:
                return
            self._closed = True
        self._queue.wait_all()
        _bury((self._queue, self._request, self._compiled))
        del self._queue, self._request, self._compiled

    @property
    def runs_at(self) -> str:
        """The precision the device actually runs at; it may refuse a hint (f16 on most CPUs)
        and fall back to f32."""
        with self._lock:
            self._check_open()
            return str(self._compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name())

    def statistics(self) -> InferenceStats:
        with self._lock:
            return InferenceStats(self._submitted, self._dropped, self._completed, self._failed)

    def __repr__(self) -> str:
        return (f"VisionModel({self.path.name}, {len(self.labels)} labels, "
                f"{self.input_hw[1]}x{self.input_hw[0]}, {self.device} {self.precision})")

    def _check_open(self) -> None:
        if self._closed:
            raise ModelError(f"model closed: {self.path}")

    def _finished(self, request: ov.InferRequest, userdata: tuple[Done, tuple[int, int]]
                  ) -> None:
        done, image_hw = userdata
        scores: ClassScores | None = None
        error: BaseException | None = None
        try:
            scores = self._scores(request, image_hw)
        except BaseException as exc:  # the caller hears of it through done(); never OpenVINO
            error = exc
        with self._lock:
            if error is None:
                self._completed += 1
            else:
                self._failed += 1
        try:
            done(scores, error)
        except Exception:
            log.exception("a vision result callback failed (%s)", self.path.name)

    def _scores(self, request: ov.InferRequest, image_hw: tuple[int, int]) -> ClassScores:
        raw = np.array(request.get_tensor(self._probs).data, dtype=np.float64).reshape(-1)
        probs = raw if _is_distribution(raw) else _softmax(raw)
        best = int(np.argmax(probs))
        box = None
        if self._evidence is not None:
            evidence = np.array(request.get_tensor(self._evidence).data, dtype=np.float32)
            box = evidence_box(evidence.reshape(evidence.shape[-3:])[best], image_hw)
        return ClassScores(label=self.labels[best], confidence=float(probs[best]),
                           scores={name: float(p) for name, p in zip(self.labels, probs,
                                                                     strict=True)},
                           box=box)


def convert_model(path: Path, out: Path, *, labels: Sequence[str] | None = None,
                  mean: Sequence[float] | None = None, scale: Sequence[float] | None = None,
                  core: ov.Core | None = None) -> Path:
    """A model trained elsewhere (ONNX, or IR) saved as IR in Takt's convention at `out`: the
    u8 RGB input with its pixel normalisation (`mean`, `scale`) built in, and its labels in
    rt_info. So it loads later as a Takt model does, with nothing to remember beside it."""
    model, names = _prepared(core or ov.Core(), Path(path), labels, mean, scale)
    return save_model(model, out, names)


def _prepared(core: ov.Core, path: Path, labels: Sequence[str] | None,
              mean: Sequence[float] | None, scale: Sequence[float] | None
              ) -> tuple[ov.Model, tuple[str, ...]]:
    """The model file read and checked, with the convention's input; and its labels."""
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    if path.suffix.lower() not in _SUFFIXES:
        raise ModelError(f"not an OpenVINO IR or ONNX model: {path} (expected .xml or .onnx)")
    for name, values in (("mean", mean), ("scale", scale)):
        if values is not None and (len(values) != 3 or not all(
                isinstance(v, int | float) and math.isfinite(v) for v in values)):
            raise ModelError(f"{name} takes 3 finite numbers, one per channel (R, G, B)")
    if scale is not None and any(v == 0 for v in scale):
        raise ModelError("scale must not be 0 for any channel")
    model = _read(core, path)
    names = _labels(model, path, labels)
    model = _with_rgb_u8_input(model, path, mean, scale)
    classes = _classes(model)
    if classes != len(names):
        raise ModelError(f"model has {classes} output classes but {len(names)} labels: {path}")
    return model, names


def _read(core: ov.Core, path: Path) -> ov.Model:
    # Each file goes to its own frontend: left to guess, OpenVINO tries every frontend it
    # has on a broken file, and some of them write errors to stderr.
    try:
        if path.suffix.lower() == ".onnx":
            frontend = FrontEndManager().load_by_framework("onnx")
            return frontend.convert(frontend.load(str(path)))
        with path.open("rb") as f:
            if b"<net" not in f.read(4096):
                raise ModelError(f"not an OpenVINO IR or ONNX model: {path}: no <net> element")
        return core.read_model(str(path))
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"not an OpenVINO IR or ONNX model: {path}: {_first_line(exc)}"
                         ) from exc


def _labels(model: ov.Model, path: Path, given: Sequence[str] | None) -> tuple[str, ...]:
    if given is not None:
        return _checked_labels(given, path)
    stored = read_info(model, "labels")
    if stored is not None:
        try:
            return _checked_labels(json.loads(stored), path)
        except (ValueError, TypeError) as exc:
            raise ModelError(f"bad labels in the metadata of {path}: {exc}") from exc
    sidecar = path.with_name(f"{path.stem}.labels.json")
    if sidecar.is_file():
        try:
            return _checked_labels(json.loads(sidecar.read_text(encoding="utf-8")), sidecar)
        except (ValueError, TypeError, OSError) as exc:
            raise ModelError(f"bad labels file {sidecar}: {exc}") from exc
    raise ModelError(f"no labels: {path} has none in its metadata and there is no "
                     f"{sidecar.name} beside it; pass labels=[...]")


def _checked_labels(labels: object, where: Path) -> tuple[str, ...]:
    if isinstance(labels, str) or not isinstance(labels, Sequence) \
            or not all(isinstance(x, str) and x for x in labels):
        raise ModelError(f"labels must be a list of non-empty names ({where})")
    names = tuple(labels)
    if len(set(names)) != len(names):
        raise ModelError(f"labels must be unique ({where}): {list(names)}")
    if not names:
        raise ModelError(f"labels must not be empty ({where})")
    return names


def _with_rgb_u8_input(model: ov.Model, path: Path, mean: Sequence[float] | None,
                       scale: Sequence[float] | None) -> ov.Model:
    if len(model.inputs) != 1:
        raise ModelError(f"a vision model has one image input; {path.name} has "
                         f"{len(model.inputs)}")
    shape = model.input(0).get_partial_shape()
    if shape.rank.is_dynamic or len(shape) != 4:
        raise ModelError(f"a vision model takes a 4-d image tensor; {path.name} takes {shape}")
    if model.input(0).get_element_type() == ov.Type.u8 and shape[3].is_static \
            and shape[3].get_length() == 3:
        layout = None  # already the convention's u8 NHWC RGB input
    elif shape[1].is_static and shape[1].get_length() == 3:
        layout = "NCHW"
    elif shape[3].is_static and shape[3].get_length() == 3:
        layout = "NHWC"
    else:
        raise ModelError(f"cannot tell the colour channels of {path.name}'s input {shape}")
    hw = (shape[2], shape[3]) if layout == "NCHW" else (shape[1], shape[2])
    if not all(d.is_static for d in hw):
        raise ModelError(f"{path.name} has a dynamic image size {shape}; export it with a fixed "
                         "height and width")
    if shape[0].is_dynamic or shape[0].get_length() != 1:
        dims = [1, *(d.get_length() for d in list(shape)[1:])]
        model.reshape({model.input(0): ov.PartialShape(dims)})
    if layout is None:
        return model
    try:
        return rgb_u8_input(model, layout=layout, mean=mean, scale=scale)
    except Exception as exc:
        raise ModelError(f"cannot put an RGB input in front of {path.name}: {_first_line(exc)}"
                         ) from exc


def _classes(model: ov.Model) -> int:
    """The number of classes of the model's class output ([1, C] or [C])."""
    output = next((o for o in model.outputs if PROBABILITIES in o.get_names()), model.output(0))
    shape = output.get_partial_shape()
    if shape.is_dynamic:
        raise ModelError(f"the model's class output has no fixed size: {shape}")
    dims = [d.get_length() for d in shape]
    if not dims or math.prod(dims) != dims[-1]:
        raise ModelError(f"a classifier's output is [1, classes]; this one is {shape}")
    return dims[-1]


def _find_output(compiled: ov.CompiledModel, name: str, fallback: int | None
                 ) -> ov.ConstOutput | None:
    for output in compiled.outputs:
        if name in output.get_names():
            return output
    return compiled.outputs[fallback] if fallback is not None else None


def _is_distribution(values: np.ndarray) -> bool:
    return bool(np.all(values >= 0)) and abs(float(values.sum()) - 1.0) < 1e-3


def _softmax(values: np.ndarray) -> np.ndarray:
    e = np.exp(values - values.max())
    return e / e.sum()


def evidence_box(evidence: np.ndarray, image_hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """Where a [gh, gw] evidence map is strongest, as (x1, y1, x2, y2) in the pixels of an
    image of `image_hw`: the strongest cell, grown by its neighbours holding at least half of
    its evidence."""
    gh, gw = evidence.shape
    i, j = np.unravel_index(int(np.argmax(evidence)), evidence.shape)
    peak = float(evidence[i, j])
    rows, cols = [int(i)], [int(j)]
    if peak > 0:
        for di in (-1, 0, 1):
            for dj in (-1, 0, 1):
                r, c = i + di, j + dj
                if 0 <= r < gh and 0 <= c < gw and evidence[r, c] >= peak / 2:
                    rows.append(int(r))
                    cols.append(int(c))
    h, w = image_hw
    return (min(cols) * w // gw, min(rows) * h // gh,
            (max(cols) + 1) * w // gw, (max(rows) + 1) * h // gh)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def _callback(owner: weakref.ref[VisionModel]) -> Callable[[ov.InferRequest, object], None]:
    def finished(request: ov.InferRequest, userdata: object) -> None:
        model = owner()
        if model is not None:
            model._finished(request, userdata)  # type: ignore[arg-type]
    return finished


# OpenVINO 2026.4 aborts the process ("Resource deadlock avoided") when an AsyncInferQueue is
# destroyed on one of its own worker threads: wait_all() returns while a worker still holds the
# queue for the callback it just ran, so dropping our last reference right after it can leave
# the destruction to that worker. A closed model's queue lingers here and is destroyed later on
# a thread of ours (the next close, or the interpreter's exit).
_LINGER_S = 1.0
_buried: list[tuple[float, object]] = []
_buried_lock = threading.Lock()


@atexit.register
def _empty_grave() -> None:
    """Before the interpreter takes OpenVINO's module down (which would report them leaked)."""
    with _buried_lock:
        _buried.clear()


def _bury(parts: object) -> None:
    now = time.monotonic()
    with _buried_lock:
        ripe = [p for t, p in _buried if now - t > _LINGER_S]
        _buried[:] = [(t, p) for t, p in _buried if now - t <= _LINGER_S]
        _buried.append((now, parts))
    del ripe  # destroyed here, on the caller's thread
