"""POST /api/v1/inspect: upload -> decision, response time through the real app, against seed
001's reported 312 ms average.

Takt side: a real station served as `takt run` serves it (own process), its inspector
deploying a small OpenVINO CNN at start (`[inspector] model`): u8 [1, 224, 224, 3] RGB in, three
stride-2 3x3 convolutions (16, 32, 64 channels), global pooling, a linear layer and softmax over
the demo's seven labels, random weights (the figure is about time, not accuracy). The uploads
are the demo's rendered 896 x 896 board frames (sim.vision.dataset) as JPEG (quality 90),
posted as multipart by httpx over one keep-alive connection, one after another (latency), then
from 4 connections at once (throughput). Every answer is checked (200, a decision).
Baseline (same run): the same steps in-process without HTTP, actors or the store (decode the
JPEG with cv2, resize, infer on the same compiled model), and seed 001's 312 ms.
Run: .venv/bin/python bench/inspect_upload.py [--quick]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
from _support.common import (
    emit,
    login,
    machine,
    parse_args,
    read_ready,
    serve_as_takt_run,
    spawn,
    stop_child,
    summary,
)

SEED_MEAN_MS = 312.0
LABELS = ["empty_rail", "contactor", "contactor_on_rail", "screws_tight", "missing_screw",
          "misplaced", "scratch"]
SIZE = 224
SELF = str(Path(__file__).resolve())


def small_cnn(path: Path) -> Path:
    """Save the benchmark's CNN as OpenVINO IR following Takt's model convention."""
    import openvino as ov
    import openvino.opset13 as ops

    from drivers.vision.model_format import PROBABILITIES, rgb_u8_input, write_info

    rng = np.random.default_rng(1)
    x = ops.parameter([1, 3, SIZE, SIZE], ov.Type.f32, name="image")
    h: Any = x
    channels = 3
    for out in (16, 32, 64):
        w = rng.normal(0, np.sqrt(2 / (9 * channels)), (out, channels, 3, 3)).astype(np.float32)
        h = ops.relu(ops.convolution(h, ops.constant(w), [2, 2], [1, 1], [1, 1], [1, 1]))
        channels = out
    pooled = ops.reduce_mean(h, ops.constant(np.array([2, 3], np.int64)), keep_dims=False)
    head = rng.normal(0, 3.0, (channels, len(LABELS))).astype(np.float32)
    probabilities = ops.softmax(ops.matmul(pooled, ops.constant(head), False, False), 1)
    probabilities.output(0).get_tensor().set_names({PROBABILITIES})
    model = rgb_u8_input(ov.Model([probabilities.output(0)], [x], "bench_cnn"))
    write_info(model, LABELS)
    ov.save_model(model, str(path), compress_to_fp16=False)
    return path


def serve_takt(data_dir: Path, model: Path) -> None:
    from controller.boot import start_station
    from controller.config import parse_config

    config = parse_config(f'[station]\nid = "bench"\nname = "Bench"\n\n[inspector]\n'
                          f'model = "{model}"\nkeep_images = "fail"\n', "bench.toml")
    serve_as_takt_run(start_station(config, data_dir))


def frames(n: int) -> list[bytes]:
    from sim.vision.dataset import make_set

    images, _ = make_set(max(1, n // len(LABELS)), seed=7)
    out = []
    for image in images:
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, 90])
        assert ok
        out.append(buf.tobytes())
    return out


def post(client: httpx.Client, data: bytes) -> tuple[float, dict[str, Any]]:
    t0 = time.perf_counter()
    r = client.post("/api/v1/inspect", files={"file": ("frame.jpg", data, "image/jpeg")},
                    data={"part_id": "bench"})
    elapsed = (time.perf_counter() - t0) * 1000
    if r.status_code != 200 or r.json().get("decision") not in ("pass", "fail", "uncertain"):
        raise RuntimeError(f"inspect answered {r.status_code}: {r.text[:200]}")
    return elapsed, r.json()


def in_process(model: Path, uploads: list[bytes], n: int) -> list[float]:
    """Decode, resize and infer without HTTP, actors or the store: the floor of the route."""
    import openvino as ov

    compiled = ov.Core().compile_model(str(model), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        image = cv2.cvtColor(cv2.imdecode(np.frombuffer(uploads[i % len(uploads)], np.uint8),
                                          cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        request.infer({0: cv2.resize(image, (SIZE, SIZE), interpolation=cv2.INTER_AREA)[None]})
        times.append((time.perf_counter() - t0) * 1000)
    return times


def main() -> None:
    args = parse_args(__doc__, [
        ("--serve", {"action": "store_true", "help": "internal: be the station child"}),
        ("--data-dir", {"type": Path, "help": "internal"}),
        ("--model", {"type": Path, "help": "internal"}),
    ])
    if args.serve:
        serve_takt(args.data_dir, args.model)
        return
    n = 60 if args.quick else 300
    with tempfile.TemporaryDirectory(prefix="takt-bench-inspect-") as tmp:
        model = small_cnn(Path(tmp) / "bench_cnn.xml")
        uploads = frames(21 if args.quick else 70)
        server = spawn([SELF, "--serve", "--data-dir", str(Path(tmp) / "data"),
                        "--model", str(model)])
        try:
            port, password = read_ready(server, timeout_s=60)
            token = login(int(port), password)
            headers = {"Authorization": f"Bearer {token}"}
            base = f"http://127.0.0.1:{port}"
            with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
                for data in uploads[:5]:
                    post(client, data)  # warm-up
                sequential = []
                server_total = []
                server_inference = []
                decisions: dict[str, int] = {}
                for i in range(n):
                    elapsed, body = post(client, uploads[i % len(uploads)])
                    sequential.append(elapsed)
                    server_total.append(body["total_time_ms"])
                    server_inference.append(body["inference_ms"])
                    decisions[body["decision"]] = decisions.get(body["decision"], 0) + 1
            concurrent: list[float] = []
            lock = threading.Lock()

            def worker(k: int) -> None:
                with httpx.Client(base_url=base, headers=headers, timeout=30) as c:
                    for i in range(n // 4):
                        elapsed, _ = post(c, uploads[(i * 4 + k) % len(uploads)])
                        with lock:
                            concurrent.append(elapsed)

            t0 = time.perf_counter()
            threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - t0
        finally:
            stop_child(server)
        floor = in_process(model, uploads, n)

    seq = summary([t * 1000 for t in sequential])  # summary() takes microseconds
    ms = {k: (round(v / 1000, 2) if k != "n" else v) for k, v in seq.items()}
    emit({
        "bench": "inspect_upload",
        "quick": args.quick,
        "route": "POST /api/v1/inspect (multipart JPEG, bearer JWT)",
        "model": f"small CNN, u8 [1,{SIZE},{SIZE},3] -> {len(LABELS)} labels, f32 on CPU",
        "upload": {"frames": len(uploads), "size": "896x896", "jpeg_quality": 90,
                   "mean_bytes": round(statistics.mean(len(u) for u in uploads))},
        "sequential_ms": ms,
        "server_total_time_ms_median": round(statistics.median(server_total), 2),
        "server_inference_ms_median": round(statistics.median(server_inference), 2),
        "concurrent_4_connections": {
            "uploads": len(concurrent), "per_s": round(len(concurrent) / wall, 1),
            "p50_ms": round(statistics.median(concurrent), 2),
            "p99_ms": round(sorted(concurrent)[int(len(concurrent) * 0.99) - 1], 2)},
        "decisions": decisions,
        "baseline_in_process_ms": {"median": round(statistics.median(floor), 2),
                                   "mean": round(statistics.mean(floor), 2)},
        "seed_001_mean_ms": SEED_MEAN_MS,
        "mean_vs_seed": round(ms["mean"] / SEED_MEAN_MS, 3),
        "budget": "none given (issue 6); seed 001 reports 312 ms average",
        "within_budget": None,
        "machine": machine(),
    })


if __name__ == "__main__":
    sys.exit(main())
