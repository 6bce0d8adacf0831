"""VisionModel: loading Takt and imported models, clear errors for unusable ones, blocking and
queued inference, and boxes that point at the evidence."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import openvino as ov
import openvino.opset16 as ops
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from drivers.vision.classifier import (
    ClassScores,
    ModelError,
    VisionModel,
    convert_model,
    evidence_box,
    save_model,
)
from drivers.vision.model_format import EVIDENCE, PROBABILITIES, read_info, rgb_u8_input
from tests.vision_fixtures import COLOURS as BOARD_COLOURS
from tests.vision_fixtures import IMAGENET_MEAN, IMAGENET_STD, onnx_colour_classifier, solid
from tests.waiting import wait_for

COLOURS = ("red", "green", "blue")


def colour_graph(size: int = 32, grid: int = 4, *, softmax: bool = True,
                 nhwc: bool = False) -> ov.Model:
    """Three classes, one per colour channel: the brighter a channel on average, the likelier
    its class; the evidence is each channel's brightness per grid cell. f32 pixels 0..1."""
    shape = [1, size, size, 3] if nhwc else [1, 3, size, size]
    pixels = ops.parameter(shape, np.float32, name="pixels")
    nchw = ops.transpose(pixels, ops.constant(np.array([0, 3, 1, 2]))) if nhwc else pixels
    mean = ops.reduce_mean(nchw, ops.constant(np.array([2, 3])), False)
    logits = ops.multiply(mean, ops.constant(np.float32(12.0)))
    head = ops.softmax(logits, 1) if softmax else logits
    evidence = ops.adaptive_avg_pool(nchw, ops.constant(np.array([grid, grid])))
    results = [ops.result(head), ops.result(evidence)]
    for result, name in zip(results, (PROBABILITIES, EVIDENCE), strict=True):
        result.output(0).get_tensor().set_names({name})
    return ov.Model(results, [pixels], "colours")


def takt_colour_model(tmp_path: Path) -> Path:
    return save_model(rgb_u8_input(colour_graph()), tmp_path / "colours.xml", COLOURS)


def frame(h: int, w: int, rgb: tuple[int, int, int] = (0, 0, 0)) -> np.ndarray:
    image = np.zeros((h, w, 3), np.uint8)
    image[:] = rgb
    return image


@pytest.fixture
def model(tmp_path: Path) -> Iterator[VisionModel]:
    vm = VisionModel.load(takt_colour_model(tmp_path), requests=1)
    yield vm
    vm.close()


def test_ir_round_trip_keeps_labels_and_metadata(tmp_path: Path, model: VisionModel) -> None:
    assert model.labels == COLOURS
    assert model.input_hw == (32, 32)
    assert (model.device, model.precision, model.runs_at) == ("CPU", "f32", "f32")
    assert model.load_ms > 0
    stored = ov.Core().read_model(str(tmp_path / "colours.xml"))
    assert read_info(stored, "kind") == "classifier"
    assert json.loads(read_info(stored, "labels") or "") == list(COLOURS)
    assert read_info(stored, "input_size") == "32,32"
    assert read_info(stored, "trained")


def test_predicts_any_frame_size(model: VisionModel) -> None:
    for h, w, colour, label in ((896, 896, (200, 10, 10), "red"), (31, 500, (0, 90, 10), "green"),
                                (480, 640, (5, 5, 250), "blue")):
        scores = model.predict(frame(h, w, colour))
        assert isinstance(scores, ClassScores)
        assert scores.label == label and scores.confidence == max(scores.scores.values())
        assert sum(scores.scores.values()) == pytest.approx(1.0, abs=1e-5)
        assert scores.box is not None
        x1, y1, x2, y2 = scores.box
        assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h


