"""Checking parsed config data against the schema structs, collecting every problem at once.

The schema modules register semantic rules here; `check_table` converts raw data (from
TOML or a JSON request body) field by field, so one bad value does not hide the others,
and reports each problem under its dotted key (`plcs[0].bindings[2].address`).
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import date, datetime, time
from enum import Enum
from typing import Any, NamedTuple

import msgspec

from controller.config_lines import index_key, join_key

__all__ = [
    "ConfigError",
    "ConfigIssue",
    "Problems",
    "array_rule",
    "check_table",
    "duplicate_names",
    "table_rule",
]

Problems = Iterator[tuple[str, str]]  # (dotted key, message)


class ConfigIssue(msgspec.Struct, frozen=True, kw_only=True):
    """One problem in a config file; `line` is 1-based, 0 when the key is not written."""

    file: str
    line: int
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.key}: {self.message}"


class ConfigError(Exception):
    """A config that cannot be used; `issues` lists every problem found."""

    def __init__(self, issues: Sequence[ConfigIssue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))


# ---- semantic rules --------------------------------------------------------------------------
# Each rule names the fields it reads; it runs whenever those fields are valid, so a type
# error in one field does not hide, say, a duplicate name in the same table.


class _Rule(NamedTuple):
    fields: frozenset[str]
    check: Callable[..., Problems]


_TABLE_RULES: dict[type, list[_Rule]] = {}
_ARRAY_RULES: dict[type, list[_Rule]] = {}


def _register(
    registry: dict[type, list[_Rule]], cls: type, fields: tuple[str, ...]
) -> Callable[[Callable[..., Problems]], Callable[..., Problems]]:
    def register(check: Callable[..., Problems]) -> Callable[..., Problems]:
        registry.setdefault(cls, []).append(_Rule(frozenset(fields), check))
        return check

    return register


def table_rule(
    cls: type, *fields: str
) -> Callable[[Callable[..., Problems]], Callable[..., Problems]]:
    """Register `check(key, table)` for every table of `cls` whose `fields` are all valid."""
    return _register(_TABLE_RULES, cls, fields)


def array_rule(
    cls: type, *fields: str
) -> Callable[[Callable[..., Problems]], Callable[..., Problems]]:
    """Register `check([(key, table), ...])` for arrays of `cls` (items with those fields valid)."""
    return _register(_ARRAY_RULES, cls, fields)


def duplicate_names(items: Sequence[tuple[str, Any]], what: str) -> Problems:
    first: dict[str, str] = {}
    for key, item in items:
        if item.name in first:
            yield (
                join_key(key, "name"),
                f"duplicate {what} name {item.name!r} (first used at {first[item.name]})",
            )
        else:
            first[item.name] = key


# ---- checking raw data against the schema --------------------------------------------------

_INVALID: Any = object()
_NOT_A_TABLE = frozenset({"*"})


def check_table(raw: object, cls: type[msgspec.Struct], key: str = "") -> tuple[Any, list]:
    """(`cls` built from `raw` or None, [(dotted key, message), ...]); None when any problem."""
    checker = _Checker()
    result, invalid = checker.table(raw, cls, key)
    if checker.problems or invalid:
        return None, checker.problems
    return result, []


class _Checker:
    """Converts raw data field by field, so one bad value does not hide the others."""

    def __init__(self) -> None:
        self.problems: list[tuple[str, str]] = []

    def table(self, raw: object, cls: type[msgspec.Struct], key: str) -> tuple[Any, frozenset[str]]:
        """The `cls` built from `raw`, and the fields that are invalid (and hold None)."""
        if not isinstance(raw, dict):
            self.problems.append((key, f"expected a table, got {_toml_type(raw)}"))
            return None, _NOT_A_TABLE
        fields = {field.encode_name: field for field in msgspec.structs.fields(cls)}
        for name in raw:
            if name not in fields:
                self.problems.append((join_key(key, name), _unknown_field(name, fields)))
        values: dict[str, Any] = {}
        invalid: set[str] = set()
        for name, field in fields.items():
            if name in raw:
                values[field.name] = self.value(raw[name], field.type, join_key(key, name))
            elif field.required:
                what = "table" if _table_type(field.type) else "key"
                self.problems.append((join_key(key, name), f"missing required {what} {name!r}"))
                values[field.name] = _INVALID
            if values.get(field.name) is _INVALID:
                invalid.add(field.name)
                values[field.name] = None
        # Struct construction does not validate, so None placeholders are safe for the rules
        # that do not read those fields.
        result = cls(**values)
        for rule in _TABLE_RULES.get(cls, ()):
            if not rule.fields & invalid:
                self.problems.extend(rule.check(key, result))
        return result, frozenset(invalid)

    def value(self, raw: object, tp: Any, key: str) -> Any:
        """`raw` converted to `tp`, or `_INVALID` after recording why not."""
        table_cls = _table_type(tp)
        if table_cls is not None:
            if raw is None and _optional(tp):
                return None
            result, invalid = self.table(raw, table_cls, key)
            return _INVALID if invalid else result
        item_cls = _array_of_tables_type(tp)
        if item_cls is not None:
            return self.array_of_tables(raw, item_cls, key)
        try:
            return msgspec.convert(raw, tp)
        except msgspec.ValidationError as exc:
            message, _, path = str(exc).partition(" - at `$")
            enum = _enum_type(tp)
            if enum is not None:
                allowed = ", ".join(str(member.value) for member in enum)
                message = f"invalid value {raw!r} (expected one of: {allowed})"
            self.problems.append((key + path.rstrip("`"), message))
            return _INVALID

    def array_of_tables(self, raw: object, cls: type[msgspec.Struct], key: str) -> Any:
        if not isinstance(raw, list | tuple):
            self.problems.append((key, f"expected an array of tables, got {_toml_type(raw)}"))
            return _INVALID
        items = [
            (index_key(key, i), *self.table(item, cls, index_key(key, i)))
            for i, item in enumerate(raw)
        ]
        for rule in _ARRAY_RULES.get(cls, ()):
            # An item that is not a table at all (reported already) has nothing to check.
            usable = [(k, item) for k, item, invalid in items
                      if invalid is not _NOT_A_TABLE and not rule.fields & invalid]
            self.problems.extend(rule.check(usable))
        if any(invalid for _, _, invalid in items):
            return _INVALID
        return tuple(item for _, item, _ in items)


def _optional(tp: Any) -> bool:
    return type(None) in typing.get_args(tp)


def _enum_type(tp: Any) -> type[Enum] | None:
    members = [a for a in typing.get_args(tp) if a is not type(None)] or [tp]
    if len(members) == 1 and isinstance(members[0], type) and issubclass(members[0], Enum):
        return members[0]
    return None


def _table_type(tp: Any) -> type[msgspec.Struct] | None:
    """The table struct of a field typed `Struct` or `Struct | None`, else None."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(tp) if arg is not type(None)]
        tp = members[0] if len(members) == 1 else None
    return tp if isinstance(tp, type) and issubclass(tp, msgspec.Struct) else None


def _array_of_tables_type(tp: Any) -> type[msgspec.Struct] | None:
    """The item struct of a field typed `tuple[Struct, ...]`, else None."""
    if typing.get_origin(tp) is not tuple:
        return None
    return _table_type(typing.get_args(tp)[0])


def _unknown_field(name: str, fields: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(fields), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown key {name!r}{hint}"


def _toml_type(value: object) -> str:
    names: list[tuple[type | tuple[type, ...], str]] = [
        (dict, "a table"),
        (list, "an array"),
        (str, "a string"),
        (bool, "a boolean"),
        (int, "an integer"),
        (float, "a float"),
        ((datetime, date, time), "a date-time"),
        (type(None), "null"),
    ]
    return next((name for cls, name in names if isinstance(value, cls)), type(value).__name__)
