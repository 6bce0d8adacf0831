"""Step events (tables of migration 0009), as plain functions over a cursor, shared by the
sequencer (which writes an event as each coached step starts and finishes) and the
/api/v1/step_events facade.

A machine has at most one open event (end_us NULL). `start_step_event` finishes the open one
at the new event's start (ending_type 'auto') in the same transaction, so a machine that
missed a finish is never left with two open events; `finish_step_event` finishes it by hand
(ending_type 'manual'). Refusals are StepEventError subclasses whose message is seed 004's
error text; nothing is written when one is raised.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar, TypeVar

import duckdb
import msgspec

from state._sql import fetch_one, must, transaction
from state.errors import translated_errors
from state.operators import find_operator_by_email, get_operator

__all__ = [
    "STATION_MACHINE_ID",
    "DaySummary",
    "InvalidEndTimestamp",
    "InvalidStartTimestamp",
    "MachineNotFound",
    "MachineRow",
    "NoActiveStepEvent",
    "PartRow",
    "RecipeRow",
    "RecipeStepRow",
    "StepEventCreated",
    "StepEventError",
    "StepEventFinished",
    "StepEventRow",
    "UserNotFound",
    "add_machine",
    "ensure_station_machine",
    "finish_step_event",
    "get_machine",
    "get_step_event",
    "list_machines",
    "open_step_event",
    "start_step_event",
    "step_event_summary",
]

STATION_MACHINE_ID = 1
"""The station itself is machine 1."""

_DAY_US = 86_400_000_000
_EPOCH = dt.date(1970, 1, 1)

R = TypeVar("R", bound=msgspec.Struct)


# ---- refusals ----------------------------------------------------------------------------------


class StepEventError(Exception):
    """A refused step event; str() is the seed's error text, `detail` says more."""

    message: ClassVar[str] = "Invalid step event"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(self.message)
        self.detail = detail or self.message


class MachineNotFound(StepEventError):
    message = "Machine not found"


class UserNotFound(StepEventError):
    message = "User not found"


class NoActiveStepEvent(StepEventError):
    message = "No active step event found for this machine"


class InvalidEndTimestamp(StepEventError):
    message = "Invalid end timestamp"


class InvalidStartTimestamp(StepEventError):
    """A start before the start of the machine's open event, which it would have to finish."""

    message = "Invalid start timestamp"


# ---- rows --------------------------------------------------------------------------------------


