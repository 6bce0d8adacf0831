"""/api/v1/plcs and /api/v1/plc/bindings: the station's PLCs, their signals and config.

A PUT of PLCs or bindings is checked with every rule of the config file, stored as an
override and applied in place: only the PLCs whose config changed reconnect.
"""

from __future__ import annotations

from typing import Any

import msgspec
from quart import Blueprint
from quart_schema import document_response, tag

from actors.config import ConfigApplied, GetStationConfig, ReplaceSection, StationView
from actors.monitor import GetHealth
from actors.plc import (
    Browse,
    CompleteHandshake,
    LinkTest,
    NotWritable,
    PlcInfo,
    ReadSignals,
    StartHandshake,
    TestLink,
    UnknownSignal,
    WriteSignal,
)
from actors.plc_links import TagInfo
from actors.runtime import ActorUnavailable
from actors.supervisor import RestartChild
from api.http import ask_actor, body, facade, json_response
from api.problems import FieldError, Problem, config_problem
from api.security import current_principal, requires
from controller.access import Role
from controller.config import ConfigError, PlcConfig, TagBinding
from controller.handshake import HandshakeBusy
from drivers.errors import FrameError

__all__ = ["bindings_blueprint", "blueprint"]

blueprint = Blueprint("plcs", __name__, url_prefix="/api/v1/plcs")
bindings_blueprint = Blueprint("plc_bindings", __name__, url_prefix="/api/v1/plc")

# Stopping a PLC whose link hangs may take its whole shutdown timeout.
_APPLY_TIMEOUT_S = 20.0


