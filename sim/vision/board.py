"""Top views of the demo station's fixture board: a DIN rail, the contactor, its terminal
screws and the label the OCR steps read, rendered deterministically from a scene and a seed.

The canonical frame is 896 x 896 RGB. Everything random (defect geometry, screw slots and the
camera's variations) is drawn from the caller's `numpy.random.Generator`, so a seed renders the
same frame on every machine. The camera's variations are modelled in `sim.vision.camera`.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from sim.vision.camera import MAX_JITTER_DEG, MAX_JITTER_PX, Augment, AugmentDraw, camera_view

__all__ = [
    "BODY_SIZE",
    "HOME",
    "LABELS",
    "PICK",
    "RAIL_Y",
    "SIZE",
    "TERMINALS",
    "Scene",
    "contactor_box",
    "render",
    "write_frame",
]

SIZE = 896
LABELS: tuple[str, ...] = (
    "empty_rail", "contactor", "contactor_on_rail", "screws_tight",
    "missing_screw", "misplaced", "scratch",
)
_SCREWED = frozenset({"screws_tight", "missing_screw", "scratch"})

# Layout of the canonical frame, in pixels.
_PLATE = (16, 16, 880, 880)
RAIL_Y = (250, 360)  # the DIN rail's top and bottom edge; it runs across the whole plate
HOME = (330.0, 305.0)  # the contactor's centre when it is clipped on at its position
_PICK_ZONE = (532, 424, 840, 850)
PICK = (686.0, 637.0)  # the contactor's centre when it waits in the picking zone
BODY_SIZE = (300, 420)  # the contactor's width and height
# Terminal screw centres in the contactor's own pixels: two on the line side, two on the load
# side; four, as many as the demo's "Tighten the terminal screws" step counts.
TERMINALS: tuple[tuple[int, int], ...] = ((80, 39), (220, 39), (80, 381), (220, 381))

_TABLE = (36.0, 38.0, 42.0)
_FONT = cv2.FONT_HERSHEY_DUPLEX
_INK = (28, 28, 32)
# Misplacement that no placement jitter can reach (Augment caps jitter at half the least).
_MISPLACED_SHIFT = (2 * MAX_JITTER_PX, 165.0)
_MISPLACED_TILT = (2 * MAX_JITTER_DEG, 20.0)
_SHADOW = (8, 11)  # the part's shadow falls this far right and down, in pixels


@dataclass(frozen=True, slots=True)
class Scene:
    """What lies on the board. Defect details left as None are drawn from the rng of `render`
    (or take their canonical value without one)."""

    state: str
    serial: str = "CT-000123"
    rating: str = "32A"
    voltage: str = "24V DC"
    missing: tuple[int, ...] | None = None  # missing_screw: indices into TERMINALS
    offset_px: tuple[float, float] | None = None  # misplaced: shift from HOME
    tilt_deg: float | None = None  # misplaced: rotation on the rail
    # scratch: its two ends as fractions of the contactor's width and height
    scratch: tuple[tuple[float, float], tuple[float, float]] | None = None

    def __post_init__(self) -> None:
        if self.state not in LABELS:
            raise ValueError(f"unknown board state {self.state!r}; known: {', '.join(LABELS)}")
        if self.missing is not None and (
                not self.missing or any(not 0 <= i < len(TERMINALS) for i in self.missing)):
            raise ValueError(f"missing screws must be indices 0..{len(TERMINALS) - 1}")


@dataclass(frozen=True, slots=True)
class _Pose:
    centre: tuple[float, float]
    angle_deg: float


@dataclass(frozen=True, slots=True)
class _Details:
    pose: _Pose | None
    screws: tuple[bool, ...]  # per terminal: screw fitted
    slots_deg: tuple[float, ...]
    scratch: tuple[tuple[float, float], ...] | None  # polyline in the contactor's pixels


def render(scene: Scene, rng: np.random.Generator | None = None,
           augment: Augment | None = None) -> np.ndarray:
    """The board as an 896 x 896 x 3 uint8 RGB frame. Without rng and augment it is the
    canonical view; an augment without an rng draws from seed 0."""
    if augment is not None and rng is None:
        rng = np.random.default_rng(0)
    draw = augment.sample(rng) if augment is not None and rng is not None else None
    details = _details(scene, rng, draw)
    # The canonical view stays in uint8: only the part's own box is blended in float. The
    # camera model works in float32 on the whole frame.
    board = _board().copy() if draw is None else _board().astype(np.float32)
    if details.pose is not None:
        _place_contactor(board, _contactor_patch(scene, details), details.pose)
    if draw is None or rng is None:
        return board
    return camera_view(board, draw, rng, background=_TABLE)


def contactor_box(scene: Scene) -> tuple[int, int, int, int] | None:
    """The contactor's bounding box (x1, y1, x2, y2) in the canonical frame; None if absent."""
    pose = _details(scene, None, None).pose
    if pose is None:
        return None
    corners = _corners(pose)
    x1, y1 = np.floor(corners.min(axis=0)).astype(int)
    x2, y2 = np.ceil(corners.max(axis=0)).astype(int)
    return max(0, int(x1)), max(0, int(y1)), min(SIZE, int(x2)), min(SIZE, int(y2))


