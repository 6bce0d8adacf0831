"""/api/v1/coaching and /ws/coaching (seed 000 "Coaching", "Settings"): guide an operator
through an assembly, step by step, by messaging the station's sequencer.

`/ws/coaching`: authenticate as on `/ws` (header, `?token=`, or a first `{"token": ...}`).
Each client message holds exactly one of `start` or `interrupt`; both or neither is answered
`{"status": "error", "msg": {...}}` and changes nothing. The server sends every coaching
message as `{"status": "ok", "msg": {"type": prediction|step_advance|step_complete|
step_interrupt|assembly_complete|feedback|paused|resumed, "assembly_record_id", "step_index",
...}}`, beginning with the current state (`type: "state"`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
import trio
from msgspec import Meta
from quart import Blueprint, websocket
from quart_schema import document_response, tag

from actors.config import GetStationConfig, ReplaceSection, StationView
from actors.sequencer_messages import (
    AbortCoaching,
    AdvanceStep,
    CoachingRefused,
    CoachingView,
    CompleteCoaching,
    ConfirmStep,
    EnterValue,
    GetCoaching,
    InterruptCoaching,
    PauseCoaching,
    ResumeCoaching,
    SetCoachingStep,
    SetStationOperator,
    StartCoaching,
)
from actors.supervisor import RestartChild
from api.http import ask_actor, body, facade, json_response
from api.problems import Problem, config_problem
from api.security import authenticate, current_principal, requires, websocket_token
from controller.access import Role
from controller.config import ConfigError

__all__ = ["blueprint"]

blueprint = Blueprint("coaching", __name__)

Id = Annotated[int, Meta(ge=1, le=2**63 - 1)]
Short = Annotated[str, Meta(max_length=256)]


class _In(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class StartIn(_In, frozen=True, kw_only=True, forbid_unknown_fields=True):
    assembly_id: Id
    step_index: Annotated[int, Meta(ge=0, le=10_000)] = 0
    operator_id: Id | None = None
    work_order: Short | None = None
    part_serial: Short | None = None
    auto_coach_enabled: bool | None = None


class RecordIn(_In, frozen=True, kw_only=True, forbid_unknown_fields=True):
    assembly_record_id: Id | None = None
    reason: Short = ""


class SetStepIn(_In, frozen=True, kw_only=True, forbid_unknown_fields=True):
    step_index: Annotated[int, Meta(ge=0, le=10_000)]
    assembly_record_id: Id | None = None
    end_time: datetime | None = None
    """When the current step ended (RFC 3339); by default now."""


class ConfirmIn(_In, frozen=True, kw_only=True, forbid_unknown_fields=True):
    assembly_record_id: Id | None = None


class EntryIn(_In, frozen=True, kw_only=True, forbid_unknown_fields=True):
    variable: Annotated[str, Meta(min_length=1, max_length=64)]
    text: Annotated[str, Meta(max_length=256)]


class LoginIn(_In, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An operator logs in at the station: by badge (`rfid`) or by name and password."""

    rfid: Annotated[str, Meta(min_length=1, max_length=128)] | None = None
    first_name: Short | None = None
    last_name: Short | None = None
    password: Annotated[str, Meta(max_length=128)] | None = None


class SettingsIn(_In, frozen=True, kw_only=True, forbid_unknown_fields=True):
    release_control_enabled: bool


async def _ask(message: Any, journal: dict[str, Any] | None = None) -> CoachingView:
    if journal is not None:
        facade().runtime.ingest.command("api", {"by": current_principal().name,
                                                "coaching": journal})
    try:
        return await ask_actor("sequencer", message)  # type: ignore[no-any-return]
    except CoachingRefused as exc:
        raise Problem(409, str(exc)) from None


def _start(data: StartIn) -> StartCoaching:
    return StartCoaching(assembly_id=data.assembly_id, step_index=data.step_index,
                         operator_id=data.operator_id, work_order=data.work_order,
                         part_serial=data.part_serial, auto_advance=data.auto_coach_enabled)


