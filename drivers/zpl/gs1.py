"""GS1 data for bar codes: element strings checked, and GS1 DataMatrix fields for ZPL, sans-I/O.

- `gs1_element_string` reads what a scanner sends, or the human-readable `(01)...` form.
- `gs1_field_data` / `gs1_datamatrix` build a GS1 DataMatrix field (`^BX` quality 200,
  FNC1 first).
"""

from __future__ import annotations

import re

__all__ = ["GS", "gs1_datamatrix", "gs1_element_string", "gs1_field_data"]

GS = "\x1d"
"""The GS1 separator (ASCII group separator) after variable-length elements."""

# GS1 AI encodable character set 82 (GS1 General Specifications, figure 7.11-1).
_GS1_CHARS = frozenset(
    "!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
)
# Element strings of predefined length by the AI's first two digits (GS1 General
# Specifications, figure 7.8.5-2), AI included; all others end with FNC1 unless last.
_PREDEFINED_LENGTH = {
    "00": 20, "01": 16, "02": 16, "03": 16, "04": 18,
    "11": 8, "12": 8, "13": 8, "14": 8, "15": 8, "16": 8, "17": 8, "18": 8, "19": 8,
    "20": 4, "31": 10, "32": 10, "33": 10, "34": 10, "35": 10, "36": 10, "41": 16,
}  # fmt: skip
# Symbology identifiers a scanner may prefix to GS1 data: DataMatrix, 128, QR, DataBar.
_GS1_SYMBOLOGY_IDS = ("]d2", "]C1", "]Q3", "]e0")
_HRI = re.compile(r"\(([0-9]{2,4})\)([^()]*)")


def gs1_element_string(code: str) -> str:
    """A GS1 element string with GS (0x1D) after variable-length elements, checked.

    Accepts what a scanner sends (optionally with its `]d2` style prefix and GS separators)
    or the human-readable form `(01)09506000134352(10)ABC`, whose separators are added.
    ValueError if it is not GS1 data.
    """
    text = code
    for prefix in _GS1_SYMBOLOGY_IDS:
        if text.startswith(prefix):
            text = text[len(prefix) :]
            break
    if text.startswith("("):
        text = _from_human_readable(text)
    text = text.rstrip(GS)
    if not text:
        raise ValueError("empty GS1 element string")
    bad = sorted(set(text) - _GS1_CHARS - {GS})
    if bad:
        raise ValueError(f"characters not allowed in GS1 data: {''.join(bad)!r}")
    for element in text.split(GS):
        if len(element) < 3 or not element[:2].isdigit():
            raise ValueError(f"GS1 element {element!r} does not start with an AI")
    return text


def gs1_field_data(code: str, escape: str = "_") -> str:
    """^FD data for a ^BX quality 200 field with escape character `escape`: FNC1 first, FNC1
    for every GS separator, the escape character doubled."""
    if len(escape) != 1 or escape.isalnum() or escape in "^~," or not escape.isprintable():
        raise ValueError(f"unusable ^BX escape character {escape!r}")
    text = gs1_element_string(code)
    fnc1 = escape + "1"
    return fnc1 + text.replace(escape, escape * 2).replace(GS, fnc1)


def gs1_datamatrix(code: str, *, module: int = 6, orientation: str = "N", escape: str = "_") -> str:
    """A complete GS1 DataMatrix field, `^BX...,200,,,,_^FD_1...^FS`; put an ^FO before it.

    GS1 data never holds ^ or ~, so no ^FH is needed.
    """
    if orientation not in ("N", "R", "I", "B"):
        raise ValueError(f"orientation must be N, R, I or B, not {orientation!r}")
    if not 1 <= module <= 9999:
        raise ValueError(f"module size {module} out of range")
    data = gs1_field_data(code, escape)
    return f"^BX{orientation},{module},200,,,,{escape}^FD{data}^FS"


def _from_human_readable(text: str) -> str:
    pieces = _HRI.findall(text)
    if "".join(f"({ai}){value}" for ai, value in pieces) != text:
        raise ValueError(
            f"not a GS1 human-readable string {text[:40]!r}: expected (AI)value...; data "
            "holding parentheses must be given with GS separators"
        )
    out = []
    for index, (ai, value) in enumerate(pieces):
        element = ai + value
        length = _PREDEFINED_LENGTH.get(ai[:2])
        if length is not None and len(element) != length:
            raise ValueError(
                f"({ai}){value} has {len(element)} characters with its AI, needs {length}"
            )
        out.append(element)
        if length is None and index < len(pieces) - 1:
            out.append(GS)
    return "".join(out)
