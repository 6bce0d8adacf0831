"""Labelled sets of rendered board frames, for training and testing the station's model."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import cv2
import numpy as np

from sim.vision.board import LABELS, SIZE, Scene, render
from sim.vision.camera import DEFAULT_AUGMENT, Augment

__all__ = ["iter_set", "make_set", "random_serial"]

# The printed texts vary across a set so that a model learns the assembly, not one label.
_RATINGS = ("9A", "12A", "18A", "25A", "32A", "40A")
_VOLTAGES = ("24V DC", "24V AC", "110V AC", "230V AC")


def random_serial(rng: np.random.Generator) -> str:
    """A contactor serial as the demo's scan step expects it: CT- and six digits."""
    return f"CT-{int(rng.integers(0, 1_000_000)):06d}"


def iter_set(n_per_label: int, seed: int, labels: Sequence[str] = LABELS,
             augment: Augment | None = DEFAULT_AUGMENT, size: int | None = None
             ) -> Iterator[tuple[np.ndarray, str]]:
    """(frame, label) pairs, labels interleaved; 896 x 896 frames, or resized with INTER_AREA
    to size x size, exactly as a model resizes them."""
    if n_per_label < 1:
        raise ValueError("n_per_label must be at least 1")
    unknown = [label for label in labels if label not in LABELS]
    if unknown:
        raise ValueError(f"unknown labels {unknown}; known: {', '.join(LABELS)}")
    rng = np.random.default_rng(seed)
    for _ in range(n_per_label):
        for label in labels:
            scene = Scene(label, serial=random_serial(rng),
                          rating=str(rng.choice(_RATINGS)), voltage=str(rng.choice(_VOLTAGES)))
            image = render(scene, rng, augment)
            if size is not None and size != SIZE:
                image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
            yield image, label


def make_set(n_per_label: int, seed: int, labels: Sequence[str] = LABELS,
             augment: Augment | None = DEFAULT_AUGMENT, size: int | None = None
             ) -> tuple[np.ndarray, list[str]]:
    """n_per_label frames of every label as one [N, H, W, 3] uint8 array and their labels.
    At full size a frame is 2.4 MB: pass `size` for large sets."""
    pairs = list(iter_set(n_per_label, seed, labels, augment, size))
    return np.stack([image for image, _ in pairs]), [label for _, label in pairs]
