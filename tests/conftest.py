"""Shared fixtures: a runtime on virtual time, and every actor stopped after each test."""

from __future__ import annotations

from collections.abc import Iterator

import pykka
import pytest

from actors.runtime import Runtime
from controller.clock import VirtualClock


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
