"""/api/v1/plcs: the station's PLCs, their signals, and writes to their outputs."""

from __future__ import annotations

from typing import Any

import msgspec
from quart import Blueprint
from quart_schema import document_response, tag

from actors.monitor import GetHealth
from actors.plc import NotWritable, PlcInfo, ReadSignals, UnknownSignal, WriteSignal
from actors.runtime import ActorUnavailable
from api.http import ask_actor, body, facade, json_response
from api.problems import Problem
from api.security import current_principal, requires
from controller.access import Role

__all__ = ["blueprint"]

blueprint = Blueprint("plcs", __name__, url_prefix="/api/v1/plcs")


class PlcSummary(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    state: str
    last_error: str | None
    info: PlcInfo | None


class SignalWrite(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    value: bool | int | float | str


def _plc_names() -> list[str]:
    return [p.name for p in facade().station.plcs if p.enabled]


async def _summaries(names: list[str]) -> list[PlcSummary]:
    out = []
    for name in names:
        try:
            info = await ask_actor(f"plc:{name}", ReadSignals())
            out.append(PlcSummary(name=name, state=info.state, last_error=info.last_error,
                                  info=info))
        except ActorUnavailable:  # DOWN: the monitor knows its state and last error
            report = await ask_actor("monitor", GetHealth(components=(f"plc:{name}",)))
            health = report.components.get(f"plc:{name}")
            out.append(PlcSummary(name=name, state=health.state if health else "UNKNOWN",
                                  last_error=health.last_error if health else None, info=None))
    return out


@blueprint.get("")
@tag(["plcs"])
@requires(Role.OPERATOR)
@document_response(list[PlcSummary])
async def list_plcs() -> object:
    return json_response(await _summaries(_plc_names()))


@blueprint.get("/<name>")
@tag(["plcs"])
@requires(Role.OPERATOR)
@document_response(PlcSummary)
async def get_plc(name: str) -> object:
    if name not in _plc_names():
        raise Problem(404, f"no PLC named {name!r}")
    return json_response((await _summaries([name]))[0])


@blueprint.put("/<name>/signals/<signal>")
@tag(["plcs"])
@requires(Role.ENGINEER, write=True)
@body(SignalWrite)
async def write_signal(name: str, signal: str, data: SignalWrite) -> object:
    """Write an output signal; a PLC that is DOWN answers 503 at once, nothing is queued."""
    if name not in _plc_names():
        raise Problem(404, f"no PLC named {name!r}")
    command = WriteSignal(signal=signal, value=data.value)
    f = facade()
    f.runtime.directory.get(f"plc:{name}")  # DOWN -> 503 before anything is journaled
    f.runtime.ingest.command("api", {"by": current_principal().name, "plc": name,
                                     "write": msgspec.to_builtins(command)})
    try:
        value: Any = await ask_actor(f"plc:{name}", command)
    except UnknownSignal as exc:
        raise Problem(404, str(exc)) from None
    except NotWritable as exc:
        raise Problem(409, str(exc)) from None
    except ValueError as exc:
        raise Problem(422, str(exc)) from None
    return json_response({"plc": name, "signal": signal, "value": value})
