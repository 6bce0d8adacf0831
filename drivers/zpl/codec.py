"""ZPL II: a tokenizer, label formats read back from ZPL, and label templates, sans-I/O.

- `ZplTokenizer` splits a byte stream into commands (`^XA`, `~HS`...) and Set-Get-Do lines
  (`! U1 getvar ...`) as a printer does; the simulator and the tests read ZPL with it.
- `FormatReader` / `read_formats` turn commands into `LabelFormat`s whose fields hold the
  decoded text (after `^FH` hex escapes, `^BX` escape sequences and `^CI28` UTF-8).
- `LabelTemplate` renders ZPL with `{{name}}` placeholders; field data is always escaped,
  so it can never become a command. See docs/zpl-templates.md.
- `gs1_datamatrix` builds a GS1 DataMatrix field (`^BX` quality 200, FNC1 first).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import TypeAlias

import msgspec

__all__ = [
    "GS",
    "MAX_FIELD_BYTES",
    "Command",
    "Field",
    "FormatReader",
    "LabelFormat",
    "LabelTemplate",
    "SgdCommand",
    "Token",
    "ZplTokenizer",
    "count_labels",
    "decode_field_data",
    "gs1_datamatrix",
    "gs1_element_string",
    "gs1_field_data",
    "read_formats",
    "tokenize",
]

GS = "\x1d"
MAX_FIELD_BYTES = 3072
"""The guide's limit for one ^FD."""
MAX_COMMAND = 1 << 20
"""Longer commands (a runaway ^FD without ^FS) are dropped by the tokenizer."""

# Commands that take a fixed number of parameter characters, so they are complete without
# waiting for the next prefix: a host query must be answered, and a format printed, as soon
# as it has arrived. ^CC/^CT/^CD change the prefixes and delimiter for what follows.
_FIXED = {
    "XA": 0, "XZ": 0, "FS": 0, "HS": 0, "HI": 0, "HM": 0, "JA": 0, "PS": 0, "PP": 0,
    "HQ": 2, "CC": 1, "CT": 1, "CD": 1,
}  # fmt: skip
# Tokenizer states; _SGD_DROPPED skips the rest of an overlong SGD line.
_STRAY, _NAME, _FIXED_PARAMS, _PARAMS, _DISCARD, _SGD, _SGD_DROPPED = range(7)
_MAX_SGD = 1024
_BREAKS = "\r\n"


class Command(msgspec.Struct, frozen=True, kw_only=True, tag="command"):
    """One ZPL command: prefix (as sent), name (upper case) and raw parameter text.

    Text is bytes decoded as Latin-1, one character per byte, so nothing is lost.
    """

    prefix: str
    control: bool
    """True for a control command (`~` prefix by default): executed at once on arrival."""
    name: str
    params: str = ""
    delimiter: str = ","
    """The parameter delimiter in effect for this command (changed by ^CD)."""

    @property
    def text(self) -> str:
        """The command as it is written."""
        return f"{self.prefix}{self.name}{self.params}"

    def args(self) -> list[str]:
        """Parameters split at the delimiter."""
        return self.params.split(self.delimiter)


class SgdCommand(msgspec.Struct, frozen=True, kw_only=True, tag="sgd"):
    """A Set-Get-Do line such as `! U1 getvar "odometer.total_label_count"`."""

    line: str


Token: TypeAlias = Command | SgdCommand