def write_frame(path: Path | str, image: np.ndarray) -> Path:
    """Write an RGB frame atomically, encoded by its suffix (.png, .jpg, .bmp...): readers such
    as the pylon emulator never see half a file, and the temporary file has no image suffix,
    so a reader scanning the folder for images never picks it up."""
    path = Path(path)
    suffix = path.suffix or ".png"
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3 or not image.size:
        raise ValueError(f"a frame is H x W x 3 uint8 RGB, not {image.dtype} {image.shape}")
    try:
        ok, encoded = cv2.imencode(suffix, cv2.cvtColor(np.ascontiguousarray(image),
                                                         cv2.COLOR_RGB2BGR))
    except cv2.error as exc:
        raise ValueError(f"cannot encode a frame as {suffix}: {path}") from exc
    if not ok:
        raise ValueError(f"cannot encode a frame as {suffix}: {path}")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(encoded.tobytes())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _details(scene: Scene, rng: np.random.Generator | None, draw: AugmentDraw | None
             ) -> _Details:
    state = scene.state
    pose = _pose(scene, rng, draw)
    screws = tuple(state in _SCREWED for _ in TERMINALS)
    if state == "missing_screw":
        missing = scene.missing
        if missing is None:
            missing = (1,) if rng is None else tuple(
                int(i) for i in rng.choice(len(TERMINALS), int(rng.integers(1, 3)),
                                           replace=False))
        screws = tuple(i not in missing for i in range(len(TERMINALS)))
    slots = (20.0, 65.0, 35.0, 80.0) if rng is None else tuple(
        float(a) for a in rng.uniform(0, 90, len(TERMINALS)))
    scratch = None
    if state == "scratch":
        ends = scene.scratch
        if ends is None and rng is None:
            ends = ((0.1, 0.28), (0.9, 0.7))
        elif ends is None and rng is not None:
            # Steeply across the printed middle of the face, falling or rising, from one side to
            # the other; it stays clear of the terminal blocks (above 0.19 and below 0.81), so
            # that it never passes for a screw slot or hides one.
            x0, y0, x1, drop = rng.uniform((0.05, 0.22, 0.85, 0.3), (0.15, 0.3, 0.95, 0.48))
            if rng.random() < 0.5:
                y0, drop = 1.0 - y0, -drop
            ends = ((float(x0), float(y0)), (float(x1), float(y0 + drop)))
        assert ends is not None
        scratch = _scratch_line(ends, rng)
    return _Details(pose, screws, slots, scratch)


def _pose(scene: Scene, rng: np.random.Generator | None, draw: AugmentDraw | None
          ) -> _Pose | None:
    if scene.state == "empty_rail":
        return None
    if scene.state == "contactor":
        pose = _Pose(PICK, 0.0)
    else:
        dx, dy, angle = _misplacement(scene, rng) if scene.state == "misplaced" else (0, 0, 0)
        pose = _Pose((HOME[0] + dx, HOME[1] + dy), angle)
    if draw is None:
        return pose
    # On the rail the part can only slide along it; in the zone it lies anywhere.
    jx, jy = draw.part_shift
    if scene.state != "contactor":
        jy *= 0.25
    return _Pose((pose.centre[0] + jx, pose.centre[1] + jy), pose.angle_deg + draw.part_deg)