@blueprint.get("/api/v1/coaching")
@tag(["coaching"])
@requires(Role.OPERATOR)
@document_response(CoachingView)
async def current() -> object:
    """The session now: phase, record, step, each condition's progress, captured variables."""
    return json_response(await _ask(GetCoaching()))


@blueprint.post("/api/v1/coaching/start")
@tag(["coaching"])
@requires(Role.OPERATOR, write=True)
@body(StartIn)
@document_response(CoachingView)
async def start(data: StartIn) -> object:
    """Begin coaching a published assembly at step_index (409 while a session is active)."""
    return json_response(await _ask(_start(data), {"start": msgspec.to_builtins(data)}))


@blueprint.post("/api/v1/coaching/<int:assembly_id>/begin/<int:step_index>")
@tag(["coaching"])
@requires(Role.OPERATOR, write=True)
@document_response(CoachingView)
async def begin(assembly_id: int, step_index: int) -> object:
    """Seed 000's "begin coaching on a specific assembly on a specific step"."""
    data = StartIn(assembly_id=assembly_id, step_index=step_index)
    return json_response(await _ask(_start(data), {"start": msgspec.to_builtins(data)}))


def _command(path: str, message: type, what: str, doc: str) -> None:
    async def handler(data: RecordIn) -> object:
        args = {"assembly_record_id": data.assembly_record_id}
        if "reason" in message.__struct_fields__:
            args["reason"] = data.reason
        return json_response(await _ask(message(**args), {what: msgspec.to_builtins(data)}))

    handler.__name__ = f"coaching_{what}"
    handler.__doc__ = doc
    blueprint.post(path)(tag(["coaching"])(requires(Role.OPERATOR, write=True)(
        body(RecordIn)(document_response(CoachingView)(handler)))))


_command("/api/v1/coaching/pause", PauseCoaching, "pause",
         "Pause at the current step; device facts do not count until resumed.")
_command("/api/v1/coaching/resume", ResumeCoaching, "resume",
         "Resume a paused or interrupted session where it was.")
_command("/api/v1/coaching/interrupt", InterruptCoaching, "interrupt",
         "Interrupt (step_interrupt); resume continues the same step.")
_command("/api/v1/coaching/abort", AbortCoaching, "abort",
         "End the session as aborted; nothing is released.")
_command("/api/v1/coaching/complete", CompleteCoaching, "complete",
         "Declare the session complete now; steps not done make it incomplete (no release).")
_command("/api/v1/coaching/advance", AdvanceStep, "advance",
         "Go on to the next step after a complete one (auto-advance off).")


@blueprint.post("/api/v1/coaching/set-step")
@tag(["coaching"])
@requires(Role.OPERATOR, write=True)
@body(SetStepIn)
@document_response(CoachingView)
async def set_step(data: SetStepIn) -> object:
    """Move coaching to step_index; the current step ends at end_time (or now), not done."""
    end_us = None if data.end_time is None else int(data.end_time.timestamp() * 1_000_000)
    return json_response(await _ask(
        SetCoachingStep(step_index=data.step_index, assembly_record_id=data.assembly_record_id,
                        end_us=end_us), {"set_step": msgspec.to_builtins(data)}))


@blueprint.post("/api/v1/coaching/confirm")
@tag(["coaching"])
@requires(Role.OPERATOR, write=True)
@body(ConfirmIn)
@document_response(CoachingView)
async def confirm(data: ConfirmIn) -> object:
    """The operator confirms the step (QA, VIDEO_ONLY)."""
    by = current_principal().name
    return json_response(await _ask(ConfirmStep(by=by,
                                                assembly_record_id=data.assembly_record_id),
                                    {"confirm": by}))


@blueprint.post("/api/v1/coaching/entry")
@tag(["coaching"])
@requires(Role.OPERATOR, write=True)
@body(EntryIn)
@document_response(CoachingView)
async def entry(data: EntryIn) -> object:
    """The operator types a value into a variable (OCR_ENTRY)."""
    return json_response(await _ask(EnterValue(variable=data.variable, text=data.text),
                                    {"entry": data.variable}))


