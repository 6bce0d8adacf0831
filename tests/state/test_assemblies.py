"""Revisions, versions, steps and step data in the store: dense positions, frozen published
versions, dependency rules enforced on every change, coachable versions."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from controller.assembly import ActionType, StepData
from state import assemblies as a
from state.connection import open_database
from state.errors import ConstraintError, DuplicateError, NotFound


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    connection = open_database(tmp_path / "takt.duckdb")
    yield connection
    connection.close()


def capture() -> StepData:
    return StepData(action=ActionType.OCR_CAPTURE, infos={"variable": "sn"})


def verify() -> StepData:
    return StepData(action=ActionType.OCR_VERIFY, infos={"variable": "sn"})


def qa() -> StepData:
    return StepData(action=ActionType.QA, infos={"prompt": "ok?"})


def assembly(con: duckdb.DuckDBPyConnection) -> a.AssemblyRow:
    rev = a.create_revision(con, name="Contactor", now_us=1)
    return a.create_assembly(con, revision_id=rev.id, name="Contactor Installation", now_us=1)


def names(con: duckdb.DuckDBPyConnection, assembly_id: int) -> list[str]:
    return [s.name for s in a.list_steps(con, assembly_id)]


def test_steps_keep_dense_positions_through_add_move_copy_and_delete(
        con: duckdb.DuckDBPyConnection) -> None:
    asm = assembly(con)
    first = a.add_step(con, asm.id, name="read", data=[capture()], now_us=2)
    a.add_step(con, asm.id, name="tighten", data=[qa()], now_us=3)
    last = a.add_step(con, asm.id, name="check", data=[verify()], now_us=4)
    a.add_step(con, asm.id, name="prep", data=[qa()], position=0, now_us=5)
    assert names(con, asm.id) == ["prep", "read", "tighten", "check"]
    assert [s.position for s in a.list_steps(con, asm.id)] == [0, 1, 2, 3]
    a.move_step(con, last.id, 2, now_us=6)
    assert names(con, asm.id) == ["prep", "read", "check", "tighten"]
    copied = a.copy_step(con, first.id, position=None, now_us=7)
    assert names(con, asm.id) == ["prep", "read", "read", "check", "tighten"]
    assert copied.data[0].infos == {"variable": "sn"} and copied.data[0].id != first.data[0].id
    a.delete_step(con, copied.id, now_us=8)
    assert [s.position for s in a.list_steps(con, asm.id)] == [0, 1, 2, 3]
    assert a.get_assembly(con, asm.id).last_edited_us == 8


def test_changes_that_break_a_dependency_are_refused_and_change_nothing(
        con: duckdb.DuckDBPyConnection) -> None:
    asm = assembly(con)
    read = a.add_step(con, asm.id, name="read", data=[capture()], now_us=2)
    check = a.add_step(con, asm.id, name="check", data=[verify()], now_us=3)
    with pytest.raises(a.DependencyError, match="may not be deleted"):
        a.delete_step(con, read.id, now_us=4)
    with pytest.raises(a.DependencyError, match=r"may move to \[1\]"):
        a.move_step(con, check.id, 0, now_us=4)
    with pytest.raises(a.DependencyError, match="no earlier step captures"):
        a.add_step(con, asm.id, name="early check", data=[verify()], position=0, now_us=4)
    with pytest.raises(a.DependencyError):
        a.set_step_data_info(con, read.data[0].id, "variable", "other", now_us=4)
    with pytest.raises(ValueError, match="not a variable name"):
        a.set_step_data_info(con, read.data[0].id, "variable", "9x", now_us=4)
    assert names(con, asm.id) == ["read", "check"]
    assert a.get_step(con, read.id).data[0].infos == {"variable": "sn"}
    assert a.step_moves(con, check.id) == ([1], [])
    moves, deletable = a.step_moves(con, read.id)
    assert moves == [0] and deletable  # the capture may not be deleted


def test_a_published_version_is_frozen_and_copied_to_change(
        con: duckdb.DuckDBPyConnection) -> None:
    asm = assembly(con)
    with pytest.raises(a.DependencyError, match="no steps"):
        a.publish_assembly(con, asm.id, approver="eve", now_us=2)
    step = a.add_step(con, asm.id, name="confirm", data=[qa()], now_us=2)
    published = a.publish_assembly(con, asm.id, approver="eve", now_us=3)
    assert published.published and published.approver == "eve"
    with pytest.raises(a.Frozen, match="copy it to a new version"):
        a.add_step(con, asm.id, name="more", data=[qa()], now_us=4)
    with pytest.raises(a.Frozen):
        a.update_step(con, step.id, name="x", now_us=4)
    v2 = a.copy_assembly(con, asm.id, now_us=5)
    assert (v2.version, v2.published) == (2, False) and names(con, v2.id) == ["confirm"]
    a.add_step(con, v2.id, name="more", data=[qa()], now_us=6)
    assert names(con, asm.id) == ["confirm"]  # the published version did not change
    assert [x.id for x in a.coachable(con)] == [asm.id]  # v2 is not published yet
    a.publish_assembly(con, v2.id, approver="eve", now_us=7)
    assert [x.id for x in a.coachable(con)] == [v2.id]  # the latest published
    a.set_active_assembly(con, asm.revision_id, asm.id)
    assert [x.id for x in a.coachable(con)] == [asm.id]  # unless another is made active
    loaded = a.load_assembly(con, v2.id)
    assert [s.name for s in loaded.steps] == ["confirm", "more"] and loaded.revision == "2"


def test_unknown_ids_and_duplicates_are_clear_errors(con: duckdb.DuckDBPyConnection) -> None:
    a.create_revision(con, name="Contactor", now_us=1)
    with pytest.raises(DuplicateError):
        a.create_revision(con, name="Contactor", now_us=2)
    with pytest.raises(NotFound, match="assembly 99"):
        a.get_assembly(con, 99)
    with pytest.raises(NotFound, match="no step 5"):
        a.get_step(con, 5)
    asm = a.create_assembly(con, revision_id=1, name="x", now_us=1)
    with pytest.raises(ConstraintError, match=r"outside 0\.\.0"):
        a.add_step(con, asm.id, name="s", data=[qa()], position=3, now_us=2)
    with pytest.raises(ValueError, match="unknown field"):
        a.update_assembly(con, asm.id, now_us=2, colour="red")
