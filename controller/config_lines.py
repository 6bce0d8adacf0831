"""Where each key of a TOML document is written: tomllib gives values but no positions.

Keys are dotted paths with array indices, as `plcs[1].bindings[0].address`. A key maps
to the line where it is assigned or where its table header starts.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping

__all__ = ["index_key", "join_key", "key_lines", "line_of"]

_BARE_KEY = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_SCALAR_END = frozenset(",]}#\r\n \t")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def join_key(prefix: str, name: str) -> str:
    """The dotted key of `name` inside the table at `prefix`."""
    return f"{prefix}.{name}" if prefix else name


def index_key(prefix: str, index: int) -> str:
    """The key of element `index` of the array at `prefix`."""
    return f"{prefix}[{index}]"


def key_lines(text: str) -> dict[str, int]:
    """Map every key, table and array element of a valid TOML document to its 1-based line."""
    scanner = _Scanner(text)
    scanner.document()
    return scanner.lines


def line_of(lines: Mapping[str, int], key: str) -> int:
    """Line of `key`, else of its nearest enclosing table or array; 0 when none is written."""
    while key:
        if key in lines:
            return lines[key]
        # A key that is not written (a missing field) is best shown at its table.
        key = key[: max(key.rfind("."), key.rfind("["), 0)]
    return 0


class _Scanner:
    """Walks a document that tomllib already accepted, so it never has to report errors."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.line = 1
        self.lines: dict[str, int] = {}
        self.table = ""
        # Arrays of tables by resolved key -> elements so far; a header below one of them
        # refers to its last element.
        self.array_lengths: dict[str, int] = {}

    def document(self) -> None:
        while True:
            self._skip(newlines=True)
            start = self.pos
            if start >= len(self.text):
                return
            if self.text.startswith("[[", self.pos):
                self._array_table_header()
            elif self.text[self.pos] == "[":
                self._table_header()
            else:
                self._key_value(self.table)
            if self.pos == start:
                return  # never spin on text this scanner does not understand

    def _advance(self, count: int = 1) -> None:
        self.line += self.text.count("\n", self.pos, self.pos + count)
        self.pos += count

    def _peek(self) -> str:
        return self.text[self.pos : self.pos + 1]

    def _skip(self, *, newlines: bool) -> None:
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            if char in " \t" or (newlines and char in "\r\n"):
                self._advance()
            elif char == "#":
                end = text.find("\n", self.pos)
                self.pos = len(text) if end < 0 else end
            else:
                return

    def _array_table_header(self) -> None:
        line = self.line
        self._advance(2)
        parts = self._key()
        self._skip(newlines=False)
        self._advance(2)
        parent = self._resolve(parts[:-1], line)
        array = join_key(parent, parts[-1])
        index = self.array_lengths.get(array, 0)
        self.array_lengths[array] = index + 1
        self.lines.setdefault(array, line)
        self.table = index_key(array, index)
        self.lines[self.table] = line

    def _table_header(self) -> None:
        line = self.line
        self._advance()
        parts = self._key()
        self._skip(newlines=False)
        self._advance()
        self.table = self._resolve(parts, line)
        self.lines[self.table] = line

    def _resolve(self, parts: list[str], line: int) -> str:
        """The key a header names: each array of tables on the way means its last element."""
        key = ""
        for part in parts:
            key = join_key(key, part)
            if key in self.array_lengths:
                key = index_key(key, self.array_lengths[key] - 1)
            # Tables created implicitly by a deeper header; an explicit header may follow.
            self.lines.setdefault(key, line)
        return key

    def _key_value(self, prefix: str) -> None:
        line = self.line
        parts = self._key()
        self._skip(newlines=False)
        self._advance()  # "="
        self._skip(newlines=False)
        key = prefix
        for part in parts[:-1]:
            key = join_key(key, part)
            self.lines.setdefault(key, line)
        key = join_key(key, parts[-1])
        self.lines[key] = line
        self._value(key)

    def _key(self) -> list[str]:
        parts: list[str] = []
        while True:
            self._skip(newlines=False)
            start = self.pos
            if self._peek() in ("'", '"'):
                self._string()
                # Let tomllib decode escapes so quoted keys match the parsed document.
                parts.append(tomllib.loads(f"k = {self.text[start : self.pos]}")["k"])
            else:
                while self.pos < len(self.text) and self.text[self.pos] in _BARE_KEY:
                    self.pos += 1
                parts.append(self.text[start : self.pos])
            self._skip(newlines=False)
            if self._peek() != ".":
                return parts
            self._advance()

    def _value(self, key: str) -> None:
        char = self._peek()
        if char in ("'", '"'):
            self._string()
        elif char == "[":
            self._array(key)
        elif char == "{":
            self._inline_table(key)
        else:
            self._scalar()

    def _array(self, key: str) -> None:
        self._advance()
        index = 0
        while True:
            self._skip(newlines=True)
            start = self.pos
            if self._peek() in ("]", ""):
                self._advance()
                return
            element = index_key(key, index)
            self.lines[element] = self.line
            self._value(element)
            index += 1
            self._skip(newlines=True)
            if self._peek() == ",":
                self._advance()
            elif self.pos == start:
                return

    def _inline_table(self, key: str) -> None:
        self._advance()
        while True:
            self._skip(newlines=True)
            start = self.pos
            if self._peek() in ("}", ""):
                self._advance()
                return
            self._key_value(key)
            self._skip(newlines=True)
            if self._peek() == ",":
                self._advance()
            elif self.pos == start:
                return

    def _string(self) -> None:
        text = self.text
        quote = text[self.pos]
        delimiter = quote * 3 if text.startswith(quote * 3, self.pos) else quote
        end = self.pos + len(delimiter)
        while end < len(text) and not text.startswith(delimiter, end):
            # Only basic strings have escapes; a literal string ends at its first quote.
            end += 2 if quote == '"' and text[end] == "\\" else 1
        end += len(delimiter)
        # A multi-line string may end with one or two quotes of content before its delimiter.
        extra = 0
        while len(delimiter) == 3 and extra < 2 and text.startswith(quote, end):
            end += 1
            extra += 1
        self._advance(end - self.pos)

    def _scalar(self) -> None:
        text = self.text
        start = self.pos
        while self.pos < len(text) and text[self.pos] not in _SCALAR_END:
            self.pos += 1
        # A date-time may separate date and time with a space: `1979-05-27 07:32:00`.
        if (
            _DATE.fullmatch(text, start, self.pos)
            and text.startswith(" ", self.pos)
            and text[self.pos + 1 : self.pos + 2].isdigit()
        ):
            self.pos += 1
            self._scalar()
