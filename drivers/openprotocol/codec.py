"""Open Protocol framing: a 20-byte ASCII header, the data, a NUL terminator.

Sans-I/O: `encode_frame` turns a `Frame` into bytes, `decode_frame` checks one complete frame
and `FrameDecoder` splits a received byte stream into frames, resynchronising after garbage.
What the data of each MID means lives in `mids.py`.
"""

from __future__ import annotations

from typing import TypeAlias

import msgspec

from drivers.errors import FrameError

__all__ = [
    "HEADER_SIZE",
    "MAX_LENGTH",
    "TERMINATOR",
    "Frame",
    "FrameDecoder",
    "FrameError",
    "Malformed",
    "StreamEvent",
    "decode_frame",
    "encode_frame",
]

HEADER_SIZE = 20
# The length field has four digits and counts header + data (not the NUL).
MAX_LENGTH = 9999
TERMINATOR = b"\x00"

_NUL = 0
_LENGTH_DIGITS = 4
# Malformed input is quoted in logs; this many bytes are enough to recognise it.
_EXCERPT_BYTES = 40
_DIGITS = frozenset(b"0123456789")


class Frame(msgspec.Struct, frozen=True, kw_only=True):
    """One Open Protocol message: header fields and the raw ASCII data.

    Optional header fields are None when the wire carries spaces. A revision of spaces or
    `000` means 1, so `revision` is always 1..999.
    """

    mid: int
    revision: int = 1
    no_ack: bool = False
    station_id: int | None = None
    spindle_id: int | None = None
    sequence_number: int | None = None
    message_parts: int | None = None
    message_part_number: int | None = None
    data: bytes = b""

    @property
    def length(self) -> int:
        """The header's length field: header plus data, without the NUL."""
        return HEADER_SIZE + len(self.data)


class Malformed(msgspec.Struct, frozen=True, kw_only=True):
    """Bytes of the stream that are not a frame; excerpt quotes the start of them."""

    reason: str
    excerpt: str


StreamEvent: TypeAlias = Frame | Malformed


def encode_frame(frame: Frame) -> bytes:
    """Wire bytes of frame, NUL included; ValueError if a field does not fit the header."""
    if not 1 <= frame.mid <= 9999:
        raise ValueError(f"MID {frame.mid} is out of range 1..9999")
    if not 1 <= frame.revision <= 999:
        raise ValueError(f"revision {frame.revision} is out of range 1..999")
    if frame.length > MAX_LENGTH:
        raise ValueError(f"frame of {frame.length} bytes exceeds the {MAX_LENGTH}-byte limit")
    if not frame.data.isascii() or TERMINATOR in frame.data:
        raise ValueError("frame data must be ASCII without NUL bytes")
    header = "".join(
        (
            f"{frame.length:04d}",
            f"{frame.mid:04d}",
            f"{frame.revision:03d}",
            "1" if frame.no_ack else "0",
            _optional(frame.station_id, 2, "station id"),
            _optional(frame.spindle_id, 2, "spindle id"),
            _optional(frame.sequence_number, 2, "sequence number"),
            _optional(frame.message_parts, 1, "number of message parts"),
            _optional(frame.message_part_number, 1, "message part number"),
        )
    )
    return header.encode("ascii") + frame.data + TERMINATOR


def decode_frame(raw: bytes) -> Frame:
    """Decode one complete frame, NUL included; FrameError says what is wrong with it."""
    if len(raw) < HEADER_SIZE + 1:
        raise FrameError(f"{len(raw)} bytes are shorter than a header and its NUL")
    length = _length(raw[:_LENGTH_DIGITS])
    if length != len(raw) - 1:
        raise FrameError(f"length field says {length} bytes but the frame has {len(raw) - 1}")
    if raw[length] != _NUL:
        raise FrameError(f"no NUL terminator at byte {length}")
    end = raw.find(TERMINATOR)
    if end != length:
        raise FrameError(f"NUL at byte {end}, the declared end is byte {length}")
    if not raw.isascii():
        at = next(i for i, byte in enumerate(raw) if byte > 0x7F)
        raise FrameError(f"non-ASCII byte 0x{raw[at]:02x} at offset {at}")
    header = raw[:HEADER_SIZE].decode("ascii")
    mid = _required(header[4:8], "MID")
    if mid == 0:
        raise FrameError("MID 0000 does not exist")
    revision = _optional_field(header[8:11], "revision")
    no_ack = header[11]
    if no_ack not in " 01":
        raise FrameError(f"no-ack flag {no_ack!r} is not space, 0 or 1")
    return Frame(
        mid=mid,
        revision=revision or 1,
        no_ack=no_ack == "1",
        station_id=_optional_field(header[12:14], "station id"),
        spindle_id=_optional_field(header[14:16], "spindle id"),
        sequence_number=_optional_field(header[16:18], "sequence number"),
        message_parts=_optional_field(header[18], "number of message parts"),
        message_part_number=_optional_field(header[19], "message part number"),
        data=raw[HEADER_SIZE:length],
    )


