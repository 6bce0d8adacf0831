"""Network UPS Tools (NUT) network protocol codec: requests and answers <-> lines.

Sans-I/O: `ResponseDecoder` turns bytes from upsd into answers, `CommandDecoder` turns bytes
from a client into requests (for the simulator), the `encode_*` functions build lines; the
sockets live in `client.py` and `sim/nut_ups.py`. The protocol is described in NUT's
developer guide, "Network protocol information": one request line, then one answer line or
a `BEGIN LIST ...` / `END LIST ...` block; multi-word elements are in double quotes with
`\\"` and `\\\\` escaped.
"""

from __future__ import annotations

import re
from typing import TypeAlias

import msgspec

__all__ = [
    "ERROR_WORDS",
    "MAX_LINE",
    "BeginList",
    "Cmd",
    "CommandDecoder",
    "EndList",
    "Err",
    "LineSplitter",
    "Malformed",
    "NutSyntaxError",
    "Ok",
    "Request",
    "Response",
    "ResponseDecoder",
    "Text",
    "UpsEntry",
    "Var",
    "decode_request",
    "decode_response",
    "encode_begin_list",
    "encode_cmd",
    "encode_end_list",
    "encode_err",
    "encode_get_var",
    "encode_instcmd",
    "encode_line",
    "encode_list_cmd",
    "encode_list_ups",
    "encode_list_var",
    "encode_login",
    "encode_logout",
    "encode_netver",
    "encode_ok",
    "encode_password",
    "encode_response",
    "encode_rw",
    "encode_set_var",
    "encode_ups",
    "encode_username",
    "encode_var",
    "encode_ver",
    "quote",
    "split_words",
    "unquote",
]

# upsd's own buffers are smaller; a longer line is not NUT talking.
MAX_LINE = 4096

ERROR_WORDS = frozenset(
    {
        "ACCESS-DENIED",
        "UNKNOWN-UPS",
        "VAR-NOT-SUPPORTED",
        "CMD-NOT-SUPPORTED",
        "INVALID-ARGUMENT",
        "INSTCMD-FAILED",
        "SET-FAILED",
        "READONLY",
        "TOO-LONG",
        "FEATURE-NOT-SUPPORTED",
        "FEATURE-NOT-CONFIGURED",
        "ALREADY-SSL-MODE",
        "DRIVER-NOT-CONNECTED",
        "DATA-STALE",
        "ALREADY-LOGGED-IN",
        "INVALID-PASSWORD",
        "ALREADY-SET-PASSWORD",
        "INVALID-USERNAME",
        "ALREADY-SET-USERNAME",
        "USERNAME-REQUIRED",
        "PASSWORD-REQUIRED",
        "UNKNOWN-COMMAND",
        "INVALID-VALUE",
    }
)
"""Every `ERR <word>` the protocol documents; others may appear and are kept as they are."""

# Malformed lines are quoted in logs; this many characters are enough to recognise one.
_EXCERPT_CHARS = 80
_BLANKS = " \t"
# Characters a line cannot carry, whatever the quoting.
_FORBIDDEN = re.compile(r"[\r\n\x00]")
# A word sent without quotes: anything but blanks, quotes, backslashes and control chars.
_BARE_WORD = re.compile(r"[^\s\"\\\x00-\x1f\x7f]+")
# Answer keywords whose shape the decoder checks; other first words are free text (VER...).
_KEYWORDS = frozenset({"OK", "ERR", "VAR", "UPS", "CMD", "BEGIN", "END"})


class NutSyntaxError(ValueError):
    """Text that is not NUT protocol (bad quoting, a forbidden character, a wrong shape)."""


# --- answers (upsd -> client) --------------------------------------------------------------


class Ok(msgspec.Struct, frozen=True, kw_only=True, tag="ok"):
    """`OK [detail]`: the request succeeded (`OK Goodbye` after LOGOUT)."""

    detail: str = ""


class Err(msgspec.Struct, frozen=True, kw_only=True, tag="err"):
    """`ERR <word> [extra...]`: upsd refused the request; word is one of ERROR_WORDS."""

    word: str
    extra: tuple[str, ...] = ()


class Var(msgspec.Struct, frozen=True, kw_only=True, tag="var"):
    """`VAR <ups> <name> "<value>"`: the answer to GET VAR, and each item of LIST VAR."""

    ups: str
    name: str
    value: str


class UpsEntry(msgspec.Struct, frozen=True, kw_only=True, tag="ups"):
    """`UPS <name> "<description>"`: one item of LIST UPS."""

    name: str
    description: str


class Cmd(msgspec.Struct, frozen=True, kw_only=True, tag="cmd"):
    """`CMD <ups> <command>`: one item of LIST CMD."""

    ups: str
    name: str


