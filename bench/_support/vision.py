"""Helpers of the vision benchmark: rendered frames, a model trained on the spot, the bare
pypylon grab -> predict loop (the baseline), inference throughput and OCR latency.

- `render_frames(folder, n, seed)`: n rendered board frames (896 x 896), written as PNG for
  the pylon emulator to serve;
- `train_model(path, per_label, seed)`: a classifier fitted with `drivers.vision.trainer` on
  `sim.vision.dataset.make_set`, exported as IR;
- `bare_pylon(...)`: grab with pypylon directly (LatestImageOnly), copy, `VisionModel.predict`
  on the grabbing thread; latency from the grab to the prediction;
- `sync_throughput`, `async_throughput`, `resize_cost`: `VisionModel.predict` and `submit`;
- `ocr_latency(frame, iterations)`: `OcrEngine.load` then `read` on one frame;
- `ms(values)`: the percentiles of `_support.common.summary` for values in milliseconds.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from _support.common import summary
from drivers.vision.classifier import VisionModel, fit_frame
from sim.vision.board import LABELS, SIZE, Scene, render, write_frame

__all__ = [
    "EMULATED_SERIAL",
    "async_throughput",
    "bare_pylon",
    "ms",
    "now_us",
    "ocr_latency",
    "render_frames",
    "resize_cost",
    "sync_throughput",
    "train_model",
]

EMULATED_SERIAL = "0815-0000"  # the emulated camera the camera actor opens with no serial set


def now_us() -> int:
    """The station's RealClock reading (wall time), so stamps compare with `Frame.at_us`."""
    return time.time_ns() // 1000


def ms(values: Sequence[float]) -> dict[str, float | int]:
    """p50/p90/p99/p99.9/max/mean of values in milliseconds, to the hundredth."""
    return summary(values, 2)


def render_frames(folder: Path, n: int, seed: int) -> list[np.ndarray]:
    """n frames of the fixture board, labels in turn (defect details from the seed), written
    to folder as PNG; the frames."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    frames = [render(Scene(state=LABELS[i % len(LABELS)]), rng) for i in range(n)]
    for i, frame in enumerate(frames):
        write_frame(folder / f"frame_{i:02d}.png", frame)
    return frames


def train_model(path: Path, per_label: int, seed: int) -> dict[str, Any]:
    """Fit the station's classifier on a small rendered set and export it to path (IR)."""
    from drivers.vision.trainer import export, train
    from sim.vision.dataset import make_set

    t0 = time.perf_counter()
    images, labels = make_set(per_label, seed)
    rendered_s = time.perf_counter() - t0
    trained = train(images, labels)
    export(trained, path)
    return {"frames": len(labels), "per_label": per_label, "render_s": round(rendered_s, 2),
            "fit_s": round(trained.fit_s, 2), "loo_accuracy": round(trained.loo_accuracy, 3),
            "input_size": trained.backbone.input_size}


# --- the baseline: pypylon and predict, nothing else -----------------------------------------


def _open_emulated(folder: Path, fps: float) -> Any:
    from pypylon import pylon

    os.environ.setdefault("PYLON_CAMEMU", "1")
    factory = pylon.TlFactory.GetInstance()
    info = next((d for d in factory.EnumerateDevices()
                 if d.GetDeviceClass() == "BaslerCamEmu"
                 and d.GetSerialNumber() == EMULATED_SERIAL), None)
    if info is None:
        raise RuntimeError(f"the pylon emulator offers no camera {EMULATED_SERIAL}")
    cam = pylon.InstantCamera(factory.CreateDevice(info))
    cam.Open()
    nodes = cam.GetNodeMap()
    # The emulator serves files only with its test images off and file mode on, in this order.
    nodes.GetNode("TestImageSelector").SetValue("Off")
    nodes.GetNode("ImageFileMode").SetValue("On")
    nodes.GetNode("ImageFilename").SetValue(str(folder))
    nodes.GetNode("Width").SetValue(SIZE)
    nodes.GetNode("Height").SetValue(SIZE)
    nodes.GetNode("PixelFormat").SetValue("RGB8Packed")
    nodes.GetNode("AcquisitionFrameRateEnable").SetValue(True)
    nodes.GetNode("AcquisitionFrameRate").SetValue(fps)
    return cam


