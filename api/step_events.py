"""/api/v1/step_events: seed 004's contract for step events (start, finish, daily summary).

Bodies are wrapped in `step_event` as the seed has them, and answers are shaped as the seed
shows (`event`, `step`, `recipe`, `part`; `range` and `tzrange` formatted as it formats them).
Refusals keep the seed's message as the `error` member of the problem document. A read-only
API key may GET; a write with it is 403 "This API key does not have write permissions",
before its body is even read. Writes go to the step events actor and are journaled as commands;
the summary is read by the query actors.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from typing import Annotated, Any

import msgspec
from msgspec import Meta
from quart import Blueprint
from quart_schema import document_response, tag

from actors.bridge import ask
from actors.query import pick_query_actor
from actors.step_events import FinishStepEvent, StartStepEvent, SummarizeStepEvents
from api.http import Handler, ask_actor, body, facade, json_response, query
from api.problems import FieldError, Problem
from api.security import current_principal, requires
from controller.access import Role, Scope
from controller.timefmt import rfc3339
from state.errors import StateError
from state.step_events import (
    InvalidEndTimestamp,
    InvalidStartTimestamp,
    MachineNotFound,
    NoActiveStepEvent,
    StepEventCreated,
    StepEventError,
    StepEventFinished,
    StepEventRow,
    UserNotFound,
)

__all__ = ["blueprint", "iso_time", "parse_time", "ruby_time", "week_of"]

blueprint = Blueprint("step_events", __name__, url_prefix="/api/v1/step_events")

READ_ONLY_KEY = "This API key does not have write permissions"

# A machine without an open event is a conflict with its state, not a missing resource: the
# machine exists (else "Machine not found", 404).
_STATUS: dict[type[StepEventError], int] = {
    MachineNotFound: 404,
    UserNotFound: 404,
    NoActiveStepEvent: 409,
    InvalidEndTimestamp: 422,
    InvalidStartTimestamp: 422,
}
_FIELD: dict[type[StepEventError], str] = {
    InvalidEndTimestamp: "step_event.end",
    InvalidStartTimestamp: "step_event.start",
}

_DAY_US = 86_400_000_000
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?"
    r"\s*(Z|z|UTC|[+-]\d{2}(?::?\d{2})?)?)?")


# ---- the seed's time formats ---------------------------------------------------------------------


def parse_time(text: str, *, end_of_day: bool = False) -> int:
    """Microseconds since the epoch of an RFC 3339 / ISO 8601 time, a `YYYY-MM-DD HH:MM:SS UTC`
    time as the seed prints them, or a date (UTC midnight; with `end_of_day`, the next one, so
    that a `to` date includes its day). A time without a zone is UTC; fractions beyond
    microseconds are cut. ValueError with the reason for anything else."""
    match = _TIME.fullmatch(text.strip())
    if match is None:
        raise ValueError("expected a date (2025-05-27) or a time (2025-05-27T10:00:00Z)")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        date = dt.date(int(year), int(month), int(day))
        clock = dt.time(int(hour or 0), int(minute or 0), int(second or 0),
                        int((fraction or "0").ljust(6, "0")[:6]))
    except ValueError as exc:
        raise ValueError(f"not a real date or time: {exc}") from None
    us = _us(dt.datetime.combine(date, clock, tzinfo=dt.UTC)) - _offset_us(zone)
    if hour is None and end_of_day:
        us += _DAY_US
    if us < 0:
        raise ValueError("times before 1970-01-01T00:00:00Z are not accepted")
    return us


def _us(stamp: dt.datetime) -> int:
    delta = stamp - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _offset_us(zone: str | None) -> int:
    if zone is None or zone in ("Z", "z", "UTC"):
        return 0
    digits = zone[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:] or 0)
    if hours > 23 or minutes > 59:
        raise ValueError(f"not a real UTC offset: {zone}")
    return (1 if zone[0] == "+" else -1) * (hours * 3600 + minutes * 60) * 1_000_000


def ruby_time(us: int) -> str:
    """`2025-05-27 10:00:00 UTC`, as the seed prints the ends of `range` (whole seconds)."""
    return (_EPOCH + dt.timedelta(microseconds=us)).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso_time(us: int) -> str:
    """`2025-05-27T10:00:00Z`, with a fraction only when there is one."""
    stamp = (_EPOCH + dt.timedelta(microseconds=us)).replace(tzinfo=None)
    text = stamp.isoformat(timespec="microseconds" if stamp.microsecond else "seconds")
    return (text.rstrip("0") if stamp.microsecond else text) + "Z"


def week_of(us: int) -> tuple[int, int]:
    """The UTC week around a time: Monday 00:00 to the next Monday 00:00 (microseconds)."""
    day = us // _DAY_US
    monday = day - (day + 3) % 7  # 1970-01-01 was a Thursday
    return monday * _DAY_US, (monday + 7) * _DAY_US


def _range(event: StepEventRow) -> str:
    end = "" if event.end_us is None else ruby_time(event.end_us)
    return f"{ruby_time(event.start_us)}...{end}"


def _tzrange(event: StepEventRow) -> str:
    end = "" if event.end_us is None else iso_time(event.end_us)
    return f"{iso_time(event.start_us)}..{end}"


def _version(version: str) -> int | str:
    """A recipe version as the seed shows it: a number when it is one."""
    return int(version) if re.fullmatch(r"0|[1-9]\d{0,17}", version) else version


def _metadata(event: StepEventRow) -> dict[str, Any]:
    metadata: dict[str, Any] = {"qty_expected": event.qty_expected, "wo_number": event.wo_number}
    if event.end_us is not None:
        metadata |= {"quantity_made": event.qty_made, "quantity_scrapped": event.qty_scrapped}
    return metadata


# ---- bodies and answers ------------------------------------------------------------------------

Label = Annotated[str, Meta(min_length=1, max_length=128)]
Seconds = Annotated[float, Meta(ge=0, le=10_000_000)]
Quantity = Annotated[int, Meta(ge=0, le=1_000_000_000)]
Stamp = Annotated[str, Meta(max_length=64, examples=["2025-05-27T10:00:00Z"])]


class _In(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class NewStepEvent(_In, frozen=True, kw_only=True, forbid_unknown_fields=True):
    machine_display_name: Label
    start: Stamp
    user_email: Annotated[str, Meta(min_length=3, max_length=254)]
    part_unique_identifier: Label
    recipe_version: Label | Annotated[int, Meta(ge=0)]
    step_number: Label | Annotated[int, Meta(ge=0)]
    step_expected_cycle_time: Seconds | None = None
    step_expected_setup_time: Seconds | None = None
    qty_expected: Quantity | None = None
    wo_number: Annotated[str, Meta(max_length=128)] | None = None


class StartBody(_In, frozen=True, kw_only=True, forbid_unknown_fields=True):
    step_event: NewStepEvent


class EndStepEvent(_In, frozen=True, kw_only=True, forbid_unknown_fields=True):
    machine_display_name: Label
    end: Stamp | None = None
    qty_made: Quantity | None = None
    qty_scrapped: Quantity | None = None


class FinishBody(_In, frozen=True, kw_only=True, forbid_unknown_fields=True):
    step_event: EndStepEvent


class SummaryQuery(_In, frozen=True, kw_only=True, forbid_unknown_fields=True):
    from_: Annotated[str, Meta(max_length=64)] | None = msgspec.field(name="from", default=None)
    to: Annotated[str, Meta(max_length=64)] | None = None
    machine_ids: Annotated[str, Meta(max_length=4096, examples=["1,2,3"])] | None = None


class DayRow(msgspec.Struct, frozen=True, kw_only=True):
    date: str
    machine: str
    machine_id: int
    events_count: int
    total_cycle_time: float  # seconds, of the finished events


class Summary(msgspec.Struct, frozen=True, kw_only=True):
    data: list[DayRow]


class EventView(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    machine_id: int
    machine_name: str
    range: str
    tzrange: str
    start: str
    end: str | None
    eventable_type: str
    eventable_id: int
    ending_type: str
    deleted_at: None
    metadata: dict[str, Any]
    created_at: str
    updated_at: str
    user_id: int | None
    operator_id: int | None
    display_name: str
    source: str


class StepView(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    machine_id: None
    recipe_id: int
    number: str
    description: str | None
    created_at: str
    updated_at: str
    expected_cycle_time: float | None
    expected_setup_time: float | None


class RecipeView(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    organisation_id: None
    part_id: int
    description: str | None
    created_at: str
    updated_at: str
    version: int | str


class PartView(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    unique_identifier: str
    organisation_id: None
    description: str | None
    created_at: str
    updated_at: str


class Started(msgspec.Struct, frozen=True, kw_only=True):
    event: EventView
    step: StepView
    recipe: RecipeView
    part: PartView


class FinishedEvent(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    machine_id: int
    user_id: int | None
    operator_id: int | None
    tzrange: str
    range: str
    start: str
    end: str
    ending_type: str
    metadata: dict[str, Any]


class Finished(msgspec.Struct, frozen=True, kw_only=True):
    event: FinishedEvent


def _started(created: StepEventCreated) -> Started:
    e, s, r, p = created.event, created.step, created.recipe, created.part
    return Started(
        event=EventView(
            id=e.id, machine_id=e.machine_id, machine_name=created.machine.name,
            range=_range(e), tzrange=_range(e), start=iso_time(e.start_us),
            end=None if e.end_us is None else iso_time(e.end_us), eventable_type="Step",
            eventable_id=s.id, ending_type=e.ending_type, deleted_at=None,
            metadata=_metadata(e), created_at=rfc3339(e.created_us),
            updated_at=rfc3339(e.updated_us), user_id=e.user_id, operator_id=e.operator_id,
            display_name=f"{p.unique_identifier} Op{s.number}", source=e.source),
        step=StepView(id=s.id, machine_id=None, recipe_id=s.recipe_id, number=s.number,
                      description=s.description, created_at=rfc3339(s.created_us),
                      updated_at=rfc3339(s.updated_us), expected_cycle_time=s.expected_cycle_s,
                      expected_setup_time=s.expected_setup_s),
        recipe=RecipeView(id=r.id, organisation_id=None, part_id=r.part_id,
                          description=r.description, created_at=rfc3339(r.created_us),
                          updated_at=rfc3339(r.updated_us), version=_version(r.version)),
        part=PartView(id=p.id, unique_identifier=p.unique_identifier, organisation_id=None,
                      description=p.description, created_at=rfc3339(p.created_us),
                      updated_at=rfc3339(p.updated_us)))


def _finished(done: StepEventFinished) -> Finished:
    e = done.event
    assert e.end_us is not None  # a finished event has its end
    return Finished(event=FinishedEvent(
        id=e.id, machine_id=e.machine_id, user_id=e.user_id, operator_id=e.operator_id,
        tzrange=_tzrange(e), range=_range(e), start=iso_time(e.start_us), end=iso_time(e.end_us),
        ending_type=e.ending_type, metadata=_metadata(e)))


# ---- plumbing ----------------------------------------------------------------------------------


def _writable(fn: Handler) -> Handler:
    """After `requires`: a read-only API key is refused with the seed's message."""

    @functools.wraps(fn)
    async def handler(*args: Any, **kwargs: Any) -> Any:
        principal = current_principal()
        if principal.kind == "api_key" and principal.scope is not Scope.READ_WRITE:
            raise Problem(403, f"{principal.name} is a read-only API key; step events are "
                               "written with a read_write key",
                          extensions={"error": READ_ONLY_KEY})
        return await fn(*args, **kwargs)

    return handler


