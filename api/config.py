"""/api/v1/config and /api/v1/catalog: run-time config overrides and driver catalogs (seed 002
self-service). An override replaces a whole section of the station file, is checked with
every rule of the file, stored (it survives a restart) and applied in place."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from quart import Blueprint
from quart_schema import document_response, tag

from actors.config import ChangeConfig, ConfigChanged, GetOverrides, OverridesView, ReloadConfig
from api.http import ask_actor, body, facade, json_response
from api.problems import config_problem
from api.security import current_principal, requires
from controller import catalog
from controller.access import Role
from controller.config import ConfigError

__all__ = ["blueprint", "catalog_blueprint"]

blueprint = Blueprint("config", __name__, url_prefix="/api/v1/config")
catalog_blueprint = Blueprint("catalog", __name__, url_prefix="/api/v1/catalog")

_APPLY_TIMEOUT_S = 30.0  # stopping a device that hangs may take its whole shutdown timeout


class ConfigChange(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    set: dict[str, Any] = {}  # section -> its new value, as in the station file
    unset: list[Annotated[str, msgspec.Meta(max_length=64)]] = []
    actor: Annotated[str, msgspec.Meta(max_length=64)] | None = None  # who asks, for the log


async def _change(message: Any, command: dict[str, Any]) -> object:
    facade().runtime.ingest.command("api", {"by": current_principal().name, **command})
    try:
        result = await ask_actor("config", message, timeout=_APPLY_TIMEOUT_S)
    except ConfigError as exc:
        raise config_problem(exc) from None
    return json_response(result)


@blueprint.get("")
@tag(["config"])
@requires(Role.ENGINEER)
@document_response(OverridesView)
async def get_overrides() -> object:
    """The stored overrides, by section, and the sections that may be overridden."""
    return json_response(await ask_actor("config", GetOverrides()))


@blueprint.put("")
@tag(["config"])
@requires(Role.ENGINEER, write=True)
@body(ConfigChange)
@document_response(ConfigChanged)
async def change(data: ConfigChange) -> object:
    """Set and unset overrides in one checked step; only what changed is re-applied."""
    by = current_principal().name if data.actor is None else (
        f"{current_principal().name} ({data.actor})")
    return await _change(ChangeConfig(set=data.set, unset=data.unset, by=by),
                         {"config": {"set": sorted(data.set), "unset": data.unset}})


@blueprint.delete("")
@tag(["config"])
@requires(Role.ENGINEER, write=True)
@document_response(ConfigChanged)
async def drop() -> object:
    """Drop every override: the station runs its file again."""
    return await _change(ChangeConfig(unset_all=True, by=current_principal().name),
                         {"config": {"unset_all": True}})


@blueprint.post("/reload")
@tag(["config"])
@requires(Role.ENGINEER, write=True)
@document_response(ConfigChanged)
async def reload() -> object:
    """Re-read the stored overrides and re-apply, in place, whatever differs from what runs."""
    return await _change(ReloadConfig(by=current_principal().name), {"config": "reload"})


@catalog_blueprint.get("/plc-protocols")
@tag(["config"])
@requires(Role.OPERATOR)
async def plc_protocols() -> object:
    return json_response(catalog.plc_protocols())


@catalog_blueprint.get("/scanners")
@tag(["config"])
@requires(Role.OPERATOR)
async def scanners() -> object:
    return json_response(catalog.scanners())


@catalog_blueprint.get("/printers")
@tag(["config"])
@requires(Role.OPERATOR)
async def printers() -> object:
    return json_response(catalog.printers())
