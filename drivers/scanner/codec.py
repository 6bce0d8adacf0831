"""Barcode scanner wire codec: framed result lines and Cognex DMCC commands and responses.

Sans-I/O: `FrameDecoder` turns the bytes a reader sends into messages (codes, no-reads, DMCC
responses, malformed input), `CommandDecoder` does the same for what a host sends a reader
(used by the simulators), and the `encode_*` functions build the bytes. Codes stay bytes:
they may hold GS (0x1D) separators and an AIM symbology identifier (`]d2`) that a GS1 parser
needs intact; `CodeRead.text` decodes them losslessly as latin-1.

DMCC (Cognex DataMan Control Commands), as the public Cognex documentation describes it:

- a command is `header command [arguments] footer`; the header is `||>` or
  `||checksum:command-id>` (`checksum` 0 or 1, `command-id` an integer echoed in the answer)
  and the footer CR LF. Names are case-insensitive; string arguments are quoted, with `"`,
  `\\`, `|`, tab, CR and LF backslash-escaped (`quote_argument`).
- with checksum 1 the last byte before the footer is the XOR of the bytes before it. The
  documentation does not say which bytes; Takt takes every byte from the first `|`, and
  accepts the same form on answers.
- a reader in the default silent response mode answers nothing; in extended mode
  (`SET COM.DMCC-RESPONSE 1`) it answers `||checksum:command-id[status]data` CR LF, echoing
  the command's header options (`||[0]ON` for a default header). Some firmware puts more
  colon-separated fields in the answer header (`||:::2[0]`); they are accepted and ignored.
- status 0 is success, 1 a read string the reader sent on its own (decoded here as a code
  or no-read), 100..105 errors (`DmccStatus`). Answers spanning several lines (a script
  upload, a log dump) are not supported: their further lines would arrive as codes.
"""

from __future__ import annotations

import re
from enum import IntEnum, StrEnum
from typing import TypeAlias

import msgspec

__all__ = [
    "COMMAND_CHECKSUM_MISMATCH",
    "DMCC_FOOTER",
    "ETX",
    "GS",
    "STX",
    "CodeRead",
    "CommandDecoder",
    "DmccCommand",
    "DmccResponse",
    "DmccStatus",
    "FrameDecoder",
    "Framing",
    "Malformed",
    "NoRead",
    "ScannerMessage",
    "Terminator",
    "aim_identifier",
    "describe_malformed",
    "encode_command",
    "encode_no_read",
    "encode_read",
    "encode_response",
    "parse_command",
    "parse_response",
    "quote_argument",
    "xor_checksum",
]

STX = 0x02
ETX = 0x03
COMMAND_CHECKSUM_MISMATCH = "DMCC command checksum mismatch"
"""The reason parse_command gives for a bad checksum (a reader answers it with status 103)."""
GS = 0x1D
DMCC_FOOTER = b"\r\n"

_CR = 0x0D
_LF = 0x0A
# Malformed input is quoted in logs; this much of it is enough to recognise it.
_EXCERPT_BYTES = 80
# Longest DMCC command line accepted by the command decoder (a script upload is longer,
# and unsupported).
_MAX_COMMAND = 4096
_RESPONSE = re.compile(rb"\|\|([0-9:]*)\[([0-9]{1,4})\](.*)", re.DOTALL)
_COMMAND = re.compile(rb"\|\|([0-9:]*)>(.*)", re.DOTALL)
_AIM = re.compile(rb"\][A-Za-z][0-9A-Za-z]")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "|": "\\|", "\t": "\\t", "\r": "\\r", "\n": "\\n"}


class Terminator(StrEnum):
    """What ends each result line a reader sends."""

    CR = "cr"
    LF = "lf"
    CRLF = "crlf"

    @property
    def wire(self) -> bytes:
        """The terminator's bytes."""
        return {"cr": b"\r", "lf": b"\n", "crlf": b"\r\n"}[self.value]


class Framing(msgspec.Struct, frozen=True, kw_only=True):
    """How a reader frames its results; set to match the reader's output format settings.

    With stx_etx each result is `STX code ETX` (a terminator after ETX is allowed) and only
    DMCC answers come as terminated lines. max_length bounds one code in bytes; longer input
    is reported as malformed and skipped to the next terminator (or frame). no_read is the
    line the reader sends when a triggered read finds no code (b"" if it sends none).
    The defaults are the usual factory output (no header, CR LF after each code); readers
    differ in their no-read text, so set it to the reader's.
    """

    terminator: Terminator = Terminator.CRLF
    stx_etx: bool = False
    max_length: int = 1024
    no_read: bytes = b"NOREAD"

    def __post_init__(self) -> None:
        if self.max_length < 1:
            raise ValueError("max_length must be >= 1")
        if self.no_read:
            _check_code(self.no_read, self, what="no_read")