def _time(text: str, field: str, *, error: str | None = None, end_of_day: bool = False,
          status: int = 422) -> int:
    try:
        return parse_time(text, end_of_day=end_of_day)
    except ValueError as exc:
        raise Problem(status, f"{field} is not a time: {exc}",
                      errors=[FieldError(field=field, message=str(exc))],
                      extensions={"error": error} if error else None) from None


async def _write(what: dict[str, Any], message: Any) -> Any:
    facade().runtime.ingest.command("api", {"by": current_principal().name, **what})
    try:
        return await ask_actor("step_events", message)
    except StepEventError as exc:
        field = _FIELD.get(type(exc))
        raise Problem(_STATUS.get(type(exc), 422), exc.detail,
                      errors=[FieldError(field=field, message=str(exc))] if field else None,
                      extensions={"error": str(exc)}) from None
    except StateError as exc:
        raise Problem(503, f"the step event store is unavailable: {exc}",
                      headers={"Retry-After": "5"}) from None


def _machine_ids(text: str | None) -> list[int] | None:
    if text is None or not text.strip():
        return None
    try:
        ids = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise Problem(400, "invalid query parameters", errors=[FieldError(
            field="machine_ids", message="expected machine ids separated by commas, e.g. 1,2,3")]
        ) from None
    if any(not 0 < i < 2**63 for i in ids):
        raise Problem(400, "invalid query parameters", errors=[FieldError(
            field="machine_ids", message="machine ids are positive 64-bit integers")])
    return ids


