"""The fixed filter bank every Takt-trained vision model starts with, as an OpenVINO graph.

No learned weights: oriented Gabor filters, blob (difference of Gaussians) and colour filters
are generated in numpy and run over the frame at several octaves, rectified in both
polarities and pooled (mean and max) over a coarse grid, over overlapping part-sized windows
and over the whole frame. Training and inference run this same graph, so a head is fitted on
exactly the features it later sees.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
import openvino as ov
import openvino.opset1 as ops1
import openvino.opset16 as ops

__all__ = ["Backbone", "BackboneGraph", "build_backbone", "filter_bank"]

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


@dataclass(frozen=True, slots=True, kw_only=True)
class Backbone:
    """Shape of the feature extractor; stored in a model's rt_info so it can be rebuilt."""

    input_size: int = 224  # frames are resized to input_size x input_size
    kernel: int = 7
    stride: int = 2  # of the full-resolution octave; the smaller ones filter every pixel
    octaves: int = 3  # the bank also runs on the frame halved, quartered...: larger details
    grid: int = 4  # cells per side, each pooled (mean and max) into the feature vector
    # Windows per side, also pooled. With w of them, each spans (w + 1) / 2w of the frame and
    # they step by 1 / 2w, so anything up to half the frame lies whole inside one of them: a
    # part's details (its four terminals, say) are pooled together however the grid cuts it,
    # which a linear head needs to tell "some screws missing" from "all" or "none". 0: none.
    windows: int = 4

    def __post_init__(self) -> None:
        if self.kernel % 2 == 0 or self.kernel < 3:
            raise ValueError("kernel must be odd and at least 3")
        if self.octaves < 1 or self.stride < 1 or self.grid < 1:
            raise ValueError("octaves, stride and grid must be at least 1")
        if self.windows < 0:
            raise ValueError("windows must not be negative")
        smallest = min(self.map_sizes)
        if smallest < max(self.grid, 2 * self.windows):
            raise ValueError(f"the smallest feature map ({smallest} px) is too small for a "
                             f"{self.grid} x {self.grid} grid and {self.windows} windows per "
                             "side: use a larger input or fewer octaves")

    @property
    def map_sizes(self) -> tuple[int, ...]:
        """Side of each octave's rectified feature map, before the grid pooling."""
        first = self.input_size // self.stride
        return (first, *(self.input_size >> (o + 1) for o in range(1, self.octaves)))

    @property
    def channels(self) -> int:
        """Channels per grid cell: per octave, every filter rectified both ways, each mean
        and max pooled."""
        return self.octaves * 2 * 2 * len(filter_bank(self.kernel))

    @property
    def feature_size(self) -> int:
        """Length of the feature vector: every cell's channels, the whole frame's, then every
        window's."""
        return self.channels * (self.grid * self.grid + 1 + self.windows * self.windows)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Backbone:
        # Models trained before the windows existed have none.
        return cls(**{"windows": 0, **json.loads(text)})


@dataclass(frozen=True, slots=True)
class BackboneGraph:
    """The backbone's outputs inside a graph under construction."""

    cells: ov.Output  # f32 [N, channels, grid, grid]
    features: ov.Output  # f32 [N, feature_size]: the cells flattened, the whole frame, windows


@lru_cache(maxsize=8)
def filter_bank(kernel: int = 7) -> np.ndarray:
    """The fixed filters, f32 [F, 3, kernel, kernel]; deterministic. Gabors and blobs see
    luminance and sum to zero; three smooth filters see colour and brightness."""
    r = kernel // 2
    y, x = np.mgrid[-r:r + 1, -r:r + 1].astype(np.float64)
    filters: list[np.ndarray] = []

    def luma(k: np.ndarray) -> np.ndarray:
        return _LUMA[:, None, None] * k[None].astype(np.float32)

    # Edges and bars in four orientations at two wavelengths, in both phases: rail and body
    # outlines, terminal slots, printed text, scratches.
    for wavelength in (kernel / 1.75, kernel / 3.5):
        sigma = 0.45 * wavelength
        envelope = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
        for theta in np.arange(4) * math.pi / 4:
            u = x * math.cos(theta) + y * math.sin(theta)
            for phase in (0.0, math.pi / 2):
                k = envelope * np.cos(2 * math.pi * u / wavelength + phase)
                filters.append(luma(_unit(k - k.sum() / envelope.sum() * envelope)))
    # Centre-surround blobs at two sizes: an open hole against a fitted screw head.
    for sigma in (kernel / 7, kernel / 4.5):
        centre = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
        surround = np.exp(-(x * x + y * y) / (8 * sigma * sigma))
        filters.append(luma(_unit(centre / centre.sum() - surround / surround.sum())))
    # Smooth red-green, blue-yellow and brightness: a grey part on a blue plate, a yellow zone.
    g = np.exp(-(x * x + y * y) / (2 * (kernel / 4) ** 2))
    g = (4 * g / g.sum()).astype(np.float32)
    for weights in ((1.0, -1.0, 0.0), (-0.5, -0.5, 1.0), (1 / 3, 1 / 3, 1 / 3)):
        filters.append(np.array(weights, np.float32)[:, None, None] * g[None])
    bank = np.stack(filters).astype(np.float32)
    bank.flags.writeable = False
    return bank


