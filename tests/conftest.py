"""Shared fixtures: a runtime on virtual time, every actor stopped after each test, and the
demo's vision model trained once per run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pykka
import pytest

from actors.runtime import Runtime
from controller.clock import VirtualClock

if TYPE_CHECKING:
    from drivers.vision.trainer import TrainedModel


@pytest.fixture
def vclock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
def runtime(vclock: VirtualClock) -> Iterator[Runtime]:
    rt = Runtime(clock=vclock)
    yield rt
    pykka.ActorRegistry.stop_all(block=True, timeout=10)


@pytest.fixture(autouse=True)
def _stop_all_actors() -> Iterator[None]:
    yield
    pykka.ActorRegistry.stop_all(block=True, timeout=10)


@pytest.fixture(scope="session")
def demo_trained() -> TrainedModel:
    """The demo station's model, trained by the demo's recipe (sim/demo_vision.py: its frames
    per label, the default camera augmentation) on a fixed seed. Rendered at the model's input
    size: the same pixels the model's own resize would give it, at a sixteenth of the memory.
    Trained once: the trainer's tests judge it, and system tests deploy it instead of waiting
    for a station to train its own."""
    from drivers.vision.trainer import train
    from sim.demo_vision import _PER_LABEL
    from sim.vision.dataset import make_set

    images, labels = make_set(_PER_LABEL, seed=101, size=224)
    return train(images, labels)


@pytest.fixture(scope="session")
def demo_model_file(demo_trained: TrainedModel, tmp_path_factory: pytest.TempPathFactory
                    ) -> Path:
    """`demo_trained` exported as OpenVINO IR, as the demo station exports its own."""
    from drivers.vision.trainer import export

    return export(demo_trained, tmp_path_factory.mktemp("demo-model") / "demo.xml")
