"""The services every actor is given, and the ways to send it a message.

All project code sends through `tell`, `call` and the trio bridge so every message is
counted in flight (quiescence) and every request carries a reply callback.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pykka

from actors.bus import Bus
from actors.health import HealthRegistry
from actors.ingest import Ingest
from actors.metrics import Metrics
from actors.quiescence import InFlight
from controller.clock import Clock, RealClock
from drivers.vision.frames import FrameSlots

__all__ = [
    "ActorUnavailable",
    "AskTimeout",
    "Directory",
    "Reply",
    "Request",
    "Runtime",
    "actor_name",
    "call",
    "tell",
]

Reply = Callable[[Any, BaseException | None], None]


class ActorUnavailable(RuntimeError):
    """The actor is not running (stopped, crashed, or died before it answered)."""


class AskTimeout(TimeoutError):
    """The actor did not answer in time."""


class Request:
    """A message that wants an answer; the actor calls `reply(result, error)` exactly once."""

    __slots__ = ("payload", "reply")

    def __init__(self, payload: Any, reply: Reply) -> None:
        self.payload = payload
        self.reply = reply

    def __repr__(self) -> str:
        return f"Request({self.payload!r})"


class Directory:
    """Name -> the live ref of that actor; supervisors update it on every (re)start."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._refs: dict[str, pykka.ActorRef[Any]] = {}

    def set(self, name: str, ref: pykka.ActorRef[Any]) -> None:
        with self._lock:
            self._refs[name] = ref

    def remove(self, name: str, ref: pykka.ActorRef[Any] | None = None) -> None:
        with self._lock:
            if ref is None or self._refs.get(name) is ref:
                self._refs.pop(name, None)

    def get(self, name: str) -> pykka.ActorRef[Any]:
        """The running actor of that name; ActorUnavailable if none is running."""
        with self._lock:
            ref = self._refs.get(name)
        if ref is None or not ref.is_alive():
            raise ActorUnavailable(f"{name} is not running")
        return ref

    def names(self, prefix: str = "") -> list[str]:
        with self._lock:
            return sorted(n for n in self._refs if n.startswith(prefix))


@dataclass
class Runtime:
    clock: Clock = field(default_factory=RealClock)
    inflight: InFlight = field(default_factory=InFlight)
    bus: Bus = None  # type: ignore[assignment]  # filled in __post_init__
    health: HealthRegistry = None  # type: ignore[assignment]
    directory: Directory = field(default_factory=Directory)
    frames: FrameSlots = field(default_factory=FrameSlots)  # each camera's latest frame
    ingest: Ingest = field(init=False)
    metrics: Metrics = field(init=False)

    def __post_init__(self) -> None:
        if self.bus is None:
            self.bus = Bus(self.clock, self.inflight)
        if self.health is None:
            self.health = HealthRegistry(self.clock, self.bus)
        self.ingest = Ingest(self.bus)
        self.metrics = Metrics(self.health, self.bus)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        return self.inflight.wait_idle(timeout)


def tell(runtime: Runtime, ref: pykka.ActorRef[Any], message: Any) -> None:
    """Send without waiting; raises ActorUnavailable if the actor is not running."""
    runtime.inflight.add()
    try:
        ref.tell(message)
    except pykka.ActorDeadError:
        runtime.inflight.done()
        raise ActorUnavailable(f"{actor_name(ref)} is not running") from None


def call(runtime: Runtime, ref: pykka.ActorRef[Any], message: Any, timeout: float = 5.0) -> Any:
    """Blocking ask for plain threads (CLI, tests, pump threads); never from an actor or trio."""
    done = threading.Event()
    box: list[Any] = [None, None]

    def reply(result: Any, error: BaseException | None) -> None:
        box[0], box[1] = result, error
        done.set()

    tell(runtime, ref, Request(message, reply))
    if not done.wait(timeout):
        raise AskTimeout(f"{actor_name(ref)} did not answer {type(message).__name__} in {timeout}s")
    if box[1] is not None:
        raise box[1]
    return box[0]


def actor_name(ref: pykka.ActorRef[Any]) -> str:
    return getattr(ref, "takt_name", None) or ref.actor_class.__name__
