"""TCP_SOCKET line protocol codec: `name=value` lines <-> messages, typed values <-> text.

Sans-I/O: `LineDecoder` turns received bytes into messages, the `encode_*` functions turn
messages into bytes; sockets live in `client.py` and `sim/line_plc.py`. The wire format is
described for PLC programmers in docs/tcp-socket-protocol.md.
"""

from __future__ import annotations

import math
import re
import struct
from enum import StrEnum
from typing import TypeAlias

import msgspec

__all__ = [
    "MAX_LINE",
    "SNAPSHOT_END",
    "SNAPSHOT_REQUEST",
    "InvalidValue",
    "LineDecoder",
    "Malformed",
    "Message",
    "Refused",
    "SnapshotEnd",
    "SnapshotRequest",
    "Update",
    "Value",
    "ValueType",
    "check_name",
    "check_value_text",
    "decode_line",
    "encode_message",
    "encode_refused",
    "encode_update",
    "encode_write",
    "format_value",
    "parse_value",
]

MAX_LINE = 1024
SNAPSHOT_REQUEST = b"?\n"
SNAPSHOT_END = b".\n"

Value: TypeAlias = bool | int | float | str

# Malformed lines are quoted in logs; this many bytes of them are enough to recognise one.
_EXCERPT_BYTES = 80
_NAME = re.compile(r"[A-Za-z0-9_.]{1,64}", re.ASCII)
_INT = re.compile(r"[+-]?[0-9]+", re.ASCII)
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)
_TRUE = "true"
_FALSE = "false"
_FLOAT32 = struct.Struct("<f")


class ValueType(StrEnum):
    """Takt value types a signal can be bound to."""

    BOOL = "bool"
    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    STRING = "string"


_INT_RANGE = {
    ValueType.INT16: (-(2**15), 2**15 - 1),
    ValueType.UINT16: (0, 2**16 - 1),
    ValueType.INT32: (-(2**31), 2**31 - 1),
    ValueType.UINT32: (0, 2**32 - 1),
}


class InvalidValue(ValueError):
    """A value or its wire text does not fit its Takt type (kind, syntax, range, NaN...)."""


class Update(msgspec.Struct, frozen=True, kw_only=True, tag="update"):
    """`name=value`: a signal's current value (PLC -> Takt) or a write (Takt -> PLC)."""

    name: str
    text: str


class Refused(msgspec.Struct, frozen=True, kw_only=True, tag="refused"):
    """`!name reason`: the PLC refused a write to name."""

    name: str
    reason: str


class SnapshotRequest(msgspec.Struct, frozen=True, kw_only=True, tag="snapshot_request"):
    """`?`: Takt asks for every signal's value."""


class SnapshotEnd(msgspec.Struct, frozen=True, kw_only=True, tag="snapshot_end"):
    """`.`: the PLC has sent every signal of the snapshot."""


class Malformed(msgspec.Struct, frozen=True, kw_only=True, tag="malformed"):
    """A line that is not protocol; line is an excerpt of it for the log."""

    reason: str
    line: str


Message: TypeAlias = Update | Refused | SnapshotRequest | SnapshotEnd | Malformed


