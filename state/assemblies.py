"""Assembly revisions, assemblies, steps, step data and their infos (tables of migration 0007),
as plain functions over a cursor.

A published assembly is frozen: every function that changes its steps refuses it
(`Frozen`), so a record always points at what the operator was shown; `copy_assembly` makes
the next version to edit. Step positions stay dense (0..n-1) through add, move and delete.
Dependency rules (controller/assembly.py) are checked here on every change of step order or
step data, inside the transaction that makes it: a change that would break them is refused
(`DependencyError`) and nothing is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import duckdb
import msgspec

from controller.assembly import (
    ActionType,
    Assembly,
    Step,
    StepData,
    allowed_moves,
    condition_of,
    dependency_problems,
    may_delete,
)
from state._sql import fetch_one, first_row, transaction
from state.errors import ConstraintError, NotFound, translated_errors

__all__ = [
    "AssemblyRow",
    "DependencyError",
    "Frozen",
    "RevisionRow",
    "StepDataRow",
    "StepRow",
    "add_step",
    "add_step_data",
    "coachable",
    "copy_assembly",
    "copy_step",
    "create_assembly",
    "create_revision",
    "delete_perspective",
    "delete_step",
    "delete_step_data",
    "delete_step_data_info",
    "get_assembly",
    "get_revision",
    "get_step",
    "list_assemblies",
    "list_revisions",
    "list_steps",
    "load_assembly",
    "move_step",
    "publish_assembly",
    "set_active_assembly",
    "set_step_data_info",
    "step_moves",
    "touch_assembly",
    "update_assembly",
    "update_step",
]


class Frozen(ConstraintError):
    """The assembly is published: copy it to a new version to change it."""


class DependencyError(ConstraintError):
    """The change would leave a verify without its earlier capture."""


class RevisionRow(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    name: str
    description: str
    image_link: str | None
    active_assembly_id: int | None
    created_us: int


class AssemblyRow(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    revision_id: int
    version: int
    name: str
    description: str
    image_link: str | None
    product_version: str | None
    model_version: str | None
    notes: str
    approver: str | None
    record_videos: bool
    published: bool
    published_us: int | None
    lighting_aug: float
    placement_aug: float
    color_aug: float
    created_us: int
    last_edited_us: int


class StepDataRow(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    step_id: int
    position: int
    action: ActionType
    infos: dict[str, str]
    info_ids: dict[str, int]


class StepRow(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    assembly_id: int
    position: int
    name: str
    description: str
    image_link: str | None
    video_link: str | None
    overlay_link: str | None
    minimum_predict: float
    benchmark_s: float
    roi_zoom: str | None
    camera_id: str | None
    perspective_change: bool
    mask_perspective: bool
    training_required: bool
    classes: str  # JSON list of the labels the step's model knows
    data: list[StepDataRow]


_REVISION = ", ".join(RevisionRow.__struct_fields__)
_ASSEMBLY = ", ".join(AssemblyRow.__struct_fields__)
_STEP = ", ".join(f for f in StepRow.__struct_fields__ if f != "data")
STEP_FIELDS = ("name", "description", "image_link", "video_link", "overlay_link",
               "minimum_predict", "benchmark_s", "roi_zoom", "camera_id", "perspective_change",
               "mask_perspective", "training_required", "classes")
ASSEMBLY_FIELDS = ("name", "description", "image_link", "product_version", "model_version",
                   "notes", "approver", "record_videos", "lighting_aug", "placement_aug",
                   "color_aug")


def _row(cls: type, row: tuple[Any, ...] | None, what: str) -> Any:
    if row is None:
        raise NotFound(f"no {what}")
    return cls(**dict(zip(cls.__struct_fields__, row, strict=False)))


# --- revisions -------------------------------------------------------------------------------


def create_revision(con: duckdb.DuckDBPyConnection, *, name: str, description: str = "",
                    image_link: str | None = None, now_us: int) -> RevisionRow:
    with translated_errors():
        row = first_row(con.execute(
            f"INSERT INTO assembly_revisions (name, description, image_link, created_us) "
            f"VALUES (?, ?, ?, ?) RETURNING {_REVISION}",
            [name, description, image_link, now_us]))
    return _row(RevisionRow, row, "revision")  # type: ignore[no-any-return]


def get_revision(con: duckdb.DuckDBPyConnection, revision_id: int) -> RevisionRow:
    row = fetch_one(con, f"SELECT {_REVISION} FROM assembly_revisions WHERE id = ?",
                    [revision_id])
    return _row(RevisionRow, row, f"assembly revision {revision_id}")  # type: ignore[no-any-return]


def list_revisions(con: duckdb.DuckDBPyConnection) -> list[RevisionRow]:
    with translated_errors():
        rows = con.execute(f"SELECT {_REVISION} FROM assembly_revisions ORDER BY id").fetchall()
    return [_row(RevisionRow, r, "revision") for r in rows]


def set_active_assembly(con: duckdb.DuckDBPyConnection, revision_id: int,
                        assembly_id: int) -> RevisionRow:
    with transaction(con):
        get_revision(con, revision_id)
        assembly = get_assembly(con, assembly_id)
        if assembly.revision_id != revision_id:
            raise ConstraintError(f"assembly {assembly_id} is not a version of revision "
                                  f"{revision_id}")
        if not assembly.published:
            raise ConstraintError(f"assembly {assembly_id} is not published; only a published "
                                  "version can be the active one")
        con.execute("UPDATE assembly_revisions SET active_assembly_id = ? WHERE id = ?",
                    [assembly_id, revision_id])
    return get_revision(con, revision_id)


def coachable(con: duckdb.DuckDBPyConnection) -> list[AssemblyRow]:
    """Per revision, the assembly to coach: its active one, else its latest published."""
    with translated_errors():
        rows = con.execute(
            f"SELECT {', '.join('a.' + f for f in AssemblyRow.__struct_fields__)} "
            "FROM assemblies a JOIN assembly_revisions r ON r.id = a.revision_id "
            "WHERE a.published AND a.id = coalesce(r.active_assembly_id, ("
            "  SELECT max_by(b.id, b.version) FROM assemblies b "
            "  WHERE b.revision_id = r.id AND b.published)) ORDER BY a.revision_id").fetchall()
    return [_row(AssemblyRow, r, "assembly") for r in rows]


# --- assemblies ------------------------------------------------------------------------------


def create_assembly(con: duckdb.DuckDBPyConnection, *, revision_id: int, name: str,
                    now_us: int, **fields: Any) -> AssemblyRow:
    """A new, empty, unpublished version of the revision."""
    _known(fields, ASSEMBLY_FIELDS)
    with transaction(con):
        get_revision(con, revision_id)
        version = first_row(con.execute("SELECT coalesce(max(version), 0) + 1 FROM assemblies "
                              "WHERE revision_id = ?", [revision_id]))
        columns = ["revision_id", "version", "name", "created_us", "last_edited_us", *fields]
        values = [revision_id, version[0] if version else 1, name, now_us, now_us,
                  *fields.values()]
        row = first_row(con.execute(
            f"INSERT INTO assemblies ({', '.join(columns)}) VALUES "
            f"({', '.join('?' * len(values))}) RETURNING {_ASSEMBLY}", values))
    return _row(AssemblyRow, row, "assembly")  # type: ignore[no-any-return]


def get_assembly(con: duckdb.DuckDBPyConnection, assembly_id: int) -> AssemblyRow:
    row = fetch_one(con, f"SELECT {_ASSEMBLY} FROM assemblies WHERE id = ?", [assembly_id])
    return _row(AssemblyRow, row, f"assembly {assembly_id}")  # type: ignore[no-any-return]


def list_assemblies(con: duckdb.DuckDBPyConnection,
                    revision_id: int | None = None) -> list[AssemblyRow]:
    where, params = ("WHERE revision_id = ?", [revision_id]) if revision_id is not None \
        else ("", [])
    with translated_errors():
        rows = con.execute(f"SELECT {_ASSEMBLY} FROM assemblies {where} "
                           "ORDER BY revision_id, version", params).fetchall()
    return [_row(AssemblyRow, r, "assembly") for r in rows]


def update_assembly(con: duckdb.DuckDBPyConnection, assembly_id: int, *, now_us: int,
                    **fields: Any) -> AssemblyRow:
    """Change descriptive fields; notes and augmentation may change on a published one too,
    the steps never."""
    _known(fields, ASSEMBLY_FIELDS)
    if fields:
        sets = ", ".join(f"{k} = ?" for k in fields)
        with transaction(con):
            get_assembly(con, assembly_id)
            con.execute(f"UPDATE assemblies SET {sets}, last_edited_us = ? WHERE id = ?",
                        [*fields.values(), now_us, assembly_id])
    return get_assembly(con, assembly_id)


def touch_assembly(con: duckdb.DuckDBPyConnection, assembly_id: int, now_us: int) -> AssemblyRow:
    return update_assembly(con, assembly_id, now_us=now_us)


def publish_assembly(con: duckdb.DuckDBPyConnection, assembly_id: int, *, approver: str | None,
                     now_us: int) -> AssemblyRow:
    """Freeze the version; refused if it could not be coached as it stands."""
    with transaction(con):
        row = get_assembly(con, assembly_id)
        if row.published:
            return row
        assembly = load_assembly(con, assembly_id)
        problems = _coaching_problems(assembly)
        if problems:
            raise DependencyError(f"assembly {assembly_id} cannot be published: {problems[0]}")
        con.execute("UPDATE assemblies SET published = true, published_us = ?, approver = ?, "
                    "last_edited_us = ? WHERE id = ?",
                    [now_us, approver, now_us, assembly_id])
    return get_assembly(con, assembly_id)


def _coaching_problems(assembly: Assembly) -> list[str]:
    if not assembly.steps:
        return ["it has no steps"]
    problems = []
    for index, step in enumerate(assembly.steps):
        if not step.data:
            problems.append(f"step {index} ({step.name}) has no step data")
        for d in step.data:
            try:
                condition_of(d, step)
            except ValueError as exc:
                problems.append(f"step {index} ({step.name}): {exc}")
    return problems + dependency_problems(assembly.steps)


def copy_assembly(con: duckdb.DuckDBPyConnection, assembly_id: int, now_us: int) -> AssemblyRow:
    """The next version of the revision, unpublished, with copies of every step."""
    with transaction(con):
        source = get_assembly(con, assembly_id)
        fields = {k: getattr(source, k) for k in ASSEMBLY_FIELDS if k != "name"}
        new = create_assembly(con, revision_id=source.revision_id, name=source.name,
                              now_us=now_us, **fields)
        for step in _step_rows(con, assembly_id):
            _insert_step(con, new.id, step.position, step)
    return new


def load_assembly(con: duckdb.DuckDBPyConnection, assembly_id: int) -> Assembly:
    """The assembly as the coaching core reads it."""
    row = get_assembly(con, assembly_id)
    steps = tuple(
        Step(id=s.id, name=s.name, description=s.description, benchmark_s=s.benchmark_s,
             minimum_predict=s.minimum_predict, camera_id=s.camera_id,
             data=tuple(StepData(id=d.id, action=d.action, infos=d.infos) for d in s.data))
        for s in _step_rows(con, assembly_id))
    return Assembly(id=row.id, name=row.name, revision=str(row.version), steps=steps)


# --- steps -----------------------------------------------------------------------------------


def _step_rows(con: duckdb.DuckDBPyConnection, assembly_id: int) -> list[StepRow]:
    with translated_errors():
        steps = con.execute(f"SELECT {_STEP} FROM steps WHERE assembly_id = ? "
                            "ORDER BY position", [assembly_id]).fetchall()
        data = con.execute(
            "SELECT d.id, d.step_id, d.position, d.action, i.id, i.key, i.value "
            "FROM step_data d JOIN steps s ON s.id = d.step_id "
            "LEFT JOIN step_data_infos i ON i.step_data_id = d.id "
            "WHERE s.assembly_id = ? ORDER BY d.step_id, d.position, i.key",
            [assembly_id]).fetchall()
    by_step: dict[int, dict[int, StepDataRow]] = {}
    for data_id, step_id, position, action, info_id, key, value in data:
        entry = by_step.setdefault(step_id, {}).get(data_id)
        if entry is None:
            entry = StepDataRow(id=data_id, step_id=step_id, position=position,
                                action=ActionType(action), infos={}, info_ids={})
            by_step[step_id][data_id] = entry
        if key is not None:
            entry.infos[key] = value
            entry.info_ids[key] = info_id
    fields = [f for f in StepRow.__struct_fields__ if f != "data"]
    return [StepRow(**dict(zip(fields, s, strict=True)),
                    data=sorted(by_step.get(s[0], {}).values(), key=lambda d: d.position))
            for s in steps]


def list_steps(con: duckdb.DuckDBPyConnection, assembly_id: int) -> list[StepRow]:
    get_assembly(con, assembly_id)
    return _step_rows(con, assembly_id)


def get_step(con: duckdb.DuckDBPyConnection, step_id: int) -> StepRow:
    row = fetch_one(con, "SELECT assembly_id FROM steps WHERE id = ?", [step_id])
    if row is None:
        raise NotFound(f"no step {step_id}")
    return next(s for s in _step_rows(con, int(row[0])) if s.id == step_id)


def _editable(con: duckdb.DuckDBPyConnection, assembly_id: int) -> AssemblyRow:
    row = get_assembly(con, assembly_id)
    if row.published:
        raise Frozen(f"assembly {assembly_id} (version {row.version}) is published and cannot "
                     "change; copy it to a new version")
    return row


def _check(con: duckdb.DuckDBPyConnection, assembly_id: int, now_us: int) -> None:
    """After a change inside a transaction: refuse it if dependencies broke; touch."""
    problems = dependency_problems(load_assembly(con, assembly_id).steps)
    if problems:
        raise DependencyError(problems[0])
    con.execute("UPDATE assemblies SET last_edited_us = ? WHERE id = ?", [now_us, assembly_id])


def _insert_step(con: duckdb.DuckDBPyConnection, assembly_id: int, position: int,
                 step: StepRow | dict[str, Any]) -> int:
    values = ({k: getattr(step, k) for k in STEP_FIELDS} if isinstance(step, StepRow)
              else step)
    con.execute("UPDATE steps SET position = position + 1 WHERE assembly_id = ? "
                "AND position >= ?", [assembly_id, position])
    columns = ["assembly_id", "position", *values]
    row = first_row(con.execute(f"INSERT INTO steps ({', '.join(columns)}) VALUES "
                      f"({', '.join('?' * len(columns))}) RETURNING id",
                      [assembly_id, position, *values.values()]))
    step_id = int(row[0]) if row else 0
    if isinstance(step, StepRow):
        for d in step.data:
            _insert_data(con, step_id, d.position, d.action, d.infos)
    return step_id


def _insert_data(con: duckdb.DuckDBPyConnection, step_id: int, position: int,
                 action: ActionType, infos: dict[str, str]) -> int:
    row = first_row(con.execute(
        "INSERT INTO step_data (step_id, position, action) VALUES (?, ?, ?) RETURNING id",
        [step_id, position, action.value]))
    data_id = int(row[0]) if row else 0
    for key, value in infos.items():
        con.execute("INSERT INTO step_data_infos (step_data_id, key, value) VALUES (?, ?, ?)",
                    [data_id, key, value])
    return data_id


def add_step(con: duckdb.DuckDBPyConnection, assembly_id: int, *, now_us: int,
             position: int | None = None, data: Sequence[StepData] = (),
             **fields: Any) -> StepRow:
    """Insert a step at position (default: append), with its step data."""
    _known(fields, STEP_FIELDS)
    for d in data:  # ValueError naming the info, before anything is written
        condition_of(d, Step(name=str(fields.get("name", "")),
                             minimum_predict=float(fields.get("minimum_predict", 0.0))))
    with transaction(con):
        _editable(con, assembly_id)
        count = len(_step_rows(con, assembly_id))
        at = count if position is None else position
        if not 0 <= at <= count:
            raise ConstraintError(f"position {at} is outside 0..{count}")
        step_id = _insert_step(con, assembly_id, at, fields)
        for n, d in enumerate(data):
            _insert_data(con, step_id, n, d.action, d.infos)
        _check(con, assembly_id, now_us)
    return get_step(con, step_id)


def update_step(con: duckdb.DuckDBPyConnection, step_id: int, *, now_us: int,
                **fields: Any) -> StepRow:
    _known(fields, STEP_FIELDS)
    with transaction(con):
        step = get_step(con, step_id)
        _editable(con, step.assembly_id)
        if fields:
            sets = ", ".join(f"{k} = ?" for k in fields)
            con.execute(f"UPDATE steps SET {sets} WHERE id = ?", [*fields.values(), step_id])
        _check(con, step.assembly_id, now_us)
    return get_step(con, step_id)


def delete_perspective(con: duckdb.DuckDBPyConnection, assembly_id: int, position: int,
                       now_us: int) -> StepRow:
    """Seed 000's "delete a step's perspective": the step at `position` no longer shows (or
    masks) another camera perspective."""
    with transaction(con):
        _editable(con, assembly_id)
        step = next((s for s in _step_rows(con, assembly_id) if s.position == position), None)
        if step is None:
            raise NotFound(f"assembly {assembly_id} has no step {position}")
        con.execute("UPDATE steps SET perspective_change = false, mask_perspective = false "
                    "WHERE id = ?", [step.id])
        _check(con, assembly_id, now_us)
    return get_step(con, step.id)


def delete_step(con: duckdb.DuckDBPyConnection, step_id: int, now_us: int) -> None:
    with transaction(con):
        step = get_step(con, step_id)
        _editable(con, step.assembly_id)
        problems = may_delete(load_assembly(con, step.assembly_id).steps, step.position)
        if problems:
            raise DependencyError(f"step {step.position} ({step.name}) may not be deleted: "
                                  f"{problems[0]}")
        con.execute("DELETE FROM step_data_infos WHERE step_data_id IN "
                    "(SELECT id FROM step_data WHERE step_id = ?)", [step_id])
        con.execute("DELETE FROM step_data WHERE step_id = ?", [step_id])
        con.execute("DELETE FROM steps WHERE id = ?", [step_id])
        con.execute("UPDATE steps SET position = position - 1 WHERE assembly_id = ? "
                    "AND position > ?", [step.assembly_id, step.position])
        _check(con, step.assembly_id, now_us)


def step_moves(con: duckdb.DuckDBPyConnection, step_id: int) -> tuple[list[int], list[str]]:
    """Where the step may move, and why it may or may not be deleted."""
    step = get_step(con, step_id)
    steps = load_assembly(con, step.assembly_id).steps
    return allowed_moves(steps, step.position), may_delete(steps, step.position)


def move_step(con: duckdb.DuckDBPyConnection, step_id: int, position: int,
              now_us: int) -> StepRow:
    with transaction(con):
        step = get_step(con, step_id)
        _editable(con, step.assembly_id)
        steps = load_assembly(con, step.assembly_id).steps
        if not 0 <= position < len(steps):
            raise ConstraintError(f"position {position} is outside 0..{len(steps) - 1}")
        allowed = allowed_moves(steps, step.position)
        if position not in allowed:
            raise DependencyError(f"step {step.position} ({step.name}) may not move to "
                                  f"{position}; it may move to {allowed}")
        con.execute("UPDATE steps SET position = position - 1 WHERE assembly_id = ? "
                    "AND position > ?", [step.assembly_id, step.position])
        con.execute("UPDATE steps SET position = position + 1 WHERE assembly_id = ? "
                    "AND position >= ? AND id <> ?", [step.assembly_id, position, step_id])
        con.execute("UPDATE steps SET position = ? WHERE id = ?", [position, step_id])
        _check(con, step.assembly_id, now_us)
    return get_step(con, step_id)


def copy_step(con: duckdb.DuckDBPyConnection, step_id: int, *, position: int | None,
              now_us: int) -> StepRow:
    """A copy of the step with its data, inserted at position (default: right after it)."""
    with transaction(con):
        step = get_step(con, step_id)
        _editable(con, step.assembly_id)
        count = len(_step_rows(con, step.assembly_id))
        at = step.position + 1 if position is None else position
        if not 0 <= at <= count:
            raise ConstraintError(f"position {at} is outside 0..{count}")
        new_id = _insert_step(con, step.assembly_id, at, step)
        _check(con, step.assembly_id, now_us)
    return get_step(con, new_id)


# --- step data -------------------------------------------------------------------------------


def add_step_data(con: duckdb.DuckDBPyConnection, step_id: int, action: ActionType,
                  infos: dict[str, str], now_us: int) -> StepRow:
    """Append step data; refused (ValueError) if its infos cannot be coached."""
    with transaction(con):
        step = get_step(con, step_id)
        _editable(con, step.assembly_id)
        condition_of(StepData(action=action, infos=infos))
        _insert_data(con, step_id, len(step.data), action, infos)
        _check(con, step.assembly_id, now_us)
    return get_step(con, step_id)


def _data_step(con: duckdb.DuckDBPyConnection, step_data_id: int) -> StepRow:
    row = fetch_one(con, "SELECT step_id FROM step_data WHERE id = ?", [step_data_id])
    if row is None:
        raise NotFound(f"no step data {step_data_id}")
    return get_step(con, int(row[0]))


def delete_step_data(con: duckdb.DuckDBPyConnection, step_data_id: int, now_us: int) -> StepRow:
    with transaction(con):
        step = _data_step(con, step_data_id)
        _editable(con, step.assembly_id)
        position = next(d.position for d in step.data if d.id == step_data_id)
        con.execute("DELETE FROM step_data_infos WHERE step_data_id = ?", [step_data_id])
        con.execute("DELETE FROM step_data WHERE id = ?", [step_data_id])
        con.execute("UPDATE step_data SET position = position - 1 WHERE step_id = ? "
                    "AND position > ?", [step.id, position])
        _check(con, step.assembly_id, now_us)
    return get_step(con, step.id)


def set_step_data_info(con: duckdb.DuckDBPyConnection, step_data_id: int, key: str,
                       value: str, now_us: int) -> StepRow:
    """Add or change one key/value of step data; refused if the data would not coach."""
    with transaction(con):
        step = _data_step(con, step_data_id)
        _editable(con, step.assembly_id)
        data = next(d for d in step.data if d.id == step_data_id)
        condition_of(StepData(action=data.action, infos={**data.infos, key: value}))
        con.execute("INSERT INTO step_data_infos (step_data_id, key, value) VALUES (?, ?, ?) "
                    "ON CONFLICT (step_data_id, key) DO UPDATE SET value = excluded.value",
                    [step_data_id, key, value])
        _check(con, step.assembly_id, now_us)
    return get_step(con, step.id)


def delete_step_data_info(con: duckdb.DuckDBPyConnection, step_data_id: int, key: str,
                          now_us: int) -> StepRow:
    with transaction(con):
        step = _data_step(con, step_data_id)
        _editable(con, step.assembly_id)
        data = next(d for d in step.data if d.id == step_data_id)
        if key not in data.infos:
            raise NotFound(f"step data {step_data_id} has no info {key!r}")
        condition_of(StepData(action=data.action,
                              infos={k: v for k, v in data.infos.items() if k != key}))
        con.execute("DELETE FROM step_data_infos WHERE step_data_id = ? AND key = ?",
                    [step_data_id, key])
        _check(con, step.assembly_id, now_us)
    return get_step(con, step.id)


def _known(fields: dict[str, Any], allowed: Sequence[str]) -> None:
    unknown = sorted(set(fields) - set(allowed))
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(unknown)}")