class ZplTokenizer:
    """Splits a ZPL byte stream into tokens; keeps partial commands between feeds.

    A command ends where the next prefix starts, except those of fixed length (`^XZ`,
    `~HS`, `~HQxx`...) which end at once. CR and LF are ignored, as printers do. Never
    raises on input; bytes outside any command are counted in `ignored`.
    """

    def __init__(self, max_command: int = MAX_COMMAND) -> None:
        self._max_command = max_command
        self.format_prefix = "^"
        self.control_prefix = "~"
        self.delimiter = ","
        self.ignored = 0
        """Bytes that were not part of any command (blanks between commands excluded)."""
        self.dropped = 0
        """Commands longer than max_command, dropped."""
        self._state = _STRAY
        self._prefix = ""
        self._name = ""
        self._params: list[str] = []
        self._length = 0
        self._need = 0

    @property
    def pending(self) -> bool:
        """True while a command or SGD line has started and not ended."""
        return self._state != _STRAY

    def feed(self, data: bytes) -> list[Token]:
        """Tokens completed by data, in order."""
        text = data.decode("latin-1")
        out: list[Token] = []
        i, n = 0, len(text)
        while i < n:
            if self._state in (_PARAMS, _DISCARD):
                j = self._next_prefix(text, i)
                end = n if j < 0 else j
                if self._state == _PARAMS:
                    self._add_params(text[i:end])
                if j < 0:
                    break
                if self._state == _PARAMS:
                    out.append(self._complete())
                self._begin(text[j])
                i = j + 1
            elif self._state in (_SGD, _SGD_DROPPED):
                j = text.find("\n", i)
                end = n if j < 0 else j
                if self._state == _SGD:
                    self._add_sgd(text[i:end])
                if j < 0:
                    break
                if self._state == _SGD:
                    out.append(self._sgd_line())
                self._state = _STRAY
                i = j + 1
            else:
                self._step(text[i], out)
                i += 1
        return out

    def flush(self) -> list[Token]:
        """End of stream: complete what can be completed, and reset."""
        out: list[Token] = []
        if self._state == _PARAMS:
            out.append(self._complete())
        elif self._state == _SGD:
            line = self._sgd_line()
            if line.line:
                out.append(line)
        elif self._state in (_NAME, _FIXED_PARAMS):
            self.ignored += len(self._prefix) + len(self._name) + self._length
        self._state = _STRAY
        self._params, self._length = [], 0
        return out

    def _step(self, char: str, out: list[Token]) -> None:
        # One character in the states where commands start or have a fixed length.
        state = self._state
        if state == _STRAY:
            if char in (self.format_prefix, self.control_prefix):
                self._begin(char)
            elif char == "!":
                self._state, self._params, self._length = _SGD, ["!"], 1
            elif char not in " \t\r\n":
                self.ignored += 1
            return
        if char in _BREAKS:
            return
        if state == _NAME:
            if char in (self.format_prefix, self.control_prefix):
                self.ignored += len(self._prefix) + len(self._name)
                self._begin(char)
                return
            self._name += char.upper()
            if len(self._name) == 2:
                need = _FIXED.get(self._name)
                if need is None:
                    self._state = _PARAMS
                elif need == 0:
                    out.append(self._complete())
                    self._state = _STRAY
                else:
                    self._state, self._need = _FIXED_PARAMS, need
        else:  # _FIXED_PARAMS
            self._params.append(char)
            self._length += 1
            if self._length == self._need:
                out.append(self._complete())
                self._state = _STRAY

    def _begin(self, prefix: str) -> None:
        self._state, self._prefix, self._name = _NAME, prefix, ""
        self._params, self._length = [], 0

    def _next_prefix(self, text: str, start: int) -> int:
        first = text.find(self.format_prefix, start)
        second = text.find(self.control_prefix, start)
        if first < 0 or 0 <= second < first:
            return second
        return first

    def _add_params(self, chunk: str) -> None:
        chunk = chunk.replace("\r", "").replace("\n", "")
        self._params.append(chunk)
        self._length += len(chunk)
        if self._length > self._max_command:
            self.dropped += 1
            self._params, self._length = [], 0
            self._state = _DISCARD

    def _add_sgd(self, chunk: str) -> None:
        self._params.append(chunk)
        self._length += len(chunk)
        if self._length > _MAX_SGD:
            self.dropped += 1
            self._params, self._length = [], 0
            self._state = _SGD_DROPPED

    def _sgd_line(self) -> SgdCommand:
        line = "".join(self._params).replace("\r", "").strip()
        self._params, self._length = [], 0
        return SgdCommand(line=line)

    def _complete(self) -> Command:
        params = "".join(self._params)
        command = Command(
            prefix=self._prefix,
            control=self._prefix == self.control_prefix,
            name=self._name,
            params=params,
            delimiter=self.delimiter,
        )
        # The new characters take effect for what follows; a change that would make the
        # two prefixes equal is ignored, as it would leave no way to tell them apart.
        if len(params) == 1:
            if self._name == "CC" and params != self.control_prefix:
                self.format_prefix = params
            elif self._name == "CT" and params != self.format_prefix:
                self.control_prefix = params
            elif self._name == "CD":
                self.delimiter = params
        self._params, self._length = [], 0
        return command


