"""Supervisor actor: starts children in order, restarts them by policy, fails upward.

Children report their exit with `ChildExited` (a tell, never an ask, so a child that
stops never waits on its supervisor). Restarts are delayed by the backoff on the
runtime clock, so virtual time drives them in tests.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import pykka

from actors.base import ChildExited, TaktActor, handles
from actors.health import HealthState
from actors.runtime import ActorUnavailable, Runtime, tell
from controller.supervision import (
    Backoff,
    IntensityWindow,
    Restart,
    RestartIntensity,
    Strategy,
    restart_set,
    should_restart,
)

__all__ = [
    "ChildInfo",
    "ChildSpec",
    "ChildStart",
    "ChildrenChanged",
    "IntensityExceeded",
    "RestartChild",
    "SetChildren",
    "Supervisor",
    "WhichChildren",
]


@dataclass(frozen=True)
class ChildStart:
    """What a child factory gets: start the actor with these and return its ref."""

    runtime: Runtime
    name: str
    parent: pykka.ActorRef[Any]
    generation: int


@dataclass(frozen=True)
class ChildSpec:
    id: str
    factory: Callable[[ChildStart], pykka.ActorRef[Any]]
    restart: Restart = Restart.PERMANENT
    shutdown_s: float = 5.0
    # What the child is built from (its config): SetChildren keeps a running child whose
    # key is unchanged and replaces one whose key differs.
    key: Any = None
    # Told to a running child that SetChildren keeps: the part of its config it takes live
    # (a camera's exposure), which the key leaves out. The kept child restarts from this spec.
    update: Any = None

    @classmethod
    def of(cls, actor: type[TaktActor], id: str, *args: Any, restart: Restart = Restart.PERMANENT,
           shutdown_s: float = 5.0, key: Any = None, update: Any = None,
           **kwargs: Any) -> ChildSpec:
        """A spec that starts `actor(runtime, id, *args, parent=..., generation=..., **kwargs)`."""

        def factory(s: ChildStart) -> pykka.ActorRef[Any]:
            return actor.start(s.runtime, s.name, *args, parent=s.parent,
                               generation=s.generation, **kwargs)

        return cls(id=id, factory=factory, restart=restart, shutdown_s=shutdown_s, key=key,
                   update=update)


class SetChildren(msgspec.Struct, frozen=True, tag=True):
    """Make the children whose id starts with `prefix` exactly `specs`, in place: children
    with an unchanged key keep running (and are told their spec's `update`), changed ones are
    replaced, missing ones stopped."""

    prefix: str
    specs: tuple[Any, ...]  # ChildSpec


class ChildrenChanged(msgspec.Struct, frozen=True, kw_only=True):
    started: list[str]
    stopped: list[str]
    kept: list[str]


class RestartChild(msgspec.Struct, frozen=True, tag=True):
    """Start a child that is waiting out its backoff now (a user asked to retry)."""

    id: str


class WhichChildren(msgspec.Struct, frozen=True, tag=True):
    pass


class ChildInfo(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    alive: bool
    generation: int
    restarts: int


class _RestartDue(msgspec.Struct, frozen=True):
    ids: tuple[str, ...]
    epoch: int


class IntensityExceeded(RuntimeError):
    """More restarts than the intensity allows: the supervisor gives up and fails upward."""


class _Child:
    __slots__ = ("attempt", "generation", "ref", "restarts", "spec", "started_s")

    def __init__(self, spec: ChildSpec) -> None:
        self.spec = spec
        self.ref: pykka.ActorRef[Any] | None = None
        self.generation = 0
        self.attempt = -1
        self.started_s = 0.0
        self.restarts = 0


class Supervisor(TaktActor):
    critical = True

    def __init__(
        self,
        runtime: Runtime,
        name: str,
        specs: Sequence[ChildSpec],
        *,
        strategy: Strategy = Strategy.ONE_FOR_ONE,
        intensity: RestartIntensity = RestartIntensity(),
        backoff: Backoff = Backoff(),
        on_escalate: Callable[[str], None] | None = None,
        rng: Callable[[], float] = random.random,
        parent: pykka.ActorRef[Any] | None = None,
        generation: int = 0,
    ) -> None:
        super().__init__(runtime, name, parent=parent, generation=generation)
        ids = [s.id for s in specs]
        if len(set(ids)) != len(ids):
            raise ValueError(f"{name}: duplicate child ids in {ids}")
        self.strategy = strategy
        self.backoff = backoff
        self.window = IntensityWindow(intensity)
        self.on_escalate = on_escalate
        self.rng = rng
        self.children: dict[str, _Child] = {s.id: _Child(s) for s in specs}
        self._epoch = 0  # bumps when all children stop, so restarts planned before do nothing

    # --- lifecycle -------------------------------------------------------------------

    def started(self) -> None:
        for child in list(self.children.values()):
            self._start(child)
        self.set_health(HealthState.UP)

    def stopping(self) -> None:
        self._stop_all()

    def failed(self, error: BaseException) -> None:
        self._stop_all()
        if self.on_escalate is not None and self.parent is None:
            self.on_escalate(f"{self.name}: {error}")

    # --- messages --------------------------------------------------------------------

    @handles(ChildExited)
    def _on_child_exited(self, msg: ChildExited) -> None:
        child = self.children.get(msg.child_id)
        if child is None or child.generation != msg.generation or child.ref is None:
            return  # a child we stopped ourselves, or an older incarnation
        abnormal = msg.error is not None
        self.runtime.directory.remove(child.spec.id, child.ref)
        child.ref = None
        if not should_restart(child.spec.restart, abnormal):
            if child.spec.restart is Restart.TEMPORARY:
                del self.children[child.spec.id]
            return
        if not self.window.record(self.clock.monotonic()):
            i = self.window.intensity
            raise IntensityExceeded(
                f"{i.max_restarts} restarts within {i.within_s}s exceeded "
                f"(last: {msg.child_id}: {msg.error or 'exited'})"
            )
        ran_for = self.clock.monotonic() - child.started_s
        child.attempt = self.backoff.next_attempt(child.attempt, ran_for)
        delay = self.backoff.delay(child.attempt, self.rng())
        order = list(self.children)
        ids = restart_set(self.strategy, order, msg.child_id)
        for later_id in reversed(ids[1:]):
            later = self.children[later_id]
            self._stop_child(later)
            self.runtime.health.set_state(later_id, HealthState.RESET)
        self.log.info("restarting %s in %.3fs (attempt %d)", ", ".join(ids), delay, child.attempt)
        self.tell_self_later(delay, _RestartDue(tuple(ids), self._epoch))

    @handles(_RestartDue)
    def _on_restart_due(self, msg: _RestartDue) -> None:
        if msg.epoch != self._epoch:
            return
        for child_id in msg.ids:
            child = self.children.get(child_id)
            if child is not None and child.ref is None:
                child.restarts += 1
                self.runtime.health.record_restart(child_id)
                self._start(child)

    @handles(SetChildren)
    def _set_children(self, msg: SetChildren) -> ChildrenChanged:
        wanted: dict[str, ChildSpec] = {spec.id: spec for spec in msg.specs}
        if any(not i.startswith(msg.prefix) for i in wanted):
            raise ValueError(f"every child id must start with {msg.prefix!r}")
        stopped, kept = [], []
        # A replaced child keeps counting generations: the ChildExited of the one stopped here
        # carries its generation and must stay stale for the new one.
        generations: dict[str, int] = {}
        for child_id, child in list(self.children.items()):
            if not child_id.startswith(msg.prefix):
                continue
            spec = wanted.get(child_id)
            if spec is not None and spec.key is not None and spec.key == child.spec.key:
                kept.append(child_id)
                child.spec = spec  # a restart later starts it from what it was told now
                if spec.update is not None and child.ref is not None:
                    try:
                        tell(self.runtime, child.ref, spec.update)
                    except ActorUnavailable:
                        pass  # it just ended; its restart starts it from the new spec
                continue
            self._stop_child(child)
            generations[child_id] = child.generation
            del self.children[child_id]
            if spec is None:
                self.runtime.health.forget(child_id)
            stopped.append(child_id)
        started = []
        for child_id, spec in wanted.items():
            if child_id not in self.children:
                child = self.children[child_id] = _Child(spec)
                child.generation = generations.get(child_id, 0)
                self._start(child)
                started.append(child_id)
        if stopped or started:
            self.log.info("children changed: started %s, stopped %s", started, stopped)
        return ChildrenChanged(started=started, stopped=stopped, kept=kept)

    @handles(RestartChild)
    def _restart_child(self, msg: RestartChild) -> bool:
        """True when the child was down and is being started now."""
        child = self.children.get(msg.id)
        if child is None:
            raise KeyError(msg.id)
        if child.ref is not None:
            return False
        child.restarts += 1
        self.runtime.health.record_restart(msg.id)
        self._start(child)
        return True

    @handles(WhichChildren)
    def _which_children(self, _: WhichChildren) -> list[ChildInfo]:
        return [
            ChildInfo(id=c.spec.id, alive=c.ref is not None and c.ref.is_alive(),
                      generation=c.generation, restarts=c.restarts)
            for c in self.children.values()
        ]

    # --- helpers ---------------------------------------------------------------------

    def _start(self, child: _Child) -> None:
        child.generation += 1
        child.started_s = self.clock.monotonic()
        ref = child.spec.factory(
            ChildStart(self.runtime, child.spec.id, self.actor_ref, child.generation)
        )
        # A child whose start fails has already told us (ChildExited with an error),
        # and that message is queued behind this one: the normal restart path handles it.
        child.ref = ref
        self.runtime.directory.set(child.spec.id, ref)

    def _stop_child(self, child: _Child) -> None:
        ref, child.ref = child.ref, None
        if ref is None:
            return
        self.runtime.directory.remove(child.spec.id, ref)
        child.generation += 1  # its ChildExited is now stale
        # Blocking here is safe: a child never asks its supervisor, it only tells.
        try:
            stopped = ref.stop(block=False).get(timeout=child.spec.shutdown_s)
        except pykka.Timeout:
            self.log.error("%s did not stop within %.1fs; abandoned",
                           child.spec.id, child.spec.shutdown_s)
            return
        if stopped:
            self.runtime.health.set_state(child.spec.id, HealthState.DOWN, stopped=True)

    def _stop_all(self) -> None:
        self._epoch += 1
        for child in reversed(list(self.children.values())):
            self._stop_child(child)