class MachineRow(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    name: str
    display_name: str
    created_us: int
    updated_us: int


class PartRow(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    unique_identifier: str
    description: str | None
    created_us: int
    updated_us: int


class RecipeRow(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    part_id: int
    version: str
    description: str | None
    created_us: int
    updated_us: int


class RecipeStepRow(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    recipe_id: int
    number: str
    description: str | None
    expected_cycle_s: float | None
    expected_setup_s: float | None
    created_us: int
    updated_us: int


class StepEventRow(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    machine_id: int
    step_id: int
    operator_id: int | None
    user_id: int | None
    start_us: int
    end_us: int | None  # None while open
    qty_expected: int | None
    wo_number: str | None
    qty_made: int | None
    qty_scrapped: int | None
    ending_type: str  # manual | auto
    source: str  # api | sequencer
    record_id: int | None
    created_us: int
    updated_us: int


class StepEventCreated(msgspec.Struct, frozen=True, kw_only=True):
    event: StepEventRow
    machine: MachineRow
    step: RecipeStepRow
    recipe: RecipeRow
    part: PartRow
    finished: StepEventRow | None = None
    """The machine's open event that this start finished (ending_type 'auto'), if any."""


class StepEventFinished(msgspec.Struct, frozen=True, kw_only=True):
    event: StepEventRow
    machine: MachineRow


class DaySummary(msgspec.Struct, frozen=True, kw_only=True):
    """Events of one machine that started on one UTC date."""

    date: str  # YYYY-MM-DD
    machine_id: int
    machine: str  # its display name
    events_count: int
    total_cycle_us: int  # the summed durations of its finished events


def _columns(struct: type[msgspec.Struct]) -> str:
    return ", ".join(struct.__struct_fields__)


def _make(struct: type[R], row: tuple[Any, ...]) -> R:
    return struct(**dict(zip(struct.__struct_fields__, row, strict=True)))


def _select(con: duckdb.DuckDBPyConnection, struct: type[R], table: str, where: str,
            params: list[object]) -> R | None:
    row = fetch_one(con, f"SELECT {_columns(struct)} FROM {table} WHERE {where}", params)
    return None if row is None else _make(struct, row)


def _insert(con: duckdb.DuckDBPyConnection, struct: type[R], table: str,
            values: dict[str, object]) -> R:
    marks = ", ".join("?" * len(values))
    row = fetch_one(con, f"INSERT INTO {table} ({', '.join(values)}) VALUES ({marks}) "
                         f"RETURNING {_columns(struct)}", list(values.values()))
    return _make(struct, must(row, f"the new {table} row"))


# ---- machines ----------------------------------------------------------------------------------


def ensure_station_machine(con: duckdb.DuckDBPyConnection, *, station_id: str,
                           display_name: str, now_us: int) -> MachineRow:
    """Make machine 1 the station (name = station id, display_name = the station's name)."""
    with transaction(con):
        current = get_machine(con, STATION_MACHINE_ID)
        if current is None:
            return _insert(con, MachineRow, "machines", {
                "id": STATION_MACHINE_ID, "name": station_id, "display_name": display_name,
                "created_us": now_us, "updated_us": now_us})
        if (current.name, current.display_name) == (station_id, display_name):
            return current
        row = fetch_one(con, "UPDATE machines SET name = ?, display_name = ?, updated_us = ? "
                             f"WHERE id = ? RETURNING {_columns(MachineRow)}",
                        [station_id, display_name, now_us, STATION_MACHINE_ID])
        return _make(MachineRow, must(row, "machine 1"))


def add_machine(con: duckdb.DuckDBPyConnection, *, name: str, display_name: str,
                now_us: int) -> MachineRow:
    """Another machine reporting step events; DuplicateError if the display name is taken."""
    return _insert(con, MachineRow, "machines", {
        "name": name, "display_name": display_name, "created_us": now_us, "updated_us": now_us})


def get_machine(con: duckdb.DuckDBPyConnection, machine_id: int) -> MachineRow | None:
    return _select(con, MachineRow, "machines", "id = ?", [machine_id])


def list_machines(con: duckdb.DuckDBPyConnection) -> list[MachineRow]:
    with translated_errors():
        rows = con.execute(f"SELECT {_columns(MachineRow)} FROM machines ORDER BY id").fetchall()
    return [_make(MachineRow, r) for r in rows]


def _machine(con: duckdb.DuckDBPyConnection, display_name: str) -> MachineRow:
    found = _select(con, MachineRow, "machines", "display_name = ?", [display_name])
    if found is None:
        raise MachineNotFound(f"no machine with display name {display_name!r}")
    return found


# ---- events ------------------------------------------------------------------------------------


def get_step_event(con: duckdb.DuckDBPyConnection, event_id: int) -> StepEventRow | None:
    return _select(con, StepEventRow, "step_events", "id = ?", [event_id])


def open_step_event(con: duckdb.DuckDBPyConnection, *, machine_id: int) -> StepEventRow | None:
    """The machine's open event, if it has one."""
    return _select(con, StepEventRow, "step_events",
                   "id = (SELECT open_event_id FROM machines WHERE id = ?) AND end_us IS NULL",
                   [machine_id])


def _who(con: duckdb.DuckDBPyConnection, operator_id: int | None, user_email: str | None
         ) -> tuple[int | None, int | None]:
    """(operator_id, user_id): the operator given, else the operator or Takt user whose email
    (a Takt user's username) this is, in any case."""
    if operator_id is not None:
        if get_operator(con, operator_id) is None:
            raise UserNotFound(f"no operator {operator_id}")
        return operator_id, None
    if user_email is None:
        return None, None
    operator = find_operator_by_email(con, user_email)
    if operator is not None:
        return operator.id, None
    row = fetch_one(con, "SELECT id FROM users WHERE lower(username) = lower(?) "
                         "AND NOT disabled ORDER BY id LIMIT 1", [user_email])
    if row is None:
        raise UserNotFound(f"no operator or user with email {user_email!r}")
    return None, int(row[0])


def _part(con: duckdb.DuckDBPyConnection, unique_identifier: str, now_us: int) -> PartRow:
    found = _select(con, PartRow, "parts", "unique_identifier = ?", [unique_identifier])
    return found or _insert(con, PartRow, "parts", {
        "unique_identifier": unique_identifier, "created_us": now_us, "updated_us": now_us})


def _recipe(con: duckdb.DuckDBPyConnection, part_id: int, version: str, now_us: int
            ) -> RecipeRow:
    found = _select(con, RecipeRow, "recipes", "part_id = ? AND version = ?", [part_id, version])
    return found or _insert(con, RecipeRow, "recipes", {
        "part_id": part_id, "version": version, "created_us": now_us, "updated_us": now_us})


def _step(con: duckdb.DuckDBPyConnection, recipe_id: int, number: str, cycle_s: float | None,
          setup_s: float | None, now_us: int) -> RecipeStepRow:
    """The recipe's step, created on first use; expected times given replace the stored ones."""
    found = _select(con, RecipeStepRow, "recipe_steps", "recipe_id = ? AND number = ?",
                    [recipe_id, number])
    if found is None:
        return _insert(con, RecipeStepRow, "recipe_steps", {
            "recipe_id": recipe_id, "number": number, "expected_cycle_s": cycle_s,
            "expected_setup_s": setup_s, "created_us": now_us, "updated_us": now_us})
    cycle = found.expected_cycle_s if cycle_s is None else cycle_s
    setup = found.expected_setup_s if setup_s is None else setup_s
    if (cycle, setup) == (found.expected_cycle_s, found.expected_setup_s):
        return found
    row = fetch_one(con, "UPDATE recipe_steps SET expected_cycle_s = ?, expected_setup_s = ?, "
                         f"updated_us = ? WHERE id = ? RETURNING {_columns(RecipeStepRow)}",
                    [cycle, setup, now_us, found.id])
    return _make(RecipeStepRow, must(row, "the recipe step"))


def _close(con: duckdb.DuckDBPyConnection, event_id: int, assignments: str,
           params: list[object]) -> StepEventRow:
    row = fetch_one(con, f"UPDATE step_events SET {assignments} WHERE id = ? "
                         f"RETURNING {_columns(StepEventRow)}", [*params, event_id])
    return _make(StepEventRow, must(row, f"step event {event_id}"))


def start_step_event(con: duckdb.DuckDBPyConnection, *, machine: str, start_us: int,
                     operator_id: int | None, user_email: str | None, part: str,
                     recipe_version: str, step_number: str, expected_cycle_s: float | None,
                     expected_setup_s: float | None, qty_expected: int | None,
                     wo_number: str | None, source: str, record_id: int | None,
                     now_us: int) -> StepEventCreated:
    """Open a step event on the machine (by display name) for part / recipe version / step.

    Who did it: `operator_id`, else the operator or user with `user_email`, else nobody.
    The machine's open event, if any, is finished at `start_us` (ending_type 'auto').
    MachineNotFound, UserNotFound or InvalidStartTimestamp, with nothing written.
    """
    if source not in ("api", "sequencer"):
        raise ValueError(f"source must be 'api' or 'sequencer', not {source!r}")
    with transaction(con):
        machine_row = _machine(con, machine)
        operator, user = _who(con, operator_id, user_email)
        open_event = open_step_event(con, machine_id=machine_row.id)
        finished = None
        if open_event is not None:
            if start_us < open_event.start_us:
                raise InvalidStartTimestamp(
                    f"the machine's open step event {open_event.id} started after this start")
            finished = _close(con, open_event.id, "end_us = ?, ending_type = 'auto', "
                              "updated_us = ?", [start_us, now_us])
        part_row = _part(con, part, now_us)
        recipe_row = _recipe(con, part_row.id, recipe_version, now_us)
        step_row = _step(con, recipe_row.id, step_number, expected_cycle_s, expected_setup_s,
                         now_us)
        event = _insert(con, StepEventRow, "step_events", {
            "machine_id": machine_row.id, "step_id": step_row.id, "operator_id": operator,
            "user_id": user, "start_us": start_us, "qty_expected": qty_expected,
            "wo_number": wo_number, "source": source, "record_id": record_id,
            "created_us": now_us, "updated_us": now_us})
        con.execute("UPDATE machines SET open_event_id = ? WHERE id = ?",
                    [event.id, machine_row.id])
    return StepEventCreated(event=event, machine=machine_row, step=step_row, recipe=recipe_row,
                            part=part_row, finished=finished)


def finish_step_event(con: duckdb.DuckDBPyConnection, *, machine: str, end_us: int | None,
                      qty_made: int | None, qty_scrapped: int | None,
                      now_us: int) -> StepEventFinished:
    """Finish the machine's open event at `end_us` (None: now), with the quantities given.

    MachineNotFound, NoActiveStepEvent or InvalidEndTimestamp (before the start), with
    nothing written.
    """
    with transaction(con):
        machine_row = _machine(con, machine)
        open_event = open_step_event(con, machine_id=machine_row.id)
        if open_event is None:
            raise NoActiveStepEvent(f"machine {machine!r} has no open step event")
        end = now_us if end_us is None else end_us
        if end < open_event.start_us:
            raise InvalidEndTimestamp(
                f"the end is before the start of step event {open_event.id}")
        event = _close(con, open_event.id, "end_us = ?, qty_made = ?, qty_scrapped = ?, "
                       "ending_type = 'manual', updated_us = ?",
                       [end, qty_made, qty_scrapped, now_us])
        con.execute("UPDATE machines SET open_event_id = NULL WHERE id = ?", [machine_row.id])
    return StepEventFinished(event=event, machine=machine_row)


def step_event_summary(con: duckdb.DuckDBPyConnection, *, from_us: int, to_us: int,
                       machine_ids: list[int] | None) -> list[DaySummary]:
    """Per UTC date of their start and per machine, the events that started in [from, to):
    how many, and the summed durations of the finished ones (open ones add nothing yet).
    `machine_ids` None: every machine. Ordered by date, then machine display name."""
    if from_us >= to_us or machine_ids == []:
        return []
    sql = ("SELECT e.start_us // ? AS day, e.machine_id, m.display_name, count(*), "
           "CAST(coalesce(sum(e.end_us - e.start_us), 0) AS BIGINT) "
           "FROM step_events e JOIN machines m ON m.id = e.machine_id "
           "WHERE e.start_us >= ? AND e.start_us < ?")
    params: list[object] = [_DAY_US, from_us, to_us]
    if machine_ids is not None:
        sql += " AND list_contains(?::BIGINT[], e.machine_id)"
        params.append(machine_ids)
    sql += " GROUP BY day, e.machine_id, m.display_name ORDER BY day, m.display_name, e.machine_id"
    with translated_errors():
        rows = con.execute(sql, params).fetchall()
    return [DaySummary(date=(_EPOCH + dt.timedelta(days=int(day))).isoformat(),
                       machine_id=int(machine_id), machine=name, events_count=int(count),
                       total_cycle_us=int(total))
            for day, machine_id, name, count, total in rows]