def tokenize(data: bytes) -> list[Token]:
    """Every token of a complete ZPL document."""
    tokenizer = ZplTokenizer()
    return tokenizer.feed(data) + tokenizer.flush()


# --- label formats read back -------------------------------------------------------------


class Field(msgspec.Struct, frozen=True, kw_only=True):
    """One field of a label format with its data decoded to text."""

    text: str
    barcode: str | None = None
    """The bar code command of the field (`BX`, `BC`...), None for text."""
    gs1: bool = False
    """True for a ^BX quality 200 field starting with FNC1 (GS1 DataMatrix); text is then
    the element string with GS (0x1D) where the symbol has FNC1 separators."""


class LabelFormat(msgspec.Struct, frozen=True, kw_only=True):
    """One `^XA ... ^XZ` format: its fields and how many labels it prints (^PQ)."""

    fields: tuple[Field, ...] = ()
    quantity: int = 1


class _FieldState:
    """What the commands of the current field (up to ^FS) have set."""

    __slots__ = ("barcode", "bx_escape", "bx_escape_explicit", "bx_quality", "data", "hex")

    def __init__(self) -> None:
        self.hex: str | None = None
        self.barcode: str | None = None
        self.bx_quality = ""
        self.bx_escape = "_"
        self.bx_escape_explicit = False
        self.data: str | None = None

    def update(self, command: Command) -> None:
        name = command.name
        if name == "FH":
            self.hex = command.params[:1] or "_"
        elif name in ("FD", "FV"):
            self.data = command.params
        elif name[0] == "B" and name != "BY":
            self.barcode = name
            if name == "BX":
                args = command.args()
                self.bx_quality = args[2].strip() if len(args) > 2 else ""
                # Firmware defaults differ (_ or ~); the guide's parameter table says _.
                explicit = args[6][:1] if len(args) > 6 else ""
                self.bx_escape = explicit or "_"
                self.bx_escape_explicit = bool(explicit)

    @property
    def bx200(self) -> bool:
        return self.barcode == "BX" and self.bx_quality == "200"

    def field(self, utf8: bool) -> Field | None:
        if self.data is None:
            return None
        text, gs1 = decode_field_data(
            self.data,
            hex_indicator=self.hex,
            bx_escape=self.bx_escape if self.bx200 else None,
            utf8=utf8,
        )
        return Field(text=text, barcode=self.barcode, gs1=gs1)