class FrameDecoder:
    """Splits a byte stream into frames; keeps a partial frame between feeds.

    Never raises on input: bytes that are not a frame come out as `Malformed` and the
    decoder resynchronises (after the next NUL, or right after a frame whose NUL is
    missing). The result does not depend on how the stream was split into feeds.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        # True after garbage was reported, until the NUL that ends it arrives.
        self._discarding = False
        self._frames = 0
        self._malformed = 0
        self._dropped = 0

    @property
    def buffered(self) -> int:
        """Bytes held of a frame that is not complete yet."""
        return len(self._buffer)

    @property
    def frames(self) -> int:
        """Frames decoded so far."""
        return self._frames

    @property
    def malformed(self) -> int:
        """Malformed stretches reported so far."""
        return self._malformed

    @property
    def dropped_bytes(self) -> int:
        """Bytes thrown away so far: malformed frames, garbage and stray NULs."""
        return self._dropped

    def feed(self, data: bytes) -> list[StreamEvent]:
        """Decode everything completed by data, in stream order."""
        self._buffer += data
        events: list[StreamEvent] = []
        while (event := self._next()) is not None:
            if isinstance(event, Malformed):
                self._malformed += 1
            else:
                self._frames += 1
            events.append(event)
        return events

    def _next(self) -> StreamEvent | None:
        buffer = self._buffer
        while True:
            if self._discarding:
                end = buffer.find(TERMINATOR)
                if end < 0:
                    self._drop(len(buffer))
                    return None
                self._drop(end + 1)
                self._discarding = False
            # A NUL where a frame should start is padding some peers send; not worth a report.
            stray = len(buffer) - len(buffer.lstrip(TERMINATOR))
            if stray == 0:
                break
            self._drop(stray)
        if len(buffer) < _LENGTH_DIGITS:
            return None
        head = bytes(buffer[:_LENGTH_DIGITS])
        try:
            length = _length(head)
        except FrameError as exc:
            self._discarding = True
            return Malformed(reason=str(exc), excerpt=_excerpt(head))
        if length < HEADER_SIZE:
            self._discarding = True
            return Malformed(
                reason=f"length field {length} is shorter than the header", excerpt=_excerpt(head)
            )
        end = buffer.find(TERMINATOR, 0, length + 1)
        if 0 <= end < length:
            bad = bytes(buffer[:end])
            self._drop(end + 1)
            return Malformed(
                reason=f"NUL at byte {end}, the declared end is byte {length}",
                excerpt=_excerpt(bad),
            )
        if end == length:
            raw = bytes(buffer[: length + 1])
            self._take(length + 1)
            try:
                return decode_frame(raw)
            except FrameError as exc:
                self._dropped += len(raw)
                return Malformed(reason=str(exc), excerpt=_excerpt(raw[:-1]))
        if len(buffer) <= length:
            return None  # the rest of the frame has not arrived yet
        # Trust the length and resume right after it: a lost NUL then costs one frame only.
        bad = bytes(buffer[:length])
        self._drop(length)
        return Malformed(
            reason=f"no NUL after the declared length of {length} bytes", excerpt=_excerpt(bad)
        )

    def _take(self, count: int) -> None:
        del self._buffer[:count]

    def _drop(self, count: int) -> None:
        del self._buffer[:count]
        self._dropped += count


def _length(head: bytes) -> int:
    if len(head) != _LENGTH_DIGITS or not _DIGITS.issuperset(head):
        raise FrameError(f"length field {head!r} is not four digits")
    return int(head)


def _required(text: str, what: str) -> int:
    value = _optional_field(text, what)
    if value is None:
        raise FrameError(f"{what} is blank")
    return value


def _optional_field(text: str, what: str) -> int | None:
    # Right-justified with zeros or spaces; all spaces means "not given".
    digits = text.lstrip(" ")
    if not digits:
        return None
    if not digits.isdigit() or not digits.isascii():
        raise FrameError(f"{what} {text!r} is not a number")
    return int(digits)


def _optional(value: int | None, width: int, what: str) -> str:
    if value is None:
        return " " * width
    if not 0 <= value < 10**width:
        raise ValueError(f"{what} {value} does not fit {width} digits")
    return f"{value:0{width}d}"


def _excerpt(raw: bytes) -> str:
    text = raw[:_EXCERPT_BYTES].decode("ascii", "backslashreplace")
    return text + "..." if len(raw) > _EXCERPT_BYTES else text
