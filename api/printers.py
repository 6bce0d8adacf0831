"""/api/v1/printers: the station's label printers (seed 002 "Printers"), addressed by index.

A PUT replaces the list (at most 10), is checked like the station file, stored as an
override and applied in place. A print request renders the printer's template and answers
202 with the job id once the job is stored; the job prints when the printer can, exactly
once (actors/printer.py). Templates and jobs are stored per printer.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import msgspec
from quart import Blueprint, Response
from quart_schema import document_response, tag

from actors.config import ConfigApplied, GetStationConfig, ReplaceSection, StationView
from actors.monitor import GetHealth
from actors.printer_messages import (
    DeleteTemplate,
    GetPrinterStatus,
    GetTemplate,
    ListPrintJobs,
    ListTemplates,
    PrintAccepted,
    PrinterState,
    PrinterTest,
    PrintLabel,
    PutTemplate,
    TemplateExists,
    TemplateNotFound,
    TemplateView,
    TestPrinter,
)
from actors.runtime import ActorUnavailable
from actors.supervisor import RestartChild
from api.http import ask_actor, body, facade, json_response, query
from api.problems import FieldError, Problem, config_problem
from api.security import current_principal, requires
from controller.access import Role
from controller.config import ConfigError, PrinterConfig
from controller.printer_config import printer_schema
from controller.timefmt import rfc3339
from state.errors import StateError
from state.printing import MAX_LIMIT, JobState, PrintJob

__all__ = ["blueprint"]

blueprint = Blueprint("printers", __name__, url_prefix="/api/v1/printers")

_APPLY_TIMEOUT_S = 20.0
_TEMPLATE_PARAM = "template"
_FIELD_IN_MESSAGE = re.compile(r"^field (\w+)")


class PrinterEntry(msgspec.Struct, frozen=True, kw_only=True):
    index: int
    config: PrinterConfig
    status: PrinterState | None  # None while the printer's actor is not running, or disabled
    state: str
    last_error: str | None


class PrintRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    code: Annotated[str, msgspec.Meta(min_length=1, max_length=3072)] | None = None
    params: dict[Annotated[str, msgspec.Meta(max_length=64)],
                 Annotated[str, msgspec.Meta(max_length=3072)]] = {}
    """Template fields; `template` names the template (the printer's default otherwise)."""


class NewTemplate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(max_length=64)]
    body: str


class TemplateBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    body: str


class JobQuery(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    state: JobState | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=MAX_LIMIT)] = 100
    before: Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)] | None = None
    """A job id: the listing goes on with the jobs older than it."""


