"""The Takt vision model convention: what a model file holds so that any station can run it.

- input 0: u8 [1, H, W, 3] RGB NHWC, H and W static; scaling happens inside the model
- output "probabilities" (output 0): f32 [1, C] softmax; optional "evidence" f32 [1, C, gh, gw]
- rt_info ["takt", "labels"] (JSON list of C names), ["takt", "kind"] = "classifier",
  ["takt", "trained"] (ISO time), ["takt", "input_size"] ("H,W")
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

import openvino as ov
from openvino.preprocess import ColorFormat, PrePostProcessor

__all__ = [
    "EVIDENCE",
    "KIND",
    "PROBABILITIES",
    "read_info",
    "rgb_u8_input",
    "write_info",
]

KIND = "classifier"
PROBABILITIES = "probabilities"
EVIDENCE = "evidence"
_ROOT = "takt"


def rgb_u8_input(model: ov.Model, *, layout: str = "NCHW",
                 mean: Sequence[float] | None = None,
                 scale: Sequence[float] | None = None) -> ov.Model:
    """Put a u8 NHWC RGB input in front of a model whose input takes f32 pixels in `layout`;
    pixels become (p / 255 - mean) / scale per channel (mean 0, scale 1 unless given)."""
    ppp = PrePostProcessor(model)
    info = ppp.input(0)
    info.tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC")) \
        .set_color_format(ColorFormat.RGB)
    info.model().set_layout(ov.Layout(layout))
    steps = info.preprocess()
    steps.convert_element_type(ov.Type.f32).scale(255.0)
    if mean is not None:
        steps.mean([float(m) for m in mean])
    if scale is not None:
        steps.scale([float(s) for s in scale])
    return ppp.build()


def write_info(model: ov.Model, labels: Sequence[str], *,
               extra: dict[str, str] | None = None) -> None:
    """Record the labels and the rest of the convention's metadata in the model's rt_info."""
    shape = model.input(0).get_partial_shape()
    model.set_rt_info(json.dumps(list(labels)), [_ROOT, "labels"])
    model.set_rt_info(KIND, [_ROOT, "kind"])
    model.set_rt_info(datetime.now(UTC).isoformat(timespec="seconds"), [_ROOT, "trained"])
    if shape.rank.is_static and len(shape) == 4 and shape[1].is_static and shape[2].is_static:
        model.set_rt_info(f"{shape[1].get_length()},{shape[2].get_length()}",
                          [_ROOT, "input_size"])
    for key, value in (extra or {}).items():
        model.set_rt_info(value, [_ROOT, key])


def read_info(model: ov.Model, key: str) -> str | None:
    """One rt_info value under "takt" as text; None when the model has none."""
    if not model.has_rt_info([_ROOT, key]):
        return None
    return str(model.get_rt_info([_ROOT, key]).astype(str))
