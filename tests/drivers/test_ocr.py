"""The PP-OCRv5 engine on real models through OpenVINO, reading labels rendered at test time."""

from __future__ import annotations

import shutil
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from drivers.vision.ocr import OcrEngine, OcrError, TextLine, default_model_dir

FRAME = 896
_FONTS = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_COMPLEX,
          cv2.FONT_HERSHEY_TRIPLEX)


@pytest.fixture(scope="module")
def engine() -> Iterator[OcrEngine]:
    ocr = OcrEngine.load()
    yield ocr
    ocr.close()


@dataclass(frozen=True)
class Label:
    text: str
    x: int  # where the text starts, before the frame is rotated
    baseline: int
    glyph_h: int
    font: int


def render(rows: list[list[str]], rng: np.random.Generator, *, angle: float | None = None
           ) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """An 896x896 RGB frame: dark text on white labels on a coloured background, slightly
    rotated and noisy. Returns it with each text's axis-aligned bounds in the frame."""
    frame = np.empty((FRAME, FRAME, 3), dtype=np.uint8)
    frame[:] = rng.integers(60, 200, size=3)
    labels = _layout(rows, rng)
    corners = []
    for label in labels:
        scale, thickness = _font_scale(label)
        (tw, th), base = cv2.getTextSize(label.text, label.font, scale, thickness)
        top, bottom = label.baseline - th, label.baseline + base
        cv2.rectangle(frame, (label.x - 20, top - 18), (label.x + tw + 20, bottom + 18),
                      (250, 250, 244), -1)
        cv2.putText(frame, label.text, (label.x, label.baseline), label.font, scale,
                    (20, 22, 30), thickness, cv2.LINE_AA)
        corners.append([(label.x, top), (label.x + tw, top), (label.x + tw, bottom),
                        (label.x, bottom)])
    turn = float(rng.uniform(-4.0, 4.0)) if angle is None else angle
    matrix = cv2.getRotationMatrix2D((FRAME / 2, FRAME / 2), turn, 1.0)
    frame = cv2.warpAffine(frame, matrix, (FRAME, FRAME), borderMode=cv2.BORDER_REPLICATE)
    noisy = frame + rng.normal(0.0, 6.0, frame.shape)
    placed = []
    for quad in corners:
        moved = cv2.transform(np.array([quad], dtype=np.float64), matrix)[0]
        placed.append((int(moved[:, 0].min()), int(moved[:, 1].min()),
                       int(moved[:, 0].max()), int(moved[:, 1].max())))
    return np.clip(noisy, 0, 255).astype(np.uint8), placed


def _layout(rows: list[list[str]], rng: np.random.Generator) -> list[Label]:
    labels = []
    baseline = int(rng.integers(170, 230))
    for row in rows:
        glyph_h = int(rng.integers(25, 46))
        x = int(rng.integers(90, 140))
        for text in row:
            label = Label(text, x, baseline, glyph_h, _FONTS[int(rng.integers(len(_FONTS)))])
            labels.append(label)
            scale, thickness = _font_scale(label)
            width = cv2.getTextSize(text, label.font, scale, thickness)[0][0]
            x += width + int(rng.integers(90, 130))
        baseline += glyph_h + int(rng.integers(110, 160))
    return labels


def _font_scale(label: Label) -> tuple[float, int]:
    height_at_1 = cv2.getTextSize("0", label.font, 1.0, 2)[0][1]
    scale = label.glyph_h / height_at_1
    return scale, max(2, round(scale * 1.6))


def serial(rng: np.random.Generator) -> str:
    return f"CT-{int(rng.integers(0, 1_000_000)):06d}"