class LineDecoder:
    """Splits a byte stream into lines and decodes each; keeps partial lines between feeds.

    Never raises on input: anything that is not a protocol line comes out as `Malformed`.
    """

    def __init__(self, max_line: int = MAX_LINE) -> None:
        if max_line < 1:
            raise ValueError("max_line must be >= 1")
        self._max_line = max_line
        self._buffer = bytearray()
        # True after an overlong line was reported, until its terminating LF arrives.
        self._discarding = False

    @property
    def buffered(self) -> int:
        """Bytes held of a line whose LF has not arrived yet."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Message]:
        """Decode every line completed by data, in order."""
        self._buffer += data
        messages: list[Message] = []
        start = 0
        while (end := self._buffer.find(b"\n", start)) >= 0:
            line = bytes(self._buffer[start:end])
            start = end + 1
            if self._discarding:
                self._discarding = False
                continue
            message = self._decode_line(line)
            if message is not None:
                messages.append(message)
        del self._buffer[:start]
        # +1 leaves room for the CR of a CR LF; beyond that the line is too long for sure,
        # so report it now rather than buffer a peer that never sends LF.
        if not self._discarding and len(self._buffer) > self._max_line + 1:
            messages.append(self._too_long(bytes(self._buffer)))
            self._discarding = True
        if self._discarding:
            self._buffer.clear()
        return messages

    def _decode_line(self, raw: bytes) -> Message | None:
        line = raw[:-1] if raw.endswith(b"\r") else raw
        if len(line) > self._max_line:
            return self._too_long(raw)
        if not line:
            return None  # blank lines are allowed as keep-alives
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            return Malformed(reason="invalid UTF-8", line=_excerpt(line))
        return decode_line(text)

    def _too_long(self, raw: bytes) -> Malformed:
        # Cut at the same length whether the LF was seen or not, so the report does not
        # depend on how the stream was split into reads.
        cut = raw[: min(_EXCERPT_BYTES, self._max_line + 1)]
        return Malformed(
            reason=f"line longer than {self._max_line} bytes",
            line=cut.decode("utf-8", "backslashreplace") + "...",
        )


def decode_line(line: str) -> Message:
    """Decode one line without its terminator."""
    if line == "?":
        return SnapshotRequest()
    if line == ".":
        return SnapshotEnd()
    if line.startswith("!"):
        name, _, reason = line[1:].partition(" ")
        if not _NAME.fullmatch(name):
            return Malformed(reason="invalid signal name in refusal", line=_excerpt_text(line))
        return Refused(name=name, reason=reason)
    name, equals, text = line.partition("=")
    if not equals:
        return Malformed(reason="not a protocol line", line=_excerpt_text(line))
    if not _NAME.fullmatch(name):
        return Malformed(reason="invalid signal name", line=_excerpt_text(line))
    problem = check_value_text(text)
    if problem is not None:
        return Malformed(reason=problem, line=_excerpt_text(line))
    return Update(name=name, text=text)


def check_name(name: str) -> None:
    """Raise ValueError unless name is 1..64 of A-Z a-z 0-9 _ ."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"invalid signal name {name!r}: needs 1..64 of A-Z a-z 0-9 _ .")


def check_value_text(text: str) -> str | None:
    """Why text is not a value of the protocol (bool, number, quoted string), or None."""
    if text.lower() in (_TRUE, _FALSE):
        return None
    if text.startswith('"'):
        try:
            _decode_string(text)
        except ValueError as exc:
            return str(exc)
        return None
    if _NUMBER.fullmatch(text):
        if not math.isfinite(float(text)):
            return "number out of range"
        return None
    return "invalid value (not a bool, number or quoted string)"


def encode_update(name: str, text: str) -> bytes:
    """`name=text` line; raises ValueError for a bad name, value text or overlong line."""
    check_name(name)
    problem = check_value_text(text)
    if problem is not None:
        raise ValueError(f"{name}: {problem}: {text[:_EXCERPT_BYTES]!r}")
    return _line(f"{name}={text}")


def encode_refused(name: str, reason: str) -> bytes:
    """`!name reason` line; the reason must fit on one line."""
    check_name(name)
    if "\n" in reason or "\r" in reason:
        raise ValueError("a refusal reason cannot contain CR or LF")
    return _line(f"!{name} {reason}" if reason else f"!{name}")


def encode_write(name: str, type_name: str, value: Value) -> bytes:
    """The line that writes value (of Takt type type_name) to signal name."""
    return encode_update(name, format_value(type_name, value))


def encode_message(message: Message) -> bytes:
    """Encode any message but Malformed (which has no wire form)."""
    if isinstance(message, Update):
        return encode_update(message.name, message.text)
    if isinstance(message, Refused):
        return encode_refused(message.name, message.reason)
    if isinstance(message, SnapshotRequest):
        return SNAPSHOT_REQUEST
    if isinstance(message, SnapshotEnd):
        return SNAPSHOT_END
    raise ValueError("a Malformed message cannot be encoded")


