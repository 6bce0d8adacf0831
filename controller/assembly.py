"""Assemblies, their steps and step data (seed 000), and what each step's data asks of the
operator and the devices before the step counts as done.

Step data carry the seed's StepDataInfo key/value pairs (`infos`); `condition_of` reads them
into a typed condition per action type, so a step whose data cannot be coached is refused
when it is written, not found out on the line. Captured variables tie steps together: an
OCR_VERIFY (or a SCAN that verifies) needs an earlier step that captures its variable, which
`dependency_problems`, `may_delete` and `allowed_moves` check on every add, move, copy and
delete. Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from enum import StrEnum

import msgspec

__all__ = [
    "ActionType",
    "Assembly",
    "Condition",
    "Confirm",
    "Dwell",
    "InputSignal",
    "MlLabel",
    "OcrCapture",
    "OcrCheck",
    "OcrEntry",
    "OcrVerify",
    "OutputSignal",
    "ScanCode",
    "Step",
    "StepData",
    "Torque",
    "allowed_moves",
    "captures",
    "condition_of",
    "dependency_problems",
    "may_delete",
    "needs",
    "step_problems",
]


class ActionType(StrEnum):
    ML = "ML"  # the camera model sees the expected label
    OCR_CHECK = "OCR_CHECK"  # text on the part matches a pattern
    OCR_CAPTURE = "OCR_CAPTURE"  # text on the part is read into a variable
    OCR_VERIFY = "OCR_VERIFY"  # text on the part equals a captured variable
    OCR_ENTRY = "OCR_ENTRY"  # the operator types a value into a variable
    TORQUE = "TORQUE"  # tightenings of a pset, with the camera watching
    TORQUE_ONLY = "TORQUE_ONLY"  # tightenings of a pset, no camera
    INPUT = "INPUT"  # a PLC signal reaches a value
    OUTPUT = "OUTPUT"  # Takt writes a PLC signal and reads it back
    QA = "QA"  # the operator confirms
    QA_DWELL = "QA_DWELL"  # time passes (curing, settling)
    VIDEO_ONLY = "VIDEO_ONLY"  # the operator watches the instruction and confirms
    SCAN = "SCAN"  # a code is scanned: matches a pattern, captures or verifies a variable


_VARIABLE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}\Z")


class StepData(msgspec.Struct, frozen=True, kw_only=True):
    """One action of a step: its type and the seed's key/value infos."""

    action: ActionType
    infos: dict[str, str] = {}
    id: int = 0


class Step(msgspec.Struct, frozen=True, kw_only=True):
    id: int = 0
    name: str
    description: str = ""
    benchmark_s: float = 0.0  # the expected cycle time; step records are compared to it
    minimum_predict: float = 0.0  # default confidence for ML data that name none
    camera_id: str | None = None
    data: tuple[StepData, ...] = ()


class Assembly(msgspec.Struct, frozen=True, kw_only=True):
    id: int = 0
    name: str
    revision: str = "A"
    steps: tuple[Step, ...] = ()


# --- conditions ------------------------------------------------------------------------------


class MlLabel(msgspec.Struct, frozen=True, kw_only=True):
    label: str
    minimum_predict: float
    frames: int  # consecutive frames at or above minimum_predict


class Torque(msgspec.Struct, frozen=True, kw_only=True):
    wrench: str | None  # None: any wrench of the station
    pset: int | None  # None: any pset
    count: int  # OK tightenings needed
    max_nok: int | None  # NOK results allowed before the step fails; None: rework forever


class InputSignal(msgspec.Struct, frozen=True, kw_only=True):
    plc: str
    signal: str
    value: str  # compared as text: "true", "1", "42.5", "OK"


class OutputSignal(msgspec.Struct, frozen=True, kw_only=True):
    plc: str
    signal: str
    value: str


class ScanCode(msgspec.Struct, frozen=True, kw_only=True):
    pattern: str | None  # the code must match (re.fullmatch)
    capture: str | None  # the code is kept in this variable
    verify: str | None  # the code must equal this earlier captured variable


class OcrCapture(msgspec.Struct, frozen=True, kw_only=True):
    variable: str
    pattern: str | None