def test_box_points_where_the_evidence_is(model: VisionModel) -> None:
    image = frame(600, 800)
    image[450:600, 600:800] = (0, 255, 0)  # green in the bottom-right corner only
    scores = model.predict(image)
    assert scores.label == "green"
    assert scores.box is not None
    x1, y1, x2, y2 = scores.box
    assert x1 >= 400 and y1 >= 300 and (x2, y2) == (800, 600)


@given(evidence=arrays(np.float32, st.tuples(st.integers(1, 8), st.integers(1, 8)),
                       elements=st.floats(-1e6, 1e6, width=32)),
       h=st.integers(1, 3000), w=st.integers(1, 3000))
@settings(max_examples=200, deadline=None)
def test_evidence_box_always_lies_in_the_image(evidence: np.ndarray, h: int, w: int) -> None:
    x1, y1, x2, y2 = evidence_box(evidence, (h, w))
    assert 0 <= x1 <= x2 <= w and 0 <= y1 <= y2 <= h
    gh, gw = evidence.shape
    i, j = np.unravel_index(int(np.argmax(evidence)), evidence.shape)
    # The strongest cell is always inside the box.
    assert x1 <= j * w // gw and (j + 1) * w // gw <= x2
    assert y1 <= i * h // gh and (i + 1) * h // gh <= y2


def test_imported_logits_model_with_sidecar_labels(tmp_path: Path) -> None:
    path = tmp_path / "imported.xml"
    ov.save_model(colour_graph(48, softmax=False), str(path), compress_to_fp16=False)
    (tmp_path / "imported.labels.json").write_text(json.dumps(list(COLOURS)))
    vm = VisionModel.load(path)
    try:
        assert vm.labels == COLOURS and vm.input_hw == (48, 48)
        scores = vm.predict(frame(100, 100, (10, 10, 200)))
        assert scores.label == "blue"
        assert sum(scores.scores.values()) == pytest.approx(1.0)  # logits became probabilities
        assert 0.5 < scores.confidence < 1.0
    finally:
        vm.close()
    # Labels given to load win over the sidecar; mean and scale reach the model's pixels.
    renamed = VisionModel.load(path, labels=["r", "g", "b"], mean=[0.5] * 3, scale=[0.5] * 3)
    try:
        assert renamed.predict(frame(20, 20, (255, 0, 0))).label == "r"
    finally:
        renamed.close()


def test_imported_nhwc_model_with_labels_argument(tmp_path: Path) -> None:
    path = tmp_path / "nhwc.xml"
    ov.save_model(colour_graph(24, nhwc=True), str(path), compress_to_fp16=False)
    vm = VisionModel.load(path, labels=COLOURS)
    try:
        assert vm.predict(frame(64, 64, (0, 250, 0))).label == "green"
    finally:
        vm.close()


def test_an_onnx_model_from_elsewhere_runs_with_its_normalisation_and_converts_to_ir(
        tmp_path: Path) -> None:
    """ONNX from another tool: f32 NCHW, dynamic batch, logits, no labels in the file."""
    external = onnx_colour_classifier(tmp_path / "external.onnx")
    labels = list(BOARD_COLOURS)
    pictures = {label: solid(colour) for label, colour in BOARD_COLOURS.items()}

    def seen(vm: VisionModel) -> dict[str, tuple[str, float]]:
        try:
            return {k: (s.label, s.confidence) for k, s in
                    ((k, vm.predict(p)) for k, p in pictures.items())}
        finally:
            vm.close()

    right = seen(VisionModel.load(external, labels=labels, mean=IMAGENET_MEAN,
                                  scale=IMAGENET_STD))
    assert {k: label for k, (label, _) in right.items()} == {k: k for k in labels}
    assert all(confidence > 0.9 for _, confidence in right.values())
    raw = seen(VisionModel.load(external, labels=labels))  # its normalisation left out
    assert any(label != k for k, (label, _) in raw.items())
    with pytest.raises(ModelError, match="no labels"):
        VisionModel.load(external)

    converted = convert_model(external, tmp_path / "station" / "external.xml", labels=labels,
                              mean=IMAGENET_MEAN, scale=IMAGENET_STD)
    again = seen(VisionModel.load(converted))  # labels and normalisation are in the IR
    assert {k: label for k, (label, _) in again.items()} == {k: k for k in labels}
    assert all(abs(again[k][1] - right[k][1]) < 1e-4 for k in labels)
    with pytest.raises(ModelError, match="scale must not be 0"):
        convert_model(external, tmp_path / "x.xml", labels=labels, scale=(1.0, 0.0, 1.0))
    with pytest.raises(ModelError, match="mean takes 3 finite numbers"):
        convert_model(external, tmp_path / "x.xml", labels=labels, mean=(0.5, 0.5))