def _misplacement(scene: Scene, rng: np.random.Generator | None) -> tuple[float, float, float]:
    """Shift along the rail and tilt of a misplaced contactor: shifted, tilted or both."""
    dx, tilt = 160.0, 0.0
    if rng is not None:
        mode = int(rng.integers(0, 3))
        sign_x, sign_t = rng.choice((-1.0, 1.0), 2)
        dx = float(rng.uniform(*_MISPLACED_SHIFT) * sign_x) if mode != 1 else 0.0
        tilt = float(rng.uniform(*_MISPLACED_TILT) * sign_t) if mode != 0 else 0.0
    dx, dy = scene.offset_px if scene.offset_px is not None else (dx, 0.0)
    return dx, dy, scene.tilt_deg if scene.tilt_deg is not None else tilt


def _scratch_line(ends: tuple[tuple[float, float], tuple[float, float]],
                  rng: np.random.Generator | None) -> tuple[tuple[float, float], ...]:
    (fx0, fy0), (fx1, fy1) = ends
    w, h = BODY_SIZE
    steps = 8
    points = []
    for k in range(steps + 1):
        t = k / steps
        # A real scratch wanders a little; the canonical one wanders the same way every time.
        wobble = float(rng.uniform(-4, 4)) if rng is not None else 3.0 * math.sin(k * 1.7)
        points.append(((fx0 + (fx1 - fx0) * t) * w, (fy0 + (fy1 - fy0) * t) * h + wobble))
    return tuple(points)


@lru_cache(maxsize=1)
def _board() -> np.ndarray:
    img = np.empty((SIZE, SIZE, 3), np.uint8)
    img[:] = np.array(_TABLE, np.uint8)
    x1, y1, x2, y2 = _PLATE
    _rounded_rect(img, (x1, y1, x2, y2), 18, (94, 110, 130))
    cv2.rectangle(img, (x1 + 2, y1 + 2), (x2 - 2, y2 - 2), (108, 124, 144), 2, cv2.LINE_AA)
    # The plate's grid of tapped holes, every 80 px, and its corner fixing screws.
    for gy in range(56, SIZE - 40, 80):
        for gx in range(56, SIZE - 40, 80):
            if not RAIL_Y[0] - 10 <= gy <= RAIL_Y[1] + 10:
                cv2.circle(img, (gx, gy), 5, (58, 68, 82), -1, cv2.LINE_AA)
    for cx, cy in ((40, 40), (856, 40), (40, 856), (856, 856)):  # socket head cap screws
        cv2.circle(img, (cx, cy), 13, (150, 154, 160), -1, cv2.LINE_AA)
        cv2.circle(img, (cx, cy), 13, (96, 100, 106), 2, cv2.LINE_AA)
        cv2.circle(img, (cx, cy), 5, (70, 72, 78), -1, cv2.LINE_AA)
    _pick_zone(img)
    _rail(img)
    img.flags.writeable = False  # cached: every render starts from a copy
    return img


def _pick_zone(img: np.ndarray) -> None:
    x1, y1, x2, y2 = _PICK_ZONE
    yellow = (224, 190, 52)
    for a, b in (((x1, y1), (x2, y1)), ((x1, y2), (x2, y2)), ((x1, y1), (x1, y2)),
                 ((x2, y1), (x2, y2))):
        length = math.dist(a, b)
        for s in np.arange(0, length, 36):
            t0, t1 = s / length, min(s + 22, length) / length
            p0 = (round(a[0] + (b[0] - a[0]) * t0), round(a[1] + (b[1] - a[1]) * t0))
            p1 = (round(a[0] + (b[0] - a[0]) * t1), round(a[1] + (b[1] - a[1]) * t1))
            cv2.line(img, p0, p1, yellow, 4, cv2.LINE_AA)
    for cx, cy, sx, sy in ((x1, y1, 1, 1), (x2, y1, -1, 1), (x1, y2, 1, -1), (x2, y2, -1, -1)):
        cv2.line(img, (cx, cy), (cx + 40 * sx, cy), yellow, 8, cv2.LINE_AA)
        cv2.line(img, (cx, cy), (cx, cy + 40 * sy), yellow, 8, cv2.LINE_AA)