class OcrVerify(msgspec.Struct, frozen=True, kw_only=True):
    variable: str


class OcrCheck(msgspec.Struct, frozen=True, kw_only=True):
    pattern: str


class OcrEntry(msgspec.Struct, frozen=True, kw_only=True):
    variable: str
    pattern: str | None


class Confirm(msgspec.Struct, frozen=True, kw_only=True):
    prompt: str  # QA and VIDEO_ONLY: what the operator confirms


class Dwell(msgspec.Struct, frozen=True, kw_only=True):
    seconds: float


Condition = (MlLabel | Torque | InputSignal | OutputSignal | ScanCode | OcrCapture | OcrVerify
             | OcrCheck | OcrEntry | Confirm | Dwell)


class _Bad(ValueError):
    pass


def condition_of(data: StepData, step: Step | None = None) -> Condition:
    """The typed condition of step data; ValueError saying which info is wrong."""
    i = data.infos
    a = data.action
    try:
        if a is ActionType.ML:
            default = step.minimum_predict if step is not None else 0.0
            return MlLabel(label=_required(i, "label"),
                           minimum_predict=_fraction(i, "minimum_predict", default),
                           frames=_int(i, "frames", 1, low=1, high=1000))
        if a in (ActionType.TORQUE, ActionType.TORQUE_ONLY):
            pset = i.get("pset")
            max_nok = i.get("max_nok")
            return Torque(wrench=i.get("wrench") or None,
                          pset=None if pset is None else _int(i, "pset", 0, low=0, high=999),
                          count=_int(i, "count", 1, low=1, high=999),
                          max_nok=None if max_nok is None else _int(i, "max_nok", 0, low=0,
                                                                    high=999))
        if a is ActionType.INPUT:
            return InputSignal(plc=_required(i, "plc"), signal=_required(i, "signal"),
                               value=i.get("value", "true"))
        if a is ActionType.OUTPUT:
            return OutputSignal(plc=_required(i, "plc"), signal=_required(i, "signal"),
                                value=i.get("value", "true"))
        if a is ActionType.SCAN:
            scan = ScanCode(pattern=_pattern(i, "pattern"), capture=_variable(i, "capture"),
                            verify=_variable(i, "verify"))
            if scan.capture is not None and scan.verify is not None:
                raise _Bad("capture and verify: a scan does one or the other")
            return scan
        if a is ActionType.OCR_CAPTURE:
            return OcrCapture(variable=_variable(i, "variable", required=True) or "",
                              pattern=_pattern(i, "pattern"))
        if a is ActionType.OCR_VERIFY:
            return OcrVerify(variable=_variable(i, "variable", required=True) or "")
        if a is ActionType.OCR_CHECK:
            return OcrCheck(pattern=_pattern(i, "pattern", required=True) or "")
        if a is ActionType.OCR_ENTRY:
            return OcrEntry(variable=_variable(i, "variable", required=True) or "",
                            pattern=_pattern(i, "pattern"))
        if a in (ActionType.QA, ActionType.VIDEO_ONLY):
            return Confirm(prompt=i.get("prompt", ""))
        if a is ActionType.QA_DWELL:
            seconds = _float(i, "seconds", None)
            if seconds is None or not 0 < seconds <= 86_400:
                raise _Bad("seconds: give the dwell time, 0 < seconds <= 86400")
            return Dwell(seconds=seconds)
    except _Bad as exc:
        raise ValueError(f"{a.value} step data: {exc}") from None
    raise ValueError(f"no condition for action {a!r}")  # pragma: no cover - enum is closed


def _required(infos: dict[str, str], key: str) -> str:
    value = infos.get(key, "").strip()
    if not value:
        raise _Bad(f"{key} is required")
    return value


def _float(infos: dict[str, str], key: str, default: float | None) -> float | None:
    raw = infos.get(key)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise _Bad(f"{key}: {raw!r} is not a number") from None
    if math.isnan(value):
        raise _Bad(f"{key}: not a number")
    return value


def _fraction(infos: dict[str, str], key: str, default: float) -> float:
    value = _float(infos, key, default)
    assert value is not None
    if not 0.0 <= value <= 1.0:
        raise _Bad(f"{key}: {value:g} is outside 0..1")
    return value