class BeginList(msgspec.Struct, frozen=True, kw_only=True, tag="begin_list"):
    """`BEGIN LIST <query...>`: a list answer starts; query repeats the request (VAR, ups1)."""

    query: tuple[str, ...]


class EndList(msgspec.Struct, frozen=True, kw_only=True, tag="end_list"):
    """`END LIST <query...>`: the list answer to query is complete."""

    query: tuple[str, ...]


class Text(msgspec.Struct, frozen=True, kw_only=True, tag="text"):
    """Any other well-formed line: the free-text answers of VER and NETVER, and the like."""

    line: str


class Malformed(msgspec.Struct, frozen=True, kw_only=True, tag="malformed"):
    """A line that is not protocol; line is an excerpt of it for the log."""

    reason: str
    line: str


Response: TypeAlias = Ok | Err | Var | UpsEntry | Cmd | BeginList | EndList | Text | Malformed


# --- requests (client -> upsd) -------------------------------------------------------------


class Request(msgspec.Struct, frozen=True, kw_only=True, tag="request"):
    """A request as upsd sees it: the command word (upper case) and its arguments."""

    verb: str
    args: tuple[str, ...] = ()


# --- quoting and words ---------------------------------------------------------------------


def quote(text: str) -> str:
    """text as one double-quoted protocol word; NutSyntaxError if it holds CR, LF or NUL."""
    _check_line_safe(text)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def unquote(word: str) -> str:
    """The text of one quoted or bare protocol word; NutSyntaxError if it is not one word."""
    words = split_words(word)
    if len(words) != 1:
        raise NutSyntaxError(f"expected one word, found {len(words)}")
    return words[0]


def split_words(line: str) -> list[str]:
    """The words of one line: blank-separated, `"..."` quoted, `\\x` escaping x.

    Raises NutSyntaxError (and nothing else) for an unterminated quote, a dangling
    backslash, text glued to a closing quote, or a CR, LF or NUL.
    """
    _check_line_safe(line)
    words: list[str] = []
    i, end = 0, len(line)
    while i < end:
        char = line[i]
        if char in _BLANKS:
            i += 1
            continue
        word: list[str] = []
        if char == '"':
            i += 1
            while True:
                if i >= end:
                    raise NutSyntaxError("unterminated quoted word")
                char = line[i]
                if char == '"':
                    i += 1
                    break
                if char == "\\":
                    if i + 1 >= end:
                        raise NutSyntaxError("backslash at the end of the line")
                    char = line[i + 1]
                    i += 1
                word.append(char)
                i += 1
            if i < end and line[i] not in _BLANKS:
                raise NutSyntaxError("text right after a closing quote")
        else:
            while i < end and line[i] not in _BLANKS:
                char = line[i]
                if char == '"':
                    raise NutSyntaxError("quote inside an unquoted word")
                if char == "\\":
                    if i + 1 >= end:
                        raise NutSyntaxError("backslash at the end of the line")
                    char = line[i + 1]
                    i += 1
                word.append(char)
                i += 1
        words.append("".join(word))
    return words


def _check_line_safe(text: str) -> None:
    found = _FORBIDDEN.search(text)
    if found is not None:
        raise NutSyntaxError(f"{found.group()!r} cannot be sent on a NUT line")


def _word(text: str) -> str:
    # Names go bare, as upsd itself sends them; anything else is quoted.
    return text if _BARE_WORD.fullmatch(text) else quote(text)


# --- stream splitting ----------------------------------------------------------------------


