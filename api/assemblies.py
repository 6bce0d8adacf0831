"""/api/v1/assembly-revisions, /assemblies, /steps, /step-data and /assembly-records (seed 000
"Assembly Revisions", "Assemblies", "Steps", "Assembly Records"): what the sequencer coaches and
what each session left behind.

Writes go to the assemblies actor, which checks every change against the dependency rules
(an OCR_VERIFY needs an earlier capture) in the change's own transaction; a published version
is frozen (409: copy it). Every write is journaled as a command.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from msgspec import Meta
from quart import Blueprint, Response
from quart_schema import tag

from actors.assemblies import AssemblyCall
from api.http import ask_actor, body, facade, json_response, query
from api.problems import Problem
from api.security import current_principal, requires
from controller.access import Role
from controller.assembly import ActionType, StepData
from state.assemblies import DependencyError, Frozen
from state.errors import ConstraintError, DuplicateError, NotFound

__all__ = ["blueprint"]

blueprint = Blueprint("assemblies", __name__, url_prefix="/api/v1")

Text = Annotated[str, Meta(max_length=4096)]
Link = Annotated[str, Meta(max_length=2048)]
Title = Annotated[str, Meta(min_length=1, max_length=128)]
Fraction = Annotated[float, Meta(ge=0.0, le=1.0)]
Seconds = Annotated[float, Meta(ge=0.0, le=86_400.0)]
Id = Annotated[int, Meta(ge=1, le=2**63 - 1)]
Position = Annotated[int, Meta(ge=0, le=10_000)]


class _In(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class RevisionIn(_In, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Title
    description: Text = ""
    image_link: Link | None = None


class ActiveIn(_In, frozen=True, kw_only=True, forbid_unknown_fields=True):
    assembly_id: Id


class AssemblyIn(_In, frozen=True, kw_only=True, forbid_unknown_fields=True):
    revision_id: Id
    name: Title
    description: Text = ""
    image_link: Link | None = None
    product_version: Title | None = None
    model_version: Title | None = None
    notes: Text = ""
    record_videos: bool = False


class AssemblyPatch(_In, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    name: Title | None = None
    description: Text | None = None
    image_link: Link | None = None
    product_version: Title | None = None
    model_version: Title | None = None
    notes: Text | None = None
    record_videos: bool | None = None


class Augmentation(_In, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Seed 000's augmentation strengths for training the assembly's model, 0..1 each."""

    lighting_aug: Fraction = 0.0
    placement_aug: Fraction = 0.0
    color_aug: Fraction = 0.0


class PublishIn(_In, frozen=True, kw_only=True, forbid_unknown_fields=True):
    approver: Title | None = None


InfoKey = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[a-z_][a-z0-9_]*(?!\n)$")]
InfoValue = Annotated[str, Meta(max_length=1024)]


class StepDataIn(_In, frozen=True, kw_only=True, forbid_unknown_fields=True):
    action: ActionType
    infos: dict[InfoKey, InfoValue] = {}


