"""/api/v1/wrenches and /api/v1/torque: the station's smart wrenches (seed 000 "Smart Wrench",
"torque settings"), addressed by name, over Open Protocol.

A PUT of the list is checked like the station file, stored as an override and applied in place:
only the wrenches whose config changed reconnect. Commands go to the wrench's actor and are
journaled as commands; a wrench whose actor is down answers 503 at once, never queued.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import msgspec
from quart import Blueprint
from quart_schema import document_response, tag

from actors.config import (
    ConfigApplied,
    GetStationConfig,
    ProbeWrenches,
    ReplaceSection,
    StationView,
)
from actors.monitor import GetHealth
from actors.runtime import ActorUnavailable
from actors.supervisor import RestartChild
from actors.wrench_messages import (
    CancelTightening,
    ClearState,
    ConfigureProgram,
    ConnectWrench,
    DisableWrench,
    DisconnectWrench,
    EnableWrench,
    GetPrograms,
    GetWrenchState,
    GetWrenchStatus,
    ListTightenings,
    LockWrench,
    ProgramView,
    ReplacePrograms,
    SetSequence,
    TestWrench,
    TighteningList,
    UnlockWrench,
    WrenchRefused,
    WrenchState,
    WrenchStatus,
    WrenchTest,
    program_view,
)
from api.http import ask_actor, body, facade, json_response, query
from api.problems import FieldError, Problem, config_problem
from api.security import current_principal, requires
from controller import catalog
from controller.access import Role
from controller.config import ConfigError, WrenchConfig
from controller.config_check import check_table
from controller.wrench_config import Angle, PsetNumber, TorqueNm, TorqueSettings, WrenchPset
from drivers.errors import DeviceUnavailable
from state.errors import StateError
from state.tightening import MAX_LIMIT

__all__ = ["blueprint", "catalog_blueprint", "torque_blueprint"]

blueprint = Blueprint("wrenches", __name__, url_prefix="/api/v1/wrenches")
torque_blueprint = Blueprint("torque", __name__, url_prefix="/api/v1/torque")
catalog_blueprint = Blueprint("wrench_catalog", __name__, url_prefix="/api/v1/catalog")

_APPLY_TIMEOUT_S = 20.0
_DISCOVER_TIMEOUT_MS = 1000


class ToggleAction(StrEnum):
    ENABLE = "enable"
    DISABLE = "disable"
    LOCK = "lock"
    UNLOCK = "unlock"


class _In(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class Toggle(_In, frozen=True, kw_only=True, forbid_unknown_fields=True):
    action: ToggleAction
    program_nr: PsetNumber | None = None
    """Selected on the controller before the action."""


class ProgramSettings(_In, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(max_length=64)] = ""
    torque_min_nm: TorqueNm
    torque_max_nm: TorqueNm
    torque_target_nm: TorqueNm
    angle_min: Angle | None = None
    angle_max: Angle | None = None
    batch_size: Annotated[int, msgspec.Meta(ge=0, le=9999)] = 0


class ProgramRequest(_In, frozen=True, kw_only=True, forbid_unknown_fields=True):
    program_nr: PsetNumber
    program: ProgramSettings


class SequenceRequest(_In, frozen=True, kw_only=True, forbid_unknown_fields=True):
    program_nr: PsetNumber
    sequence_number: Annotated[int, msgspec.Meta(ge=0, le=9999)]
    """How many OK tightenings of the program make the sequence (0: none expected)."""


class ResultsQuery(_In, frozen=True, kw_only=True, forbid_unknown_fields=True):
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_LIMIT)] = 100
    cursor: Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)] | None = None
    ok: bool | None = None


class DiscoverQuery(_In, frozen=True, kw_only=True, forbid_unknown_fields=True):
    timeout_ms: Annotated[int, msgspec.Meta(ge=50, le=10_000)] = _DISCOVER_TIMEOUT_MS


class WrenchEntry(msgspec.Struct, frozen=True, kw_only=True):
    config: WrenchConfig
    status: WrenchStatus | None  # None while the wrench's actor is down, or it is disabled
    state: str
    last_error: str | None


class DiscoveredWrench(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    address: str
    enabled: bool
    state: str
    reachable: bool
    controller_name: str | None
    detail: str | None


class WrenchPrograms(msgspec.Struct, frozen=True, kw_only=True):
    wrench: str
    state: str
    psets: list[ProgramView]
    note: str | None = None


class TorqueSettingsView(msgspec.Struct, frozen=True, kw_only=True):
    wrenches: list[WrenchPrograms]


# ---- plumbing ----------------------------------------------------------------------------------


async def _wrenches() -> tuple[WrenchConfig, ...]:
    view: StationView = await ask_actor("config", GetStationConfig())
    return view.config.wrenches


async def _named(name: str, *, enabled: bool = False) -> WrenchConfig:
    c = next((w for w in await _wrenches() if w.name == name), None)
    if c is None:
        raise Problem(404, f"no wrench named {name!r}")
    if enabled and not c.enabled:
        raise Problem(409, f"wrench {name} is disabled")
    return c


def _command(what: dict[str, Any]) -> None:
    facade().runtime.ingest.command("api", {"by": current_principal().name, **what})


async def _ask(c: WrenchConfig, message: Any, journal: dict[str, Any] | None = None) -> Any:
    """Ask the wrench's actor (503 at once if it is down); its refusals become problems."""
    if not c.enabled:
        raise Problem(409, f"wrench {c.name} is disabled")
    facade().runtime.directory.get(f"wrench:{c.name}")  # not running -> 503, nothing journaled
    if journal is not None:
        _command({"wrench": c.name, **journal})
    try:
        return await ask_actor(f"wrench:{c.name}", message)
    except WrenchRefused as exc:
        raise Problem(409, str(exc)) from None
    except ConfigError as exc:
        raise config_problem(exc, {"[0]": "program"}) from None
    except ValueError as exc:
        raise Problem(422, str(exc)) from None
    except DeviceUnavailable as exc:  # the link went while asking: the wrench reconnects
        raise Problem(503, f"wrench {c.name} is unavailable: {exc}",
                      headers={"Retry-After": "5"}) from None
    except StateError as exc:
        raise Problem(503, f"the tightening store is unavailable: {exc}",
                      headers={"Retry-After": "5"}) from None


