"""Zebra host status (`~HS`) and label counter answers: bytes <-> `PrinterStatus`, sans-I/O.

`~HS` is answered with three strings, each `<STX>fields<ETX><CR><LF>` (ZPL II Programming
Guide, ~HS):

    1: aaa,b,c,dddd,eee,f,g,h,iii,j,k,l   comm settings, paper out, paused, label length,
                                          formats in buffer, buffer full, comm diagnostics,
                                          partial format, unused, corrupt RAM, under/over temp
    2: mmm,n,o,p,q,r,s,t,uuuuuuuu,v,www   function settings, unused, head up, ribbon out,
                                          thermal transfer, print mode, print width mode,
                                          label waiting, labels remaining in batch,
                                          format while printing, graphics stored
    3: xxxx,y                             password, static RAM installed

The label counter is the Set-Get-Do variable `odometer.total_label_count`, asked for with
`! U1 getvar "odometer.total_label_count"` and answered as a quoted string (`"1234"`).
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from drivers.errors import FrameError

__all__ = [
    "ETX",
    "HOST_STATUS_QUERY",
    "LABEL_COUNT_QUERY",
    "LABEL_COUNT_VARIABLE",
    "STX",
    "PrinterStatus",
    "ReplyReader",
    "encode_host_status",
    "encode_sgd_value",
    "parse_host_status",
    "parse_host_status_frames",
    "parse_label_count",
]

STX = b"\x02"
ETX = b"\x03"
HOST_STATUS_QUERY = b"~HS"
LABEL_COUNT_VARIABLE = "odometer.total_label_count"
LABEL_COUNT_QUERY = b'! U1 getvar "' + LABEL_COUNT_VARIABLE.encode("ascii") + b'"\r\n'

# Real strings are about 40 bytes; anything much longer is not a status answer.
MAX_FRAME = 256
_LINE_FIELDS = (12, 11, 2)
# Bytes a printer may put between answers (the CR LF after each ETX, padding).
_BLANKS = b" \t\r\n"
_EXCERPT = 60


class PrinterStatus(msgspec.Struct, frozen=True, kw_only=True):
    """What a Zebra printer reports in its `~HS` answer; fields named as in the guide."""

    # String 1
    communication_settings: int = 0
    paper_out: bool = False
    paused: bool = False
    label_length_dots: int = 0
    formats_in_buffer: int = 0
    buffer_full: bool = False
    comm_diagnostics: bool = False
    partial_format: bool = False
    corrupt_ram: bool = False
    under_temperature: bool = False
    over_temperature: bool = False
    # String 2
    function_settings: int = 0
    head_open: bool = False
    """The guide's "head up" flag: the print head is lifted (the printer is open)."""
    ribbon_out: bool = False
    thermal_transfer: bool = False
    print_mode: int = 2
    """0 rewind, 1 peel-off, 2 tear-off, 3 cutter, 4 applicator (newer firmware adds more)."""
    print_width_mode: int = 0
    label_waiting: bool = False
    labels_remaining: int = 0
    format_while_printing: bool = True
    graphics_stored: int = 0
    # String 3
    password: int = 0
    static_ram_installed: bool = False

    @property
    def problems(self) -> tuple[str, ...]:
        """Conditions that stop the printer from printing, in words for an operator."""
        named = (
            (self.paper_out, "paper out"),
            (self.paused, "paused"),
            (self.head_open, "head open"),
            (self.ribbon_out, "ribbon out"),
            (self.over_temperature, "head over temperature"),
        )
        return tuple(name for present, name in named if present)

    @property
    def ready(self) -> bool:
        """True when nothing stops the printer from printing."""
        return not self.problems

    @property
    def idle(self) -> bool:
        """True when the printer holds no job: nothing buffered, partial or left to print."""
        return not (self.formats_in_buffer or self.labels_remaining or self.partial_format)


# (attribute, digits) per field; None marks the guide's unused fields, sent as zeros.
_LAYOUT: tuple[tuple[tuple[str | None, int], ...], ...] = (
    (
        ("communication_settings", 3),
        ("paper_out", 1),
        ("paused", 1),
        ("label_length_dots", 4),
        ("formats_in_buffer", 3),
        ("buffer_full", 1),
        ("comm_diagnostics", 1),
        ("partial_format", 1),
        (None, 3),
        ("corrupt_ram", 1),
        ("under_temperature", 1),
        ("over_temperature", 1),
    ),
    (
        ("function_settings", 3),
        (None, 1),
        ("head_open", 1),
        ("ribbon_out", 1),
        ("thermal_transfer", 1),
        ("print_mode", 1),
        ("print_width_mode", 1),
        ("label_waiting", 1),
        ("labels_remaining", 8),
        ("format_while_printing", 1),
        ("graphics_stored", 3),
    ),
    (
        ("password", 4),
        ("static_ram_installed", 1),
    ),
)
_BOOLS = frozenset(
    name
    for line in _LAYOUT
    for name, _ in line
    if name is not None and isinstance(getattr(PrinterStatus(), name), bool)
)


def encode_host_status(status: PrinterStatus) -> bytes:
    """The three framed strings a printer sends for `~HS`; ValueError if a number is too wide."""
    lines = []
    for layout in _LAYOUT:
        fields = []
        for name, digits in layout:
            value = 0 if name is None else int(getattr(status, name))
            if not 0 <= value < 10**digits:
                raise ValueError(f"{name}={value} does not fit the {digits} digits of ~HS")
            fields.append(f"{value:0{digits}d}")
        lines.append(STX + ",".join(fields).encode("ascii") + ETX + b"\r\n")
    return b"".join(lines)


