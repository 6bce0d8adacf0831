"""The bus's topic namespace: every topic starts with one of these roots.

A subscription naming any other root could never match anything, so it is refused
with a clear error rather than accepted and silently left empty.
"""

from __future__ import annotations

__all__ = ["TOPIC_ROOTS", "check_pattern"]

TOPIC_ROOTS: dict[str, str] = {
    "device": "facts published by device actors, e.g. device.plc.line1.signal",
    "input": "decoded inputs crossing into Takt from devices, e.g. input.plc.line1",
    "command": "commands from outside (API, HMI, operators), e.g. command.api",
    "health": "component health changes, e.g. health.plc:line1",
    "inspection": "inspection results, e.g. inspection.demo.result",
    "vision": "what a camera's model and OCR see, e.g. vision.cam1.prediction, vision.cam1.ocr",
    "coaching": "coaching state of a station, e.g. coaching.demo.state",
    "config": "station config changes made at run time, e.g. config.changed",
    "trace": "traceability facts after their commit: judged scans, batch changes, labels, "
             "e.g. trace.scan.line_in",
    "event": "operator journal entries as committed, e.g. event.warning.plc (/ws type event)",
}


def check_pattern(pattern: str) -> None:
    """Raise ValueError if the pattern's root is not a known topic root."""
    root = pattern.split(".", 1)[0]
    if "*" in root:
        return
    if root not in TOPIC_ROOTS:
        known = ", ".join(f"{r}.*" for r in TOPIC_ROOTS)
        raise ValueError(f"unknown topic {pattern!r}: topics start with one of {known}")