class LineSplitter:
    """Splits a byte stream into text lines; keeps a partial line between feeds.

    Never raises on input: a line longer than max_line bytes comes out once as `Malformed`
    and is skipped up to its LF. Bytes that are not UTF-8 are replaced (U+FFFD): some UPSes
    report model names in other encodings, which is no reason to reject the reading.
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

    def feed(self, data: bytes) -> list[str | Malformed]:
        """Every line completed by data (without its CR LF or LF), in order; blank lines too."""
        self._buffer += data
        lines: list[str | Malformed] = []
        start = 0
        while (end := self._buffer.find(b"\n", start)) >= 0:
            raw = bytes(self._buffer[start:end])
            start = end + 1
            if self._discarding:
                self._discarding = False
                continue
            line = raw[:-1] if raw.endswith(b"\r") else raw
            if len(line) > self._max_line:
                lines.append(self._too_long(raw))
            else:
                lines.append(line.decode("utf-8", "replace"))
        del self._buffer[:start]
        # +1 leaves room for the CR of a CR LF; beyond that the line is too long for sure,
        # so report it now rather than buffer a peer that never sends LF.
        if not self._discarding and len(self._buffer) > self._max_line + 1:
            lines.append(self._too_long(bytes(self._buffer)))
            self._discarding = True
        if self._discarding:
            self._buffer.clear()
        return lines

    def _too_long(self, raw: bytes) -> Malformed:
        # Cut at the same length whether the LF was seen or not, so the report does not
        # depend on how the stream was split into reads.
        cut = raw[: min(_EXCERPT_CHARS, self._max_line + 1)]
        return Malformed(
            reason=f"line longer than {self._max_line} bytes",
            line=cut.decode("utf-8", "backslashreplace") + "...",
        )


class ResponseDecoder:
    """Bytes from upsd -> answers; never raises on input (garbage comes out as Malformed)."""

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self._lines = LineSplitter(max_line)

    @property
    def buffered(self) -> int:
        """Bytes held of a line whose LF has not arrived yet."""
        return self._lines.buffered

    def feed(self, data: bytes) -> list[Response]:
        """Decode every answer line completed by data, in order; blank lines are skipped."""
        out: list[Response] = []
        for line in self._lines.feed(data):
            if isinstance(line, Malformed):
                out.append(line)
            elif line.strip(_BLANKS):
                out.append(decode_response(line))
        return out


class CommandDecoder:
    """Bytes from a client -> requests (for servers); never raises on input."""

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self._lines = LineSplitter(max_line)

    def feed(self, data: bytes) -> list[Request | Malformed]:
        """Decode every request line completed by data, in order; blank lines are skipped."""
        out: list[Request | Malformed] = []
        for line in self._lines.feed(data):
            if isinstance(line, Malformed):
                out.append(line)
            elif line.strip(_BLANKS):
                out.append(decode_request(line))
        return out


# --- line decoding -------------------------------------------------------------------------


def decode_response(line: str) -> Response:
    """Decode one answer line (without its terminator); never raises."""
    try:
        words = split_words(line)
    except NutSyntaxError as exc:
        first = line.lstrip(_BLANKS).split(" ", 1)[0]
        if first in _KEYWORDS:
            return Malformed(reason=str(exc), line=_excerpt(line))
        return Text(line=line)  # VER's free text may hold a stray quote
    if not words:
        return Malformed(reason="blank line", line="")
    keyword, args = words[0], words[1:]
    if keyword == "OK":
        return Ok(detail=" ".join(args))
    if keyword == "ERR":
        if not args or not args[0]:
            return Malformed(reason="ERR without an error word", line=_excerpt(line))
        return Err(word=args[0], extra=tuple(args[1:]))
    if keyword == "VAR":
        if len(args) != 3:
            return _wrong_shape("VAR <ups> <name> <value>", line)
        return Var(ups=args[0], name=args[1], value=args[2])
    if keyword == "UPS":
        if len(args) != 2:
            return _wrong_shape("UPS <name> <description>", line)
        return UpsEntry(name=args[0], description=args[1])
    if keyword == "CMD":
        if len(args) != 2:
            return _wrong_shape("CMD <ups> <command>", line)
        return Cmd(ups=args[0], name=args[1])
    if keyword in ("BEGIN", "END"):
        if len(args) < 2 or args[0] != "LIST":
            return _wrong_shape(f"{keyword} LIST <query...>", line)
        query = tuple(args[1:])
        return BeginList(query=query) if keyword == "BEGIN" else EndList(query=query)
    return Text(line=line)


def decode_request(line: str) -> Request | Malformed:
    """Decode one request line (without its terminator); never raises."""
    try:
        words = split_words(line)
    except NutSyntaxError as exc:
        return Malformed(reason=str(exc), line=_excerpt(line))
    if not words or not words[0]:
        return Malformed(reason="no command word", line=_excerpt(line))
    return Request(verb=words[0].upper(), args=tuple(words[1:]))


def _wrong_shape(expected: str, line: str) -> Malformed:
    return Malformed(reason=f"expected {expected}", line=_excerpt(line))


def _excerpt(line: str) -> str:
    return line[:_EXCERPT_CHARS] + "..." if len(line) > _EXCERPT_CHARS else line


# --- encoding ------------------------------------------------------------------------------


def encode_line(*words: str) -> bytes:
    """One line of words, quoting those that need it; NutSyntaxError for CR/LF/NUL, overlong."""
    if not words:
        raise NutSyntaxError("a line needs at least one word")
    return _line([_word(word) for word in words])


def _line(parts: list[str]) -> bytes:
    # parts are already formatted words (bare or quoted).
    data = " ".join(parts).encode("utf-8") + b"\n"
    if len(data) - 1 > MAX_LINE:
        raise NutSyntaxError(f"line of {len(data) - 1} bytes exceeds the {MAX_LINE}-byte limit")
    return data


def _name(kind: str, name: str) -> str:
    # A name sent bare must stay one word; upsd never quotes UPS or variable names.
    if not _BARE_WORD.fullmatch(name):
        raise NutSyntaxError(f"invalid {kind} name {name!r}")
    return name


def encode_ver() -> bytes:
    """`VER`: the server's version text."""
    return b"VER\n"


