"""The inspector part of the station config: which model runs on which camera's frames, how a
prediction becomes pass, fail or uncertain, what is kept, and when an alert is raised."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from controller.config_check import Problems, table_rule
from controller.config_lines import join_key

__all__ = ["InspectorConfig", "KeepImages", "Precision"]

Label = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[^\s].*(?<!\s)(?!\n)$")]
Precision = Literal["f32", "bf16", "f16"]
KeepImages = Literal["none", "fail", "uncertain", "all"]
Share = Annotated[float, Meta(ge=0.0, le=1.0)]


class InspectorConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    enabled: bool = True
    device: Annotated[str, Meta(pattern=r"^[A-Z][A-Z0-9_.:,()-]{0,63}(?!\n)$")] = "CPU"
    """The OpenVINO device models are compiled for (CPU, GPU, AUTO, ...)."""
    precision: Precision = "f32"
    """Inference precision; said explicitly because the CPU plugin would pick bf16 itself."""
    requests: Annotated[int, Meta(ge=1, le=8)] = 1
    """Asynchronous infer requests per model: frames in flight at once in continuous mode. One
    keeps the latency lowest (a frame that comes while the model is busy is dropped, and the
    next, newer one taken); more raise throughput only where the device runs several streams
    (bench/vision_latency.py: a second request on this 2-core CPU queued frames behind the
    first, 21 ms p50 and 289 ms p99 against 15 / 77 ms)."""
    model: Annotated[str, Meta(min_length=1, max_length=4096)] | None = None
    """A model file (OpenVINO IR .xml or ONNX) registered and deployed at start, if none is
    deployed yet; relative paths are under the data directory."""
    model_labels: tuple[Label, ...] = ()
    """Labels of `model` when the file does not carry them (ONNX)."""

    pass_threshold: Share = 0.8
    """A good label wins with at least this confidence: pass."""
    fail_threshold: Share = 0.6
    """A defect label wins with at least this confidence: fail."""
    defect_labels: tuple[Label, ...] = ("missing_screw", "misplaced", "scratch")
    good_labels: tuple[Label, ...] = ()
    """Labels that may pass; empty means every label that is not a defect. A winning label
    that is neither good nor a defect is uncertain."""
    mm_per_pixel: Annotated[float, Meta(gt=0, le=1000)] | None = None
    """Scale of the inspected images, for the area_mm2 of a detection's box."""

    camera: Annotated[str, Meta(pattern=r"^[a-z0-9_-]{1,32}(?!\n)$")] | None = None
    """The camera whose frames are inspected continuously; none: on demand only."""
    stream_fps: Annotated[float, Meta(ge=0, le=240)] = 0.0
    """Most predictions per second published in continuous mode; 0: every frame it can."""

    keep_images: KeepImages = "uncertain"
    """Images kept with their inspection: none, fail (fails only), uncertain (fails and
    uncertain ones) or all."""
    active_learning: bool = True
    """Uncertain inspections join the annotation queue (their image is kept for it)."""
    ocr: bool = True
    """Reading text is offered; the OCR engine is loaded on first use."""

    pass_rate_threshold: Share = 0.9
    """An alert is raised when the pass rate of the last `pass_rate_window` inspections falls
    below this."""
    pass_rate_window: Annotated[int, Meta(ge=1, le=100_000)] = 50
    consecutive_fails: Annotated[int, Meta(ge=0, le=100_000)] = 5
    """An alert is raised after this many fails in a row; 0: never."""

    def is_defect(self, label: str) -> bool:
        return label in self.defect_labels

    def is_good(self, label: str) -> bool:
        if label in self.defect_labels:
            return False
        return not self.good_labels or label in self.good_labels


@table_rule(InspectorConfig, "defect_labels", "good_labels")
def _labels_disjoint(key: str, c: InspectorConfig) -> Problems:
    both = sorted(set(c.defect_labels) & set(c.good_labels))
    if both:
        yield join_key(key, "good_labels"), f"{', '.join(both)} cannot be good and a defect"


@table_rule(InspectorConfig, "stream_fps", "camera")
def _fps_needs_camera(key: str, c: InspectorConfig) -> Problems:
    if c.stream_fps and c.camera is None:
        yield join_key(key, "stream_fps"), "stream_fps needs a camera to stream from"