# ---- routes ------------------------------------------------------------------------------------


@blueprint.get("")
@tag(["step events"])
@requires(Role.OPERATOR)
@query(SummaryQuery)
@document_response(Summary)
async def step_events_by_day(q: SummaryQuery) -> object:
    """Step events per UTC date and machine, with their summed cycle time.

    Counts the events that started in [from, to) and sums the cycle time (seconds) of the
    finished ones. from/to are dates or RFC 3339 times; a `to` date includes its day; both
    default to the current week (Monday 00:00 UTC to the next Monday). machine_ids:
    comma-separated ids (default: every machine)."""
    f = facade()
    week_start, week_end = week_of(f.runtime.clock.now_us())
    from_us = week_start if q.from_ is None else _time(q.from_, "from", status=400)
    to_us = week_end if q.to is None else _time(q.to, "to", end_of_day=True, status=400)
    if from_us >= to_us:
        raise Problem(400, "invalid query parameters", errors=[FieldError(
            field="to", message="must be after from")])
    message = SummarizeStepEvents(from_us=from_us, to_us=to_us,
                                  machine_ids=_machine_ids(q.machine_ids))
    try:
        days = await ask(f.runtime, pick_query_actor(f.runtime.directory), message,
                         f.ask_timeout_s)
    except StateError as exc:
        raise Problem(503, f"the step event store is unavailable: {exc}",
                      headers={"Retry-After": "5"}) from None
    return json_response(Summary(data=[
        DayRow(date=d.date, machine=d.machine, machine_id=d.machine_id,
               events_count=d.events_count, total_cycle_time=d.total_cycle_us / 1_000_000)
        for d in days]))


