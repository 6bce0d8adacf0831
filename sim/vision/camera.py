"""The camera model of the rendered frames: how far a camera's frames vary around the canonical
view (`Augment`), one frame's drawn variation (`AugmentDraw`), and `camera_view`, which turns a
rendered scene into what the camera delivers: view placement, focus, colour, light and noise.

It knows nothing of what lies in the scene; `sim.vision.board` renders the scene and hands it
over. Everything random is drawn from the caller's `numpy.random.Generator`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

__all__ = [
    "DEFAULT_AUGMENT",
    "MAX_JITTER_DEG",
    "MAX_JITTER_PX",
    "Augment",
    "AugmentDraw",
    "camera_view",
]

# The most the part may move around where it belongs: the board's smallest misplacement is
# twice this, so an augmented well-placed part never looks misplaced.
MAX_JITTER_PX = 70.0
MAX_JITTER_DEG = 6.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Augment:
    """How far a camera's frames vary around the canonical view; each draw is uniform within
    these bounds (symmetric about "no change" unless the field says 0..x)."""

    brightness: float = 0.25  # gain in 1 +- brightness
    gradient: float = 0.2  # uneven lighting: gain falls off across the frame by 0..gradient
    contrast: float = 0.2  # 1 +- contrast about the frame's mean
    hue_deg: float = 8.0
    saturation: float = 0.2  # 1 +- saturation
    white_balance: float = 0.06  # per channel gain 1 +- white_balance
    shift_px: float = 16.0  # camera or fixture: the whole view moves
    # A fixed camera does not turn or zoom between frames; both cost a full warp per frame.
    rotate_deg: float = 0.0
    scale: float = 0.0  # zoom 1 +- scale
    jitter_px: float = 12.0  # the part itself, around where it belongs
    jitter_deg: float = 2.0
    noise: float = 6.0  # sensor noise sigma in grey levels, 0..noise
    blur: float = 1.2  # focus: gaussian sigma in pixels, 0..blur

    def __post_init__(self) -> None:
        for name in self.__dataclass_fields__:
            if getattr(self, name) < 0:
                raise ValueError(f"augmentation {name} must not be negative")
        if self.brightness >= 1 or self.contrast >= 1 or self.saturation >= 1:
            raise ValueError("brightness, contrast and saturation must stay below 1")
        # Beyond these a well-placed contactor would look misplaced: the labels would lie.
        if self.jitter_px > MAX_JITTER_PX or self.jitter_deg > MAX_JITTER_DEG:
            raise ValueError("part jitter must stay below half the misplacement it would fake")

    @classmethod
    def from_strengths(cls, lighting: float, placement: float, color: float) -> Augment:
        """From seed 000's assembly augmentation settings (lighting, placement, colour: 0..1)."""
        for value in (lighting, placement, color):
            if not 0 <= value <= 1:
                raise ValueError("augmentation strengths are 0..1")
        return cls(brightness=0.4 * lighting, gradient=0.3 * lighting, contrast=0.3 * lighting,
                   hue_deg=15 * color, saturation=0.35 * color, white_balance=0.1 * color,
                   shift_px=40 * placement, rotate_deg=5 * placement, scale=0.06 * placement,
                   jitter_px=24 * placement, jitter_deg=3 * placement)

    def sample(self, rng: np.random.Generator) -> AugmentDraw:
        """One camera frame's variation."""
        def sym(x: float) -> float:
            return float(rng.uniform(-x, x))
        return AugmentDraw(
            gain=1 + sym(self.brightness), gradient=float(rng.uniform(0, self.gradient)),
            gradient_deg=float(rng.uniform(0, 360)), contrast=1 + sym(self.contrast),
            hue_deg=sym(self.hue_deg), saturation=1 + sym(self.saturation),
            white_balance=(1 + sym(self.white_balance), 1 + sym(self.white_balance),
                           1 + sym(self.white_balance)),
            shift=(sym(self.shift_px), sym(self.shift_px)), rotate_deg=sym(self.rotate_deg),
            scale=1 + sym(self.scale), part_shift=(sym(self.jitter_px), sym(self.jitter_px)),
            part_deg=sym(self.jitter_deg), noise=float(rng.uniform(0, self.noise)),
            blur=float(rng.uniform(0, self.blur)))


DEFAULT_AUGMENT = Augment()


@dataclass(frozen=True, slots=True, kw_only=True)
class AugmentDraw:
    """The concrete variation of one frame, drawn by `Augment.sample`."""

    gain: float = 1.0
    gradient: float = 0.0
    gradient_deg: float = 0.0
    contrast: float = 1.0
    hue_deg: float = 0.0
    saturation: float = 1.0
    white_balance: tuple[float, float, float] = (1.0, 1.0, 1.0)
    shift: tuple[float, float] = (0.0, 0.0)
    rotate_deg: float = 0.0
    scale: float = 1.0
    part_shift: tuple[float, float] = (0.0, 0.0)
    part_deg: float = 0.0
    noise: float = 0.0
    blur: float = 0.0


