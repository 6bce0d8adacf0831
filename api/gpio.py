"""/api/v1/gpio: the station's buttons and LEDs (seed 002 "GPIO")."""

from __future__ import annotations

import msgspec
from quart import Blueprint
from quart_schema import document_response, tag

from actors.gpio import (
    ButtonState,
    GetGpioStatus,
    GpioStatus,
    LedState,
    SetLed,
    TestButton,
    UnknownPoint,
)
from actors.runtime import ActorUnavailable
from api.http import ask_actor, body, facade, json_response
from api.problems import Problem
from api.security import current_principal, requires
from controller.access import Role

__all__ = ["blueprint"]

blueprint = Blueprint("gpio", __name__, url_prefix="/api/v1/gpio")


class LedSet(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    on: bool


def _configured() -> bool:
    # No buttons or LEDs in the config: no gpio actor was ever started or registered.
    return facade().runtime.health.state("gpio").value != "UNKNOWN"


async def _ask(message: object) -> object:
    try:
        return await ask_actor("gpio", message)
    except UnknownPoint as exc:
        raise Problem(404, str(exc)) from None
    except ActorUnavailable:
        if not _configured():
            raise Problem(404, "this station has no buttons or LEDs configured") from None
        raise


@blueprint.get("/status")
@tag(["gpio"])
@requires(Role.OPERATOR)
@document_response(GpioStatus)
async def status() -> object:
    try:
        return json_response(await ask_actor("gpio", GetGpioStatus()))
    except ActorUnavailable:
        if not _configured():
            return json_response(GpioStatus(buttons=[], leds=[]))
        raise


@blueprint.post("/buttons/<name>/test")
@tag(["gpio"])
@requires(Role.ENGINEER, write=True)
@document_response(ButtonState)
async def test_button(name: str) -> object:
    """Press and release the button as an operator would; the events are marked as a test."""
    facade().runtime.ingest.command("api", {"by": current_principal().name,
                                            "gpio": {"test_button": name}})
    return json_response(await _ask(TestButton(name=name)))


@blueprint.post("/leds/<name>/set")
@tag(["gpio"])
@requires(Role.ENGINEER, write=True)
@body(LedSet)
@document_response(LedState)
async def set_led(name: str, data: LedSet) -> object:
    facade().runtime.ingest.command("api", {"by": current_principal().name,
                                            "gpio": {"led": name, "on": data.on}})
    return json_response(await _ask(SetLed(name=name, on=data.on)))