async def _health(c: WrenchConfig) -> tuple[str, str | None]:
    report = await ask_actor("monitor", GetHealth(components=(f"wrench:{c.name}",)))
    health = report.components.get(f"wrench:{c.name}")
    if not c.enabled:
        return "DISABLED", None
    return (health.state, health.last_error) if health else ("UNKNOWN", None)


async def _status(c: WrenchConfig) -> WrenchStatus | None:
    if not c.enabled:
        return None
    try:
        return await ask_actor(f"wrench:{c.name}", GetWrenchStatus())  # type: ignore[no-any-return]
    except ActorUnavailable:
        return None


async def _entry(c: WrenchConfig) -> WrenchEntry:
    status = await _status(c)
    if status is not None:
        return WrenchEntry(config=c, status=status, state=status.state,
                           last_error=status.last_error)
    state, last_error = await _health(c)
    return WrenchEntry(config=c, status=None, state=state, last_error=last_error)


# ---- the list ----------------------------------------------------------------------------------


@blueprint.get("")
@tag(["wrenches"])
@requires(Role.OPERATOR)
@document_response(list[WrenchEntry])
async def list_wrenches() -> object:
    """The configured wrenches, each with its connection, tool state and result counters."""
    return json_response([await _entry(c) for c in await _wrenches()])


@blueprint.put("")
@tag(["wrenches"])
@requires(Role.ENGINEER, write=True)
@body(list[WrenchConfig], raw=True)
@document_response(ConfigApplied)
async def replace_wrenches(data: Any) -> object:
    """Replace the wrench list (at most 10; the `[[wrenches]]` tables as JSON)."""
    by = current_principal().name
    _command({"replace": "wrenches", "value": data})
    try:
        applied = await ask_actor("config", ReplaceSection(section="wrenches", value=data, by=by),
                                  timeout=_APPLY_TIMEOUT_S)
    except ConfigError as exc:
        raise config_problem(exc, {"wrenches": ""}) from None
    return json_response(applied)


@blueprint.get("/discover")
@tag(["wrenches"])
@requires(Role.ENGINEER)
@query(DiscoverQuery)
@document_response(list[DiscoveredWrench])
async def discover(q: DiscoverQuery) -> object:
    """Which configured wrenches answer: a connected one by its session, any other by a short
    session of its own (MID 0001, then 0003) within timeout_ms."""
    wrenches = await _wrenches()
    statuses = {c.name: await _status(c) for c in wrenches}
    # The ones without a session are probed by the config actor, on threads of its own (at
    # most 10, each bounded by timeout_ms); the wrench actors' own links are not touched.
    targets = {c.name: (c.host, c.port) for c in wrenches
               if (s := statuses[c.name]) is None or s.controller is None}
    probes = await ask_actor("config", ProbeWrenches(targets=targets,
                                                     timeout_s=q.timeout_ms / 1000),
                             timeout=q.timeout_ms / 1000 * 3 + 5) if targets else {}
    found = []
    for c in wrenches:
        status, address = statuses[c.name], f"{c.host}:{c.port}"
        if c.name not in probes and status is not None and status.controller is not None:
            found.append(DiscoveredWrench(
                name=c.name, address=address, enabled=c.enabled, state=status.state,
                reachable=True, controller_name=status.controller.controller_name, detail=None))
            continue
        probe = probes[c.name]
        state = status.state if status is not None else (await _health(c))[0]
        found.append(DiscoveredWrench(
            name=c.name, address=address, enabled=c.enabled, state=state,
            reachable=probe.reachable, controller_name=probe.controller_name,
            detail=probe.detail))
    return json_response(found)