class CodeRead(msgspec.Struct, frozen=True, kw_only=True, tag="read"):
    """A decoded code, exactly as the reader sent it (symbology prefix and GS included)."""

    data: bytes

    @property
    def text(self) -> str:
        """The code as text; latin-1 maps every byte to one character, so nothing is lost."""
        return self.data.decode("latin-1")


class NoRead(msgspec.Struct, frozen=True, kw_only=True, tag="no_read"):
    """The reader was triggered and found no code."""


class DmccStatus(IntEnum):
    """Status of a DMCC extended-mode answer."""

    OK = 0
    READ_STRING = 1
    UNIDENTIFIED_ERROR = 100
    COMMAND_INVALID = 101
    PARAMETER_INVALID = 102
    CHECKSUM_INCORRECT = 103
    PARAMETER_REJECTED = 104
    READER_UNAVAILABLE = 105


class DmccResponse(msgspec.Struct, frozen=True, kw_only=True, tag="dmcc_response"):
    """`||checksum:command-id[status]data`: a reader's answer to a DMCC command."""

    status: int
    command_id: int | None = None
    data: bytes = b""

    @property
    def text(self) -> str:
        """The answer's data as text (latin-1, lossless)."""
        return self.data.decode("latin-1")

    @property
    def status_name(self) -> str:
        """The status's name, or `status N` for one the documentation does not list."""
        try:
            return DmccStatus(self.status).name
        except ValueError:
            return f"status {self.status}"


class DmccCommand(msgspec.Struct, frozen=True, kw_only=True, tag="dmcc_command"):
    """`||checksum:command-id>text`: a DMCC command as a reader receives it."""

    text: str
    command_id: int | None = None
    checksum: bool = False

    @property
    def words(self) -> list[str]:
        """The command split at spaces, first word (the command name) upper-cased."""
        words = self.text.split(" ")
        return [words[0].upper(), *words[1:]]


class Malformed(msgspec.Struct, frozen=True, kw_only=True, tag="malformed"):
    """Input that is not a code, a no-read or a DMCC answer; excerpt is its start."""

    reason: str
    excerpt: bytes


ScannerMessage: TypeAlias = CodeRead | NoRead | DmccResponse | Malformed


def describe_malformed(message: Malformed) -> str:
    """One log line for a malformed input."""
    return f"{message.reason}: {message.excerpt!r}"


def xor_checksum(data: bytes) -> int:
    """XOR of every byte of data (the DMCC checksum)."""
    value = 0
    for byte in data:
        value ^= byte
    return value


def aim_identifier(data: bytes) -> str | None:
    """The AIM symbology identifier a code starts with (`]d2` for GS1 DataMatrix), if any."""
    if _AIM.match(data):
        return data[:3].decode("ascii")
    return None


def quote_argument(text: str) -> str:
    """A DMCC string argument: text in double quotes with the special characters escaped."""
    return '"' + "".join(_ESCAPES.get(char, char) for char in text) + '"'


def encode_command(text: str, *, command_id: int | None = None, checksum: bool = False) -> bytes:
    """A DMCC command line; with command_id or checksum the header carries those options.

    Raises ValueError for text that is empty or not printable ASCII.
    """
    if not text or not all(0x20 <= ord(char) < 0x7F for char in text):
        raise ValueError(f"a DMCC command is printable ASCII text, got {text!r}")
    if command_id is not None and command_id < 0:
        raise ValueError("command_id must be >= 0")
    body = _header(command_id, checksum) + b">" + text.encode("ascii")
    return _with_checksum(body, checksum) + DMCC_FOOTER


def encode_response(
    status: int, data: bytes = b"", *, command_id: int | None = None, checksum: bool = False
) -> bytes:
    """A DMCC extended-mode answer line, as a reader sends it."""
    if not 0 <= status <= 9999:
        raise ValueError("status must be 0..9999")
    if command_id is not None and command_id < 0:
        raise ValueError("command_id must be >= 0")
    if b"\r" in data or b"\n" in data:
        raise ValueError("a DMCC answer cannot contain CR or LF")
    body = _header(command_id, checksum) + b"[%d]" % status + bytes(data)
    return _with_checksum(body, checksum) + DMCC_FOOTER


def encode_read(code: bytes, framing: Framing) -> bytes:
    """The bytes a reader sends for code; ValueError if the framing cannot carry it."""
    code = bytes(code)
    _check_code(code, framing, what="code")
    if framing.no_read and code == framing.no_read:
        raise ValueError("the code equals the no-read string")
    return _frame(code, framing)


def encode_no_read(framing: Framing) -> bytes:
    """The bytes a reader sends when a read finds no code; ValueError if it sends none."""
    if not framing.no_read:
        raise ValueError("this framing has no no-read string")
    return _frame(framing.no_read, framing)


