"""The CPU-trained classifier: it learns the demo assembly's states from rendered frames and
recognises frames it never saw, the exported IR predicts what the trained model does, and its
confidences and boxes are usable by the station. The model is trained as the demo trains its
own, so the demo's ML steps pass on what its camera shows."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import openvino as ov
import pytest

from drivers.vision.backbone import Backbone
from drivers.vision.classifier import ClassScores, VisionModel, fit_frame
from drivers.vision.model_format import read_info
from drivers.vision.trainer import (
    Evaluation,
    TrainedModel,
    evaluate,
    features,
    train,
)
from sim.demo_vision import _PER_LABEL as DEMO_PER_LABEL
from sim.vision.board import LABELS, Scene, contactor_box, render
from sim.vision.dataset import make_set, random_serial

TRAIN_PER_LABEL = DEMO_PER_LABEL  # the demo's recipe: these tests check the demo's model
HELD_OUT_PER_LABEL = 15
CAMERA_VIEWS_PER_LABEL = 20
MINIMUM_PREDICT = 0.8  # what the demo assembly's ML steps ask for


@pytest.fixture(scope="module")
def trained(demo_trained: TrainedModel) -> TrainedModel:
    return demo_trained  # the demo's recipe (tests/conftest.py)


@pytest.fixture(scope="module")
def held_out() -> tuple[np.ndarray, list[str]]:
    return make_set(HELD_OUT_PER_LABEL, seed=202)  # full 896 x 896 camera frames


@pytest.fixture(scope="module")
def model_path(demo_model_file: Path) -> Path:
    return demo_model_file


@pytest.fixture(scope="module")
def model(model_path: Path) -> Iterator[VisionModel]:
    vm = VisionModel.load(model_path)
    yield vm
    vm.close()


@pytest.fixture(scope="module")
def result(model: VisionModel, held_out: tuple[np.ndarray, list[str]]) -> Evaluation:
    return evaluate(model, *held_out)


@pytest.fixture(scope="module")
def predictions(result: Evaluation) -> tuple[ClassScores, ...]:
    return result.predictions


def test_recognises_frames_it_never_saw(trained: TrainedModel, model: VisionModel,
                                        held_out: tuple[np.ndarray, list[str]],
                                        result: Evaluation) -> None:
    images, labels = held_out
    index = {name: i for i, name in enumerate(result.labels)}
    confusion = np.zeros_like(result.confusion)  # the frames' own scores tell the same
    for scores, label in zip(result.predictions, labels, strict=True):
        confusion[index[label], index[scores.label]] += 1
    assert np.array_equal(confusion, result.confusion)
    timings = []
    for image in images[:20]:
        started = time.perf_counter()
        model.predict(image)
        timings.append((time.perf_counter() - started) * 1000)
    p50, p95 = np.percentile(timings, [50, 95])
    print(f"\nheld-out {result.report()}\nfit {trained.fit_s:.1f} s on "
          f"{TRAIN_PER_LABEL * len(LABELS)} frames, ridge {trained.ridge:g}, "
          f"leave-one-out {trained.loo_accuracy:.3f}; load {model.load_ms:.0f} ms; "
          f"predict 896x896 p50 {p50:.1f} ms p95 {p95:.1f} ms")
    assert result.accuracy >= 0.95, result.report()
    assert set(result.labels) == set(LABELS)


def test_exported_model_predicts_what_the_trained_one_does(
        trained: TrainedModel, model: VisionModel,
        held_out: tuple[np.ndarray, list[str]]) -> None:
    compiled = ov.Core().compile_model(trained.model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    images, _ = held_out
    for image in images[::15]:
        scores = model.predict(image)
        in_memory = compiled({0: fit_frame(image, (224, 224))[None]})["probabilities"][0]
        assert trained.labels[int(np.argmax(in_memory))] == scores.label
        np.testing.assert_allclose([scores.scores[name] for name in trained.labels], in_memory,
                                   atol=1e-5)


def test_confidence_reaches_what_the_steps_ask_for(
        predictions: tuple[ClassScores, ...], held_out: tuple[np.ndarray, list[str]]) -> None:
    confidences = np.array([s.confidence for s, label in zip(predictions, held_out[1],
                                                              strict=True) if s.label == label])
    assert np.median(confidences) >= MINIMUM_PREDICT
    assert np.mean(confidences >= MINIMUM_PREDICT) >= 0.85


def test_the_demo_camera_views_pass_the_ml_steps(trained: TrainedModel,
                                                 model: VisionModel) -> None:
    """What the demo's emulated camera shows (un-augmented renders, each with its own serial,
    screw slots and defect geometry) is recognised with the confidence the demo's ML steps ask
    for: a step that waits for "screws_tight" on two frames in a row does not stall."""
    rng = np.random.default_rng(303)
    report, failed = [], []
    for label in LABELS:
        hits, confidences = 0, []
        for _ in range(CAMERA_VIEWS_PER_LABEL):
            scores = model.predict(render(Scene(state=label, serial=random_serial(rng)),
                                          rng=rng))
            confidences.append(scores.scores[label])
            hits += scores.label == label and scores.confidence >= MINIMUM_PREDICT
        report.append(f"{label:>18}: {hits}/{CAMERA_VIEWS_PER_LABEL} at >= {MINIMUM_PREDICT}, "
                      f"confidence min {min(confidences):.2f} "
                      f"median {float(np.median(confidences)):.2f}")
        if hits < 0.95 * CAMERA_VIEWS_PER_LABEL:
            failed.append(label)
    print(f"\ndemo camera views, model fitted in {trained.fit_s:.1f} s:\n" + "\n".join(report))
    assert not failed, "\n".join(report)


def test_box_points_at_the_contactor(predictions: tuple[ClassScores, ...],
                                     held_out: tuple[np.ndarray, list[str]]) -> None:
    checked = missed = 0
    for scores, (image, label) in zip(predictions, zip(*held_out, strict=True), strict=True):
        assert scores.box is not None
        x1, y1, x2, y2 = scores.box
        assert 0 <= x1 < x2 <= image.shape[1] and 0 <= y1 < y2 <= image.shape[0]
        part = contactor_box(Scene(label))
        if part is None or label == "misplaced":  # no part, or one anywhere along the rail
            continue
        px1, py1, px2, py2 = part
        checked += 1
        missed += not (x1 < px2 + 40 and px1 - 40 < x2 and y1 < py2 + 40 and py1 - 40 < y2)
    assert checked >= 50 and missed <= checked // 10


def test_model_carries_its_metadata(trained: TrainedModel, model_path: Path) -> None:
    stored = ov.Core().read_model(str(model_path))
    assert json.loads(read_info(stored, "labels") or "") == list(trained.labels)
    assert read_info(stored, "kind") == "classifier"
    assert read_info(stored, "input_size") == "224,224"
    assert Backbone.from_json(read_info(stored, "backbone") or "") == trained.backbone
    assert stored.input(0).get_element_type() == ov.Type.u8
    assert list(stored.input(0).get_shape()) == [1, 224, 224, 3]
    assert [sorted(o.get_names()) for o in stored.outputs] == [["probabilities"], ["evidence"]]
    assert list(stored.output(1).get_shape()) == [1, len(LABELS), 4, 4]


def test_features_come_from_the_backbone_graph(held_out: tuple[np.ndarray, list[str]]) -> None:
    images, _ = held_out
    backbone = Backbone()
    first = features(images[:3], backbone)
    assert first.shape == (3, backbone.feature_size) and first.dtype == np.float32
    assert np.array_equal(first, features(images[:3], backbone))
    assert not np.array_equal(first[0], first[1])


def test_a_backbone_recorded_before_the_windows_existed_has_none() -> None:
    old = Backbone.from_json('{"grid": 4, "input_size": 224, "kernel": 7, "octaves": 3, '
                             '"stride": 2}')
    assert old.windows == 0 and old.feature_size == old.channels * 17
    assert Backbone.from_json(Backbone().to_json()) == Backbone()
    with pytest.raises(ValueError, match="too small"):
        Backbone(input_size=64, windows=8)


def test_train_refuses_sets_it_cannot_learn_from() -> None:
    images = np.zeros((4, 64, 64, 3), np.uint8)
    with pytest.raises(ValueError, match="4 frames but 3 labels"):
        train(images, ["a", "b", "a"])
    with pytest.raises(ValueError, match="at least two labels"):
        train(images, ["a"] * 4)
    with pytest.raises(ValueError, match="at least two frames"):
        train(images, ["a", "a", "a", "b"])
    with pytest.raises(ValueError, match="uint8 RGB"):
        train(np.zeros((4, 64, 64), np.uint8), ["a", "a", "b", "b"])