def edit_distance(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(0, w) * max(0, h)
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / area


# --- reading ---------------------------------------------------------------------------------


def test_serial_numbers_are_read_exactly(engine: OcrEngine) -> None:
    rng = np.random.default_rng(4711)
    expected = [serial(rng) for _ in range(8)]
    read = []
    for text in expected:
        frame, _ = render([[text]], rng)
        read.append([line.text for line in engine.read(frame)])
    print("\nserials expected", expected, "\nread", read)
    exact = sum(got == [want] for got, want in zip(read, expected, strict=True))
    assert exact >= 7, read
    assert all(len(got) == 1 and edit_distance(got[0], want) <= 1
               for got, want in zip(read, expected, strict=True)), read


def test_all_text_on_a_frame_comes_back_in_reading_order(engine: OcrEngine) -> None:
    rng = np.random.default_rng(32)
    number = serial(rng)
    frame, placed = render([["32A"], ["24V DC"], [number]], rng, angle=3.0)

    timings, results = [], []
    for _ in range(3):
        started = time.perf_counter()
        results.append(engine.read(frame))
        timings.append((time.perf_counter() - started) * 1000.0)
    print(f"\nread on an {FRAME}x{FRAME} frame: median {statistics.median(timings):.0f} ms, "
          f"min {min(timings):.0f} ms over {len(timings)} reads")

    lines = results[0]
    assert [line.text for line in lines] == ["32A", "24V DC", number]
    assert all(result == lines for result in results[1:])  # the same frame reads the same
    assert all(0.5 <= line.confidence <= 1.0 for line in lines)
    for line, text_at in zip(lines, placed, strict=True):
        assert iou(line.box, text_at) > 0.5, (line, text_at)


def test_labels_side_by_side_read_left_to_right_within_their_line(engine: OcrEngine) -> None:
    rng = np.random.default_rng(5)
    frame, _ = render([["AB-12", "CD-34"], ["EF-56", "GH-78"]], rng, angle=-2.0)
    assert [line.text for line in engine.read(frame)] == ["AB-12", "CD-34", "EF-56", "GH-78"]


def test_a_frame_without_text_reads_as_nothing(engine: OcrEngine) -> None:
    grey = np.full((FRAME, FRAME, 3), 128, dtype=np.uint8)
    assert engine.read(grey) == []
    blank_label = np.empty((FRAME, FRAME, 3), dtype=np.uint8)
    blank_label[:] = (90, 120, 150)
    cv2.rectangle(blank_label, (300, 400), (620, 490), (250, 250, 244), -1)
    turn = cv2.getRotationMatrix2D((FRAME / 2, FRAME / 2), 3.0, 1.0)
    blank_label = cv2.warpAffine(blank_label, turn, (FRAME, FRAME),
                                 borderMode=cv2.BORDER_REPLICATE)
    assert engine.read(blank_label) == []


def test_min_confidence_leaves_out_lines_read_with_less(engine: OcrEngine) -> None:
    frame, _ = render([["32A"], ["CT-123456"]], np.random.default_rng(9))
    lines = engine.read(frame, min_confidence=0.0)
    assert [line.text for line in lines] == ["32A", "CT-123456"]
    assert engine.read(frame, min_confidence=1.01) == []


def test_read_line_reads_one_cropped_line(engine: OcrEngine) -> None:
    frame, placed = render([["CT-123456"]], np.random.default_rng(12), angle=0.0)
    x1, y1, x2, y2 = placed[0]
    crop = frame[y1 - 10:y2 + 10, x1 - 12:x2 + 12]
    line = engine.read_line(crop)
    assert line == TextLine(text="CT-123456", confidence=line.confidence,
                            box=(0, 0, crop.shape[1], crop.shape[0]))
    assert line.confidence > 0.9


# --- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("image", "says"), [
    (np.zeros((64, 64, 3), dtype=np.float32), "uint8"),
    (np.zeros((64, 64), dtype=np.uint8), "H x W x 3"),
    (np.zeros((64, 64, 4), dtype=np.uint8), "shape (64, 64, 4)"),
    (np.zeros((0, 64, 3), dtype=np.uint8), "empty"),
    ([[0, 0, 0]], "got list"),
])
def test_a_bad_image_raises_a_clear_error(engine: OcrEngine, image: object, says: str) -> None:
    with pytest.raises(OcrError, match="image") as raised:
        engine.read(image)  # type: ignore[arg-type]
    assert says in str(raised.value)
    with pytest.raises(OcrError, match="crop"):
        engine.read_line(image)  # type: ignore[arg-type]


def test_a_missing_model_dir_is_named_in_the_error(tmp_path: Path) -> None:
    nowhere = tmp_path / "no-models"
    with pytest.raises(OcrError, match="missing") as raised:
        OcrEngine.load(model_dir=nowhere)
    assert str(nowhere) in str(raised.value)


def test_a_missing_model_file_is_named_in_the_error(tmp_path: Path) -> None:
    source = default_model_dir()
    (tmp_path / "det").mkdir()
    shutil.copy(source / "det" / "det.onnx", tmp_path / "det" / "det.onnx")
    shutil.copy(source / "ppocrv5_dict.txt", tmp_path / "ppocrv5_dict.txt")
    with pytest.raises(OcrError) as raised:
        OcrEngine.load(model_dir=tmp_path)
    assert str(tmp_path / "rec" / "rec.onnx") in str(raised.value)
    assert "det.onnx" not in str(raised.value).split(":", 1)[1]


def test_a_closed_engine_refuses_to_read() -> None:
    import openvino as ov

    ocr = OcrEngine.load(core=ov.Core(), precision="f32")
    assert ocr.load_ms > 0
    ocr.close()
    with pytest.raises(OcrError, match="closed"):
        ocr.read(np.full((64, 64, 3), 128, dtype=np.uint8))