def parse_value(type_name: str, text: str) -> Value:
    """Value of a signal of Takt type type_name from its wire text; ValueError says why not."""
    value_type = _value_type(type_name)
    if value_type is ValueType.BOOL:
        if text in ("0", "1"):
            return text == "1"
        if text.lower() in (_TRUE, _FALSE):
            return text.lower() == _TRUE
        raise InvalidValue(f"{text[:_EXCERPT_BYTES]!r} is not a bool (0, 1, true, false)")
    if value_type is ValueType.STRING:
        if not text.startswith('"'):
            raise InvalidValue(f"{text[:_EXCERPT_BYTES]!r} is not a string (needs double quotes)")
        return _decode_string(text)
    if value_type in _INT_RANGE:
        if not _INT.fullmatch(text):
            raise InvalidValue(f"{text[:_EXCERPT_BYTES]!r} is not a decimal integer")
        return _check_int(value_type, int(text))
    if not _NUMBER.fullmatch(text):
        raise InvalidValue(f"{text[:_EXCERPT_BYTES]!r} is not a number")
    return _check_float(value_type, float(text))


def format_value(type_name: str, value: Value) -> str:
    """Wire text of value as Takt type type_name; ValueError if it does not fit the type."""
    value_type = _value_type(type_name)
    if value_type is ValueType.BOOL:
        if not isinstance(value, bool):
            raise InvalidValue(f"bool needs True or False, got {type(value).__name__}")
        return "1" if value else "0"
    if value_type is ValueType.STRING:
        if not isinstance(value, str):
            raise InvalidValue(f"string needs a str, got {type(value).__name__}")
        try:
            return msgspec.json.encode(value).decode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidValue(f"string is not encodable as UTF-8: {exc}") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidValue(f"{value_type} needs a number, got {type(value).__name__}")
    if value_type in _INT_RANGE:
        if not isinstance(value, int):
            raise InvalidValue(f"{value_type} needs an int, got float {value!r}")
        return str(_check_int(value_type, value))
    try:
        number = _check_float(value_type, float(value))
    except OverflowError:
        raise InvalidValue(f"{value!r} is out of {value_type} range") from None
    if value_type is ValueType.FLOAT64:
        return repr(number)
    # Shortest text that reads back as the same float32, so a PLC sees 0.1 and not
    # 0.10000000149011612 (nine significant digits always suffice for float32).
    for digits in range(1, 10):
        text = f"{number:.{digits}g}"
        try:
            if _round_float32(float(text)) == number:
                return text
        except ValueError:
            continue  # rounded past the float32 limit; more digits will not
    return repr(number)  # pragma: no cover - unreachable, see above


def _value_type(type_name: str) -> ValueType:
    try:
        return ValueType(type_name)
    except ValueError:
        known = ", ".join(ValueType)
        raise InvalidValue(f"unknown value type {type_name!r} (known: {known})") from None


def _check_int(value_type: ValueType, value: int) -> int:
    low, high = _INT_RANGE[value_type]
    if not low <= value <= high:
        raise InvalidValue(f"{value} is out of {value_type} range {low}..{high}")
    return value


def _check_float(value_type: ValueType, value: float) -> float:
    if not math.isfinite(value):
        raise InvalidValue(f"{value!r} is out of {value_type} range (must be finite)")
    if value_type is ValueType.FLOAT32:
        return _round_float32(value)
    return value


def _round_float32(value: float) -> float:
    try:
        return float(_FLOAT32.unpack(_FLOAT32.pack(value))[0])
    except OverflowError:
        raise InvalidValue(f"{value!r} is out of float32 range") from None


def _decode_string(text: str) -> str:
    # JSON allows whitespace around the string; the protocol does not.
    if len(text) < 2 or not text.endswith('"'):
        raise InvalidValue("string does not end with a double quote")
    try:
        return msgspec.json.decode(text.encode("utf-8"), type=str)
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeEncodeError) as exc:
        raise InvalidValue(f"invalid string: {exc}") from None


def _line(text: str) -> bytes:
    data = text.encode("utf-8") + b"\n"
    if len(data) - 1 > MAX_LINE:
        raise ValueError(f"line of {len(data) - 1} bytes exceeds the {MAX_LINE}-byte limit")
    return data


def _excerpt(line: bytes) -> str:
    text = line[:_EXCERPT_BYTES].decode("utf-8", "backslashreplace")
    return text + "..." if len(line) > _EXCERPT_BYTES else text


def _excerpt_text(line: str) -> str:
    return _excerpt(line.encode("utf-8"))
