"""GPIO actor: the station's buttons and LEDs, on PLC signals or simulated.

A button on a PLC input follows that signal's events; an LED on a PLC output is written
through the PLC actor. Points with no PLC are simulated, so a station without IO (or
the demo) still has buttons to press and LEDs to watch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from actors.base import TaktActor, handles
from actors.bus import Event
from actors.plc import WriteSignal
from actors.runtime import ActorUnavailable, Request, Runtime, tell
from controller.config import GpioConfig, GpioPoint

__all__ = [
    "ButtonState",
    "GetGpioStatus",
    "GpioActor",
    "GpioStatus",
    "LedState",
    "SetLed",
    "TestButton",
    "UnknownPoint",
]

Reply = Callable[[Any, BaseException | None], None]


class ButtonState(msgspec.Struct, kw_only=True):
    name: str
    description: str
    backend: str  # "plc:<name>.<signal>" or "sim"
    pressed: bool | None
    presses: int
    last_change_us: int | None


class LedState(msgspec.Struct, kw_only=True):
    name: str
    description: str
    backend: str
    on: bool | None
    last_change_us: int | None


class GpioStatus(msgspec.Struct, frozen=True, kw_only=True):
    buttons: list[ButtonState]
    leds: list[LedState]


class GetGpioStatus(msgspec.Struct, frozen=True, tag=True):
    pass


class TestButton(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Press and release a button as if an operator did (marked as a test)."""

    name: str


class SetLed(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    name: str
    on: bool


class UnknownPoint(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


class _LedWritten(msgspec.Struct, frozen=True):
    name: str
    on: bool
    error: BaseException | None
    reply: Reply


def _backend(point: GpioPoint) -> str:
    return "sim" if point.plc is None else f"plc:{point.plc}.{point.signal}"


class GpioActor(TaktActor):
    def __init__(self, runtime: Runtime, name: str, config: GpioConfig, **kw: Any) -> None:
        super().__init__(runtime, name, **kw)
        self.config = config
        self.buttons = {p.name: ButtonState(name=p.name, description=p.description,
                                            backend=_backend(p), pressed=None if p.plc else False,
                                            presses=0, last_change_us=None)
                        for p in config.buttons}
        self.leds = {p.name: LedState(name=p.name, description=p.description,
                                      backend=_backend(p), on=None if p.plc else False,
                                      last_change_us=None)
                     for p in config.leds}
        self.points = {p.name: p for p in (*config.buttons, *config.leds)}
        # (plc, signal) -> the button or LED that follows it
        self.by_signal: dict[tuple[str, str], ButtonState | LedState] = {}
        for p in (*config.buttons, *config.leds):
            if p.plc is not None and p.signal is not None:
                state = self.buttons.get(p.name) or self.leds[p.name]
                self.by_signal[(p.plc, p.signal)] = state
        self.subscription: Any = None

    def started(self) -> None:
        plcs = sorted({plc for plc, _ in self.by_signal})
        if plcs:
            self.subscription = self.bus.subscribe_actor(
                [f"device.plc.{plc}.signal" for plc in plcs], self.actor_ref, name=self.name)
            # Catch up with the levels published before this actor started.
            _, events = self.bus.snapshot([f"device.plc.{plc}.signal" for plc in plcs])
            for event in events:
                self._on_event(event)
        super().started()

    def stopping(self) -> None:
        self._unsubscribe()

    def failed(self, error: BaseException) -> None:
        self._unsubscribe()

    def _unsubscribe(self) -> None:
        sub, self.subscription = self.subscription, None
        if sub is not None:
            self.bus.unsubscribe(sub)

    @handles(Event)
    def _on_event(self, event: Event) -> None:
        plc = event.topic.split(".")[2]
        state = self.by_signal.get((plc, event.data["signal"]))
        if state is None:
            return
        value = bool(event.data["value"])
        if isinstance(state, ButtonState):
            self._button(state, value, test=False)
        else:
            self._led(state, value)

    @handles(GetGpioStatus)
    def _status(self, _: GetGpioStatus) -> GpioStatus:
        return GpioStatus(buttons=list(self.buttons.values()), leds=list(self.leds.values()))

    @handles(TestButton)
    def _test(self, msg: TestButton) -> ButtonState:
        state = self.buttons.get(msg.name)
        if state is None:
            raise UnknownPoint(f"no button named {msg.name!r}")
        # A test press is an input like a real one, so a recording replays it.
        self.runtime.ingest.input("gpio", {"button": msg.name, "pressed": True, "test": True})
        self._button(state, True, test=True)
        self.runtime.ingest.input("gpio", {"button": msg.name, "pressed": False, "test": True})
        self._button(state, False, test=True)
        return state

    @handles(SetLed, deferred=True)
    def _set_led(self, msg: SetLed, reply: Reply) -> None:
        state = self.leds.get(msg.name)
        if state is None:
            raise UnknownPoint(f"no LED named {msg.name!r}")
        point = self.points[msg.name]
        if point.plc is None or point.signal is None:
            self._led(state, msg.on)
            reply(state, None)
            return
        ref = self.runtime.directory.get(f"plc:{point.plc}")  # DOWN -> ActorUnavailable
        me = self.actor_ref

        def written(_: Any, error: BaseException | None) -> None:
            try:
                tell(self.runtime, me, _LedWritten(msg.name, msg.on, error, reply))
            except ActorUnavailable as exc:
                reply(None, exc)

        # Asked with a callback, never waited on: an actor must not block on another.
        tell(self.runtime, ref, Request(WriteSignal(signal=point.signal, value=msg.on), written))

    @handles(_LedWritten)
    def _led_written(self, msg: _LedWritten) -> None:
        state = self.leds[msg.name]
        if msg.error is None:
            self._led(state, msg.on)
        msg.reply(None if msg.error else state, msg.error)

    def _button(self, state: ButtonState, pressed: bool, *, test: bool) -> None:
        if state.pressed == pressed:
            return
        if pressed and state.pressed is False:
            state.presses += 1
        state.pressed = pressed
        state.last_change_us = self.clock.now_us()
        self.publish("device.gpio.button",
                     {"button": state.name, "pressed": pressed, "test": test})

    def _led(self, state: LedState, on: bool) -> None:
        if state.on == on:
            return
        state.on = on
        state.last_change_us = self.clock.now_us()
        self.publish("device.gpio.led", {"led": state.name, "on": on})
