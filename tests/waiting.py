"""Waiting for something that happens on another thread or across a real socket."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest

__all__ = ["wait_for"]

T = TypeVar("T")


def wait_for(condition: Callable[[], T], timeout_s: float = 10.0, *, poll_s: float = 0.005
             ) -> T:
    """Poll until condition() is truthy and return it; the timeout only bounds a broken run,
    so it is generous (a loaded machine must not fail a working test)."""
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"condition not reached within {timeout_s} s")
        time.sleep(poll_s)
    return value