def encode_netver() -> bytes:
    """`NETVER`: the protocol version."""
    return b"NETVER\n"


def encode_list_ups() -> bytes:
    """`LIST UPS`: every UPS the server knows, with its description."""
    return b"LIST UPS\n"


def encode_list_var(ups: str) -> bytes:
    """`LIST VAR <ups>`: every variable of one UPS."""
    return _line(["LIST", "VAR", _name("UPS", ups)])


def encode_list_cmd(ups: str) -> bytes:
    """`LIST CMD <ups>`: the instant commands of one UPS."""
    return _line(["LIST", "CMD", _name("UPS", ups)])


def encode_get_var(ups: str, var: str) -> bytes:
    """`GET VAR <ups> <var>`: one variable."""
    return _line(["GET", "VAR", _name("UPS", ups), _name("variable", var)])


def encode_set_var(ups: str, var: str, value: str) -> bytes:
    """`SET VAR <ups> <var> "<value>"`: change a writable variable (needs credentials)."""
    return _line(["SET", "VAR", _name("UPS", ups), _name("variable", var), quote(value)])


def encode_instcmd(ups: str, command: str, param: str | None = None) -> bytes:
    """`INSTCMD <ups> <command> [<param>]`: run an instant command (needs credentials)."""
    parts = ["INSTCMD", _name("UPS", ups), _name("command", command)]
    if param is not None:
        parts.append(_word(param))
    return _line(parts)


def encode_username(username: str) -> bytes:
    """`USERNAME <name>`: first half of the credentials for SET and INSTCMD."""
    return _line(["USERNAME", _word(username)])


def encode_password(password: str) -> bytes:
    """`PASSWORD <password>`: second half of the credentials."""
    return _line(["PASSWORD", _word(password)])


def encode_login(ups: str) -> bytes:
    """`LOGIN <ups>`: declare that this client draws power from ups (upsmon does this)."""
    return _line(["LOGIN", _name("UPS", ups)])


def encode_logout() -> bytes:
    """`LOGOUT`: say goodbye; upsd answers `OK Goodbye` and closes."""
    return b"LOGOUT\n"


def encode_ok(detail: str = "") -> bytes:
    """`OK [detail]`; detail is words separated by blanks (`Goodbye`, `TRACKING <id>`)."""
    return _line(["OK", *(_word(word) for word in detail.split())])


def encode_err(word: str, *extra: str) -> bytes:
    """`ERR <word> [extra...]`."""
    return _line(["ERR", _name("error", word), *(_word(text) for text in extra)])


def encode_var(ups: str, name: str, value: str) -> bytes:
    """`VAR <ups> <name> "<value>"` (the value always quoted, as upsd sends it)."""
    return _line(["VAR", _name("UPS", ups), _name("variable", name), quote(value)])


def encode_rw(ups: str, name: str, value: str) -> bytes:
    """`RW <ups> <name> "<value>"`: one item of LIST RW (a writable variable)."""
    return _line(["RW", _name("UPS", ups), _name("variable", name), quote(value)])


def encode_ups(name: str, description: str) -> bytes:
    """`UPS <name> "<description>"`."""
    return _line(["UPS", _name("UPS", name), quote(description)])


def encode_cmd(ups: str, command: str) -> bytes:
    """`CMD <ups> <command>`."""
    return _line(["CMD", _name("UPS", ups), _name("command", command)])


def encode_begin_list(*query: str) -> bytes:
    """`BEGIN LIST <query...>`."""
    return _line(["BEGIN", "LIST", *(_name("query", word) for word in query)])


def encode_end_list(*query: str) -> bytes:
    """`END LIST <query...>`."""
    return _line(["END", "LIST", *(_name("query", word) for word in query)])


def encode_response(response: Response) -> bytes:
    """Encode any answer but Malformed (which has no wire form)."""
    if isinstance(response, Ok):
        return encode_ok(response.detail)
    if isinstance(response, Err):
        return encode_err(response.word, *response.extra)
    if isinstance(response, Var):
        return encode_var(response.ups, response.name, response.value)
    if isinstance(response, UpsEntry):
        return encode_ups(response.name, response.description)
    if isinstance(response, Cmd):
        return encode_cmd(response.ups, response.name)
    if isinstance(response, BeginList):
        return encode_begin_list(*response.query)
    if isinstance(response, EndList):
        return encode_end_list(*response.query)
    if isinstance(response, Text):
        _check_line_safe(response.line)
        return _line([response.line])
    raise NutSyntaxError("a Malformed answer cannot be encoded")
