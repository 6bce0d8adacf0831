"""Fit a Takt classifier on labelled frames in seconds on a CPU, and export it as OpenVINO IR.

The backbone is fixed (`drivers.vision.backbone`); only a linear head is fitted, in closed
form: standardised features, each weighted by how well it separates the classes (the square
root of its between- over within-class variance), one-vs-rest ridge regression solved through
the n x n kernel, the ridge picked by exact leave-one-out error, and a softmax temperature
fitted on the leave-one-out scores so that confidences are honest on frames not trained on.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import openvino as ov
import openvino.opset16 as ops

from drivers.vision.backbone import Backbone, build_backbone
from drivers.vision.classifier import ClassScores, VisionModel, fit_frame, save_model
from drivers.vision.model_format import EVIDENCE, PROBABILITIES, rgb_u8_input, write_info

__all__ = ["Evaluation", "TrainedModel", "evaluate", "export", "features", "train"]

RIDGES = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3)  # relative to the mean squared feature norm
_BATCH = 16
_TEMPERATURES = np.geomspace(0.5, 300.0, 90)


@dataclass(frozen=True, slots=True)
class TrainedModel:
    model: ov.Model  # follows the Takt convention; labels are in its rt_info
    labels: tuple[str, ...]
    backbone: Backbone
    ridge: float  # the one leave-one-out picked from RIDGES
    train_accuracy: float  # on the training frames themselves
    loo_accuracy: float  # leave-one-out: an honest estimate for frames not trained on
    fit_s: float  # features and fit, seconds


@dataclass(frozen=True, slots=True)
class Evaluation:
    accuracy: float
    labels: tuple[str, ...]
    confusion: np.ndarray  # [true, predicted] counts in `labels` order
    # Every frame's scores, in order: a closer look (confidences, boxes) needs no second pass.
    predictions: tuple[ClassScores, ...] = ()

    def report(self) -> str:
        """The confusion matrix as text, for a test failure or a log."""
        width = max(len(name) for name in self.labels)
        head = " " * (width + 2) + " ".join(f"{i:>4}" for i in range(len(self.labels)))
        rows = [f"{name:>{width}}  " + " ".join(f"{n:>4}" for n in row) + f"   ({i})"
                for i, (name, row) in enumerate(zip(self.labels, self.confusion, strict=True))]
        return f"accuracy {self.accuracy:.3f}\n" + "\n".join([head, *rows])


def features(images: Sequence[np.ndarray] | np.ndarray, backbone: Backbone,
             core: ov.Core | None = None) -> np.ndarray:
    """Backbone features [N, feature_size] of frames, computed by the OpenVINO graph that the
    exported model runs."""
    size = (backbone.input_size, backbone.input_size)
    pixels = ops.parameter([-1, 3, *size], np.float32, name="pixels")
    graph = build_backbone(pixels.output(0), backbone)
    model = rgb_u8_input(ov.Model([ops.result(graph.features)], [pixels], "takt-backbone"))
    compiled = (core or ov.Core()).compile_model(model, "CPU",
                                                 {"INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    out = np.empty((len(images), backbone.feature_size), np.float32)
    for start in range(0, len(images), _BATCH):
        batch = np.stack([fit_frame(image, size) for image in images[start:start + _BATCH]])
        out[start:start + len(batch)] = request.infer({0: batch})[0]
    return out


def train(images: Sequence[np.ndarray] | np.ndarray, labels: Sequence[str], *,
          input_size: int = 224, ridge: float | None = None, backbone: Backbone | None = None,
          core: ov.Core | None = None) -> TrainedModel:
    """Fit a classifier on H x W x 3 uint8 RGB frames and their labels. `ridge=None` picks
    the regularisation by leave-one-out error."""
    started = time.perf_counter()
    backbone = backbone or Backbone(input_size=input_size)
    names = tuple(sorted(set(labels), key=list(labels).index))
    _check_set(images, labels, names)
    y = np.array([names.index(label) for label in labels])
    feats = features(images, backbone, core).astype(np.float64)
    head = _fit_head(feats, y, len(names), ridge)
    model = _build_model(backbone, head, names)
    return TrainedModel(model=model, labels=names, backbone=backbone, ridge=head.ridge,
                        train_accuracy=head.train_accuracy, loo_accuracy=head.loo_accuracy,
                        fit_s=time.perf_counter() - started)


def export(trained: TrainedModel, path: Path) -> Path:
    """Write the trained model as OpenVINO IR (path.xml and path.bin)."""
    return save_model(trained.model, Path(path), trained.labels)


def evaluate(model: VisionModel, images: Sequence[np.ndarray] | np.ndarray,
             labels: Sequence[str]) -> Evaluation:
    """Accuracy and confusion of a model on labelled frames."""
    if len(images) != len(labels) or not len(labels):
        raise ValueError("evaluate needs as many labels as frames, and at least one")
    unknown = sorted(set(labels) - set(model.labels))
    if unknown:
        raise ValueError(f"labels the model does not know: {unknown}")
    index = {name: i for i, name in enumerate(model.labels)}
    confusion = np.zeros((len(model.labels),) * 2, np.int64)
    predictions = []
    for image, label in zip(images, labels, strict=True):
        scores = model.predict(image)
        confusion[index[label], index[scores.label]] += 1
        predictions.append(scores)
    return Evaluation(accuracy=float(np.trace(confusion) / confusion.sum()),
                      labels=model.labels, confusion=confusion, predictions=tuple(predictions))


@dataclass(frozen=True, slots=True)
class _Head:
    weights: np.ndarray  # [D, C], applied to raw backbone features
    bias: np.ndarray  # [C]
    centre: np.ndarray  # [D] the training mean of each feature
    ridge: float
    train_accuracy: float
    loo_accuracy: float


def _check_set(images: Sequence[np.ndarray] | np.ndarray, labels: Sequence[str],
               names: tuple[str, ...]) -> None:
    if len(images) != len(labels):
        raise ValueError(f"{len(images)} frames but {len(labels)} labels")
    if len(names) < 2:
        raise ValueError("a classifier needs frames of at least two labels")
    counts = {name: list(labels).count(name) for name in names}
    few = {name: n for name, n in counts.items() if n < 2}
    if few:
        raise ValueError(f"every label needs at least two frames; too few: {few}")


def _fit_head(feats: np.ndarray, y: np.ndarray, classes: int, ridge: float | None) -> _Head:
    n = len(feats)
    centre = feats.mean(axis=0)
    spread = feats.std(axis=0)
    spread[spread < 1e-9] = 1.0  # a constant feature carries nothing; keep it harmless
    z = (feats - centre) / spread
    # Weight features by how well they separate the classes: most of the backbone's features
    # describe things every class shares (the rail, the plate), and plain ridge would spread
    # its weight over them.
    means = np.stack([z[y == k].mean(axis=0) for k in range(classes)])
    within = np.mean([z[y == k].var(axis=0) for k in range(classes)], axis=0)
    weight = np.sqrt(means.var(axis=0) / (within + 1e-3))
    x = z * weight
    targets = np.eye(classes)[y]
    prior = targets.mean(axis=0)
    kernel = x @ x.T
    eigval, eigvec = np.linalg.eigh(kernel)
    eigval = np.clip(eigval, 0.0, None)
    projected = eigvec.T @ (targets - prior)
    scale = float(np.trace(kernel)) / n
    best: tuple[tuple[float, float], float, np.ndarray, np.ndarray] | None = None
    for r in (RIDGES if ridge is None else (ridge,)):
        lam = r * scale
        alpha = eigvec @ (projected / (eigval + lam)[:, None])
        fitted = kernel @ alpha + prior
        leverage = np.einsum("ij,j,ij->i", eigvec, eigval / (eigval + lam), eigvec)
        # Exact leave-one-out predictions of a linear smoother.
        loo = targets - (targets - fitted) / np.maximum(1.0 - leverage, 1e-6)[:, None]
        key = (float(np.mean(loo.argmax(axis=1) == y)), -float(np.mean((loo - targets) ** 2)))
        if best is None or key > best[0]:
            best = (key, r, alpha, loo)
    assert best is not None
    (loo_accuracy, _), chosen, alpha, loo = best
    temperature = _temperature(loo, y)
    w_x = x.T @ alpha  # [D, C] on the weighted standardised features
    weights = (weight / spread)[:, None] * w_x * temperature
    bias = (prior - (centre * weight / spread) @ w_x) * temperature
    train_scores = feats @ weights + bias
    return _Head(weights=weights, bias=bias, centre=centre, ridge=chosen,
                 train_accuracy=float(np.mean(train_scores.argmax(axis=1) == y)),
                 loo_accuracy=loo_accuracy)


def _temperature(scores: np.ndarray, y: np.ndarray) -> float:
    """The softmax temperature that best explains held-out (leave-one-out) scores."""
    best_t, best_ll = 1.0, -np.inf
    for t in _TEMPERATURES:
        logits = scores * t
        logits -= logits.max(axis=1, keepdims=True)
        ll = float(np.mean(logits[np.arange(len(y)), y] - np.log(np.exp(logits).sum(axis=1))))
        if ll > best_ll:
            best_t, best_ll = float(t), ll
    return best_t


def _build_model(backbone: Backbone, head: _Head, labels: tuple[str, ...]) -> ov.Model:
    size = backbone.input_size
    classes = len(labels)
    pixels = ops.parameter([1, 3, size, size], np.float32, name="pixels")
    graph = build_backbone(pixels.output(0), backbone)
    w = head.weights.astype(np.float32)
    logits = ops.add(ops.matmul(graph.features, ops.constant(w), False, False),
                     ops.constant(head.bias.astype(np.float32)[None]))
    probs = ops.softmax(logits, 1, name=PROBABILITIES)
    # Evidence: each cell's share of every class's logit, measured from the training mean so
    # that an ordinary-looking cell adds nothing.
    g, ch = backbone.grid, backbone.channels
    cell_w = w[:ch * g * g].reshape(ch, g, g, classes).transpose(3, 0, 1, 2)[None]
    centre = head.centre[:ch * g * g].reshape(1, ch, g, g).astype(np.float32)
    shifted = ops.subtract(graph.cells, ops.constant(centre))
    share = ops.multiply(ops.unsqueeze(shifted, ops.constant(np.array([1], np.int64))),
                         ops.constant(np.ascontiguousarray(cell_w)))
    evidence = ops.reduce_sum(share, ops.constant(np.array([2], np.int64)), False,
                              name=EVIDENCE)
    results = [ops.result(probs), ops.result(evidence)]
    for result, name in zip(results, (PROBABILITIES, EVIDENCE), strict=True):
        result.output(0).get_tensor().set_names({name})
    model = rgb_u8_input(ov.Model(results, [pixels], "takt-classifier"))
    write_info(model, labels, extra={
        "backbone": backbone.to_json(), "head": "fisher-weighted ridge, closed form",
        "ridge": f"{head.ridge:g}", "loo_accuracy": f"{head.loo_accuracy:.4f}"})
    return model