@blueprint.post("/api/v1/coaching/operator")
@tag(["coaching"])
@requires(Role.OPERATOR, write=True)
@body(LoginIn)
@document_response(CoachingView)
async def log_in(data: LoginIn) -> object:
    """Log an operator in at the station, by badge or by name and password; the next
    session is theirs. (A badge scanned on a COACHING scanner between sessions does the
    same.) 401 for a wrong password, 404 for an unknown badge, 429 after 5 failures."""
    from actors.bridge import ask
    from actors.operators import Authenticate, InvalidCredentials, TooManyAttempts, VerifyRfid
    from actors.query import pick_query_actor
    from state.errors import NotFound

    by_name = (data.first_name, data.last_name, data.password)
    if (data.rfid is None) == all(v is None for v in by_name) or (
            data.rfid is None and None in by_name):
        raise Problem(422, "give rfid, or first_name, last_name and password")
    try:
        if data.rfid is not None:
            f = facade()
            operator = await ask(f.runtime, pick_query_actor(f.runtime.directory),
                                 VerifyRfid(data.rfid), f.ask_timeout_s)
        else:
            operator = await ask_actor("operators", Authenticate(
                first_name=data.first_name or "", last_name=data.last_name or "",
                password=data.password or ""))
    except NotFound:
        raise Problem(404, "no active operator has that badge") from None
    except InvalidCredentials:
        raise Problem(401, "wrong name or password") from None
    except TooManyAttempts as exc:
        raise Problem(429, str(exc), headers={"Retry-After": str(max(1, round(
            exc.retry_after_s)))}) from None
    via = "rfid" if data.rfid is not None else "password"
    return json_response(await _ask(SetStationOperator(operator_id=operator.id, via=via),
                                    {"log_in": operator.id, "via": via}))


@blueprint.delete("/api/v1/coaching/operator")
@tag(["coaching"])
@requires(Role.OPERATOR, write=True)
@document_response(CoachingView)
async def log_out() -> object:
    """Nobody is logged in at the station any more."""
    return json_response(await _ask(SetStationOperator(operator_id=None),
                                    {"log_out": True}))


@blueprint.get("/api/v1/coaching/history")
@tag(["coaching"])
@requires(Role.OPERATOR)
async def history() -> object:
    """Previously coached assemblies: the newest records (see /api/v1/assembly-records)."""
    from actors.assemblies import AssemblyCall

    return json_response(await ask_actor("assemblies", AssemblyCall(function="list_records",
                                                                    args={"limit": 100})))


@blueprint.post("/api/v1/coaching/io-monitor/restart")
@tag(["coaching"])
@requires(Role.ENGINEER, write=True)
async def restart_io() -> object:
    """Restart the PLC links that feed coaching (each reconnects and re-reads its signals)."""
    f = facade()
    names = [n for n in f.runtime.directory.names("plc:")]
    f.runtime.ingest.command("api", {"by": current_principal().name, "restart_io": names})
    restarted = [n for n in names if await ask_actor("devices", RestartChild(n))]
    return json_response({"status": "ok", "restarted": restarted})


@blueprint.get("/api/v1/coaching/settings")
@tag(["coaching"])
@requires(Role.OPERATOR)
async def get_settings() -> object:
    view: StationView = await ask_actor("config", GetStationConfig())
    c = view.config.coaching
    return json_response({"release_control_enabled": c.release_control,
                          "auto_advance": c.auto_advance, "release": c.release})


@blueprint.put("/api/v1/coaching/settings")
@tag(["coaching"])
@requires(Role.ENGINEER, write=True)
@body(SettingsIn)
async def put_settings(data: SettingsIn) -> object:
    """Enable or disable release control (kept as a config override; each record takes the
    setting when it starts). 422 without [coaching.release]."""
    view: StationView = await ask_actor("config", GetStationConfig())
    section = {**msgspec.to_builtins(view.config.coaching),
               "release_control": data.release_control_enabled}
    by = current_principal().name
    facade().runtime.ingest.command("api", {"by": by, "replace": "coaching", "value": section})
    try:
        await ask_actor("config", ReplaceSection(section="coaching", value=section, by=by),
                        timeout=20.0)
    except ConfigError as exc:
        raise config_problem(exc, {"coaching": ""}) from None
    return json_response({"status": "ok", "release_control_enabled":
                          data.release_control_enabled})


