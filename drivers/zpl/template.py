"""ZPL label templates: `{{name}}` placeholders filled with escaped field data, sans-I/O.

`LabelTemplate` renders ZPL with `{{name}}` placeholders; field data is always escaped, so
it can never become a command. `{{name|gs1}}` fills a GS1 DataMatrix field. See
docs/zpl-templates.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

from drivers.zpl.codec import (
    MAX_FIELD_BYTES,
    Command,
    SgdCommand,
    Token,
    _FieldState,
    _int_arg,
    tokenize,
)
from drivers.zpl.gs1 import gs1_field_data

__all__ = ["LabelTemplate"]

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:\|\s*(gs1)\s*)?\}\}")
# Placeholders become these markers before the template is tokenized; NUL is refused in
# template text, so a marker cannot be forged by it.
_MARKER = re.compile("\x00([0-9]+)\x00")
_CODE128_ESCAPE = ">"


class _Ref:
    __slots__ = ("gs1", "name")

    def __init__(self, name: str, gs1: bool) -> None:
        self.name, self.gs1 = name, gs1


class _Slot:
    """An ^FD holding placeholders: static text and references, and how to escape them."""

    __slots__ = ("bx_escape", "code128", "command", "escape_static", "hex", "segments", "unsafe")

    def __init__(
        self,
        command: str,
        segments: list[str | _Ref],
        *,
        hex_indicator: str,
        escape_static: bool,
        bx_escape: str | None,
        code128: bool,
        prefixes: set[str],
    ) -> None:
        self.command = command
        self.segments = segments
        self.hex = hex_indicator
        self.escape_static = escape_static
        self.bx_escape = bx_escape
        self.code128 = code128
        self.unsafe = frozenset(ord(c) for c in {*prefixes, "^", "~", hex_indicator})


class LabelTemplate:
    """ZPL text with `{{name}}` placeholders in field data; `render` fills and escapes them.

    Checked when built (ValueError): placeholders only inside ^FD/^FV of a ^XA...^XZ format,
    `{{name|gs1}}` only in a ^BX quality 200 field with an explicit escape character.
    Rendering adds ^CI28 after each ^XA and ^FH before each filled ^FD that has none, and
    writes every byte of field data that could mean something to the printer as a hex
    escape. See docs/zpl-templates.md.
    """

    def __init__(self, text: str) -> None:
        if "\x00" in text:
            raise ValueError("a template cannot contain NUL characters")
        refs: list[_Ref] = []

        def mark(match: re.Match[str]) -> str:
            refs.append(_Ref(match[1], match[2] == "gs1"))
            return f"\x00{len(refs) - 1}\x00"

        marked = _PLACEHOLDER.sub(mark, text)
        if (at := marked.find("{{")) >= 0:
            raise ValueError(
                f"malformed placeholder {marked[at : at + 30]!r}: write {{{{name}}}} or "
                "{{name|gs1}}, name of letters, digits and _"
            )
        self._refs = refs
        self._parts = self._compile(tokenize(marked.encode("utf-8")))
        self.placeholders = frozenset(ref.name for ref in refs)
        """Names the template needs in render()."""

    def render(self, fields: Mapping[str, str]) -> bytes:
        """The ZPL with every placeholder filled; ValueError for a missing or unknown field."""
        missing = self.placeholders - fields.keys()
        if missing:
            raise ValueError(f"missing field(s) for the template: {', '.join(sorted(missing))}")
        unknown = fields.keys() - self.placeholders
        if unknown:
            raise ValueError(
                f"unknown field(s) {', '.join(sorted(unknown))}: the template has "
                f"{', '.join(sorted(self.placeholders)) or 'no placeholders'}"
            )
        for name in self.placeholders:
            if not isinstance(fields[name], str):
                # ValueError like every other rendering error, so callers catch one type.
                kind = type(fields[name]).__name__
                raise ValueError(f"field {name} must be text, got {kind}")  # noqa: TRY004
        out = []
        for part in self._parts:
            out.append(part if isinstance(part, str) else _fill(part, fields))
        return "".join(out).encode("latin-1")

    def _compile(self, tokens: list[Token]) -> list[str | _Slot]:
        commands = [t for t in tokens if isinstance(t, Command)]
        # Every character that is, or is made, a prefix anywhere in the template.
        prefixes = {t.prefix for t in commands}
        prefixes |= {t.params for t in commands if t.name in ("CC", "CT") and len(t.params) == 1}
        parts: list[str | _Slot] = []
        in_format, ci, field = False, 0, _FieldState()
        for token in tokens:
            if isinstance(token, SgdCommand):
                if "\x00" in token.line:
                    raise ValueError(f"placeholder {self._names(token.line)} is in an SGD line")
                parts.append(token.line + "\r\n")
                continue
            name = token.name
            if "\x00" in token.params and (token.control or name not in ("FD", "FV")):
                raise ValueError(
                    f"placeholder {self._names(token.params)} is outside field data (in "
                    f"{token.prefix}{name}); placeholders may only stand in ^FD or ^FV"
                )
            if token.control:
                parts.append(token.text)
                continue
            if name == "XA":
                in_format, ci, field = True, 28, _FieldState()
                parts.append(token.text + f"{token.prefix}CI28")
                continue
            if name == "XZ":
                in_format, field = False, _FieldState()
                parts.append(token.text + "\n")
                continue
            if name in ("FD", "FV") and "\x00" in token.params:
                self._check_slot(token, field, ci, in_format)
                parts.extend(self._slot(token, field, prefixes))
                continue
            if name == "CI":
                ci = _int_arg(token, 0, ci)
            elif name == "FS":
                field = _FieldState()
            else:
                field.update(token)
            parts.append(token.text)
        if in_format:
            raise ValueError("the template ends inside a label format: ^XZ is missing")
        placed = {id(ref) for part in parts if isinstance(part, _Slot) for ref in part.segments}
        lost = [ref for ref in self._refs if id(ref) not in placed]
        if lost:
            # Text between commands is ignored by printers, and so would be the placeholder.
            raise ValueError(f"placeholder {{{{{lost[0].name}}}}} is not inside any command")
        return parts

    def _check_slot(self, token: Command, field: _FieldState, ci: int, in_format: bool) -> None:
        names = self._names(token.params)
        if not in_format:
            raise ValueError(f"placeholder {names} is outside a label format (^XA...^XZ)")
        if ci != 28:
            raise ValueError(f"placeholder {names} needs ^CI28 (UTF-8); the template sets ^CI{ci}")
        if field.barcode == "BX":
            if not field.bx200:
                raise ValueError(f"placeholder {names} in ^BX needs quality 200")
            if not field.bx_escape_explicit:
                raise ValueError(
                    f"placeholder {names} in ^BX needs an explicit escape character "
                    "(7th parameter, e.g. ^BXN,6,200,,,,_): firmware defaults differ"
                )
        for ref in self._refs_in(token.params):
            if ref.gs1 and not field.bx200:
                raise ValueError(f"{{{{{ref.name}|gs1}}}} needs a ^BX quality 200 field")

    def _slot(self, token: Command, field: _FieldState, prefixes: set[str]) -> list[str | _Slot]:
        bx_escape = field.bx_escape if field.bx200 else None
        parts: list[str | _Slot] = []
        indicator = field.hex
        if indicator is None:
            # Distinct from the ^BX escape character so the generated data stays readable.
            indicator = "\\" if bx_escape == "_" else "_"
            parts.append(f"{token.prefix}FH{indicator}")
        pieces = _MARKER.split(token.params)
        segments: list[str | _Ref] = [
            self._refs[int(piece)] if index % 2 else piece
            for index, piece in enumerate(pieces)
            if index % 2 or piece
        ]
        parts.append(
            _Slot(
                token.prefix + token.name,
                segments,
                hex_indicator=indicator,
                escape_static=field.hex is None,
                bx_escape=bx_escape,
                code128=field.barcode == "BC",
                prefixes=prefixes,
            )
        )
        return parts

    def _refs_in(self, params: str) -> Iterator[_Ref]:
        for match in _MARKER.finditer(params):
            yield self._refs[int(match[1])]

    def _names(self, params: str) -> str:
        return ", ".join(f"{{{{{ref.name}}}}}" for ref in self._refs_in(params))


def _fill(slot: _Slot, fields: Mapping[str, str]) -> str:
    out = [slot.command]
    size = 0
    for segment in slot.segments:
        if isinstance(segment, str):
            raw = segment.encode("latin-1")
            size += len(raw)
            out.append(_hex_escape(raw, slot) if slot.escape_static else segment)
            continue
        value = fields[segment.name]
        if segment.gs1:
            assert slot.bx_escape is not None  # checked when the template was built
            try:
                value = gs1_field_data(value, escape=slot.bx_escape)
            except ValueError as exc:
                raise ValueError(f"field {segment.name}: {exc}") from None
        else:
            if slot.code128 and _CODE128_ESCAPE in value:
                raise ValueError(
                    f"field {segment.name}: '>' starts a Code 128 invocation code in ^BC data"
                )
            if slot.bx_escape:
                value = value.replace(slot.bx_escape, slot.bx_escape * 2)
        try:
            data = value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(f"field {segment.name} is not encodable as UTF-8: {exc}") from None
        size += len(data)
        out.append(_hex_escape(data, slot))
    if size > MAX_FIELD_BYTES:
        raise ValueError(f"field data of {size} bytes exceeds the {MAX_FIELD_BYTES}-byte limit")
    return "".join(out)


def _hex_escape(data: bytes, slot: _Slot) -> str:
    # Printable ASCII stays readable; prefixes, the indicator, control characters and every
    # byte of a non-ASCII character become ^FH escapes, so no byte can start a command.
    return "".join(
        chr(byte) if 0x20 <= byte <= 0x7E and byte not in slot.unsafe else f"{slot.hex}{byte:02X}"
        for byte in data
    )
