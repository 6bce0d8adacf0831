"""ZPL II: a tokenizer, and label formats read back from ZPL, sans-I/O.

- `ZplTokenizer` splits a byte stream into commands (`^XA`, `~HS`...) and Set-Get-Do lines
  (`! U1 getvar ...`) as a printer does; the simulator and the tests read ZPL with it.
- `FormatReader` / `read_formats` turn commands into `LabelFormat`s whose fields hold the
  decoded text (after `^FH` hex escapes, `^BX` escape sequences and `^CI28` UTF-8).

Templates live in `drivers.zpl.template` and GS1 data in `drivers.zpl.gs1`; their public
names are re-exported here too.
"""

from __future__ import annotations

import re
from typing import TypeAlias

import msgspec

__all__ = [
    "MAX_FIELD_BYTES",
    "Command",
    "Field",
    "FormatReader",
    "LabelFormat",
    "SgdCommand",
    "Token",
    "ZplTokenizer",
    "count_labels",
    "decode_field_data",
    "read_formats",
    "tokenize",
]

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