def bare_pylon(folder: Path, model: VisionModel, *, fps: float, warm_s: float,
               seconds: float) -> dict[str, Any]:
    """Grab the emulated camera (LatestImageOnly) at fps, copy each frame out of pylon's buffer
    (or convert it, were it not RGB8), predict it, all on this thread, for warm_s + seconds.

    Latencies over the last `seconds`: `grab_to_predicted` from RetrieveResult's return and
    `copied_to_predicted` from the copied frame (where the camera actor stamps `at_us`).
    """
    from pypylon import pylon

    cam = _open_emulated(folder, fps)
    converter = pylon.ImageFormatConverter()
    converter.OutputPixelFormat = pylon.PixelType_RGB8packed
    from_grab: list[float] = []
    from_copy: list[float] = []
    copy_ms: list[float] = []
    grabbed = skipped = failed = 0
    cam.StartGrabbing(pylon.GrabStrategy_LatestImageOnly)
    try:
        start = now_us()
        measure_from = start + int(warm_s * 1e6)
        end = measure_from + int(seconds * 1e6)
        while now_us() < end:
            result = cam.RetrieveResult(1000, pylon.TimeoutHandling_Return)
            if result is None or not result.IsValid():
                continue
            t_grab = now_us()
            try:
                if not result.GrabSucceeded():
                    failed += 1
                    continue
                if result.GetPixelType() == pylon.PixelType_RGB8packed:
                    image = np.array(result.GetArray())  # a copy: pylon reuses its buffer
                else:
                    image = np.array(converter.Convert(result).GetArray())
                lost = result.GetNumberOfSkippedImages()
            finally:
                result.Release()
            t_copy = now_us()
            model.predict(image)
            t_done = now_us()
            if t_grab >= measure_from:
                grabbed += 1
                skipped += lost
                from_grab.append((t_done - t_grab) / 1000)
                from_copy.append((t_done - t_copy) / 1000)
                copy_ms.append((t_copy - t_grab) / 1000)
    finally:
        cam.StopGrabbing()
        cam.Close()
        cam.DestroyDevice()
    return {"seconds": seconds, "frames_grabbed": grabbed, "predictions": len(from_grab),
            "grab_to_predicted_ms": from_grab, "copied_to_predicted_ms": from_copy,
            "copy_ms": copy_ms, "skipped_by_pylon": skipped, "failed_grabs": failed}


# --- inference throughput ----------------------------------------------------------------------


def resize_cost(frames: Sequence[np.ndarray], hw: tuple[int, int], n: int) -> dict[str, Any]:
    """`fit_frame` (896 x 896 -> the model's input, INTER_AREA) alone, the part of predict
    and submit that runs on the caller's thread before inference."""
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        fit_frame(frames[i % len(frames)], hw)
        times.append((time.perf_counter() - t0) * 1000)
    return ms(times)


def sync_throughput(model: VisionModel, frames: Sequence[np.ndarray], seconds: float
                    ) -> dict[str, Any]:
    """`predict` back to back from one thread: predictions/s and each call's duration."""
    for frame in frames[:3]:
        model.predict(frame)
    times = []
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        t = time.perf_counter()
        model.predict(frames[len(times) % len(frames)])
        times.append((time.perf_counter() - t) * 1000)
    elapsed = time.perf_counter() - t0
    return {"predictions": len(times), "per_s": round(len(times) / elapsed, 1),
            "predict_ms": ms(times)}


def async_throughput(path: Path, frames: Sequence[np.ndarray], requests: int, seconds: float
                     ) -> dict[str, Any]:
    """`submit` on a model compiled with `requests` infer requests, kept full from one
    thread: a frame is submitted whenever fewer than `requests` are in flight. Refusals
    (the queue not ready yet although a result came back) are counted; each cost a resize."""
    model = VisionModel.load(path, requests=requests)
    cond = threading.Condition()
    state = {"accepted": 0, "done": 0, "failed": 0}

    def done(scores: Any, error: BaseException | None) -> None:
        with cond:
            state["done" if error is None else "failed"] += 1
            cond.notify()

    def room() -> bool:
        return state["accepted"] - state["done"] - state["failed"] < requests

    try:
        for frame in frames[:3]:
            model.predict(frame)
        refused = 0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            with cond:
                cond.wait_for(room, 1.0)
            if model.submit(frames[state["accepted"] % len(frames)], done):
                state["accepted"] += 1
            else:
                refused += 1
                time.sleep(0.0002)  # the request is handed back just after its callback
        model.wait_all()
        elapsed = time.perf_counter() - t0
        stats = model.statistics()
    finally:
        # Closing right after the last result aborts the process now and then ("terminate
        # called ... Resource deadlock avoided" on an OpenVINO thread, openvino 2026.4.1):
        # the queue must not be destroyed while its callback thread is still winding down.
        time.sleep(0.2)
        model.close()
    return {"requests": requests, "completed": state["done"], "failed": state["failed"],
            "per_s": round(state["done"] / elapsed, 1), "refused_submits": refused,
            "model_statistics": {"submitted": stats.submitted, "dropped": stats.dropped,
                                 "completed": stats.completed, "failed": stats.failed}}


def ocr_latency(frame: np.ndarray, iterations: int) -> dict[str, Any]:
    """Load the PP-OCRv5 engine, then read every text line of frame `iterations` times."""
    from drivers.vision.ocr import OcrEngine

    engine = OcrEngine.load()
    try:
        engine.read(frame)  # the first read on a new input shape prepares kernels
        times = []
        lines: list[Any] = []
        for _ in range(iterations):
            t0 = time.perf_counter()
            lines = engine.read(frame)
            times.append((time.perf_counter() - t0) * 1000)
    finally:
        engine.close()
    return {"load_ms": round(engine.load_ms, 1), "iterations": iterations,
            "frame": f"{frame.shape[1]}x{frame.shape[0]}", "read_ms": ms(times),
            "lines_read": [line.text for line in lines]}