@blueprint.post("")
@tag(["step events"])
@requires(Role.OPERATOR)
@_writable
@body(StartBody)
@document_response(Started, 201)
async def start_step_event(data: StartBody) -> object:
    """Start a step event on a machine.

    The machine is named by display name; part, recipe version and step are created on first
    use; `user_email` names an operator or a Takt user. The machine's open event, if any, is
    finished at this start (ending_type `auto`)."""
    e = data.step_event
    start_us = _time(e.start, "step_event.start", error=InvalidStartTimestamp.message)
    message = StartStepEvent(
        machine=e.machine_display_name, start_us=start_us, user_email=e.user_email,
        part=e.part_unique_identifier, recipe_version=str(e.recipe_version),
        step_number=str(e.step_number), expected_cycle_s=e.step_expected_cycle_time,
        expected_setup_s=e.step_expected_setup_time, qty_expected=e.qty_expected,
        wo_number=e.wo_number)
    created = await _write({"step_events": "start", **msgspec.to_builtins(e)}, message)
    return json_response(_started(created), 201)


@blueprint.patch("/finish")
@tag(["step events"])
@requires(Role.OPERATOR)
@_writable
@body(FinishBody)
@document_response(Finished)
async def finish_step_event(data: FinishBody) -> object:
    """Finish the machine's open step event.

    At `end` (default: now), with the quantities made and scrapped; 409 if the machine has no
    open event, 422 if `end` is before its start."""
    e = data.step_event
    end_us = (None if e.end is None
              else _time(e.end, "step_event.end", error=InvalidEndTimestamp.message))
    done = await _write({"step_events": "finish", **msgspec.to_builtins(e)}, FinishStepEvent(
        machine=e.machine_display_name, end_us=end_us, qty_made=e.qty_made,
        qty_scrapped=e.qty_scrapped))
    return json_response(_finished(done))