# ---- /ws/coaching ------------------------------------------------------------------------------


class WsStart(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    assembly_id: Id
    step_index: Annotated[int, Meta(ge=0, le=10_000)] = 0
    operator_id: Id | None = None
    work_order: Short | None = None
    part_serial: Short | None = None
    auto_coach_enabled: bool | None = None


class WsInterrupt(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    assembly_record_id: Id | None = None
    reason: Short = ""


class WsMessage(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    token: str | None = None
    start: WsStart | None = None
    interrupt: WsInterrupt | None = None


_WS = msgspec.json.Decoder(WsMessage)
_ENC = msgspec.json.Encoder()
_AUTH_TIMEOUT_S = 10.0


async def _send(status: str, msg: Any) -> None:
    await websocket.send(_ENC.encode({"status": status, "msg": msg}))


async def _ws_principal() -> Any:
    token = websocket_token()
    with trio.move_on_after(_AUTH_TIMEOUT_S):
        while token is None:
            raw = await websocket.receive()
            try:
                token = _WS.decode(raw).token
            except (msgspec.DecodeError, msgspec.ValidationError):
                token = None
            if token is None:
                await _send("error", {"detail": 'authenticate first: send {"token": "..."}'})
    try:
        return await authenticate(token)
    except Problem as exc:
        await _send("error", {"detail": exc.detail})
        return None


async def _forward(sub: Any) -> None:
    async for event in sub:
        kind = event.topic.partition(".")[2]
        await _send("ok", {"type": kind, **(event.data if isinstance(event.data, dict) else {})})


@blueprint.websocket("/ws/coaching")
async def coaching_ws() -> None:
    await websocket.accept()
    principal = await _ws_principal()
    if principal is None:
        await websocket.close(1008, "authentication failed")
        return
    f = facade()
    sub = f.runtime.bus.subscribe_trio(["coaching.*"], maxsize=2000, name="ws-coaching")
    try:
        view = await ask_actor("sequencer", GetCoaching())
        await _send("ok", {"type": "state", **msgspec.to_builtins(view)})
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_forward, sub)
            while True:
                raw = await websocket.receive()
                try:
                    msg = _WS.decode(raw)
                except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                    await _send("error", {"detail": f"not a coaching message: {exc}"})
                    continue
                if (msg.start is None) == (msg.interrupt is None):
                    await _send("error", {"detail": "send exactly one of 'start' or "
                                                    "'interrupt'"})
                    continue
                await _ws_command(msg, principal.name)
    finally:
        f.runtime.bus.unsubscribe(sub)


async def _ws_command(msg: WsMessage, by: str) -> None:
    if msg.start is not None:
        s = msg.start
        message: Any = StartCoaching(assembly_id=s.assembly_id, step_index=s.step_index,
                                     operator_id=s.operator_id, work_order=s.work_order,
                                     part_serial=s.part_serial,
                                     auto_advance=s.auto_coach_enabled)
        journal = {"start": msgspec.to_builtins(s)}
    else:
        assert msg.interrupt is not None
        message = InterruptCoaching(reason=msg.interrupt.reason,
                                    assembly_record_id=msg.interrupt.assembly_record_id)
        journal = {"interrupt": msgspec.to_builtins(msg.interrupt)}
    facade().runtime.ingest.command("ws", {"by": by, "coaching": journal})
    try:
        view = await ask_actor("sequencer", message)
    except CoachingRefused as exc:
        await _send("error", {"detail": str(exc)})
        return
    await _send("ok", {"type": "state", **msgspec.to_builtins(view)})