def parse_response(line: bytes) -> DmccResponse | Malformed:
    """Decode one DMCC answer line (without its footer)."""
    match = _RESPONSE.fullmatch(line)
    if match is None:
        return Malformed(reason="not a DMCC answer", excerpt=_excerpt(line))
    checksum, command_id = _header_options(match.group(1))
    data = match.group(3)
    if checksum:
        if not data or xor_checksum(line[:-1]) != line[-1]:
            return Malformed(reason="DMCC answer checksum mismatch", excerpt=_excerpt(line))
        data = data[:-1]
    return DmccResponse(status=int(match.group(2)), command_id=command_id, data=data)


def parse_command(line: bytes) -> DmccCommand | Malformed:
    """Decode one DMCC command line (without its footer), as a reader does."""
    match = _COMMAND.fullmatch(line)
    if match is None:
        return Malformed(reason="not a DMCC command", excerpt=_excerpt(line))
    checksum, command_id = _header_options(match.group(1))
    text = match.group(2)
    if checksum:
        if not text or xor_checksum(line[:-1]) != line[-1]:
            return Malformed(reason=COMMAND_CHECKSUM_MISMATCH, excerpt=_excerpt(line))
        text = text[:-1]
    if not text or not all(0x20 <= byte < 0x7F for byte in text):
        return Malformed(reason="DMCC command is not printable ASCII", excerpt=_excerpt(line))
    return DmccCommand(text=text.decode("ascii"), command_id=command_id, checksum=checksum)


