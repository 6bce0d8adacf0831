"""Messages of the sequencer actor (actors/sequencer.py) and the view it answers with."""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = [
    "AbortCoaching",
    "AdvanceStep",
    "CoachingRefused",
    "CoachingView",
    "CompleteCoaching",
    "ConfirmStep",
    "EnterValue",
    "FeedInput",
    "FlushRecords",
    "GetCoaching",
    "InterruptCoaching",
    "PauseCoaching",
    "ResumeCoaching",
    "SetCoachingStep",
    "SetStationOperator",
    "StartCoaching",
]


class CoachingRefused(ValueError):
    """The command is not legal now (or names what does not exist); nothing changed."""


class StartCoaching(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    assembly_id: int
    step_index: int = 0
    operator_id: int | None = None
    work_order: str | None = None
    part_serial: str | None = None
    auto_advance: bool | None = None  # None: as [coaching] says


class InterruptCoaching(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    reason: str = ""
    assembly_record_id: int | None = None  # if given, it must be the current record


class PauseCoaching(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    reason: str = ""
    assembly_record_id: int | None = None


class ResumeCoaching(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    assembly_record_id: int | None = None


class AbortCoaching(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    reason: str = ""
    assembly_record_id: int | None = None


class CompleteCoaching(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    assembly_record_id: int | None = None


class AdvanceStep(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    assembly_record_id: int | None = None


class SetCoachingStep(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    step_index: int
    assembly_record_id: int | None = None
    end_us: int | None = None  # the current step's end time, if not now


class ConfirmStep(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """The operator confirms (QA, VIDEO_ONLY)."""

    by: str = ""
    assembly_record_id: int | None = None


class EnterValue(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """The operator types a value (OCR_ENTRY)."""

    variable: str
    text: str


class FeedInput(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """A coaching input from outside the bus (a camera model's prediction, an OCR read, a
    simulator): `input` is a controller.coaching input as plain data with its `type` tag."""

    input: dict[str, Any]


class GetCoaching(msgspec.Struct, frozen=True, tag=True):
    pass


class FlushRecords(msgspec.Struct, frozen=True, tag=True):
    """Answer once the records written so far are on disk (the writer runs behind)."""


class SetStationOperator(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Who works at the station now (None: nobody); `via` says how they logged in. The next
    session is theirs unless StartCoaching names another operator."""

    operator_id: int | None
    via: str = "api"


class CoachingView(msgspec.Struct, frozen=True, kw_only=True):
    phase: str
    assembly_record_id: int | None
    assembly_id: int | None
    assembly_name: str | None
    step_index: int | None
    step_name: str | None
    steps: int
    conditions: list[dict[str, Any]]  # per condition: kind, condition, done, count, nok
    variables: dict[str, str]
    outcome: str | None
    failed: str | None
    auto_advance: bool
    release_enabled: bool
    started_us: int | None
    step_started_us: int | None
    operator_id: int | None = None  # logged in at the station (RFID scan or name + password)
    operator_name: str | None = None