def _rail(img: np.ndarray) -> None:
    top, bottom = RAIL_Y
    x1, x2 = _PLATE[0], _PLATE[2]
    cv2.rectangle(img, (x1, top + 4), (x2, bottom + 4), (60, 70, 84), -1)  # its shadow
    cv2.rectangle(img, (x1, top), (x2, bottom), (214, 216, 220), -1)
    cv2.rectangle(img, (x1, top + 16), (x2, bottom - 16), (176, 179, 183), -1)
    for y in (top, top + 16, bottom - 16, bottom):
        cv2.line(img, (x1, y), (x2, y), (132, 135, 140), 2, cv2.LINE_AA)
    mid = (top + bottom) // 2
    for x in range(40, x2, 110):  # through the slots the plate shows, in the rail's shadow
        _rounded_rect(img, (x, mid - 8, x + 60, mid + 8), 8, (70, 82, 98))
    for x in (70, 810):  # the rail's fixing screws sit in two of its slots
        cv2.circle(img, (x, mid), 15, (150, 152, 158), -1, cv2.LINE_AA)
        cv2.circle(img, (x, mid), 15, (90, 92, 96), 2, cv2.LINE_AA)
        cv2.line(img, (x - 9, mid), (x + 9, mid), (60, 60, 64), 4, cv2.LINE_AA)