class FormatReader:
    """Turns tokens into label formats as a printer lays them out; keeps state between feeds.

    ^CI persists across formats, as on a printer. A format restarted by a second ^XA, or
    dropped with discard(), is counted in `discarded`.
    """

    def __init__(self) -> None:
        self._ci = 0
        self._fields: list[Field] | None = None
        self._quantity = 1
        self._field = _FieldState()
        self.discarded = 0

    @property
    def in_format(self) -> bool:
        """True between ^XA and ^XZ: a partial format."""
        return self._fields is not None

    def discard(self) -> None:
        """Drop a partial format (its sender went away before ^XZ)."""
        if self._fields is not None:
            self.discarded += 1
        self._fields = None

    def feed(self, token: Token) -> LabelFormat | None:
        """The format completed by token (at ^XZ), else None."""
        if not isinstance(token, Command) or token.control:
            return None
        name = token.name
        if name == "CI":
            self._ci = _int_arg(token, 0, self._ci)
        elif name == "XA":
            self.discard()
            self._fields, self._quantity, self._field = [], 1, _FieldState()
        elif self._fields is None:
            return None
        elif name == "XZ":
            self._end_field()
            done = LabelFormat(fields=tuple(self._fields), quantity=self._quantity)
            self._fields = None
            return done
        elif name == "FS":
            self._end_field()
        elif name == "PQ":
            quantity = _int_arg(token, 0, 1)
            self._quantity = quantity if 1 <= quantity <= 99_999_999 else 1
        else:
            self._field.update(token)
        return None

    def _end_field(self) -> None:
        field = self._field.field(utf8=self._ci == 28)
        if field is not None and self._fields is not None:
            self._fields.append(field)
        self._field = _FieldState()


def read_formats(zpl: bytes) -> list[LabelFormat]:
    """Every complete label format in a ZPL document."""
    reader = FormatReader()
    formats = []
    for token in tokenize(zpl):
        done = reader.feed(token)
        if done is not None:
            formats.append(done)
    return formats


def count_labels(zpl: bytes) -> int:
    """How many labels a ZPL document prints: each format times its ^PQ quantity."""
    return sum(label_format.quantity for label_format in read_formats(zpl))


def decode_field_data(
    raw: str, *, hex_indicator: str | None = None, bx_escape: str | None = None, utf8: bool = True
) -> tuple[str, bool]:
    """Field data as printed: `^FH` hex escapes, then `^BX` quality 200 escape sequences.

    raw is the ^FD parameter text (bytes as Latin-1). Returns (text, gs1) where gs1 tells
    that a DataMatrix symbol starts with FNC1. Bytes are read as UTF-8 under ^CI28 (utf8),
    else as Latin-1.
    """
    data = raw.encode("latin-1")
    if hex_indicator:
        pattern = re.escape(hex_indicator.encode("latin-1")) + rb"([0-9A-Fa-f]{2})"
        data = re.sub(pattern, lambda m: bytes.fromhex(m[1].decode("ascii")), data)
    gs1 = False
    if bx_escape:
        data, gs1 = _bx_unescape(data, bx_escape.encode("latin-1")[0])
    text = data.decode("utf-8", "replace") if utf8 else data.decode("latin-1")
    return text, gs1


def _bx_unescape(data: bytes, escape: int) -> tuple[bytes, bool]:
    # ^BX quality 200 escape sequences (ZPL II guide, "Field Data (^FD) for ^BX").
    out = bytearray()
    gs1 = False
    i, n = 0, len(data)
    while i < n:
        byte = data[i]
        if byte != escape or i + 1 >= n:
            out.append(byte)
            i += 1
            continue
        code = data[i + 1]
        digits = data[i + 2 : i + 5]
        if code == escape:
            out.append(escape)
            i += 2
        elif code == ord("1"):  # FNC1: GS1 mode when first, a separator after
            if i == 0:
                gs1 = True
            else:
                out.append(0x1D)
            i += 2
        elif code == ord("2"):  # structured append: nine digits follow
            i += 11
        elif code == ord("3"):
            i += 2
        elif code in b"d5" and len(digits) == 3 and digits.isdigit():
            if code == ord("d") and int(digits) < 256:
                out.append(int(digits))
            i += 5
        elif 0x40 <= code <= 0x5A:  # shifted control character, _@ = NUL
            out.append(code - 0x40)
            i += 2
        elif code == ord("0"):  # PAD
            i += 2
        else:
            out.append(byte)
            i += 1
    return bytes(out), gs1


def _int_arg(command: Command, index: int, default: int) -> int:
    args = command.args()
    text = args[index].strip() if index < len(args) else ""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 9 else default


# --- templates ---------------------------------------------------------------------------

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


# --- GS1 ---------------------------------------------------------------------------------

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
