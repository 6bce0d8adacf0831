"""Labelled sets of rendered board frames, for training and testing the station's model."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import combinations

import cv2
import numpy as np

from sim.vision.board import LABELS, SIZE, TERMINALS, Scene, render
from sim.vision.camera import DEFAULT_AUGMENT, Augment

__all__ = ["iter_set", "make_set", "random_serial"]

# The printed texts vary across a set so that a model learns the assembly, not one label.
_RATINGS = ("9A", "12A", "18A", "25A", "32A", "40A")
_VOLTAGES = ("24V DC", "24V AC", "110V AC", "230V AC")
# Every way one or two screws can be missing. A set deals them out in turns rather than
# leaving them to chance: with a few dozen frames per label, chance may leave out the cases
# that are hardest to tell apart, such as both screws of one terminal block missing (one block
# then looks just like the open terminals of a contactor before its screws are fitted).
_MISSING: tuple[tuple[int, ...], ...] = tuple(
    c for k in (1, 2) for c in combinations(range(len(TERMINALS)), k))


def random_serial(rng: np.random.Generator) -> str:
    """A contactor serial as the demo's scan step expects it: CT- and six digits."""
    return f"CT-{int(rng.integers(0, 1_000_000)):06d}"


def iter_set(n_per_label: int, seed: int, labels: Sequence[str] = LABELS,
             augment: Augment | None = DEFAULT_AUGMENT, size: int | None = None, *,
             workers: int = 1) -> Iterator[tuple[np.ndarray, str]]:
    """(frame, label) pairs, labels interleaved; 896 x 896 frames, or resized with INTER_AREA
    to size x size, exactly as a model resizes them. Missing screws take every combination in
    turn; everything else is drawn from the seed.

    `workers` threads render ahead (OpenCV and numpy let go of the GIL: two render nearly twice
    as fast as one). The frames are the same for any number of workers: each frame draws its
    details from a generator of its own, spawned in order from the seed's."""
    if n_per_label < 1:
        raise ValueError("n_per_label must be at least 1")
    if workers < 1:
        raise ValueError("workers must be at least 1")
    unknown = [label for label in labels if label not in LABELS]
    if unknown:
        raise ValueError(f"unknown labels {unknown}; known: {', '.join(LABELS)}")
    jobs = _jobs(n_per_label, np.random.default_rng(seed), labels)
    if workers == 1:
        for scene, rng in jobs:
            yield _frame(scene, rng, augment, size), scene.state
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="render") as pool:
        ahead: deque[tuple[Future[np.ndarray], str]] = deque()
        for scene, rng in jobs:
            ahead.append((pool.submit(_frame, scene, rng, augment, size), scene.state))
            if len(ahead) > 2 * workers:  # a few frames ahead, not the whole set in memory
                future, label = ahead.popleft()
                yield future.result(), label
        while ahead:
            future, label = ahead.popleft()
            yield future.result(), label


def make_set(n_per_label: int, seed: int, labels: Sequence[str] = LABELS,
             augment: Augment | None = DEFAULT_AUGMENT, size: int | None = None, *,
             workers: int | None = None) -> tuple[np.ndarray, list[str]]:
    """n_per_label frames of every label as one [N, H, W, 3] uint8 array and their labels, the
    same frames as `iter_set` gives, rendered by `workers` threads (default: one per CPU).
    At full size a frame is 2.4 MB: pass `size` for large sets."""
    side = SIZE if size is None else size
    images = np.empty((max(n_per_label, 0) * len(labels), side, side, 3), np.uint8)
    names: list[str] = []
    pairs = iter_set(n_per_label, seed, labels, augment, size,
                     workers=(os.cpu_count() or 1) if workers is None else workers)
    for i, (image, label) in enumerate(pairs):
        images[i] = image
        names.append(label)
    return images, names


def _jobs(n_per_label: int, rng: np.random.Generator, labels: Sequence[str]
          ) -> Iterator[tuple[Scene, np.random.Generator]]:
    """The scenes of a set, in order, each with the generator its frame draws from."""
    missing: list[tuple[int, ...]] = []  # the rest of this turn's cases, drawn in random order
    for _ in range(n_per_label):
        for label in labels:
            if label == "missing_screw" and not missing:
                missing = [_MISSING[i] for i in rng.permutation(len(_MISSING))]
            scene = Scene(label, serial=random_serial(rng),
                          rating=str(rng.choice(_RATINGS)), voltage=str(rng.choice(_VOLTAGES)),
                          missing=missing.pop() if label == "missing_screw" else None)
            yield scene, rng.spawn(1)[0]


def _frame(scene: Scene, rng: np.random.Generator, augment: Augment | None,
           size: int | None) -> np.ndarray:
    image = render(scene, rng, augment)
    if size is not None and size != SIZE:
        image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    return image