def _contactor_patch(scene: Scene, details: _Details) -> tuple[np.ndarray, np.ndarray]:
    w, h = BODY_SIZE
    img = np.zeros((h, w, 3), np.uint8)
    _rounded_rect(img, (0, 0, w - 1, h - 1), 14, (140, 142, 146))
    _rounded_rect(img, (3, 3, w - 4, h - 4), 12, (208, 210, 212))
    for y1, y2 in ((3, 78), (342, h - 4)):  # the terminal blocks
        cv2.rectangle(img, (3, y1), (w - 4, y2), (186, 188, 191), -1)
        cv2.line(img, (3, y1 if y1 > 3 else y2), (w - 4, y1 if y1 > 3 else y2),
                 (150, 152, 156), 2, cv2.LINE_AA)
    cv2.rectangle(img, (w // 2 - 22, h - 16), (w // 2 + 22, h - 4), (150, 152, 156), -1)
    for (tx, ty), fitted, slot in zip(TERMINALS, details.screws, details.slots_deg, strict=True):
        _terminal(img, tx, ty, fitted, slot)
    # Contact position indicator window
    cv2.rectangle(img, (212, 100), (276, 138), (62, 66, 72), -1)
    cv2.rectangle(img, (236, 108), (252, 130), (226, 228, 230), -1)
    _text(img, scene.rating, (24, 142), 1.6, w - 110)
    _text(img, scene.voltage, (24, 204), 1.45, w - 48)
    cv2.rectangle(img, (12, 224), (w - 12, 294), (246, 246, 244), -1)
    cv2.rectangle(img, (12, 224), (w - 12, 294), (170, 170, 170), 2, cv2.LINE_AA)
    _text(img, scene.serial, None, 1.45, w - 50, centre=(w // 2, 259))
    if details.scratch is not None:
        pts = np.array(details.scratch, np.float64)
        poly = np.round(pts * 16).astype(np.int32).reshape(-1, 1, 2)
        # A gouge: dark torn edges around a bright scraped core, 26 px wide. Several times as
        # wide and long as a screw slot or a printed stroke, so a camera (and a model looking at
        # a 224 px frame, where it is still 6 px wide) sees a thing of its own.
        cv2.polylines(img, [poly], False, (96, 96, 102), 26, cv2.LINE_AA, shift=4)
        cv2.polylines(img, [poly], False, (246, 246, 246), 12, cv2.LINE_AA, shift=4)
    alpha = np.zeros((h, w), np.uint8)
    _rounded_rect(alpha, (0, 0, w - 1, h - 1), 14, 255)
    return img.astype(np.float32), alpha.astype(np.float32) / 255.0


def _terminal(img: np.ndarray, tx: int, ty: int, fitted: bool, slot_deg: float) -> None:
    cv2.rectangle(img, (tx - 35, ty - 30), (tx + 35, ty + 30), (72, 74, 78), -1)
    if not fitted:
        cv2.circle(img, (tx, ty), 24, (128, 130, 134), -1, cv2.LINE_AA)  # the clamp's collar
        cv2.circle(img, (tx, ty), 17, (18, 18, 20), -1, cv2.LINE_AA)
        return
    cv2.circle(img, (tx, ty), 25, (120, 122, 126), -1, cv2.LINE_AA)
    cv2.circle(img, (tx, ty), 22, (182, 184, 188), -1, cv2.LINE_AA)
    cv2.circle(img, (tx - 6, ty - 6), 10, (228, 230, 232), -1, cv2.LINE_AA)
    for angle in (slot_deg, slot_deg + 90.0):
        dx = 17 * math.cos(math.radians(angle))
        dy = 17 * math.sin(math.radians(angle))
        p0 = (round((tx - dx) * 16), round((ty - dy) * 16))
        p1 = (round((tx + dx) * 16), round((ty + dy) * 16))
        cv2.line(img, p0, p1, (58, 58, 62), 5, cv2.LINE_AA, shift=4)


def _text(img: np.ndarray, text: str, origin: tuple[int, int] | None, scale: float,
          max_width: int, *, centre: tuple[int, int] | None = None) -> None:
    (tw, th), _ = cv2.getTextSize(text, _FONT, scale, 3)
    if tw > max_width:  # long custom texts shrink to fit the face
        scale *= max_width / tw
        (tw, th), _ = cv2.getTextSize(text, _FONT, scale, 3)
    if centre is not None:
        origin = (centre[0] - tw // 2, centre[1] + th // 2)
    assert origin is not None
    cv2.putText(img, text, origin, _FONT, scale, _INK, 3 if scale >= 0.8 else 2, cv2.LINE_AA)


def _corners(pose: _Pose) -> np.ndarray:
    w, h = BODY_SIZE
    matrix = _patch_matrix(pose)
    pts = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], np.float64)
    return pts @ matrix.T


def _patch_matrix(pose: _Pose) -> np.ndarray:
    w, h = BODY_SIZE
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), -pose.angle_deg, 1.0)
    matrix[:, 2] += (pose.centre[0] - w / 2, pose.centre[1] - h / 2)
    return matrix


def _place_contactor(board: np.ndarray, patch: tuple[np.ndarray, np.ndarray],
                     pose: _Pose) -> None:
    rgb, alpha = patch
    corners = _corners(pose)
    margin = 24  # room for the shadow
    x1 = max(0, math.floor(corners[:, 0].min()) - margin)
    y1 = max(0, math.floor(corners[:, 1].min()) - margin)
    x2 = min(SIZE, math.ceil(corners[:, 0].max()) + margin)
    y2 = min(SIZE, math.ceil(corners[:, 1].max()) + margin)
    if x2 <= x1 or y2 <= y1:
        return
    matrix = _patch_matrix(pose)
    matrix[:, 2] -= (x1, y1)
    size = (x2 - x1, y2 - y1)
    # Colour and coverage in one warp; the shadow is the coverage moved by whole pixels.
    warped = cv2.warpAffine(cv2.merge((rgb, alpha)), matrix, size, flags=cv2.INTER_LINEAR)
    part, cover = warped[..., :3], np.ascontiguousarray(warped[..., 3])
    dx, dy = _SHADOW
    shadow = np.zeros_like(cover)
    if size[0] > dx and size[1] > dy:
        shadow[dy:, dx:] = cover[:size[1] - dy, :size[0] - dx]
    shadow = cv2.stackBlur(shadow, (31, 31))  # soft edge; cost independent of its width
    keep = (1.0 - 0.45 * shadow) * (1.0 - cover)
    # cv2 with 3-channel factors: numpy broadcasting over a last axis of 3 is ten times slower
    roi = board[y1:y2, x1:x2]
    blend = cv2.add(cv2.multiply(roi.astype(np.float32), cv2.cvtColor(keep, cv2.COLOR_GRAY2RGB)),
                    cv2.multiply(part, cv2.cvtColor(cover, cv2.COLOR_GRAY2RGB)))
    roi[:] = blend if roi.dtype == np.float32 else cv2.add(blend, (0.0, 0.0, 0.0, 0.0),
                                                          dtype=cv2.CV_8U)


def _rounded_rect(img: np.ndarray, box: tuple[int, int, int, int], r: int,
                  color: tuple[int, int, int] | int) -> None:
    x1, y1, x2, y2 = box
    cv2.rectangle(img, (x1 + r, y1), (x2 - r, y2), color, -1)
    cv2.rectangle(img, (x1, y1 + r), (x2, y2 - r), color, -1)
    for cx, cy in ((x1 + r, y1 + r), (x2 - r, y1 + r), (x1 + r, y2 - r), (x2 - r, y2 - r)):
        cv2.circle(img, (cx, cy), r, color, -1, cv2.LINE_AA)