def test_missing_and_unreadable_files_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"model file not found: .*nowhere\.xml"):
        VisionModel.load(tmp_path / "nowhere.xml")
    garbage = tmp_path / "garbage.xml"
    garbage.write_bytes(b"\x00\x01 this is not a model \xff" * 20)
    with pytest.raises(ModelError, match=r"not an OpenVINO IR or ONNX model: .*garbage\.xml"):
        VisionModel.load(garbage, labels=COLOURS)
    onnx = tmp_path / "garbage.onnx"
    onnx.write_bytes(b"\x08\x07garbage")
    with pytest.raises(ModelError, match="not an OpenVINO IR or ONNX model"):
        VisionModel.load(onnx, labels=COLOURS)
    text = tmp_path / "model.txt"
    text.write_text("hello")
    with pytest.raises(ModelError, match=r"expected \.xml or \.onnx"):
        VisionModel.load(text)


def test_labels_must_match_the_classes(tmp_path: Path) -> None:
    path = takt_colour_model(tmp_path)
    with pytest.raises(ModelError, match="model has 3 output classes but 2 labels"):
        VisionModel.load(path, labels=["red", "green"])
    with pytest.raises(ModelError, match="unique"):
        VisionModel.load(path, labels=["red", "red", "blue"])
    bare = tmp_path / "bare.xml"
    ov.save_model(colour_graph(), str(bare))
    with pytest.raises(ModelError, match=r"no labels: .*bare\.labels\.json"):
        VisionModel.load(bare)
    (tmp_path / "bare.labels.json").write_text(json.dumps(["a", "b", "c", "d", "e"]))
    with pytest.raises(ModelError, match="model has 3 output classes but 5 labels"):
        VisionModel.load(bare)
    (tmp_path / "bare.labels.json").write_text("{not json")
    with pytest.raises(ModelError, match="bad labels file"):
        VisionModel.load(bare)
    with pytest.raises(ModelError, match="model has 3 output classes but 4 labels"):
        save_model(rgb_u8_input(colour_graph()), tmp_path / "x.xml", ["a", "b", "c", "d"])
    with pytest.raises(ModelError, match=r"ends in \.xml"):
        save_model(rgb_u8_input(colour_graph()), tmp_path / "x.onnx", COLOURS)


def test_precision_is_explicit_and_checked(tmp_path: Path) -> None:
    path = takt_colour_model(tmp_path)
    with pytest.raises(ModelError, match="unknown precision 'int4'"):
        VisionModel.load(path, precision="int4")
    for precision in ("bf16", "f16"):
        vm = VisionModel.load(path, precision=precision)
        try:
            assert vm.precision == precision and vm.runs_at in ("f32", "bf16", "f16")
            assert vm.predict(frame(32, 32, (250, 0, 0))).label == "red"
        finally:
            vm.close()
    with pytest.raises(ModelError, match="cannot compile"):
        VisionModel.load(path, device="NO_SUCH_DEVICE")


