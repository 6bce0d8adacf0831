"""Real, tiny OpenVINO classifiers for tests, and pictures they classify as wanted.

A colour classifier follows the Takt model convention (u8 [1, H, W, 3] RGB in, softmax
"probabilities" f32 [1, C] out, labels in rt_info) and decides by the frame's mean colour:
the class whose prototype colour is nearest wins. So a picture filled with a prototype colour
is that class with a confidence near 1, and one halfway between two prototypes is a coin toss
(an uncertain decision). It is built with the OpenVINO graph API and saved as IR, so the tests
run the same runtime as production.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np

__all__ = [
    "COLOURS",
    "SWAPPED",
    "colour_classifier",
    "encoded",
    "halfway",
    "onnx_colour_classifier",
    "solid",
]

RGB = tuple[int, int, int]

COLOURS: dict[str, RGB] = {
    "screws_tight": (40, 200, 40),  # green: good
    "scratch": (220, 40, 40),  # red: a defect
    "missing_screw": (40, 40, 220),  # blue: a defect
    "empty_rail": (200, 200, 200),  # light grey: good unless good_labels says otherwise
}

# A second model that sees the same colours differently: what was good is a defect now.
SWAPPED: dict[str, RGB] = {
    "scratch": (40, 200, 40),
    "screws_tight": (220, 40, 40),
    "missing_screw": (40, 40, 220),
    "empty_rail": (200, 200, 200),
}


def colour_classifier(path: Path, colours: Mapping[str, RGB] = COLOURS, *,
                      input_hw: tuple[int, int] = (32, 32), sharpness: float = 40.0) -> Path:
    """Save a nearest-colour classifier as OpenVINO IR at `path` (.xml); returns the path."""
    import openvino as ov
    import openvino.opset13 as ops

    from drivers.vision.model_format import PROBABILITIES, write_info

    labels = list(colours)
    protos = np.array([colours[label] for label in labels], np.float32) / 255.0  # C x 3
    # -k * |m - p|^2 = 2k m.p - k|p|^2 - k|m|^2; the last term is the same for every class,
    # so softmax of the linear part is the nearest-prototype vote.
    weights = (2 * sharpness * protos.T).astype(np.float32)  # 3 x C
    bias = (-sharpness * (protos ** 2).sum(axis=1)).astype(np.float32)[None, :]  # 1 x C
    h, w = input_hw
    image = ops.parameter([1, h, w, 3], ov.Type.u8, name="image")
    pixels = ops.convert(image, ov.Type.f32)
    mean = ops.reduce_mean(pixels, ops.constant(np.array([1, 2], np.int64)), keep_dims=False)
    unit = ops.multiply(mean, ops.constant(np.array([[1 / 255.0]], np.float32)))
    logits = ops.add(ops.matmul(unit, ops.constant(weights), False, False), ops.constant(bias))
    probabilities = ops.softmax(logits, 1)
    probabilities.output(0).get_tensor().set_names({PROBABILITIES})
    model = ov.Model([probabilities.output(0)], [image], "colour_classifier")
    write_info(model, labels)
    path.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(model, str(path), compress_to_fp16=False)
    return path


# What models trained elsewhere usually expect: ImageNet's per-channel normalisation.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def onnx_colour_classifier(path: Path, colours: Mapping[str, RGB] = COLOURS, *,
                           mean: tuple[float, float, float] = IMAGENET_MEAN,
                           std: tuple[float, float, float] = IMAGENET_STD,
                           side: int = 32, sharpness: float = 4.0) -> Path:
    """The nearest-colour classifier as a model trained elsewhere would come: ONNX (built with
    the onnx package, not OpenVINO), f32 NCHW input of normalised pixels ((p / 255 - mean) /
    std) with a dynamic batch, raw logits out, and no labels in the file. Its prototypes live
    in the normalised space, so it only sees colours right when fed the normalisation it was
    made for."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    protos = (np.array([colours[k] for k in colours], np.float32) / 255.0
              - np.array(mean, np.float32)) / np.array(std, np.float32)  # C x 3
    weights = (2 * sharpness * protos.T).astype(np.float32)
    bias = (-sharpness * (protos ** 2).sum(axis=1)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["input", "axes"], ["mean"], keepdims=0),
         helper.make_node("MatMul", ["mean", "weights"], ["scores"]),
         helper.make_node("Add", ["scores", "bias"], ["logits"])],
        "colour_classifier",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, side, side])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", len(colours)])],
        [numpy_helper.from_array(np.array([2, 3], np.int64), "axes"),
         numpy_helper.from_array(weights, "weights"), numpy_helper.from_array(bias, "bias")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)],
                              producer_name="a training tool elsewhere")
    model.ir_version = 9
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def solid(colour: RGB, hw: tuple[int, int] = (48, 64)) -> np.ndarray:
    """An H x W x 3 uint8 RGB picture of one colour."""
    image = np.empty((*hw, 3), np.uint8)
    image[...] = colour
    return image


def halfway(a: RGB, b: RGB, hw: tuple[int, int] = (48, 64)) -> np.ndarray:
    """A picture whose mean colour is halfway between a and b (left half a, right half b)."""
    image = solid(a, hw)
    image[:, hw[1] // 2:] = b
    return image


def encoded(image: np.ndarray, suffix: str = ".png") -> bytes:
    """The picture as an image file's bytes (.png, .jpg, .bmp, .tiff, .webp)."""
    ok, buf = cv2.imencode(suffix, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f"cannot encode as {suffix}")
    return buf.tobytes()