class PlcSummary(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    enabled: bool
    state: str
    last_error: str | None
    config: PlcConfig
    info: PlcInfo | None


class PlcHealth(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    state: str
    since: str | None
    restarts: int
    last_error: str | None
    mailbox: int
    info: PlcInfo | None


class SignalWrite(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    value: bool | int | float | str


class HandshakeData(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    values: dict[str, bool | int | float | str] = {}


class PlcBindings(msgspec.Struct, frozen=True, kw_only=True):
    plc: str
    bindings: tuple[TagBinding, ...]


class TestResult(msgspec.Struct, frozen=True, kw_only=True):
    plc: str
    state: str
    test: LinkTest | None
    reconnect_requested: bool
    last_error: str | None


async def _station() -> StationView:
    view: StationView = await ask_actor("config", GetStationConfig())
    return view


async def _plc(name: str) -> PlcConfig:
    plc = (await _station()).config.plc(name)
    if plc is None:
        raise Problem(404, f"no PLC named {name!r}")
    return plc


async def _health(name: str) -> Any:
    report = await ask_actor("monitor", GetHealth(components=(f"plc:{name}",)))
    return report.components.get(f"plc:{name}")


async def _summary(plc: PlcConfig) -> PlcSummary:
    if plc.enabled:
        try:
            info = await ask_actor(f"plc:{plc.name}", ReadSignals())
            return PlcSummary(name=plc.name, enabled=True, state=info.state,
                              last_error=info.last_error, config=plc, info=info)
        except ActorUnavailable:
            pass  # DOWN: the monitor knows its state and last error
    health = await _health(plc.name) if plc.enabled else None
    return PlcSummary(name=plc.name, enabled=plc.enabled,
                      state=health.state if health else ("DISABLED" if not plc.enabled
                                                         else "UNKNOWN"),
                      last_error=health.last_error if health else None, config=plc, info=None)


async def _replace(section: str, value: Any, rename: dict[str, str]) -> ConfigApplied:
    f = facade()
    f.runtime.ingest.command("api", {"by": current_principal().name, "replace": section,
                                     "value": value})
    try:
        applied: ConfigApplied = await ask_actor(
            "config", ReplaceSection(section=section, value=value, by=current_principal().name),
            timeout=_APPLY_TIMEOUT_S)
    except ConfigError as exc:
        raise config_problem(exc, rename) from None
    return applied


# ---- /api/v1/plcs ------------------------------------------------------------------------


@blueprint.get("")
@tag(["plcs"])
@requires(Role.OPERATOR)
@document_response(list[PlcSummary])
async def list_plcs() -> object:
    """Every configured PLC with its live state and signals."""
    station = await _station()
    return json_response([await _summary(plc) for plc in station.config.plcs])


@blueprint.put("")
@tag(["plcs"])
@requires(Role.ENGINEER, write=True)
@body(list[PlcConfig], raw=True)
@document_response(ConfigApplied)
async def replace_plcs(data: Any) -> object:
    """Replace the PLC list (same shape as `[[plcs]]` in the station file); applied in place."""
    return json_response(await _replace("plcs", data, {"plcs": ""}))


@blueprint.get("/<name>")
@tag(["plcs"])
@requires(Role.OPERATOR)
@document_response(PlcSummary)
async def get_plc(name: str) -> object:
    return json_response(await _summary(await _plc(name)))


@blueprint.get("/<name>/health")
@tag(["plcs"])
@requires(Role.OPERATOR)
@document_response(PlcHealth)
async def plc_health(name: str) -> object:
    """Link state, restarts, last error, malformed frames and exception responses."""
    plc = await _plc(name)
    health = await _health(name)
    info = None
    if plc.enabled:
        try:
            info = await ask_actor(f"plc:{name}", ReadSignals())
        except ActorUnavailable:
            pass
    return json_response(PlcHealth(
        name=name, state=info.state if info else (health.state if health else "DISABLED"),
        since=health.since if health else None,
        restarts=health.restarts if health else 0,
        last_error=health.last_error if health else None,
        mailbox=health.mailbox if health else 0, info=info))


@blueprint.post("/<name>/test")
@tag(["plcs"])
@requires(Role.ENGINEER, write=True)
@document_response(TestResult)
async def test_plc(name: str) -> object:
    """Read every input once now; a PLC that is DOWN is told to reconnect at once."""
    plc = await _plc(name)
    if not plc.enabled:
        raise Problem(409, f"PLC {name!r} is disabled")
    try:
        result: LinkTest = await ask_actor(f"plc:{name}", TestLink())
        return json_response(TestResult(plc=name, state="UP", test=result,
                                        reconnect_requested=False, last_error=result.error))
    except ActorUnavailable:
        pass
    requested = await ask_actor("devices", RestartChild(f"plc:{name}"))
    health = await _health(name)
    return json_response(TestResult(
        plc=name, state=health.state if health else "UNKNOWN", test=None,
        reconnect_requested=bool(requested),
        last_error=health.last_error if health else None))


@blueprint.get("/<name>/tags")
@tag(["plcs"])
@requires(Role.ENGINEER)
@document_response(list[TagInfo])
async def plc_tags(name: str) -> object:
    """OPC-UA: the server's variables (browsed); other protocols: the configured bindings."""
    await _plc(name)
    return json_response(await ask_actor(f"plc:{name}", Browse(), timeout=15.0))


@blueprint.put("/<name>/signals/<signal>")
@tag(["plcs"])
@requires(Role.ENGINEER, write=True)
@body(SignalWrite)
async def write_signal(name: str, signal: str, data: SignalWrite) -> object:
    """Write an output signal; a PLC that is DOWN answers 503 at once, nothing is queued."""
    await _plc(name)
    command = WriteSignal(signal=signal, value=data.value)
    f = facade()
    f.runtime.directory.get(f"plc:{name}")  # DOWN -> 503 before anything is journaled
    f.runtime.ingest.command("api", {"by": current_principal().name, "plc": name,
                                     "write": msgspec.to_builtins(command)})
    value = await _ask_plc(name, command)
    return json_response({"plc": name, "signal": signal, "value": value})


@blueprint.post("/<name>/handshakes/<handshake>/start")
@tag(["plcs"])
@requires(Role.ENGINEER, write=True)
@body(HandshakeData)
async def start_handshake(name: str, handshake: str, data: HandshakeData) -> object:
    """Takt as requester: write the data signals, then raise request."""
    return await _handshake(name, StartHandshake(handshake=handshake, data=data.values))


@blueprint.post("/<name>/handshakes/<handshake>/complete")
@tag(["plcs"])
@requires(Role.ENGINEER, write=True)
@body(HandshakeData)
async def complete_handshake(name: str, handshake: str, data: HandshakeData) -> object:
    """Takt as responder: write the result signals, then raise done."""
    return await _handshake(name, CompleteHandshake(handshake=handshake, result=data.values))


async def _handshake(name: str, command: StartHandshake | CompleteHandshake) -> object:
    await _plc(name)
    facade().runtime.ingest.command("api", {"by": current_principal().name, "plc": name,
                                            "handshake": msgspec.to_builtins(command)})
    phase = await _ask_plc(name, command)
    return json_response({"plc": name, "handshake": command.handshake, "phase": phase})


async def _ask_plc(name: str, command: Any) -> Any:
    try:
        return await ask_actor(f"plc:{name}", command)
    except UnknownSignal as exc:
        raise Problem(404, str(exc)) from None
    except (NotWritable, HandshakeBusy) as exc:
        raise Problem(409, str(exc)) from None
    except FrameError as exc:  # the PLC answered, and refused (or garbled the answer)
        raise Problem(502, f"the PLC did not accept it: {exc}") from None
    except ValueError as exc:
        raise Problem(422, str(exc)) from None


# ---- /api/v1/plc/bindings -----------------------------------------------------------------


@bindings_blueprint.get("/bindings")
@tag(["plcs"])
@requires(Role.OPERATOR)
@document_response(list[PlcBindings])
async def list_bindings() -> object:
    station = await _station()
    return json_response([PlcBindings(plc=p.name, bindings=p.bindings)
                          for p in station.config.plcs])


@bindings_blueprint.put("/bindings")
@tag(["plcs"])
@requires(Role.ENGINEER, write=True)
@body(list[PlcBindings], raw=True)
@document_response(ConfigApplied)
async def replace_bindings(data: Any) -> object:
    """Replace the bindings of the PLCs named in the body; other PLCs are left alone."""
    if not isinstance(data, list) or not all(
            isinstance(item, dict) and set(item) == {"plc", "bindings"} for item in data):
        raise Problem(422, "send a list of {plc, bindings} objects",
                      errors=[FieldError(field="body", message="expected [{plc, bindings}]")])
    station = (await _station()).config
    plcs = msgspec.to_builtins(station.plcs)
    index = {p["name"]: i for i, p in enumerate(plcs)}
    rename: dict[str, str] = {}
    for position, item in enumerate(data):
        i = index.get(item["plc"])
        if i is None:
            raise Problem(422, f"no PLC named {item['plc']!r}",
                          errors=[FieldError(field=f"[{position}].plc",
                                             message=f"no PLC named {item['plc']!r}")])
        plcs[i]["bindings"] = item["bindings"]
        rename[f"plcs[{i}].bindings"] = f"[{position}].bindings"
    return json_response(await _replace("plcs", plcs, rename))
