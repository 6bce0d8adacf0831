"""The demo's camera world: what the emulated Basler sees, and the model that recognises it.

The pylon emulator serves one image file; the virtual operator changes what lies on the
fixture by rendering the board (sim/vision/board.py) into that file, and the camera actor picks
the new file up. The station's inspector needs a model for it: on a station that has none,
one is trained on rendered frames in the background (seconds on the CPU), imported and
deployed through the inspector, as an engineer would with POST /api/v1/models.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import numpy as np

from actors.inspector_messages import DeployModel, ImportModel, ListVisionModels
from actors.runtime import ActorUnavailable, Runtime, call
from controller.camera_config import CameraSource
from controller.config import StationConfig
from sim.vision.board import Scene, render, write_frame

__all__ = ["DemoModel", "SceneWriter", "prepare_scene"]

log = logging.getLogger(__name__)

_PER_LABEL = 50  # rendered frames per label for the demo's model (see docs/vision-models.md)
_AFTER_START_S = 3.0  # rendering and fitting hold a core and the GIL: not during the start
MODEL_NAME = "demo-contactor"


def scene_path(config: StationConfig, data_dir: Path) -> Path | None:
    """The image file the demo's emulated camera serves, if the station has one."""
    for camera in config.cameras:
        if (camera.enabled and camera.source == CameraSource.PYLON and camera.emulation
                and camera.image_path and Path(camera.image_path).suffix):
            path = Path(camera.image_path)
            return path if path.is_absolute() else data_dir / path
    return None


class SceneWriter:
    """Puts the board in a state in front of the camera (each call a new render: the part
    never lies exactly as before)."""

    def __init__(self, path: Path, seed: int | None = None) -> None:
        self.path = path
        self.rng = np.random.default_rng(seed)
        self.state = "empty_rail"
        self.serial = "CT-000000"
        self._lock = threading.Lock()

    def show(self, state: str, serial: str | None = None) -> None:
        with self._lock:
            self.state, self.serial = state, serial or self.serial
            write_frame(self.path, render(Scene(state=state, serial=self.serial), rng=self.rng))

    def stop(self) -> None:
        """Nothing runs; the simulators list stops everything it holds."""


def prepare_scene(config: StationConfig, data_dir: Path) -> SceneWriter | None:
    """The empty fixture in front of the emulated camera before the camera opens."""
    path = scene_path(config, data_dir)
    if path is None or config.sim is None or not config.sim.camera:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = SceneWriter(path, seed=int(time.time()))
    writer.show("empty_rail")
    return writer


class DemoModel:
    """Trains, imports and deploys the demo's model when the station's inspector has none."""

    def __init__(self, runtime: Runtime, data_dir: Path) -> None:
        self.runtime = runtime
        self.data_dir = data_dir
        self.deployed = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> DemoModel:
        self._thread = threading.Thread(target=self._run, name="demo-model", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30.0)

    def _ask(self, message: object) -> object:
        return call(self.runtime, self.runtime.directory.get("inspector"), message, timeout=60)

    def _run(self) -> None:
        if self._stop.wait(_AFTER_START_S):
            return
        try:
            models = call(self.runtime, self.runtime.directory.get("query:0"),
                          ListVisionModels(), timeout=60)
            if any(m.active for m in models):  # type: ignore[attr-defined]
                self.deployed.set()
                return
            path = self._train()
            if path is None:
                return
            row = self._ask(ImportModel(path=str(path), name=MODEL_NAME))
            self._ask(DeployModel(id=row.id))  # type: ignore[attr-defined]
            self.deployed.set()
            log.info("demo model trained and deployed: %s", path.name)
        except ActorUnavailable as exc:
            log.warning("demo model not deployed: %s", exc)
        except Exception:  # the demo goes on without it; say why
            log.exception("training the demo model failed")

    def _train(self) -> Path | None:
        from drivers.vision.trainer import export, train
        from sim.vision.dataset import iter_set

        images, labels = [], []
        # Rendered on every core: the first start's training is what the demo waits for.
        for image, label in iter_set(_PER_LABEL, seed=int(time.time()),
                                     workers=os.cpu_count() or 1):
            if self._stop.is_set():
                return None
            images.append(image)
            labels.append(label)
        trained = train(images, labels)
        log.info("demo model fitted in %.1f s (leave-one-out accuracy %.3f)", trained.fit_s,
                 trained.loo_accuracy)
        return export(trained, self.data_dir / "models" / f"{MODEL_NAME}-{int(time.time())}.xml")
