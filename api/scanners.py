"""/api/v1/scanners: the station's code readers (seed 002 "Scanners"), addressed by index.

A PUT replaces the list (at most 10), is checked like the station file, stored as an
override and applied in place: only the readers whose config changed reconnect.
"""

from __future__ import annotations

from typing import Any

import msgspec
from quart import Blueprint
from quart_schema import document_response, tag

from actors.config import ConfigApplied, GetStationConfig, ReplaceSection, StationView
from actors.monitor import GetHealth
from actors.runtime import ActorUnavailable
from actors.scanner import GetScannerStatus, ScannerStatus, TestScanner, TriggerScan
from actors.supervisor import RestartChild
from api.http import ask_actor, body, facade, json_response
from api.problems import Problem, config_problem
from api.security import current_principal, requires
from controller.access import Role
from controller.config import ConfigError, ScannerConfig

__all__ = ["blueprint"]

blueprint = Blueprint("scanners", __name__, url_prefix="/api/v1/scanners")

_APPLY_TIMEOUT_S = 20.0


class ScannerEntry(msgspec.Struct, frozen=True, kw_only=True):
    index: int
    config: ScannerConfig
    status: ScannerStatus | None  # None while the reader is DOWN or disabled
    state: str
    last_error: str | None


async def _scanners() -> tuple[ScannerConfig, ...]:
    view: StationView = await ask_actor("config", GetStationConfig())
    return view.config.scanners


async def _at(index: int) -> ScannerConfig:
    scanners = await _scanners()
    if not 0 <= index < len(scanners):
        raise Problem(404, f"no scanner at index {index} (the station has {len(scanners)})")
    return scanners[index]


async def _entry(index: int, c: ScannerConfig) -> ScannerEntry:
    if c.enabled:
        try:
            status = await ask_actor(f"scanner:{c.name}", GetScannerStatus())
            return ScannerEntry(index=index, config=c, status=status, state=status.state,
                                last_error=status.last_error)
        except ActorUnavailable:
            pass
    report = await ask_actor("monitor", GetHealth(components=(f"scanner:{c.name}",)))
    health = report.components.get(f"scanner:{c.name}")
    state = "DISABLED" if not c.enabled else (health.state if health else "UNKNOWN")
    return ScannerEntry(index=index, config=c, status=None, state=state,
                        last_error=health.last_error if health else None)


@blueprint.get("")
@tag(["scanners"])
@requires(Role.OPERATOR)
@document_response(list[ScannerEntry])
async def list_scanners() -> object:
    return json_response([await _entry(i, c) for i, c in enumerate(await _scanners())])


@blueprint.put("")
@tag(["scanners"])
@requires(Role.ENGINEER, write=True)
@body(list[ScannerConfig], raw=True)
@document_response(ConfigApplied)
async def replace_scanners(data: Any) -> object:
    """Replace the scanner list (at most 10; the `[[scanners]]` tables as JSON)."""
    by = current_principal().name
    facade().runtime.ingest.command("api", {"by": by, "replace": "scanners", "value": data})
    try:
        applied = await ask_actor("config", ReplaceSection(section="scanners", value=data, by=by),
                                  timeout=_APPLY_TIMEOUT_S)
    except ConfigError as exc:
        raise config_problem(exc, {"scanners": ""}) from None
    return json_response(applied)


@blueprint.get("/<int:index>/status")
@tag(["scanners"])
@requires(Role.OPERATOR)
@document_response(ScannerEntry)
async def scanner_status(index: int) -> object:
    """Connection, role and read counters of one reader."""
    return json_response(await _entry(index, await _at(index)))


@blueprint.post("/<int:index>/test")
@tag(["scanners"])
@requires(Role.ENGINEER, write=True)
async def test_scanner(index: int) -> object:
    """Ask the reader (DMCC readers answer their device type); a DOWN one reconnects now."""
    c = await _at(index)
    if not c.enabled:
        raise Problem(409, f"scanner {c.name} is disabled")
    try:
        return json_response({"scanner": c.name, "state": "UP",
                              **await ask_actor(f"scanner:{c.name}", TestScanner())})
    except ActorUnavailable:
        requested = await ask_actor("devices", RestartChild(f"scanner:{c.name}"))
        entry = await _entry(index, c)
        return json_response({"scanner": c.name, "state": entry.state, "ok": False,
                              "reconnect_requested": bool(requested),
                              "last_error": entry.last_error})


@blueprint.post("/<int:index>/trigger")
@tag(["scanners"])
@requires(Role.OPERATOR, write=True)
async def trigger(index: int) -> object:
    """Trigger one read of a triggered reader; the code arrives as an event."""
    c = await _at(index)
    facade().runtime.ingest.command("api", {"by": current_principal().name, "trigger": c.name})
    try:
        await ask_actor(f"scanner:{c.name}", TriggerScan())
    except ValueError as exc:
        raise Problem(409, str(exc)) from None
    return json_response({"scanner": c.name, "triggered": True}, status=202)
