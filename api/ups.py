"""/api/v1/ups: the station's UPS over Network UPS Tools (seed 002 "UPS")."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta
from quart import Blueprint
from quart_schema import document_response, tag

from actors.config import GetStationConfig, StationView
from actors.monitor import GetHealth
from actors.runtime import ActorUnavailable
from actors.ups import GetUpsStatus, NotSimulated, SimulatePower, TestUps, UpsView
from api.http import ask_actor, body, facade, json_response
from api.problems import Problem
from api.security import current_principal, requires
from controller.access import Role
from controller.ups_config import UpsConfig

__all__ = ["blueprint"]

blueprint = Blueprint("ups", __name__, url_prefix="/api/v1/ups")


class Simulate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    on_battery: bool
    battery_percent: Annotated[float, Meta(ge=0, le=100)] = 100.0


class UpsEntry(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    state: str  # UP / DOWN / UNKNOWN of the actor; the power state is in status
    last_error: str | None
    status: UpsView | None  # None while the actor is DOWN


async def _config() -> UpsConfig:
    view: StationView = await ask_actor("config", GetStationConfig())
    ups = view.config.ups
    if ups is None or not ups.enabled:
        raise Problem(404, "this station has no UPS configured ([ups] in the station file)")
    return ups


@blueprint.get("/status")
@tag(["ups"])
@requires(Role.OPERATOR)
@document_response(UpsEntry)
async def status() -> object:
    """Power state (online, on_battery, low_battery, unknown), ups.status flags, battery."""
    ups = await _config()
    try:
        view = await ask_actor("ups", GetUpsStatus())
        return json_response(UpsEntry(name=ups.name, state="UP", last_error=view.last_error,
                                      status=view))
    except ActorUnavailable:
        report = await ask_actor("monitor", GetHealth(components=("ups",)))
        health = report.components.get("ups")
        return json_response(UpsEntry(
            name=ups.name, state=health.state if health else "UNKNOWN",
            last_error=health.last_error if health else None, status=None))


@blueprint.post("/test")
@tag(["ups"])
@requires(Role.ENGINEER, write=True)
async def test() -> object:
    """Poll the UPS now; 503 while upsd is unreachable."""
    await _config()
    return json_response(await ask_actor("ups", TestUps()))


@blueprint.post("/simulate")
@tag(["ups"])
@requires(Role.ENGINEER, write=True)
@body(Simulate)
@document_response(UpsView)
async def simulate(data: Simulate) -> object:
    """Switch a simulated UPS to battery (at battery_percent) or back to mains; 409 for a
    real UPS."""
    await _config()
    facade().runtime.ingest.command("api", {"by": current_principal().name, "ups": "simulate",
                                            "on_battery": data.on_battery,
                                            "battery_percent": data.battery_percent})
    try:
        view = await ask_actor("ups", SimulatePower(on_battery=data.on_battery,
                                                    battery_percent=data.battery_percent))
    except NotSimulated as exc:
        raise Problem(409, str(exc)) from None
    return json_response(view)
