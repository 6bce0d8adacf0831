"""PP-OCR pre- and post-processing as pure functions (numpy, cv2, pyclipper; no models).

Detection: resize to sides that are multiples of 32, normalise, and turn the DB probability
map into rotated text boxes. Recognition: rectify each box into an upright line crop, scale
it to height 48, and decode the CTC output greedily. The constants follow PaddleOCR's
PP-OCRv5 inference defaults so the shipped models see what they were trained on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt
import pyclipper

__all__ = [
    "DET_MEAN",
    "DET_STD",
    "REC_HEIGHT",
    "REC_MAX_WIDTH",
    "REC_MIN_WIDTH",
    "TextBox",
    "bounds",
    "crop_rotated",
    "ctc_decode",
    "db_boxes",
    "det_input",
    "det_resize",
    "order_boxes",
    "rec_batch",
    "rec_resize_width",
]

# ImageNet statistics, applied by PaddleOCR to the BGR image as it comes from cv2.imread.
DET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
DET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
REC_HEIGHT = 48
REC_MIN_WIDTH = 320  # PaddleOCR pads short lines to the 48x320 shape the model trained on
REC_MAX_WIDTH = 3200  # a 66:1 line; wider crops are squeezed rather than grown without bound
_SIDE_STEP = 32  # the detector downsamples by 32

# 4 x 2 points (x, y): top-left, top-right, bottom-right, bottom-left
Quad = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class TextBox:
    """One detected text region in the source image's pixels."""

    points: Quad
    score: float  # mean text probability inside the shrunk box


def det_resize(h: int, w: int, max_side: int) -> tuple[int, int]:
    """The detector input size for an h x w image: multiples of 32, neither side over max_side."""
    if max_side < _SIDE_STEP:
        raise ValueError(f"max_side must be at least {_SIDE_STEP}, got {max_side}")
    if h < 1 or w < 1:
        raise ValueError(f"image size must be positive, got {h}x{w}")
    ratio = min(1.0, max_side / max(h, w))
    limit = max_side // _SIDE_STEP * _SIDE_STEP

    def side(n: int) -> int:
        rounded = round(int(n * ratio) / _SIDE_STEP) * _SIDE_STEP
        return min(max(rounded, _SIDE_STEP), limit)

    return side(h), side(w)


def det_input(image_bgr: npt.NDArray[np.uint8], size: tuple[int, int]) -> npt.NDArray[np.float32]:
    """The 1 x 3 x nh x nw detector tensor of a BGR image resized to size (nh, nw)."""
    nh, nw = size
    resized = cv2.resize(image_bgr, (nw, nh))
    normalised = (resized.astype(np.float32) / 255.0 - DET_MEAN) / DET_STD
    return np.ascontiguousarray(normalised.transpose(2, 0, 1)[np.newaxis])