def _int(infos: dict[str, str], key: str, default: int, *, low: int, high: int) -> int:
    raw = infos.get(key)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _Bad(f"{key}: {raw!r} is not a whole number") from None
    if not low <= value <= high:
        raise _Bad(f"{key}: {value} is outside {low}..{high}")
    return value


def _pattern(infos: dict[str, str], key: str, *, required: bool = False) -> str | None:
    raw = infos.get(key)
    if raw is None or raw == "":
        if required:
            raise _Bad(f"{key} is required")
        return None
    try:
        re.compile(raw)
    except re.error as exc:
        raise _Bad(f"{key}: not a regular expression ({exc})") from None
    return raw


def _variable(infos: dict[str, str], key: str, *, required: bool = False) -> str | None:
    raw = infos.get(key)
    if raw is None or raw == "":
        if required:
            raise _Bad(f"{key} is required")
        return None
    if not _VARIABLE.match(raw):
        raise _Bad(f"{key}: {raw!r} is not a variable name (a letter, then letters, digits, _)")
    return raw


# --- dependencies ----------------------------------------------------------------------------


def captures(step: Step) -> set[str]:
    """The variables a step captures (OCR_CAPTURE, OCR_ENTRY, a capturing SCAN)."""
    found = set()
    for d in step.data:
        c = _safe_condition(d)
        if isinstance(c, OcrCapture | OcrEntry):
            found.add(c.variable)
        elif isinstance(c, ScanCode) and c.capture is not None:
            found.add(c.capture)
    return found


def needs(step: Step) -> set[str]:
    """The variables a step verifies, which an earlier step must capture."""
    found = set()
    for d in step.data:
        c = _safe_condition(d)
        if isinstance(c, OcrVerify):
            found.add(c.variable)
        elif isinstance(c, ScanCode) and c.verify is not None:
            found.add(c.verify)
    return found


def _safe_condition(data: StepData) -> Condition | None:
    try:
        return condition_of(data)
    except ValueError:
        return None


def step_problems(step: Step) -> list[str]:
    """Why a step cannot be coached as written (empty: it can)."""
    problems = []
    if not step.name.strip():
        problems.append("a step needs a name")
    if not 0 <= step.benchmark_s <= 86_400:
        problems.append(f"benchmark_s {step.benchmark_s:g} is outside 0..86400")
    if not 0.0 <= step.minimum_predict <= 1.0:
        problems.append(f"minimum_predict {step.minimum_predict:g} is outside 0..1")
    if not step.data:
        problems.append(f"step {step.name!r} has no step data: nothing would complete it")
    for n, d in enumerate(step.data):
        try:
            condition_of(d, step)
        except ValueError as exc:
            problems.append(f"step data {n}: {exc}")
    return problems


def dependency_problems(steps: Sequence[Step]) -> list[str]:
    """Every verify whose variable no earlier step captures, in step order."""
    captured: set[str] = set()
    problems = []
    for index, step in enumerate(steps):
        for variable in sorted(needs(step) - captured):
            problems.append(f"step {index} ({step.name}) verifies {variable!r}, which no "
                            f"earlier step captures")
        captured |= captures(step)
    return problems


def may_delete(steps: Sequence[Step], index: int) -> list[str]:
    """Why step `index` may not be deleted (empty: it may)."""
    _check_index(steps, index)
    rest = [*steps[:index], *steps[index + 1:]]
    return dependency_problems(rest)


def allowed_moves(steps: Sequence[Step], index: int) -> list[int]:
    """The positions step `index` may move to without breaking a dependency (its own
    position included)."""
    _check_index(steps, index)
    allowed = []
    for target in range(len(steps)):
        if not dependency_problems(_moved(steps, index, target)):
            allowed.append(target)
    return allowed


def _moved(steps: Sequence[Step], index: int, target: int) -> list[Step]:
    rest = [*steps[:index], *steps[index + 1:]]
    rest.insert(target, steps[index])
    return rest


def _check_index(steps: Sequence[Step], index: int) -> None:
    if not 0 <= index < len(steps):
        raise IndexError(f"no step {index}; the assembly has {len(steps)}")