def parse_host_status(data: bytes) -> PrinterStatus:
    """Parse a complete `~HS` answer (three framed strings); FrameError says what is wrong."""
    reader = ReplyReader()
    reader.feed(data)
    frames = reader.take_frames(3)
    if frames is None:
        raise FrameError(f"incomplete ~HS answer: {_excerpt(data)}")
    if reader.buffered:
        raise FrameError(f"bytes after the ~HS answer: {_excerpt(data)}")
    return parse_host_status_frames(frames)


def parse_host_status_frames(frames: Sequence[bytes]) -> PrinterStatus:
    """Parse the contents (between STX and ETX) of the three `~HS` strings."""
    if len(frames) != len(_LAYOUT):
        raise FrameError(f"~HS answer has {len(frames)} strings, expected 3")
    values: dict[str, int | bool] = {}
    for number, (frame, layout) in enumerate(zip(frames, _LAYOUT, strict=True), start=1):
        try:
            text = frame.decode("ascii")
        except UnicodeDecodeError:
            raise FrameError(f"~HS string {number} is not ASCII: {_excerpt(frame)}") from None
        fields = [field.strip() for field in text.split(",")]
        # Later firmware may append fields; the documented ones keep their places.
        if len(fields) < len(layout):
            raise FrameError(
                f"~HS string {number} has {len(fields)} fields, expected {len(layout)}: "
                f"{_excerpt(frame)}"
            )
        for index, ((name, digits), field) in enumerate(zip(layout, fields, strict=False)):
            if not (field.isascii() and field.isdigit() and len(field) <= max(digits, 10)):
                raise FrameError(
                    f"~HS string {number} field {index + 1} is not a number: {field[:_EXCERPT]!r}"
                )
            if name is None:
                continue
            if name in _BOOLS:
                if field not in ("0", "1"):
                    raise FrameError(
                        f"~HS string {number} field {index + 1} ({name}) is not a 0/1 flag: "
                        f"{field!r}"
                    )
                values[name] = field == "1"
            else:
                values[name] = int(field)
    return PrinterStatus(**values)  # type: ignore[arg-type]


def encode_sgd_value(value: str) -> bytes:
    """A Set-Get-Do getvar answer as a printer sends it: the value in double quotes."""
    if '"' in value or "\r" in value or "\n" in value:
        raise ValueError(f"an SGD value cannot hold quotes or line breaks: {value!r}")
    return b'"' + value.encode("utf-8") + b'"\r\n'


def parse_label_count(value: str) -> int:
    """The label counter from its getvar value; FrameError if the printer has none."""
    text = value.strip()
    if not (text.isascii() and text.isdigit()):
        # A printer without the variable answers "?".
        raise FrameError(f"the printer gave no label count for {LABEL_COUNT_VARIABLE}: {text!r}")
    return int(text)


class ReplyReader:
    """Collects a printer's answers from a byte stream: STX/ETX frames and quoted SGD values.

    Blanks between answers (the CR LF after ETX or after a quoted value) are skipped;
    anything else outside an answer, or an answer longer than MAX_FRAME, is a FrameError.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()

    @property
    def buffered(self) -> int:
        """Bytes received and not yet taken, blanks between answers excluded."""
        return len(self._buffer.lstrip(_BLANKS))

    def feed(self, data: bytes) -> None:
        """Add received bytes."""
        self._buffer += data

    def clear(self) -> None:
        """Forget everything buffered (after a failed exchange)."""
        self._buffer.clear()

    def take_frames(self, count: int) -> list[bytes] | None:
        """The contents of the next count STX...ETX frames, or None until all have arrived."""
        frames: list[bytes] = []
        position = 0
        for _ in range(count):
            position = self._skip_blanks(position)
            if position == len(self._buffer):
                self._check_open_length(position)
                return None
            if self._buffer[position] != STX[0]:
                raise FrameError(f"expected STX, got {_excerpt(bytes(self._buffer[position:]))}")
            end = self._buffer.find(ETX, position + 1)
            if end < 0:
                self._check_open_length(position)
                return None
            frame = bytes(self._buffer[position + 1 : end])
            if len(frame) > MAX_FRAME:
                raise FrameError(f"frame longer than {MAX_FRAME} bytes: {_excerpt(frame)}")
            if STX in frame:
                raise FrameError(f"STX inside a frame: {_excerpt(frame)}")
            frames.append(frame)
            position = end + 1
        del self._buffer[:position]
        return frames

    def take_quoted(self) -> str | None:
        """The next double-quoted value (an SGD getvar answer), or None until it has arrived."""
        position = self._skip_blanks(0)
        if position == len(self._buffer):
            return None
        if self._buffer[position] != ord('"'):
            raise FrameError(
                f"expected a quoted value, got {_excerpt(bytes(self._buffer[position:]))}"
            )
        end = self._buffer.find(b'"', position + 1)
        if end < 0:
            self._check_open_length(position)
            return None
        raw = bytes(self._buffer[position + 1 : end])
        if len(raw) > MAX_FRAME:
            raise FrameError(f"quoted value longer than {MAX_FRAME} bytes: {_excerpt(raw)}")
        del self._buffer[: end + 1]
        return raw.decode("utf-8", "replace")

    def _skip_blanks(self, position: int) -> int:
        while position < len(self._buffer) and self._buffer[position] in _BLANKS:
            position += 1
        return position

    def _check_open_length(self, start: int) -> None:
        # An answer that never ends must not grow the buffer without bound.
        if len(self._buffer) - start > MAX_FRAME + 2:
            raise FrameError(
                f"answer longer than {MAX_FRAME} bytes: {_excerpt(bytes(self._buffer[start:]))}"
            )


def _excerpt(data: bytes) -> str:
    text = repr(data[:_EXCERPT])
    return text + "..." if len(data) > _EXCERPT else text
