"""A small actor for runtime tests: echoes, fails on command, blocks until released."""

from __future__ import annotations

import threading
from typing import Any

import msgspec

from actors.base import TaktActor, handles
from actors.bus import Event


class Echo(msgspec.Struct, frozen=True):
    value: Any


class Boom(msgspec.Struct, frozen=True):
    reason: str = "boom"


class Hold(msgspec.Struct, frozen=True):
    """Block the actor until the test sets `release` (a threading.Event kept by the test)."""

    key: str
    then_fail: bool = False


class Probe(TaktActor):
    fatal = (ConnectionError,)
    gates: dict[str, threading.Event] = {}
    entered: dict[str, threading.Event] = {}
    starts: list[str] = []

    def __init__(self, runtime: Any, name: str, *, fail_start: bool = False, **kw: Any) -> None:
        super().__init__(runtime, name, **kw)
        self.fail_start = fail_start
        self.events: list[Event] = []

    def started(self) -> None:
        Probe.starts.append(self.name)
        if self.fail_start:
            raise ConnectionError(f"{self.name} cannot reach its device")
        super().started()

    @handles(Echo)
    def _echo(self, msg: Echo) -> Any:
        return msg.value

    @handles(Boom)
    def _boom(self, msg: Boom) -> None:
        raise RuntimeError(msg.reason)

    @handles(Hold)
    def _hold(self, msg: Hold) -> str:
        Probe.entered.setdefault(msg.key, threading.Event()).set()
        Probe.gates[msg.key].wait(10)
        if msg.then_fail:
            raise ConnectionError("device lost")
        return msg.key

    @handles(Event)
    def _event(self, event: Event) -> None:
        self.events.append(event)
