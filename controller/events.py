"""The operator-facing event journal: which bus events become entries, and how they read.

The bus journal keeps every durable event for replay and catch-up; this journal keeps the
ones an operator or engineer should see (a device lost, a handshake that timed out, a
config change, a command, an operator's note), each with a severity, a category and a
sentence. Classification is pure so that replay reproduces the same entries.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

import msgspec

__all__ = ["Category", "Classified", "Severity", "classify"]


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"
    CRITICAL = "critical"


class Category(StrEnum):
    DEVICE = "device"  # a component went down or came back
    PLC = "plc"  # handshakes, missed pulses
    SIGNAL = "signal"  # durable device signals
    AUDIT = "audit"  # commands from the API, HMI and operators
    CONFIG = "config"  # run-time config changes
    NOTE = "note"  # written by an operator
    PRINTER = "printer"  # print jobs held, failed or done
    TRACEABILITY = "traceability"  # refused scans, ejections, completed batches
    WRENCH = "wrench"  # NOK tightenings, completed tightening sequences
    POWER = "power"  # the UPS: on battery, low battery, power back
    ROBOT = "robot"  # robot alerts, failed goals


class Classified(msgspec.Struct, frozen=True, kw_only=True):
    severity: Severity
    category: Category
    message: str


_PROBLEM_HANDSHAKE_EVENTS = frozenset({"timeout", "stalled"})
_SEVERITIES = frozenset(s.value for s in Severity)


def classify(topic: str, source: str | None, data: Any) -> Classified | None:
    """The journal entry for a durable bus event, or None when it is not one."""
    root, _, rest = topic.partition(".")
    d: Mapping[str, Any] = data if isinstance(data, Mapping) else {}
    if root == "health":
        return _health(rest, d)
    if root == "command" and "note" in d:  # an operator's note (POST /api/v1/events)
        severity = d.get("severity")
        return Classified(
            severity=Severity(severity) if severity in _SEVERITIES else Severity.INFO,
            category=Category.NOTE, message=str(d["note"]))
    if root == "command":
        return Classified(severity=Severity.INFO, category=Category.AUDIT,
                          message=_command_text(rest, d))
    if root == "config":
        return Classified(severity=Severity.INFO, category=Category.CONFIG,
                          message=f"{d.get('by', '?')} replaced the {d.get('section', '?')} "
                                  "configuration")
    if root == "device":
        return _device(rest, d)
    if root == "trace":
        return _trace(rest, d)
    return None


def _health(component: str, d: Mapping[str, Any]) -> Classified | None:
    state, previous = d.get("state"), d.get("previous")
    if state == "DOWN" and d.get("stopped"):
        # Stopped on purpose (a disconnect asked for, a shutdown): news, not a fault.
        reason = f": {d['error']}" if d.get("error") else ""
        return Classified(severity=Severity.INFO, category=Category.DEVICE,
                          message=f"{component} stopped{reason}")
    if state == "DOWN":
        error = d.get("error")
        return Classified(severity=Severity.ERROR, category=Category.DEVICE,
                          message=f"{component} unavailable" + (f": {error}" if error else ""))
    if state == "UP" and previous in ("DOWN", "RESET"):
        return Classified(severity=Severity.INFO, category=Category.DEVICE,
                          message=f"{component} back")
    return None


def _device(rest: str, d: Mapping[str, Any]) -> Classified | None:
    kind, _, tail = rest.partition(".")
    name, _, what = tail.rpartition(".")
    if kind == "plc" and what == "handshake":
        event = str(d.get("event", "?"))
        problem = event in _PROBLEM_HANDSHAKE_EVENTS
        waiting = f" (waiting for {d['waiting_for']})" if "waiting_for" in d else ""
        return Classified(severity=Severity.WARNING if problem else Severity.INFO,
                          category=Category.PLC,
                          message=f"{name}: handshake {d.get('handshake', '?')} {event}{waiting}")
    if kind == "plc" and what == "pulse_missed":
        return Classified(severity=Severity.WARNING, category=Category.PLC,
                          message=f"{name}: {d.get('missed', '?')} pulse(s) of "
                                  f"{d.get('signal', '?')} shorter than the poll interval")
    if kind == "printer" and what == "job":
        return _print_job(name, d)
    if kind == "wrench":
        return _wrench(name, what, d)
    if kind == "ups" and what == "power" and d.get("alert"):
        return _power(name, d)
    if kind == "robot":
        return _robot(name, what, d)
    if kind == "plc" and what == "signal":
        return Classified(severity=Severity.INFO, category=Category.SIGNAL,
                          message=f"{name}.{d.get('signal', '?')} = {d.get('value')!r}")
    return None


# Queued and sent are steps on the way; an entry for each would bury the ones that matter.
_JOB_SEVERITY = {"held": Severity.WARNING, "partial": Severity.ERROR, "failed": Severity.ERROR,
                 "done": Severity.INFO}


def _print_job(printer: str, d: Mapping[str, Any]) -> Classified | None:
    state = str(d.get("state", "?"))
    severity = _JOB_SEVERITY.get(state)
    if severity is None:
        return None
    code = f" ({d['code']})" if d.get("code") else ""
    reason = f": {d['reason']}" if d.get("reason") else ""
    return Classified(severity=severity, category=Category.PRINTER,
                      message=f"{printer}: job {d.get('job', '?')}{code} {state}{reason}")


# Seed 003: severity 1 is the most critical, 5 the least.
_ALERT_SEVERITY = {1: Severity.CRITICAL, 2: Severity.ERROR, 3: Severity.WARNING,
                   4: Severity.WARNING, 5: Severity.INFO}


def _robot(robot: str, what: str, d: Mapping[str, Any]) -> Classified | None:
    if what == "alert":
        level = d.get("severity")
        severity = _ALERT_SEVERITY.get(level if isinstance(level, int) else 0, Severity.WARNING)
        action = f" ({d['action_required']})" if d.get("action_required") else ""
        return Classified(severity=severity, category=Category.ROBOT,
                          message=f"{robot}: {d.get('header', '?')}: {d.get('body', '')}{action}")
    # An arrival is routine (the location log has it); a goal that failed needs someone.
    if what == "goal" and d.get("outcome") == "failed":
        goal = d.get("goal") if isinstance(d.get("goal"), Mapping) else {}
        target = goal.get("waypoint") or goal.get("target") or "?"
        return Classified(severity=Severity.WARNING, category=Category.ROBOT,
                          message=f"{robot}: goal {goal.get('goal_id', '?')} to {target} failed "
                                  f"at battery {d.get('battery_pct', '?')}%")
    return None


def _wrench(wrench: str, what: str, d: Mapping[str, Any]) -> Classified | None:
    # An OK tightening is evidence (its own table), not news; one entry per bolt would bury
    # the NOK ones an operator must act on.
    if what == "result" and d.get("ok") is False:
        why = d.get("flag") or (f"torque {d.get('torque_nm', '?')} N·m "
                                f"({d.get('torque_status', '?')}), angle {d.get('angle', '?')}° "
                                f"({d.get('angle_status', '?')})")
        return Classified(severity=Severity.WARNING, category=Category.WRENCH,
                          message=f"{wrench}: NOK tightening {d.get('tightening_id', '?')} "
                                  f"of pset {d.get('pset', '?')}: {why}")
    if what == "batch" and d.get("complete"):
        return Classified(severity=Severity.INFO, category=Category.WRENCH,
                          message=f"{wrench}: sequence of {d.get('size', '?')} OK tightenings "
                                  f"of pset {d.get('pset', '?')} complete")
    return None


_POWER_SEVERITY = {"on_battery": Severity.WARNING, "low_battery": Severity.CRITICAL,
                   "unknown": Severity.ERROR, "online": Severity.INFO}
_POWER_TEXT = {"on_battery": "on battery", "low_battery": "battery low: coaching pauses, "
               "the store is flushed", "unknown": "power state unknown", "online": "power back"}


def _power(ups: str, d: Mapping[str, Any]) -> Classified:
    state = str(d.get("state", "unknown"))
    charge, runtime = d.get("battery_charge"), d.get("battery_runtime_s")
    battery = "" if charge is None else f" ({charge:g}%" + (
        f", {runtime // 60} min left)" if isinstance(runtime, int) else ")")
    reason = f": {d['reason']}" if d.get("reason") else ""
    return Classified(severity=_POWER_SEVERITY.get(state, Severity.ERROR),
                      category=Category.POWER,
                      message=f"UPS {ups}: {_POWER_TEXT.get(state, state)}{battery}{reason}")


def _trace(rest: str, d: Mapping[str, Any]) -> Classified | None:
    what, _, source = rest.partition(".")
    if what == "scan" and d.get("alarm"):
        return Classified(severity=Severity.ERROR, category=Category.TRACEABILITY,
                          message=f"{source}: {d.get('reason', '?')} ({_code_of(d)})")
    if what == "scan" and not d.get("accepted", True):
        eject = ", ejected" if d.get("eject") else ""
        return Classified(severity=Severity.WARNING, category=Category.TRACEABILITY,
                          message=f"{source}: refused {_code_of(d)}: {d.get('reason', '?')}"
                                  f"{eject}")
    if what == "batch":
        state = d.get("status", "?")
        return Classified(severity=Severity.INFO, category=Category.TRACEABILITY,
                          message=f"{d.get('kind', 'batch')} {d.get('identifier', '?')} {state} "
                                  f"({d.get('count', '?')} items)")
    if what == "label" and d.get("error"):
        return Classified(severity=Severity.ERROR, category=Category.TRACEABILITY,
                          message=f"no label for {d.get('identifier', '?')}: {d['error']}")
    return None


def _code_of(d: Mapping[str, Any]) -> str:
    return str(d.get("code") or d.get("raw") or "no code")


def _command_text(source: str, d: Mapping[str, Any]) -> str:
    by = d.get("by", source or "?")
    detail = {k: v for k, v in d.items() if k != "by"}
    text = msgspec.json.encode(detail).decode()
    return f"{by}: {text[:300]}"