def camera_view(scene: np.ndarray, draw: AugmentDraw, rng: np.random.Generator, *,
                background: tuple[float, float, float]) -> np.ndarray:
    """What the camera makes of a square float32 RGB scene: view placement, focus, colour,
    light and noise, as uint8. `background` shows where the view moves off the scene."""
    size = scene.shape[0]
    if scene.shape[:2] != (size, size):
        raise ValueError(f"the camera model takes a square scene, not {scene.shape}")
    if draw.rotate_deg or draw.scale != 1:
        matrix = cv2.getRotationMatrix2D((size / 2, size / 2), draw.rotate_deg, draw.scale)
        matrix[:, 2] += draw.shift
        img = cv2.warpAffine(scene, matrix, (size, size), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=background)
    else:  # a camera that only moves: whole pixels, a third of the cost of a warp
        img = _translate(scene, round(draw.shift[0]), round(draw.shift[1]), background)
    if draw.blur >= 0.3:  # 5 taps hold a sigma up to ~1.5 px; cv2 would take 11
        img = cv2.GaussianBlur(img, (5, 5), draw.blur)
    # Colour, gain and contrast are one affine colour map; contrast pivots on the mean.
    colour = _colour_matrix(draw) * np.float32(draw.gain)
    mean = float(np.mean(colour @ np.array(cv2.mean(img)[:3], np.float32)))
    affine = np.hstack([colour * np.float32(draw.contrast),
                        np.full((3, 1), mean * (1 - draw.contrast), np.float32)])
    img = cv2.transform(img, affine)
    # Uneven light falls off exponentially along one direction: the product of a column and a
    # row profile, two cheap broadcasts over rows of contiguous pixels.
    theta = math.radians(draw.gradient_deg)
    c, s = math.cos(theta), math.sin(theta)
    rate = -math.log(1 - min(draw.gradient, 0.95)) / (2 * (abs(c) + abs(s)) or 1)
    ramp = np.linspace(-1.0, 1.0, size)
    flat = img.reshape(size, size * 3)
    flat *= np.repeat(np.exp(rate * (c * ramp - abs(c))), 3).astype(np.float32)[None, :]
    flat *= np.exp(rate * (s * ramp - abs(s))).astype(np.float32)[:, None]
    y, x = rng.integers(0, size, 2)
    if draw.noise > 0:
        img = cv2.scaleAdd(_noise_field(size)[y:y + size, x:x + size], draw.noise, img)
    return cv2.add(img, (0.0, 0.0, 0.0, 0.0), dtype=cv2.CV_8U)  # rounds and saturates


def _translate(img: np.ndarray, dx: int, dy: int, background: tuple[float, float, float]
               ) -> np.ndarray:
    h, w = img.shape[:2]
    if abs(dx) >= w or abs(dy) >= h:
        return np.full_like(img, background)
    src = img[max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)]
    # One pass: filling a new frame with numpy and copying into it costs five times as much.
    return cv2.copyMakeBorder(src, max(0, dy), max(0, -dy), max(0, dx), max(0, -dx),
                              cv2.BORDER_CONSTANT, value=background)


@lru_cache(maxsize=1)
def _noise_field(size: int) -> np.ndarray:
    # Sensor noise is cut from one fixed field at a random offset: drawing 0.8 M normals per
    # frame would cost more than the rest of the camera model. The same noise in all three
    # channels: luminance noise, which is what a Bayer camera's demosaicing mostly leaves.
    field = np.random.default_rng(0x5EED).standard_normal((2 * size, 2 * size), np.float32)
    return np.repeat(field[..., None], 3, axis=2)


def _colour_matrix(draw: AugmentDraw) -> np.ndarray:
    """White balance x saturation x hue rotation about the grey axis, as one 3 x 3 matrix."""
    a = math.radians(draw.hue_deg)
    k = np.array([[0, -1, 1], [1, 0, -1], [-1, 1, 0]], np.float64)
    hue = (math.cos(a) * np.eye(3) + (1 - math.cos(a)) / 3 * np.ones((3, 3))
           + math.sin(a) / math.sqrt(3) * k)
    luma = np.array([0.299, 0.587, 0.114])
    sat = draw.saturation * np.eye(3) + (1 - draw.saturation) * np.tile(luma, (3, 1))
    return (np.diag(draw.white_balance) @ sat @ hue).astype(np.float32)