def test_dynamic_image_size_is_refused(tmp_path: Path) -> None:
    pixels = ops.parameter([1, 3, -1, -1], np.float32)
    mean = ops.reduce_mean(pixels, ops.constant(np.array([2, 3])), False)
    path = tmp_path / "dynamic.xml"
    ov.save_model(ov.Model([ops.result(mean)], [pixels]), str(path))
    with pytest.raises(ModelError, match="dynamic image size"):
        VisionModel.load(path, labels=COLOURS)


def test_submit_drops_frames_while_every_request_is_busy(model: VisionModel) -> None:
    release = threading.Event()
    results: list[tuple[ClassScores | None, BaseException | None]] = []

    def done(scores: ClassScores | None, error: BaseException | None) -> None:
        release.wait(10)  # holds the only request busy until the test lets go
        results.append((scores, error))

    assert model.submit(frame(64, 64, (220, 0, 0)), done)
    assert not model.submit(frame(64, 64, (0, 220, 0)), done)  # busy: the newer frame drops
    release.set()
    model.wait_all()
    assert len(results) == 1
    scores, error = results[0]
    assert error is None and scores is not None and scores.label == "red"
    stats = model.statistics()
    assert (stats.submitted, stats.dropped, stats.completed, stats.failed) == (1, 1, 1, 0)
    assert model.submit(frame(64, 64, (0, 0, 220)), lambda s, e: results.append((s, e)))
    wait_for(lambda: len(results) == 2)
    assert results[1][0] is not None and results[1][0].label == "blue"


def test_a_failing_result_callback_does_not_stop_the_model(model: VisionModel) -> None:
    def explode(scores: ClassScores | None, error: BaseException | None) -> None:
        raise RuntimeError("the consumer broke")

    assert model.submit(frame(32, 32, (255, 0, 0)), explode)
    model.wait_all()
    got: list[str] = []
    wait_for(lambda: model.submit(frame(32, 32, (0, 255, 0)),
                                  lambda s, e: got.append(s.label if s else "error")))
    wait_for(lambda: got)
    assert got == ["green"]


def test_predict_is_safe_from_several_threads(model: VisionModel) -> None:
    expected = {(200, 0, 0): "red", (0, 200, 0): "green", (0, 0, 200): "blue"}
    wrong: list[str] = []

    def worker(colour: tuple[int, int, int]) -> None:
        for _ in range(30):
            label = model.predict(frame(40, 40, colour)).label
            if label != expected[colour]:
                wrong.append(label)

    threads = [threading.Thread(target=worker, args=(c,)) for c in expected]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not wrong


def test_bad_frames_are_refused(model: VisionModel) -> None:
    with pytest.raises(ValueError, match="uint8 RGB"):
        model.predict(np.zeros((32, 32, 3), np.float32))
    with pytest.raises(ValueError, match="uint8 RGB"):
        model.predict(np.zeros((32, 32), np.uint8))
    with pytest.raises(ValueError, match="uint8 RGB"):
        model.submit(np.zeros((32, 32, 4), np.uint8), lambda s, e: None)


def test_a_closed_model_says_so(tmp_path: Path) -> None:
    vm = VisionModel.load(takt_colour_model(tmp_path))
    vm.close()
    vm.close()
    with pytest.raises(ModelError, match="model closed"):
        vm.predict(frame(8, 8))
    with pytest.raises(ModelError, match="model closed"):
        vm.submit(frame(8, 8), lambda s, e: None)


def test_closing_right_after_async_results_keeps_the_process(tmp_path: Path) -> None:
    """A hot swap closes the old model right after its last result: OpenVINO aborts the whole
    process if its async queue is destroyed on one of its own threads (seen under load)."""
    path = takt_colour_model(tmp_path)
    results: list[ClassScores | None] = []
    for _ in range(8):
        vm = VisionModel.load(path, requests=2)
        sent = 0
        while sent < 20:
            sent += vm.submit(frame(64, 64, (200, 0, 0)), lambda s, e: results.append(s))
        vm.wait_all()
        vm.close()
    assert len(results) == 8 * 20 and all(s is not None and s.label == "red" for s in results)