# ---- one wrench --------------------------------------------------------------------------------


@blueprint.get("/<name>/status")
@tag(["wrenches"])
@requires(Role.OPERATOR)
@document_response(WrenchEntry)
async def wrench_status(name: str) -> object:
    """Connection, controller identity, link counters, tool state and the last result."""
    return json_response(await _entry(await _named(name)))


@blueprint.get("/<name>/state")
@tag(["wrenches"])
@requires(Role.OPERATOR)
@document_response(WrenchState)
async def wrench_state(name: str) -> object:
    """Tool enabled/locked, selected pset, sequence, last result and error, counters."""
    return json_response(await _ask(await _named(name), GetWrenchState()))


@blueprint.post("/<name>/connect")
@tag(["wrenches"])
@requires(Role.ENGINEER, write=True)
async def connect(name: str) -> object:
    """Connect a disconnected wrench now; a DOWN one is restarted now rather than after its
    backoff (202: it connects in the background)."""
    c = await _named(name, enabled=True)
    _command({"wrench": c.name, "connect": True})
    try:
        state: WrenchState = await ask_actor(f"wrench:{c.name}", ConnectWrench())
    except ActorUnavailable:
        requested = await ask_actor("devices", RestartChild(f"wrench:{c.name}"))
        health, last_error = await _health(c)
        return json_response({"wrench": c.name, "state": health, "last_error": last_error,
                              "reconnect_requested": bool(requested)}, status=202)
    except DeviceUnavailable as exc:
        raise Problem(503, f"wrench {c.name} cannot be reached: {exc}; it keeps trying",
                      headers={"Retry-After": "5"}) from None
    return json_response({"wrench": c.name, "state": "UP", **msgspec.to_builtins(state)})


@blueprint.post("/<name>/disconnect")
@tag(["wrenches"])
@requires(Role.ENGINEER, write=True)
@document_response(WrenchState)
async def disconnect(name: str) -> object:
    """End the session (MID 0003); the wrench stays disconnected until POST /connect (or a
    restart of Takt, or a config change of it). Set `enabled = false` to keep it off."""
    c = await _named(name)
    return json_response(await _ask(c, DisconnectWrench(by=current_principal().name),
                                    {"disconnect": True}))


@blueprint.post("/<name>/toggle")
@tag(["wrenches"])
@requires(Role.OPERATOR, write=True)
@body(Toggle)
@document_response(WrenchState)
async def toggle(name: str, data: Toggle) -> object:
    """enable (MID 0043) / disable (0042) the tool, or lock / unlock it: a locked tool is
    disabled and Takt refuses to enable it (409) until it is unlocked; unlocking does not
    enable it. program_nr, if given, is selected (MID 0018) first."""
    c = await _named(name)
    message = {ToggleAction.ENABLE: EnableWrench, ToggleAction.DISABLE: DisableWrench,
               ToggleAction.LOCK: LockWrench, ToggleAction.UNLOCK: UnlockWrench}[data.action]
    return json_response(await _ask(c, message(program_nr=data.program_nr),
                                    {"toggle": data.action.value,
                                     "program_nr": data.program_nr}))


@blueprint.post("/<name>/program")
@tag(["wrenches"])
@requires(Role.ENGINEER, write=True)
@body(ProgramRequest)
@document_response(ProgramView)
async def configure_program(name: str, data: ProgramRequest) -> object:
    """Store Takt's torque settings of one program (pset): every result of it is checked
    against them. The controller's own pset parameters are set on the controller."""
    c = await _named(name)
    pset = WrenchPset(number=data.program_nr, **msgspec.structs.asdict(data.program))
    return json_response(await _ask(c, ConfigureProgram(program=pset,
                                                        by=current_principal().name),
                                    {"program": msgspec.to_builtins(pset)}))