class FrameDecoder:
    """Splits what a reader sends into codes, no-reads and DMCC answers; keeps partial input.

    Never raises on input: anything else comes out as `Malformed`, and the decoder picks up
    again at the next terminator (or STX). The result does not depend on how the stream was
    cut into reads.
    """

    def __init__(self, framing: Framing | None = None) -> None:
        self._framing = framing or Framing()
        self._terminator = self._framing.terminator.wire
        self._max = self._framing.max_length
        # A line without its terminator can hold this much before it is too long for sure:
        # the last bytes might still be the start of a CR LF.
        self._line_limit = self._max + len(self._terminator) - 1
        self._buffer = bytearray()
        self._in_frame = False
        # True after overlong input was reported, until the next terminator (or frame).
        self._discarding = False
        # DMCC answers end in CR LF whatever the result terminator is; with CR results the
        # LF is left at the start of the next line and dropped there.
        self._skip_lf = False

    @property
    def buffered(self) -> int:
        """Bytes held of input whose end has not arrived yet."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[ScannerMessage]:
        """Decode everything data completes, in order."""
        self._buffer += data
        messages: list[ScannerMessage] = []
        while self._buffer:
            if self._skip_lf:
                self._skip_lf = False
                if self._buffer[0] == _LF:
                    del self._buffer[0]
                    continue
            progressed = self._frame_step(messages) if self._in_frame else self._line_step(messages)
            if not progressed:
                break
        return messages

    def _line_step(self, out: list[ScannerMessage]) -> bool:
        buffer = self._buffer
        end = buffer.find(self._terminator)
        start = buffer.find(STX) if self._framing.stx_etx else -1
        if start >= 0 and (end < 0 or start < end):
            junk = bytes(buffer[:start])
            del buffer[: start + 1]
            if junk and not self._discarding:
                if len(junk) > self._line_limit:
                    out.append(self._too_long(junk))
                else:
                    out.append(Malformed(reason="bytes outside a frame", excerpt=_excerpt(junk)))
            self._discarding = False
            self._in_frame = True
            return True
        if end >= 0:
            line = bytes(buffer[:end])
            del buffer[: end + len(self._terminator)]
            if self._discarding:
                self._discarding = False
            elif line:  # blank lines are keep-alives (and the terminator after an ETX)
                out.append(self._decode_line(line))
            return True
        if not self._discarding and len(buffer) > self._line_limit:
            out.append(self._too_long(bytes(buffer)))
            self._discarding = True
        if self._discarding:
            # Keep what may be the start of a CR LF so the end of the skipped line is seen.
            del buffer[: len(buffer) - (len(self._terminator) - 1)]
        return False

    def _frame_step(self, out: list[ScannerMessage]) -> bool:
        buffer = self._buffer
        end = buffer.find(ETX)
        restart = buffer.find(STX)
        if restart >= 0 and (end < 0 or restart < end):
            body = bytes(buffer[:restart])
            del buffer[: restart + 1]
            if not self._discarding:
                if len(body) > self._max:
                    out.append(self._too_long(body))
                else:
                    out.append(Malformed(reason="frame cut short by STX", excerpt=_excerpt(body)))
            self._discarding = False
            return True
        if end >= 0:
            body = bytes(buffer[:end])
            del buffer[: end + 1]
            self._in_frame = False
            if self._discarding:
                self._discarding = False
            elif len(body) > self._max:
                out.append(self._too_long(body))
            elif not body:
                out.append(Malformed(reason="empty frame", excerpt=b""))
            else:
                out.append(self._result(body))
            return True
        if not self._discarding and len(buffer) > self._max:
            out.append(self._too_long(bytes(buffer)))
            self._discarding = True
        if self._discarding:
            buffer.clear()
        return False

    def _decode_line(self, line: bytes) -> ScannerMessage:
        if len(line) > self._max:
            return self._too_long(line)
        if line.startswith(b"||"):
            terminator = self._framing.terminator
            if terminator is Terminator.CR:
                self._skip_lf = True
            elif terminator is Terminator.LF and line.endswith(b"\r"):
                line = line[:-1]
            message = parse_response(line)
            if isinstance(message, DmccResponse) and message.status == DmccStatus.READ_STRING:
                # Extended mode wraps reads the reader made on its own in an answer header.
                return self._result(message.data) if message.data else NoRead()
            return message
        if self._framing.stx_etx:
            return Malformed(reason="bytes outside a frame", excerpt=_excerpt(line))
        return self._result(line)

    def _result(self, data: bytes) -> CodeRead | NoRead:
        if self._framing.no_read and data == self._framing.no_read:
            return NoRead()
        return CodeRead(data=data)

    def _too_long(self, data: bytes) -> Malformed:
        # Cut at the same length whether the end was seen or not, so the report does not
        # depend on how the stream was split into reads.
        cut = min(_EXCERPT_BYTES, self._max + 1)
        return Malformed(reason=f"longer than {self._max} bytes", excerpt=data[:cut])


class CommandDecoder:
    """Splits what a host sends a reader into DMCC commands; never raises on input.

    Lines end in LF with an optional CR before it, as terminal programs differ there.
    """

    def __init__(self, max_line: int = _MAX_COMMAND) -> None:
        if max_line < 1:
            raise ValueError("max_line must be >= 1")
        self._max = max_line
        self._buffer = bytearray()
        self._discarding = False

    def feed(self, data: bytes) -> list[DmccCommand | Malformed]:
        """Decode every command line data completes, in order."""
        self._buffer += data
        out: list[DmccCommand | Malformed] = []
        start = 0
        while (end := self._buffer.find(b"\n", start)) >= 0:
            raw = bytes(self._buffer[start:end])
            start = end + 1
            line = raw[:-1] if raw.endswith(b"\r") else raw
            if self._discarding:
                self._discarding = False
            elif len(line) > self._max:
                out.append(self._too_long(line))
            elif line:
                out.append(parse_command(line))
        del self._buffer[:start]
        if not self._discarding and len(self._buffer) > self._max + 1:
            out.append(self._too_long(self._buffer))
            self._discarding = True
        if self._discarding:
            self._buffer.clear()
        return out

    def _too_long(self, line: bytes | bytearray) -> Malformed:
        return Malformed(reason=f"longer than {self._max} bytes", excerpt=_excerpt(line))


def _header(command_id: int | None, checksum: bool) -> bytes:
    if command_id is not None:
        return b"||%d:%d" % (int(checksum), command_id)
    return b"||1" if checksum else b"||"


def _with_checksum(body: bytes, checksum: bool) -> bytes:
    if not checksum:
        return body
    value = xor_checksum(body)
    if value in (_CR, _LF):
        # It would end the line early at a reader that splits at CR or LF.
        raise ValueError("the checksum byte would be CR or LF; use another command id")
    return body + bytes([value])


def _header_options(options: bytes) -> tuple[bool, int | None]:
    fields = options.split(b":") if options else []
    checksum = bool(fields) and fields[0] == b"1"
    command_id = int(fields[1]) if len(fields) > 1 and fields[1] else None
    return checksum, command_id


def _check_code(code: bytes, framing: Framing, *, what: str) -> None:
    if not code:
        raise ValueError(f"{what} is empty")
    if len(code) > framing.max_length:
        raise ValueError(f"{what} of {len(code)} bytes exceeds max_length {framing.max_length}")
    if framing.stx_etx:
        if STX in code or ETX in code:
            raise ValueError(f"{what} contains STX or ETX")
    else:
        if framing.terminator.wire in code:
            raise ValueError(f"{what} contains the terminator")
        if code.startswith(b"||"):
            raise ValueError(f"{what} starts with || and would read as a DMCC answer")


def _frame(code: bytes, framing: Framing) -> bytes:
    if framing.stx_etx:
        return bytes([STX]) + code + bytes([ETX])
    return code + framing.terminator.wire


def _excerpt(data: bytes | bytearray) -> bytes:
    return bytes(data[:_EXCERPT_BYTES])