def db_boxes(prob_map: npt.NDArray[np.floating], *, src_h: int, src_w: int,
             thresh: float = 0.3, box_thresh: float = 0.6, unclip_ratio: float = 1.5,
             min_size: float = 3.0, max_candidates: int = 1000) -> list[TextBox]:
    """Text boxes of a DB probability map (H x W), scaled to an src_h x src_w image.

    Pixels over `thresh` form regions; a region whose mean probability is under `box_thresh`
    is dropped, the rest are grown back by `unclip_ratio` (DB trains on shrunk regions).
    """
    prob = np.nan_to_num(np.asarray(prob_map, dtype=np.float32), nan=0.0)
    if prob.ndim != 2 or prob.size == 0:
        raise ValueError(f"prob_map must be a non-empty H x W array, got shape {prob.shape}")
    map_h, map_w = prob.shape
    bitmap = (prob > thresh).astype(np.uint8) * 255
    contours, _ = cv2.findContours(bitmap, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    boxes: list[TextBox] = []
    for contour in contours[:max_candidates]:
        points, short_side = _min_area_quad(contour)
        if short_side < min_size:
            continue
        score = _mean_inside(prob, points)
        if score < box_thresh:
            continue
        grown = _unclip(points, unclip_ratio)
        if grown is None:
            continue
        points, short_side = _min_area_quad(grown)
        if short_side < min_size + 2:
            continue
        points[:, 0] = np.clip(np.round(points[:, 0] / map_w * src_w), 0, src_w - 1)
        points[:, 1] = np.clip(np.round(points[:, 1] / map_h * src_h), 0, src_h - 1)
        points = _clockwise(points)
        width = np.linalg.norm(points[0] - points[1])
        height = np.linalg.norm(points[0] - points[3])
        if width <= 3 or height <= 3:
            continue
        boxes.append(TextBox(points=points, score=score))
    return boxes


def _min_area_quad(contour: npt.NDArray[np.generic]) -> tuple[Quad, float]:
    rect = cv2.minAreaRect(contour.reshape(-1, 1, 2).astype(np.float32))
    points = cv2.boxPoints(rect).astype(np.float32)
    return _clockwise(points), float(min(rect[1]))


def _clockwise(points: Quad) -> Quad:
    """Top-left, top-right, bottom-right, bottom-left, as PaddleOCR orders a quad."""
    ordered = np.zeros((4, 2), dtype=np.float32)
    sums = points.sum(axis=1)
    ordered[0] = points[np.argmin(sums)]
    ordered[2] = points[np.argmax(sums)]
    rest = np.delete(points, (np.argmin(sums), np.argmax(sums)), axis=0)
    if len(rest) < 2:  # a degenerate quad whose extremes coincide
        rest = points[:2]
    diff = rest[:, 1] - rest[:, 0]
    ordered[1] = rest[np.argmin(diff)]
    ordered[3] = rest[np.argmax(diff)]
    return ordered


def _mean_inside(prob: npt.NDArray[np.float32], quad: Quad) -> float:
    h, w = prob.shape
    # minAreaRect returns 9.999998 for 10: rounding keeps that fuzz from adding a row
    # of background to the mask and dragging a thin region's score under the threshold.
    quad = np.round(quad)
    x0 = int(np.clip(np.floor(quad[:, 0].min()), 0, w - 1))
    x1 = int(np.clip(np.ceil(quad[:, 0].max()), 0, w - 1))
    y0 = int(np.clip(np.floor(quad[:, 1].min()), 0, h - 1))
    y1 = int(np.clip(np.ceil(quad[:, 1].max()), 0, h - 1))
    mask = np.zeros((y1 - y0 + 1, x1 - x0 + 1), dtype=np.uint8)
    shifted = (quad - np.array([x0, y0], dtype=np.float32)).astype(np.int32)
    cv2.fillPoly(mask, [shifted], 1)
    return float(cv2.mean(prob[y0:y1 + 1, x0:x1 + 1], mask)[0])


def _unclip(quad: Quad, ratio: float) -> npt.NDArray[np.int64] | None:
    area = cv2.contourArea(quad)
    perimeter = cv2.arcLength(quad.reshape(-1, 1, 2), True)
    if area <= 0 or perimeter <= 0:
        return None
    offset = pyclipper.PyclipperOffset()
    offset.AddPath(np.round(quad).astype(np.int64).tolist(), pyclipper.JT_ROUND,
                   pyclipper.ET_CLOSEDPOLYGON)
    paths = offset.Execute(area * ratio / perimeter)
    if not paths:
        return None
    return np.array(max(paths, key=len), dtype=np.int64)


def order_boxes(quads: Sequence[npt.ArrayLike]) -> list[int]:
    """Indices of the quads in reading order: lines top to bottom, each left to right.

    Two boxes share a line when the centre of one lies within half the smaller box height
    of the other's centre line, measured across the boxes' slant, so a slightly rotated
    frame still reads line by line. Lines chain: labels far apart on one line join through
    the boxes between them.
    """
    if len(quads) == 0:
        return []
    pts = np.stack([_as_quad(q) for q in quads])
    centres = pts.mean(axis=1)
    angles = np.array([_slant(q) for q in pts])
    heights = np.maximum((np.linalg.norm(pts[:, 3] - pts[:, 0], axis=1)
                          + np.linalg.norm(pts[:, 2] - pts[:, 1], axis=1)) / 2, 1e-6)
    pair_angle = (angles[:, None] + angles[None, :]) / 2
    delta = centres[None, :, :] - centres[:, None, :]
    across = -delta[..., 0] * np.sin(pair_angle) + delta[..., 1] * np.cos(pair_angle)
    linked = np.abs(across) < 0.5 * np.minimum(heights[:, None], heights[None, :])
    frame_angle = float(np.median(angles))
    down = -centres[:, 0] * math.sin(frame_angle) + centres[:, 1] * math.cos(frame_angle)
    along = centres[:, 0] * math.cos(frame_angle) + centres[:, 1] * math.sin(frame_angle)
    lines = _components(linked)
    lines.sort(key=lambda line: (float(np.mean(down[line])), min(line)))
    return [i for line in lines for i in sorted(line, key=lambda i: (along[i], i))]


def _as_quad(quad: npt.ArrayLike) -> npt.NDArray[np.float64]:
    pts = np.nan_to_num(np.asarray(quad, dtype=np.float64).reshape(-1, 2))
    pts = np.clip(pts, -1e9, 1e9)  # infinities would turn the distances into NaN
    if len(pts) == 4:
        return pts
    (x1, y1), (x2, y2) = pts.min(axis=0), pts.max(axis=0)
    return np.array([[x1, y1], [x2, y1], [x2, y2], [x1, y2]])


def _slant(quad: npt.NDArray[np.float64]) -> float:
    dx, dy = quad[1] - quad[0]
    if dx < 0:
        dx, dy = -dx, -dy
    if dx == 0 and dy == 0:
        return 0.0
    return max(-math.pi / 4, min(math.pi / 4, math.atan2(dy, dx)))


def _components(linked: npt.NDArray[np.bool_]) -> list[list[int]]:
    seen = np.zeros(len(linked), dtype=bool)
    groups = []
    for start in range(len(linked)):
        if seen[start]:
            continue
        seen[start] = True
        group, frontier = [start], [start]
        while frontier:
            found = np.flatnonzero(linked[frontier].any(axis=0) & ~seen)
            seen[found] = True
            frontier = found.tolist()
            group.extend(frontier)
        groups.append(group)
    return groups


def bounds(quad: npt.ArrayLike, h: int, w: int) -> tuple[int, int, int, int]:
    """The axis-aligned x1, y1, x2, y2 around a quad, inside an h x w image."""
    pts = np.asarray(quad, dtype=np.float64).reshape(-1, 2)
    x1 = int(np.clip(math.floor(pts[:, 0].min()), 0, w))
    y1 = int(np.clip(math.floor(pts[:, 1].min()), 0, h))
    x2 = int(np.clip(math.ceil(pts[:, 0].max()), 0, w))
    y2 = int(np.clip(math.ceil(pts[:, 1].max()), 0, h))
    return x1, y1, x2, y2


def crop_rotated(image: npt.NDArray[np.uint8], quad: npt.ArrayLike) -> npt.NDArray[np.uint8]:
    """The quad (clockwise from top-left) cut out of the image and warped upright.

    A crop much taller than wide is vertical text; it is turned to lie along the line.
    """
    pts = np.asarray(quad, dtype=np.float32).reshape(4, 2)
    width = max(1, int(max(np.linalg.norm(pts[0] - pts[1]), np.linalg.norm(pts[2] - pts[3]))))
    height = max(1, int(max(np.linalg.norm(pts[0] - pts[3]), np.linalg.norm(pts[1] - pts[2]))))
    target = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float32)
    matrix = cv2.getPerspectiveTransform(pts, target)
    crop = cv2.warpPerspective(image, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE,
                               flags=cv2.INTER_CUBIC)
    if height / width >= 1.5:
        crop = np.rot90(crop)
    return np.ascontiguousarray(crop)