@blueprint.post("/<name>/sequence")
@tag(["wrenches"])
@requires(Role.OPERATOR, write=True)
@body(SequenceRequest)
@document_response(WrenchState)
async def set_sequence(name: str, data: SequenceRequest) -> object:
    """Select program_nr and expect sequence_number OK tightenings of it; when they are done
    `device.wrench.<name>.batch` says so (journaled)."""
    c = await _named(name)
    return json_response(await _ask(
        c, SetSequence(pset=data.program_nr, size=data.sequence_number),
        {"sequence": {"program_nr": data.program_nr, "size": data.sequence_number}}))


@blueprint.post("/<name>/clear")
@tag(["wrenches"])
@requires(Role.OPERATOR, write=True)
@document_response(WrenchState)
async def clear(name: str) -> object:
    """Forget the last result and error and restart the sequence count (results stay stored)."""
    return json_response(await _ask(await _named(name), ClearState(), {"clear": True}))


@blueprint.post("/<name>/cancel")
@tag(["wrenches"])
@requires(Role.OPERATOR, write=True)
@document_response(WrenchState)
async def cancel(name: str) -> object:
    """Stop the tool at once (disable); the next enable resumes."""
    return json_response(await _ask(await _named(name), CancelTightening(), {"cancel": True}))


@blueprint.post("/<name>/test")
@tag(["wrenches"])
@requires(Role.ENGINEER, write=True)
@document_response(WrenchTest)
async def test_wrench(name: str) -> object:
    """A round trip to the controller that changes nothing (a result subscription check)."""
    return json_response(await _ask(await _named(name), TestWrench()))


@blueprint.get("/<name>/results")
@tag(["wrenches"])
@requires(Role.OPERATOR)
@query(ResultsQuery)
@document_response(TighteningList)
async def results(name: str, q: ResultsQuery) -> object:
    """Stored tightening results, newest first; `ok` filters; pass next_cursor as cursor."""
    return json_response(await _ask(await _named(name),
                                    ListTightenings(ok=q.ok, cursor=q.cursor, limit=q.limit)))


# ---- torque settings ---------------------------------------------------------------------------


async def _programs(c: WrenchConfig) -> WrenchPrograms:
    state, _ = await _health(c)
    if c.enabled:
        try:
            views = await ask_actor(f"wrench:{c.name}", GetPrograms())
            return WrenchPrograms(wrench=c.name, state=state, psets=views)
        except ActorUnavailable:
            pass
    return WrenchPrograms(wrench=c.name, state=state,
                          psets=[program_view(p) for p in c.psets],
                          note="the wrench is not running: only its configured psets are shown")


@torque_blueprint.get("/settings")
@tag(["wrenches"])
@requires(Role.OPERATOR)
@document_response(TorqueSettingsView)
async def get_torque_settings() -> object:
    """Per wrench, the psets Takt checks results against: from the config, or stored."""
    return json_response(TorqueSettingsView(
        wrenches=[await _programs(c) for c in await _wrenches()]))


@torque_blueprint.put("/settings")
@tag(["wrenches"])
@requires(Role.ENGINEER, write=True)
@body(TorqueSettings, raw=True)
@document_response(TorqueSettingsView)
async def put_torque_settings(data: Any) -> object:
    """Replace the stored torque settings of each wrench given (checked like the config);
    a configured pset not given stays as the config says."""
    settings, problems = check_table(data, TorqueSettings)
    configured = {c.name: c for c in await _wrenches()}
    entries = data.get("wrenches") if isinstance(data, dict) else None
    for i, entry in enumerate(entries if isinstance(entries, list) else ()):
        name = entry.get("wrench") if isinstance(entry, dict) else None
        if isinstance(name, str) and name not in configured:
            problems.append((f"wrenches[{i}].wrench", f"no wrench named {name!r}"))
    if problems or settings is None:
        raise Problem(422, f"the torque settings are invalid ({len(problems)} problem(s))",
                      errors=[FieldError(field=key or "body", message=text)
                              for key, text in problems])
    targets = [configured[entry.wrench] for entry in settings.wrenches]
    for c in targets:
        if not c.enabled:
            raise Problem(409, f"wrench {c.name} is disabled")
        facade().runtime.directory.get(f"wrench:{c.name}")  # all running, or 503 and nothing
    _command({"torque_settings": data})
    by = current_principal().name
    for entry in settings.wrenches:
        await _ask(configured[entry.wrench], ReplacePrograms(programs=entry.psets, by=by))
    return json_response(TorqueSettingsView(
        wrenches=[await _programs(c) for c in targets]))


@catalog_blueprint.get("/wrenches")
@tag(["config"])
@requires(Role.OPERATOR)
async def wrench_catalog() -> object:
    """Wrench protocols (Open Protocol is the one Takt speaks) and makers."""
    return json_response(catalog.wrenches())