class JobView(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    printer: str
    template: str
    code: str | None
    fields: dict[str, str]
    labels: int
    state: str
    reason: str | None
    counter_before: int | None
    counter_after: int | None
    attempts: int
    requested_by: str | None
    created_at: str
    updated_at: str
    done_at: str | None


def _job_view(job: PrintJob) -> JobView:
    return JobView(
        id=job.id, printer=job.printer, template=job.template, code=job.code,
        fields=job.fields, labels=job.labels, state=job.state.value, reason=job.reason,
        counter_before=job.counter_before, counter_after=job.counter_after,
        attempts=job.attempts, requested_by=job.requested_by,
        created_at=rfc3339(job.created_us), updated_at=rfc3339(job.updated_us),
        done_at=None if job.done_us is None else rfc3339(job.done_us))


async def _printers() -> tuple[PrinterConfig, ...]:
    view: StationView = await ask_actor("config", GetStationConfig())
    return view.config.printers


async def _at(index: int, *, enabled: bool = False) -> PrinterConfig:
    printers = await _printers()
    if not 0 <= index < len(printers):
        raise Problem(404, f"no printer at index {index} (the station has {len(printers)})")
    c = printers[index]
    if enabled and not c.enabled:
        raise Problem(409, f"printer {c.name} is disabled")
    return c


async def _ask(c: PrinterConfig, message: Any) -> Any:
    """Ask the printer's actor; its refusals become problems."""
    try:
        return await ask_actor(f"printer:{c.name}", message)
    except TemplateNotFound as exc:
        if isinstance(message, PrintLabel):  # a request naming a template that is not there
            raise Problem(422, str(exc), errors=[FieldError(
                field=f"params.{_TEMPLATE_PARAM}", message=str(exc))]) from None
        raise Problem(404, str(exc)) from None
    except TemplateExists as exc:
        raise Problem(409, str(exc)) from None
    except ValueError as exc:  # an invalid template, or a request it cannot render
        raise Problem(422, str(exc), errors=[FieldError(field=_field_of(exc), message=str(exc))]
                      ) from None
    except StateError as exc:
        raise Problem(503, f"the job store is unavailable: {exc}",
                      headers={"Retry-After": "5"}) from None


def _field_of(exc: ValueError) -> str:
    match = _FIELD_IN_MESSAGE.match(str(exc))
    if match is None:
        return "body"
    return "code" if match[1] == "code" else f"params.{match[1]}"


async def _entry(index: int, c: PrinterConfig) -> PrinterEntry:
    if c.enabled:
        try:
            status: PrinterState = await ask_actor(f"printer:{c.name}", GetPrinterStatus())
            health = {"connected": "UP", "offline": "DOWN"}.get(status.connection, "UNKNOWN")
            return PrinterEntry(index=index, config=c, status=status, state=health,
                                last_error=status.last_error)
        except ActorUnavailable:
            pass
    report = await ask_actor("monitor", GetHealth(components=(f"printer:{c.name}",)))
    health_of = report.components.get(f"printer:{c.name}")
    state = "DISABLED" if not c.enabled else (health_of.state if health_of else "UNKNOWN")
    return PrinterEntry(index=index, config=c, status=None, state=state,
                        last_error=health_of.last_error if health_of else None)


def _command(what: dict[str, Any]) -> None:
    facade().runtime.ingest.command("api", {"by": current_principal().name, **what})


# ---- the list ----------------------------------------------------------------------------------


@blueprint.get("")
@tag(["printers"])
@requires(Role.OPERATOR)
@document_response(list[PrinterEntry])
async def list_printers() -> object:
    return json_response([await _entry(i, c) for i, c in enumerate(await _printers())])


@blueprint.put("")
@tag(["printers"])
@requires(Role.ENGINEER, write=True)
@body(list[PrinterConfig], raw=True)
@document_response(ConfigApplied)
async def replace_printers(data: Any) -> object:
    """Replace the printer list (at most 10; the `[[printers]]` tables as JSON)."""
    by = current_principal().name
    _command({"replace": "printers", "value": data})
    try:
        applied = await ask_actor("config", ReplaceSection(section="printers", value=data, by=by),
                                  timeout=_APPLY_TIMEOUT_S)
    except ConfigError as exc:
        raise config_problem(exc, {"printers": ""}) from None
    return json_response(applied)


@blueprint.get("/schema")
@tag(["printers"])
@requires(Role.OPERATOR)
async def schema() -> object:
    """Per model: the config fields (JSON Schema) and the rules templates follow."""
    return json_response(printer_schema())


# ---- one printer -------------------------------------------------------------------------------


@blueprint.get("/<int:index>/status")
@tag(["printers"])
@requires(Role.OPERATOR)
@document_response(PrinterEntry)
async def printer_status(index: int) -> object:
    """Connection, the last ~HS flags (paper out, paused, head open, ribbon out) and the queue."""
    return json_response(await _entry(index, await _at(index)))


@blueprint.post("/<int:index>/print")
@tag(["printers"])
@requires(Role.OPERATOR, write=True)
@body(PrintRequest)
@document_response(PrintAccepted, 202)
async def print_label(index: int, data: PrintRequest) -> object:
    """Render the template with `code` and `params` and queue the job: 202 once it is stored.

    A paused, paper-out or unreachable printer keeps the job (state held) and prints it when
    it is ready again; follow it at GET /jobs or on `device.printer.<name>.job`.
    """
    c = await _at(index, enabled=True)
    facade().runtime.directory.get(f"printer:{c.name}")  # not running -> 503, nothing journaled
    params = dict(data.params)
    template = params.pop(_TEMPLATE_PARAM, None)
    _command({"printer": c.name, "print": {"code": data.code, "params": data.params}})
    accepted = await _ask(c, PrintLabel(code=data.code, fields=params, template=template,
                                        by=current_principal().name))
    return json_response(accepted, status=202)


@blueprint.post("/<int:index>/test")
@tag(["printers"])
@requires(Role.ENGINEER, write=True)
async def test_printer(index: int) -> object:
    """Ask the printer for ~HS (prints nothing); an offline or DOWN printer reconnects now."""
    c = await _at(index, enabled=True)
    try:
        result: PrinterTest = await ask_actor(f"printer:{c.name}", TestPrinter())
        return json_response({"printer": c.name, "state": "UP" if result.connected else "DOWN",
                              **msgspec.to_builtins(result)})
    except ActorUnavailable:
        requested = await ask_actor("devices", RestartChild(f"printer:{c.name}"))
        entry = await _entry(index, c)
        return json_response({"printer": c.name, "state": entry.state, "ok": False,
                              "reconnect_requested": bool(requested),
                              "error": entry.last_error})


@blueprint.get("/<int:index>/jobs")
@tag(["printers"])
@requires(Role.OPERATOR)
@query(JobQuery)
@document_response(list[JobView])
async def list_print_jobs(index: int, q: JobQuery) -> object:
    """The printer's jobs, newest first; `state` filters, `before` (a job id) pages on."""
    c = await _at(index, enabled=True)
    found = await _ask(c, ListPrintJobs(state=q.state, before_id=q.before, limit=q.limit))
    return json_response([_job_view(job) for job in found])


# ---- templates ---------------------------------------------------------------------------------


@blueprint.get("/<int:index>/templates")
@tag(["printers"])
@requires(Role.OPERATOR)
@document_response(list[TemplateView])
async def list_printer_templates(index: int) -> object:
    """The printer's templates; `default` is built in until one of that name is stored."""
    return json_response(await _ask(await _at(index, enabled=True), ListTemplates()))


@blueprint.post("/<int:index>/templates")
@tag(["printers"])
@requires(Role.ENGINEER, write=True)
@body(NewTemplate)
@document_response(TemplateView, 201)
async def create_template(index: int, data: NewTemplate) -> object:
    """Store a new template, checked first (422 says what is wrong); 409 if the name is taken."""
    c = await _at(index, enabled=True)
    _command({"printer": c.name, "template": data.name, "create": data.body})
    view, _ = await _ask(c, PutTemplate(name=data.name, body=data.body, create=True,
                                        by=current_principal().name))
    return json_response(view, status=201)


@blueprint.get("/<int:index>/templates/<name>")
@tag(["printers"])
@requires(Role.OPERATOR)
@document_response(TemplateView)
async def get_printer_template(index: int, name: str) -> object:
    return json_response(await _ask(await _at(index, enabled=True), GetTemplate(name)))


@blueprint.put("/<int:index>/templates/<name>")
@tag(["printers"])
@requires(Role.ENGINEER, write=True)
@body(TemplateBody)
@document_response(TemplateView)
async def put_template(index: int, name: str, data: TemplateBody) -> object:
    """Create or replace a template (201 when created), checked first."""
    c = await _at(index, enabled=True)
    _command({"printer": c.name, "template": name, "put": data.body})
    view, created = await _ask(c, PutTemplate(name=name, body=data.body,
                                              by=current_principal().name))
    return json_response(view, status=201 if created else 200)


@blueprint.delete("/<int:index>/templates/<name>")
@tag(["printers"])
@requires(Role.ENGINEER, write=True)
async def delete_printer_template(index: int, name: str) -> object:
    """Drop a stored template (`default` falls back to the built-in one)."""
    c = await _at(index, enabled=True)
    _command({"printer": c.name, "template": name, "delete": True})
    await _ask(c, DeleteTemplate(name))
    return Response("", status=204)
