"""Rendered camera frames of the demo station's fixture board, and labelled sets of them."""

from sim.vision.board import LABELS, Scene, contactor_box, render, write_frame
from sim.vision.camera import DEFAULT_AUGMENT, Augment, AugmentDraw
from sim.vision.dataset import iter_set, make_set, random_serial

__all__ = [
    "DEFAULT_AUGMENT",
    "LABELS",
    "Augment",
    "AugmentDraw",
    "Scene",
    "contactor_box",
    "iter_set",
    "make_set",
    "random_serial",
    "render",
    "write_frame",
]