class StepIn(_In, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Title
    description: Text = ""
    image_link: Link | None = None
    video_link: Link | None = None
    overlay_link: Link | None = None
    minimum_predict: Fraction = 0.0
    benchmark_s: Seconds = 0.0
    roi_zoom: Title | None = None
    camera_id: Title | None = None
    perspective_change: bool = False
    mask_perspective: bool = False
    training_required: bool = False
    classes: Annotated[list[Title], Meta(max_length=256)] = []
    position: Position | None = None
    """Where to insert; by default appended."""
    data: Annotated[list[StepDataIn], Meta(max_length=32)] = []


class StepPatch(_In, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    name: Title | None = None
    description: Text | None = None
    image_link: Link | None = None
    video_link: Link | None = None
    overlay_link: Link | None = None
    minimum_predict: Fraction | None = None
    benchmark_s: Seconds | None = None
    roi_zoom: Title | None = None
    camera_id: Title | None = None
    perspective_change: bool | None = None
    mask_perspective: bool | None = None
    training_required: bool | None = None
    classes: Annotated[list[Title], Meta(max_length=256)] | None = None


class MoveIn(_In, frozen=True, kw_only=True, forbid_unknown_fields=True):
    position: Position


class CopyIn(_In, frozen=True, kw_only=True, forbid_unknown_fields=True):
    position: Position | None = None


class InfoIn(_In, frozen=True, kw_only=True, forbid_unknown_fields=True):
    key: InfoKey
    value: InfoValue


class AssembliesQuery(_In, frozen=True, kw_only=True, forbid_unknown_fields=True):
    revision_id: Id | None = None


class RecordsQuery(_In, frozen=True, kw_only=True, forbid_unknown_fields=True):
    assembly_id: Id | None = None
    operator_id: Id | None = None
    outcome: Annotated[str, Meta(pattern=r"^(ok|nok|incomplete|aborted)(?!\n)$")] | None = None
    limit: Annotated[int, Meta(ge=1, le=1000)] = 100
    cursor: Id | None = None


class MetricsQuery(_In, frozen=True, kw_only=True, forbid_unknown_fields=True):
    assembly_id: Id | None = None
    operator_id: Id | None = None


class PerformanceQuery(_In, frozen=True, kw_only=True, forbid_unknown_fields=True):
    operator_id: Id | None = None


# ---- plumbing ----------------------------------------------------------------------------------


@contextmanager
def _refusals() -> Iterator[None]:
    try:
        yield
    except NotFound as exc:
        raise Problem(404, str(exc)) from None
    except (Frozen, DependencyError, DuplicateError) as exc:
        raise Problem(409, str(exc)) from None
    except ConstraintError as exc:
        raise Problem(409, str(exc)) from None
    except ValueError as exc:
        raise Problem(422, str(exc)) from None


async def _call(function: str, journal: dict[str, Any] | None = None, **args: Any) -> Any:
    if journal is not None:
        facade().runtime.ingest.command("api", {"by": current_principal().name,
                                                "assemblies": function, **journal})
    with _refusals():
        return await ask_actor("assemblies", AssemblyCall(function=function, args=args))


def _given(data: msgspec.Struct) -> dict[str, Any]:
    return {k: v for k, v in msgspec.structs.asdict(data).items() if v is not None}


def _step_fields(data: msgspec.Struct) -> dict[str, Any]:
    """The step columns of a body: `classes` is kept as JSON."""
    fields = {k: v for k, v in _given(data).items() if k not in ("position", "data")}
    if "classes" in fields:
        fields["classes"] = msgspec.json.encode(fields["classes"]).decode()
    return fields


def _data(items: list[StepDataIn]) -> list[StepData]:
    return [StepData(action=d.action, infos=dict(d.infos)) for d in items]


# ---- revisions and assemblies ------------------------------------------------------------------


@blueprint.get("/assembly-revisions")
@tag(["assemblies"])
@requires(Role.OPERATOR)
async def list_revisions() -> object:
    """Every assembly revision (a product's family of versions)."""
    return json_response(await _call("list_revisions"))


@blueprint.post("/assembly-revisions")
@tag(["assemblies"])
@requires(Role.ENGINEER, write=True)
@body(RevisionIn)
async def create_revision(data: RevisionIn) -> object:
    """A new revision (name unique; 409 otherwise)."""
    row = await _call("create_revision", msgspec.to_builtins(data), **_given(data))
    return json_response(row, status=201)


@blueprint.get("/assembly-revisions/coachable")
@tag(["assemblies"])
@requires(Role.OPERATOR)
async def coachable() -> object:
    """Per revision, the version to coach: its active one, else its latest published."""
    return json_response(await _call("coachable"))


@blueprint.get("/assembly-revisions/<int:revision_id>")
@tag(["assemblies"])
@requires(Role.OPERATOR)
async def get_revision(revision_id: int) -> object:
    """The revision and all its versions."""
    revision = await _call("get_revision", revision_id=revision_id)
    versions = await _call("list_assemblies", revision_id=revision_id)
    return json_response({**msgspec.to_builtins(revision), "assemblies": versions})


@blueprint.put("/assembly-revisions/<int:revision_id>/active")
@tag(["assemblies"])
@requires(Role.ENGINEER, write=True)
@body(ActiveIn)
async def set_active(revision_id: int, data: ActiveIn) -> object:
    """Make a published version the one coached for this revision."""
    return json_response(await _call("set_active_assembly", {"revision_id": revision_id,
                                                             "assembly_id": data.assembly_id},
                                     revision_id=revision_id, assembly_id=data.assembly_id))


@blueprint.get("/assemblies")
@tag(["assemblies"])
@requires(Role.OPERATOR)
@query(AssembliesQuery)
async def list_assemblies(q: AssembliesQuery) -> object:
    """Every assembly (version), or those of one revision."""
    return json_response(await _call("list_assemblies", revision_id=q.revision_id))


@blueprint.post("/assemblies")
@tag(["assemblies"])
@requires(Role.ENGINEER, write=True)
@body(AssemblyIn)
async def create_assembly(data: AssemblyIn) -> object:
    """A new, empty, unpublished version of a revision (numbered after the last)."""
    row = await _call("create_assembly", msgspec.to_builtins(data), **_given(data))
    return json_response(row, status=201)


@blueprint.get("/assemblies/<int:assembly_id>")
@tag(["assemblies"])
@requires(Role.OPERATOR)
async def get_assembly(assembly_id: int) -> object:
    """The assembly with its steps, step data and infos."""
    row = await _call("get_assembly", assembly_id=assembly_id)
    steps = await _call("list_steps", assembly_id=assembly_id)
    return json_response({**msgspec.to_builtins(row), "steps": steps})


@blueprint.patch("/assemblies/<int:assembly_id>")
@tag(["assemblies"])
@requires(Role.ENGINEER, write=True)
@body(AssemblyPatch)
async def update_assembly(assembly_id: int, data: AssemblyPatch) -> object:
    """Descriptive fields; allowed on a published version too (its steps stay frozen)."""
    fields = _given(data)
    if not fields:
        raise Problem(422, "give at least one field to change")
    return json_response(await _call("update_assembly", {"id": assembly_id, **fields},
                                     assembly_id=assembly_id, **fields))


@blueprint.post("/assemblies/<int:assembly_id>/touch")
@tag(["assemblies"])
@requires(Role.ENGINEER, write=True)
async def touch(assembly_id: int) -> object:
    """Set last_edited to now."""
    return json_response(await _call("touch_assembly", assembly_id=assembly_id))


@blueprint.post("/assemblies/<int:assembly_id>/publish")
@tag(["assemblies"])
@requires(Role.ENGINEER, write=True)
@body(PublishIn)
async def publish(assembly_id: int, data: PublishIn) -> object:
    """Freeze the version for coaching; 409 if it could not be coached as it stands."""
    approver = data.approver or current_principal().name
    return json_response(await _call("publish_assembly", {"id": assembly_id,
                                                          "approver": approver},
                                     assembly_id=assembly_id, approver=approver))


@blueprint.post("/assemblies/<int:assembly_id>/copy")
@tag(["assemblies"])
@requires(Role.ENGINEER, write=True)
async def copy_assembly(assembly_id: int) -> object:
    """The next version of the revision, unpublished, with copies of every step."""
    row = await _call("copy_assembly", {"id": assembly_id}, assembly_id=assembly_id)
    return json_response(row, status=201)


@blueprint.get("/assemblies/<int:assembly_id>/augmentation")
@tag(["assemblies"])
@requires(Role.OPERATOR)
async def get_augmentation(assembly_id: int) -> object:
    row = await _call("get_assembly", assembly_id=assembly_id)
    return json_response(Augmentation(lighting_aug=row.lighting_aug,
                                      placement_aug=row.placement_aug, color_aug=row.color_aug))


@blueprint.put("/assemblies/<int:assembly_id>/augmentation")
@tag(["assemblies"])
@requires(Role.ENGINEER, write=True)
@body(Augmentation)
async def put_augmentation(assembly_id: int, data: Augmentation) -> object:
    """Lighting, placement and colour augmentation strengths (0..1) for model training."""
    fields = msgspec.structs.asdict(data)
    await _call("update_assembly", {"id": assembly_id, **fields}, assembly_id=assembly_id,
                **fields)
    return json_response(data)


@blueprint.get("/assemblies/<int:assembly_id>/ocr_capture_variables")
@tag(["assemblies"])
@requires(Role.OPERATOR)
async def capture_variables(assembly_id: int) -> object:
    """The variables the assembly's steps capture and verify, with where."""
    from controller.assembly import captures, needs

    assembly = await _call("load_assembly", assembly_id=assembly_id)
    found: dict[str, dict[str, Any]] = {}
    for index, step in enumerate(assembly.steps):
        for name in sorted(captures(step)):
            found.setdefault(name, {"name": name, "captured_by": [], "verified_by": []})[
                "captured_by"].append({"step_index": index, "step_id": step.id})
        for name in sorted(needs(step)):
            found.setdefault(name, {"name": name, "captured_by": [], "verified_by": []})[
                "verified_by"].append({"step_index": index, "step_id": step.id})
    return json_response(list(found.values()))


# ---- steps -------------------------------------------------------------------------------------


@blueprint.get("/assemblies/<int:assembly_id>/steps")
@tag(["assemblies"])
@requires(Role.OPERATOR)
async def list_steps(assembly_id: int) -> object:
    return json_response(await _call("list_steps", assembly_id=assembly_id))


@blueprint.post("/assemblies/<int:assembly_id>/steps")
@tag(["assemblies"])
@requires(Role.ENGINEER, write=True)
@body(StepIn)
async def add_step(assembly_id: int, data: StepIn) -> object:
    """Append (or insert at position) a step with its step data; 422 if a step data's infos
    cannot be coached, 409 if it breaks a dependency or the version is published."""
    fields = _step_fields(data)
    row = await _call("add_step", {"assembly_id": assembly_id, **msgspec.to_builtins(data)},
                      assembly_id=assembly_id, position=data.position, data=_data(data.data),
                      **fields)
    return json_response(row, status=201)


@blueprint.delete("/assemblies/<int:assembly_id>/steps/<int:step_num>/perspective")
@tag(["assemblies"])
@requires(Role.ENGINEER, write=True)
async def delete_perspective(assembly_id: int, step_num: int) -> object:
    """Seed 000's "delete a step's perspective": the step at position step_num no longer
    shows or masks another camera perspective."""
    row = await _call("delete_perspective", {"assembly_id": assembly_id,
                                             "delete_perspective": step_num},
                      assembly_id=assembly_id, position=step_num)
    return json_response({"id": row.id})


@blueprint.get("/steps/<int:step_id>")
@tag(["assemblies"])
@requires(Role.OPERATOR)
async def get_step(step_id: int) -> object:
    return json_response(await _call("get_step", step_id=step_id))


@blueprint.patch("/steps/<int:step_id>")
@tag(["assemblies"])
@requires(Role.ENGINEER, write=True)
@body(StepPatch)
async def update_step(step_id: int, data: StepPatch) -> object:
    fields = _step_fields(data)
    if not fields:
        raise Problem(422, "give at least one field to change")
    return json_response(await _call("update_step", {"step_id": step_id, **fields},
                                     step_id=step_id, **fields))


@blueprint.delete("/steps/<int:step_id>")
@tag(["assemblies"])
@requires(Role.ENGINEER, write=True)
async def delete_step(step_id: int) -> object:
    """409 with the reason when a later step verifies what this one captures."""
    await _call("delete_step", {"delete_step": step_id}, step_id=step_id)
    return Response(status=204)


@blueprint.get("/steps/<int:step_id>/moves")
@tag(["assemblies"])
@requires(Role.OPERATOR)
async def step_moves(step_id: int) -> object:
    """Where the step may move without breaking a dependency, and whether it may be deleted."""
    allowed, problems = await _call("step_moves", step_id=step_id)
    return json_response({"step_id": step_id, "may_move_to": allowed,
                          "may_delete": not problems, "why_not": problems})


@blueprint.post("/steps/<int:step_id>/move")
@tag(["assemblies"])
@requires(Role.ENGINEER, write=True)
@body(MoveIn)
async def move_step(step_id: int, data: MoveIn) -> object:
    """409 naming the positions allowed when the move would break a dependency."""
    return json_response(await _call("move_step", {"step_id": step_id,
                                                   "position": data.position},
                                     step_id=step_id, position=data.position))


@blueprint.post("/steps/<int:step_id>/copy")
@tag(["assemblies"])
@requires(Role.ENGINEER, write=True)
@body(CopyIn)
async def copy_step(step_id: int, data: CopyIn) -> object:
    """A copy with its data, right after the step or at position."""
    row = await _call("copy_step", {"copy_step": step_id, "position": data.position},
                      step_id=step_id, position=data.position)
    return json_response(row, status=201)


@blueprint.get("/steps/<int:step_id>/data")
@tag(["assemblies"])
@requires(Role.OPERATOR)
async def step_data(step_id: int) -> object:
    return json_response((await _call("get_step", step_id=step_id)).data)


@blueprint.post("/steps/<int:step_id>/data")
@tag(["assemblies"])
@requires(Role.ENGINEER, write=True)
@body(StepDataIn)
async def add_step_data(step_id: int, data: StepDataIn) -> object:
    row = await _call("add_step_data", {"step_id": step_id, **msgspec.to_builtins(data)},
                      step_id=step_id, action=data.action, infos=dict(data.infos))
    return json_response(row, status=201)


@blueprint.delete("/step-data/<int:step_data_id>")
@tag(["assemblies"])
@requires(Role.ENGINEER, write=True)
async def delete_step_data(step_data_id: int) -> object:
    return json_response(await _call("delete_step_data", {"delete_step_data": step_data_id},
                                     step_data_id=step_data_id))


@blueprint.put("/step-data/<int:step_data_id>/infos")
@tag(["assemblies"])
@requires(Role.ENGINEER, write=True)
@body(InfoIn)
async def set_info(step_data_id: int, data: InfoIn) -> object:
    """Add or change one key/value (step data info); 422 if the data would not coach."""
    return json_response(await _call("set_step_data_info",
                                     {"step_data_id": step_data_id, "key": data.key,
                                      "value": data.value},
                                     step_data_id=step_data_id, key=data.key, value=data.value))


@blueprint.delete("/step-data/<int:step_data_id>/infos/<key>")
@tag(["assemblies"])
@requires(Role.ENGINEER, write=True)
async def delete_info(step_data_id: int, key: str) -> object:
    return json_response(await _call("delete_step_data_info",
                                     {"step_data_id": step_data_id, "delete_key": key},
                                     step_data_id=step_data_id, key=key))


# ---- assembly records --------------------------------------------------------------------------


@blueprint.get("/assembly-records")
@tag(["records"])
@requires(Role.OPERATOR)
@query(RecordsQuery)
async def list_records(q: RecordsQuery) -> object:
    """Coaching sessions, newest first (filters: assembly, operator, outcome; cursor = the
    last id seen). The first of `?assembly_id=` or `?operator_id=` is the most recent one."""
    return json_response(await _call("list_records", **_given(q)))


@blueprint.get("/assembly-records/metrics")
@tag(["records"])
@requires(Role.OPERATOR)
@query(MetricsQuery)
async def record_metrics(q: MetricsQuery) -> object:
    """Counts per outcome, first-pass yield and cycle times of finished records."""
    return json_response(await _call("record_metrics", **_given(q)))


@blueprint.get("/assembly-records/<int:record_id>")
@tag(["records"])
@requires(Role.OPERATOR)
async def get_record(record_id: int) -> object:
    """The record with its step records (start, end, cycle vs benchmark, result, evidence)."""
    row = await _call("get_record", record_id=record_id)
    steps = await _call("step_records", record_id=record_id)
    return json_response({**msgspec.to_builtins(row), "steps": steps})


@blueprint.get("/assemblies/<int:assembly_id>/step-performance")
@tag(["records"])
@requires(Role.OPERATOR)
@query(PerformanceQuery)
async def step_performance(assembly_id: int, q: PerformanceQuery) -> object:
    """Per step: runs, OK, reworks, mean/median cycle vs benchmark (optionally one operator)."""
    return json_response(await _call("step_performance", assembly_id=assembly_id,
                                     operator_id=q.operator_id))


@blueprint.get("/assembly-records/<int:record_id>/report")
@tag(["records"])
@requires(Role.OPERATOR)
async def qa_report(record_id: int) -> object:
    """The record's QA report as printable HTML (print it to PDF from any browser)."""
    row = await _call("get_record", record_id=record_id)
    steps = await _call("step_records", record_id=record_id)
    assembly = await _call("get_assembly", assembly_id=row.assembly_id)
    return Response(_report(row, steps, assembly, facade().station.station.name),
                    content_type="text/html; charset=utf-8")


def _when(us: int | None) -> str:
    if us is None:
        return "-"
    return datetime.fromtimestamp(us / 1e6, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _report(row: Any, steps: list[Any], assembly: Any, station: str) -> str:
    e = html.escape
    outcome = (row.outcome or "open").upper()
    lines = []
    for s in steps:
        result = "OK" if s.ok else ("SKIPPED" if s.skipped else ("-" if s.ok is None else "NOK"))
        over = (s.cycle_s is not None and s.benchmark_s > 0 and s.cycle_s > s.benchmark_s)
        evidence = ", ".join(str(x) for x in msgspec.json.decode(s.evidence)) or "-"
        lines.append(
            f"<tr><td>{s.step_index + 1}</td><td>{e(s.name)}</td><td>{_when(s.started_us)}</td>"
            f"<td>{'-' if s.cycle_s is None else f'{s.cycle_s:.1f} s'}</td>"
            f"<td>{s.benchmark_s:.1f} s</td><td class='{'over' if over else ''}'>"
            f"{'over' if over else 'within'}</td><td>{result}"
            f"{' (reworked)' if s.reworked else ''}</td><td>{e(evidence)}</td></tr>")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>QA report - record {row.id}</title>
<style>body{{font:12pt sans-serif;margin:2em}} table{{border-collapse:collapse;width:100%}}
td,th{{border:1px solid #999;padding:4px 6px;text-align:left}} .over{{color:#b00}}
.outcome{{font-size:18pt;font-weight:bold}} @page{{size:A4;margin:15mm}}</style></head>
<body><h1>QA report</h1>
<p class="outcome">Outcome: {e(outcome)}</p>
<table>
<tr><th>Assembly record</th><td>{row.id}</td><th>Station</th><td>{e(station)}</td></tr>
<tr><th>Assembly</th><td>{e(assembly.name)} (version {assembly.version})</td>
<th>Operator</th><td>{row.operator_id if row.operator_id is not None else '-'}</td></tr>
<tr><th>Work order</th><td>{e(row.work_order or '-')}</td>
<th>Part serial</th><td>{e(row.part_serial or '-')}</td></tr>
<tr><th>Started</th><td>{_when(row.started_us)}</td><th>Ended</th><td>{_when(row.ended_us)}</td></tr>
<tr><th>Released</th><td>{'yes' if row.released else 'no'}</td>
<th>Reason</th><td>{e(row.reason or '-')}</td></tr>
</table>
<h2>Steps</h2>
<table><tr><th>#</th><th>Step</th><th>Started</th><th>Cycle</th><th>Benchmark</th><th>vs.</th>
<th>Result</th><th>Evidence</th></tr>
{''.join(lines)}
</table></body></html>
"""