def build_backbone(pixels: ov.Output, spec: Backbone) -> BackboneGraph:
    """The backbone over f32 NCHW pixels scaled 0..1, [N, 3, input_size, input_size]."""
    bank = ops.constant(np.array(filter_bank(spec.kernel)))
    pad = [spec.kernel // 2] * 2
    # Each frame to zero mean and unit variance: lighting and contrast drop out up front.
    x = ops.mvn(pixels, ops.constant(np.array([1, 2, 3], np.int64)), True, 1e-4, "inside_sqrt")
    grid = ops.constant(np.array([spec.grid, spec.grid], np.int64))
    fine = ops.constant(np.array([2 * spec.windows] * 2, np.int64))
    pooled: list[ov.Output] = []  # per octave: mean, max
    windows: list[ov.Output] = []  # per octave: mean, max
    for octave in range(spec.octaves):
        src, stride = x, spec.stride
        if octave:
            f = 1 << octave
            # AvgPool-1, not AvgPool-14: compiling AvgPool-14 on CPU crashes OpenVINO 2026.4.
            src = ops1.avg_pool(x, [f, f], [0, 0], [0, 0], [f, f], exclude_pad=True)
            # Small maps are cheap: filter at every pixel and keep the peak of each 2 x 2, so a
            # blob a few pixels wide is never missed between two filter positions.
            stride = 1
        conv = ops.convolution(src, bank, [stride] * 2, pad, pad, [1, 1])
        rect = ops.concat([ops.relu(conv), ops.relu(ops.negative(conv))], axis=1).output(0)
        if octave:
            rect = ops.max_pool(rect, [2, 2], [1, 1], [0, 0], [0, 0], [2, 2]).output(0)
        pooled.append(ops.adaptive_avg_pool(rect, grid).output(0))
        # i32 indices: the CPU plugin refuses i64 ones
        pooled.append(ops.adaptive_max_pool(rect, grid, "i32").output(0))
        if spec.windows:
            # Windows of w + 1 fine cells at steps of one, from a grid of 2w fine cells.
            span = [spec.windows + 1] * 2
            fine_mean = ops.adaptive_avg_pool(rect, fine).output(0)
            fine_max = ops.adaptive_max_pool(rect, fine, "i32").output(0)
            windows.append(ops1.avg_pool(fine_mean, [1, 1], [0, 0], [0, 0], span,
                                         exclude_pad=True).output(0))
            windows.append(ops1.max_pool(fine_max, [1, 1], [0, 0], [0, 0], span).output(0))
    cells = ops.concat(pooled, axis=1, name="takt_cells")
    axes = ops.constant(np.array([2, 3], np.int64))
    whole = ops.concat([ops.reduce_mean(p, axes) if i % 2 == 0 else ops.reduce_max(p, axes)
                        for i, p in enumerate(pooled)], axis=1)
    flatten = ops.constant(np.array([0, -1], np.int64))
    parts = [ops.reshape(cells, flatten, special_zero=True), whole]
    if windows:
        parts.append(ops.reshape(ops.concat(windows, axis=1), flatten, special_zero=True))
    features = ops.concat(parts, axis=1, name="takt_features")
    return BackboneGraph(cells=cells.output(0), features=features.output(0))


def _unit(k: np.ndarray) -> np.ndarray:
    return k / max(float(np.sqrt((k * k).sum())), 1e-9)