def rec_resize_width(h: int, w: int, target_h: int = REC_HEIGHT,
                     max_w: int = REC_MAX_WIDTH) -> int:
    """The width an h x w line crop gets when scaled to target_h, kept in 1..max_w."""
    if h < 1 or w < 1:
        raise ValueError(f"crop size must be positive, got {h}x{w}")
    return max(1, min(max_w, math.ceil(target_h * w / h)))


def rec_batch(crops_bgr: Sequence[npt.NDArray[np.uint8]], *, target_h: int = REC_HEIGHT,
              min_w: int = REC_MIN_WIDTH, max_w: int = REC_MAX_WIDTH
              ) -> npt.NDArray[np.float32]:
    """The N x 3 x target_h x W recogniser tensor of BGR line crops, padded on the right."""
    widths = [rec_resize_width(c.shape[0], c.shape[1], target_h, max_w) for c in crops_bgr]
    batch = np.zeros((len(crops_bgr), 3, target_h, max([min_w, *widths])), dtype=np.float32)
    for i, (crop, width) in enumerate(zip(crops_bgr, widths, strict=True)):
        resized = cv2.resize(crop, (width, target_h)).astype(np.float32)
        batch[i, :, :, :width] = (resized / 255.0 - 0.5).transpose(2, 0, 1) / 0.5
    return batch


def ctc_decode(probs: npt.ArrayLike, charset: Sequence[str]) -> tuple[str, float]:
    """Greedy CTC decoding of T x C class probabilities; class 0 is the blank.

    Class i > 0 is charset[i - 1] (U+FFFD when the charset is shorter than the model's
    classes). Repeats collapse unless a blank separates them. The confidence is the mean
    best-class probability of the characters kept, 0.0 when nothing is kept.
    """
    array = np.asarray(probs, dtype=np.float32)
    if array.ndim != 2:
        raise ValueError(f"probs must be T x C, got shape {array.shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        return "", 0.0
    array = np.nan_to_num(array, nan=0.0, posinf=1.0, neginf=0.0)
    best = array.argmax(axis=1)
    best_prob = array.max(axis=1)
    keep = best != 0
    keep[1:] &= best[1:] != best[:-1]
    chars = [charset[i - 1] if i - 1 < len(charset) else "\ufffd" for i in best[keep].tolist()]
    if not chars:
        return "", 0.0
    confidence = float(np.mean(best_prob[keep], dtype=np.float64))
    return "".join(chars), confidence if math.isfinite(confidence) else 0.0
