"""Which bus events become operator journal entries, and how they read."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from controller.events import Category, Severity, classify

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
topics = st.lists(st.sampled_from(["health", "command", "config", "device", "plc", "event",
                                   "handshake", "signal", "x", ""]), min_size=1, max_size=5
                  ).map(".".join)


@given(topics, st.none() | st.text(), json_values)
def test_classify_never_raises_and_always_gives_a_known_severity(
        topic: str, source: str | None, data: Any) -> None:
    entry = classify(topic, source, data)
    if entry is not None:
        assert entry.severity in Severity and entry.category in Category
        assert isinstance(entry.message, str)


def test_a_device_going_down_is_an_error_and_coming_back_is_info() -> None:
    down = classify("health.plc:line1", "plc:line1",
                    {"state": "DOWN", "previous": "UP", "error": "connection refused"})
    assert down is not None
    assert (down.severity, down.category) == (Severity.ERROR, Category.DEVICE)
    assert down.message == "plc:line1 unavailable: connection refused"
    back = classify("health.plc:line1", "plc:line1", {"state": "UP", "previous": "DOWN"})
    assert back is not None and back.message == "plc:line1 back"
    assert classify("health.plc:line1", "plc:line1", {"state": "UP", "previous": "UNKNOWN"}) is None
    asked = classify("health.wrench:nut", "wrench:nut", {
        "state": "DOWN", "previous": "UP", "error": "disconnected on request by admin",
        "stopped": True})
    assert asked is not None and (asked.severity, asked.message) == (
        Severity.INFO, "wrench:nut stopped: disconnected on request by admin")


def test_plc_problems_are_warnings_and_notes_keep_their_severity() -> None:
    timeout = classify("device.plc.cell.handshake", "plc:cell",
                       {"handshake": "move", "event": "timeout", "waiting_for": "move_done"})
    assert timeout is not None and timeout.severity is Severity.WARNING
    assert timeout.message == "cell: handshake move timeout (waiting for move_done)"
    cleared = classify("device.plc.cell.handshake", "plc:cell",
                       {"handshake": "move", "event": "cleared"})
    assert cleared is not None and cleared.severity is Severity.INFO
    missed = classify("device.plc.cell.pulse_missed", "plc:cell", {"signal": "part", "missed": 2})
    assert missed is not None and missed.severity is Severity.WARNING
    note = classify("command.api", "api", {"by": "ann", "note": "door", "severity": "critical"})
    assert note is not None and (note.category, note.severity) == (Category.NOTE,
                                                                    Severity.CRITICAL)
    odd = classify("command.api", "api", {"by": "ann", "note": "x", "severity": "loud"})
    assert odd is not None and odd.severity is Severity.INFO
    audit = classify("command.api", "api", {"by": "ann", "plc": "line1"})
    assert audit is not None and audit.category is Category.AUDIT
    assert audit.message.startswith("ann: ")
