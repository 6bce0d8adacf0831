"""The station configuration (TOML): its schema, how it is loaded, and the checks it must pass.

Every problem in a file is reported at once, each with its line and dotted key, so an
engineer fixes a config in one pass instead of one error per start attempt.
"""

from __future__ import annotations

import difflib
import importlib.resources
import math
import re
import tomllib
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import date, datetime, time
from enum import Enum, StrEnum
from pathlib import Path
from typing import Annotated, Any, NamedTuple

import msgspec
from msgspec import Meta

from controller.config_lines import index_key, join_key, key_lines, line_of

__all__ = [
    "IMPLEMENTED_PROTOCOLS",
    "UNSUPPORTED_PROTOCOLS",
    "ConfigError",
    "ConfigIssue",
    "Direction",
    "Endianness",
    "PlcConfig",
    "Protocol",
    "RegisterKind",
    "ServerConfig",
    "SimConfig",
    "StationConfig",
    "StationInfo",
    "StoreConfig",
    "SupervisionConfig",
    "TagBinding",
    "ValueType",
    "embedded_demo_config_path",
    "load_config",
    "parse_config",
]

Name = Annotated[str, Meta(pattern=r"^[a-z0-9_-]{1,32}$")]
BindingName = Annotated[str, Meta(pattern=r"^[a-z0-9_]{1,64}$")]
Port = Annotated[int, Meta(ge=1, le=65535)]
# Bounded so that `inf` (valid TOML) cannot pass as a duration.
Seconds = Annotated[float, Meta(gt=0, le=86_400)]


class Protocol(StrEnum):
    MODBUS_TCP = "MODBUS_TCP"
    MODBUS_RTU = "MODBUS_RTU"
    OPC_UA = "OPC_UA"
    TCP_SOCKET = "TCP_SOCKET"
    PROFINET = "PROFINET"
    ETHERNET_IP = "ETHERNET_IP"


# Named in the schema so a config that asks for them gets a clear refusal, not "invalid value".
UNSUPPORTED_PROTOCOLS = frozenset({Protocol.PROFINET, Protocol.ETHERNET_IP})
# The one place that says which PLC drivers exist: add a protocol here when its driver lands.
IMPLEMENTED_PROTOCOLS = frozenset({Protocol.MODBUS_TCP})


class RegisterKind(StrEnum):
    COIL = "coil"
    DISCRETE_INPUT = "discrete_input"
    HOLDING_REGISTER = "holding_register"
    INPUT_REGISTER = "input_register"


class ValueType(StrEnum):
    BOOL = "bool"
    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    FLOAT32 = "float32"
    STRING = "string"


class Endianness(StrEnum):
    BIG = "big"
    LITTLE = "little"


class Direction(StrEnum):
    IN = "in"
    OUT = "out"


_BIT_KINDS = frozenset({RegisterKind.COIL, RegisterKind.DISCRETE_INPUT})
_READ_ONLY_KINDS = frozenset({RegisterKind.DISCRETE_INPUT, RegisterKind.INPUT_REGISTER})
_TWO_REGISTER_TYPES = frozenset({ValueType.INT32, ValueType.UINT32, ValueType.FLOAT32})
_LAST_ADDRESS = 65535


class _Table(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of every config table: immutable, and a misspelt key is an error."""


class StationInfo(_Table):
    id: Name
    name: Annotated[str, Meta(min_length=1)]


class ServerConfig(_Table):
    host: Annotated[str, Meta(min_length=1)] = "127.0.0.1"
    port: Port = 8080
    cors_origins: tuple[str, ...] = ()


class StoreConfig(_Table):
    group_commit_max: Annotated[int, Meta(ge=1, le=100_000)] = 5000
    query_workers: Annotated[int, Meta(ge=1, le=16)] = 2


class SupervisionConfig(_Table):
    """Restart intensity and reconnect backoff of the devices supervisor."""

    max_restarts: Annotated[int, Meta(ge=1)] = 30
    within_s: Seconds = 60.0
    backoff_min_s: Seconds = 0.1
    backoff_max_s: Seconds = 5.0
    backoff_jitter: Annotated[float, Meta(ge=0, le=1)] = 0.2
    stable_s: Seconds = 30.0


class TagBinding(_Table):
    """One PLC tag: where it lives in the device and how its registers decode."""

    name: BindingName
    # No defaults for where and what: a guessed register is read silently and wrongly.
    kind: RegisterKind
    address: Annotated[int, Meta(ge=0, le=_LAST_ADDRESS)]
    type: ValueType
    count: Annotated[int, Meta(ge=0)] = 0
    word_order: Endianness = Endianness.BIG
    byte_order: Endianness = Endianness.BIG
    scale: float = 1.0
    direction: Direction = Direction.IN
    durable: bool = False

    @property
    def width(self) -> int:
        """Number of consecutive addresses (bits or registers) the tag occupies."""
        if self.kind in _BIT_KINDS:
            return 1
        if self.type is ValueType.STRING:
            return max(self.count, 1)
        return 2 if self.type in _TWO_REGISTER_TYPES else 1


class PlcConfig(_Table):
    name: Name
    protocol: Protocol = Protocol.MODBUS_TCP
    host: Annotated[str, Meta(min_length=1)] = "127.0.0.1"
    port: Port = 502
    unit: Annotated[int, Meta(ge=0, le=247)] = 1
    poll_interval_ms: Annotated[int, Meta(ge=5, le=60_000)] = 50
    timeout_ms: Annotated[int, Meta(ge=50, le=30_000)] = 500
    enabled: bool = True
    bindings: tuple[TagBinding, ...] = ()


class SimConfig(_Table):
    """Simulated devices that `takt run` starts in-process (the demo station)."""

    modbus_plc: bool = True
    modbus_plc_port: Port = 5020
    demo_script: bool = True


class StationConfig(_Table):
    station: StationInfo
    server: ServerConfig = ServerConfig()
    store: StoreConfig = StoreConfig()
    supervision: SupervisionConfig = SupervisionConfig()
    plcs: tuple[PlcConfig, ...] = ()
    # Absent means no simulators: a real station must not open a fake PLC by default.
    sim: SimConfig | None = None


class ConfigIssue(msgspec.Struct, frozen=True, kw_only=True):
    """One problem in a config file; `line` is 1-based, 0 when the key is not written."""

    file: str
    line: int
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.key}: {self.message}"


class ConfigError(Exception):
    """A config file that cannot be used; `issues` lists every problem found."""

    def __init__(self, issues: Sequence[ConfigIssue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))


def load_config(path: Path) -> StationConfig:
    """Read and check the station config at `path`."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise ConfigError([_file_issue(path, f"cannot read the file: {exc.strerror}")]) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError([_file_issue(path, f"not UTF-8 text: {exc.reason}")]) from exc
    return parse_config(text, str(path))


def parse_config(text: str, filename: str) -> StationConfig:
    """Check the TOML `text` (named `filename` in issues) and return the station config."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([_syntax_issue(str(exc), text, filename)]) from None
    lines = key_lines(text)
    checker = _Checker()
    config, invalid = checker.table(raw, StationConfig, "")
    issues = [
        ConfigIssue(file=filename, line=line_of(lines, key), key=key, message=message)
        for key, message in checker.problems
    ]
    if issues or invalid:
        raise ConfigError(sorted(issues, key=lambda issue: issue.line))
    return config


def embedded_demo_config_path() -> Path:
    """The demo station shipped in the `sim` package (`sim/stations/demo.toml`)."""
    resource = importlib.resources.files("sim") / "stations" / "demo.toml"
    if not isinstance(resource, Path):
        raise FileNotFoundError(f"the demo station is not a plain file here: {resource}")
    return resource


def _file_issue(path: Path, message: str) -> ConfigIssue:
    return ConfigIssue(file=str(path), line=0, key="<file>", message=message)


_TOML_POSITION = re.compile(r"\s*\((?:at line (\d+), column (\d+)|at end of document)\)$")


def _syntax_issue(message: str, text: str, filename: str) -> ConfigIssue:
    match = _TOML_POSITION.search(message)
    if match is None:
        return ConfigIssue(file=filename, line=0, key="<syntax>", message=message)
    if match.group(1) is None:
        line, where = max(len(text.splitlines()), 1), "at end of file"
    else:
        line, where = int(match.group(1)), f"at column {match.group(2)}"
    return ConfigIssue(
        file=filename, line=line, key="<syntax>", message=f"{message[: match.start()]} ({where})"
    )


# ---- semantic rules --------------------------------------------------------------------------
# Each rule names the fields it reads; it runs whenever those fields are valid, so a type
# error in one field does not hide, say, a duplicate name in the same table.

_Problems = Iterator[tuple[str, str]]  # (dotted key, message)


class _Rule(NamedTuple):
    fields: frozenset[str]
    check: Callable[..., _Problems]


_TABLE_RULES: dict[type, list[_Rule]] = {}
_ARRAY_RULES: dict[type, list[_Rule]] = {}


def _rule(
    registry: dict[type, list[_Rule]], cls: type, *fields: str
) -> Callable[[Callable[..., _Problems]], Callable[..., _Problems]]:
    def register(check: Callable[..., _Problems]) -> Callable[..., _Problems]:
        registry.setdefault(cls, []).append(_Rule(frozenset(fields), check))
        return check

    return register


@_rule(_TABLE_RULES, TagBinding, "kind", "type")
def _bits_are_bool(key: str, tag: TagBinding) -> _Problems:
    if tag.kind in _BIT_KINDS and tag.type is not ValueType.BOOL:
        yield (
            join_key(key, "type"),
            f"a {tag.kind} holds one bit, so type must be bool, not {tag.type}",
        )


@_rule(_TABLE_RULES, TagBinding, "kind", "direction")
def _read_only_kinds_are_inputs(key: str, tag: TagBinding) -> _Problems:
    if tag.kind in _READ_ONLY_KINDS and tag.direction is Direction.OUT:
        yield join_key(key, "direction"), f"{tag.kind} is read-only in Modbus; use direction = 'in'"


@_rule(_TABLE_RULES, TagBinding, "type", "count")
def _count_only_for_strings(key: str, tag: TagBinding) -> _Problems:
    if tag.type is ValueType.STRING and tag.count < 1:
        yield join_key(key, "count"), "type string needs count >= 1 (registers to read)"
    if tag.type is not ValueType.STRING and tag.count != 0:
        yield join_key(key, "count"), f"count applies only to type string, not {tag.type}"


@_rule(_TABLE_RULES, TagBinding, "scale")
def _scale_is_usable(key: str, tag: TagBinding) -> _Problems:
    if tag.scale == 0 or not math.isfinite(tag.scale):
        yield join_key(key, "scale"), f"scale must be a finite non-zero number, not {tag.scale}"


@_rule(_TABLE_RULES, TagBinding, "kind", "type", "count", "address")
def _fits_address_space(key: str, tag: TagBinding) -> _Problems:
    last = tag.address + tag.width - 1
    if last > _LAST_ADDRESS:
        yield (
            join_key(key, "address"),
            f"the tag spans {tag.address}..{last}, past the last address {_LAST_ADDRESS}",
        )


@_rule(_ARRAY_RULES, TagBinding, "name")
def _unique_binding_names(items: Sequence[tuple[str, TagBinding]]) -> _Problems:
    return _duplicate_names(items, "binding")


@_rule(_ARRAY_RULES, TagBinding, "name", "kind", "type", "count", "address")
def _no_overlapping_tags(items: Sequence[tuple[str, TagBinding]]) -> _Problems:
    for later, (key, tag) in enumerate(items):
        last = tag.address + tag.width - 1
        for other_key, other in items[:later]:
            other_last = other.address + other.width - 1
            same_kind = other.kind is tag.kind
            if same_kind and tag.address <= other_last and other.address <= last:
                yield (
                    join_key(key, "address"),
                    f"{tag.kind} {tag.address}..{last} overlaps {other.name!r} "
                    f"at {other_key} ({other.address}..{other_last})",
                )
                break


@_rule(_TABLE_RULES, PlcConfig, "protocol")
def _protocol_available(key: str, plc: PlcConfig) -> _Problems:
    protocol = plc.protocol
    if protocol in UNSUPPORTED_PROTOCOLS:
        supported = ", ".join(p for p in Protocol if p not in UNSUPPORTED_PROTOCOLS)
        yield (
            join_key(key, "protocol"),
            f"protocol {protocol} is not supported by Takt (supported: {supported})",
        )
    elif protocol not in IMPLEMENTED_PROTOCOLS:
        yield join_key(key, "protocol"), f"protocol {protocol} is not implemented yet"


@_rule(_ARRAY_RULES, PlcConfig, "name")
def _unique_plc_names(items: Sequence[tuple[str, PlcConfig]]) -> _Problems:
    return _duplicate_names(items, "plc")


@_rule(_TABLE_RULES, SupervisionConfig, "backoff_min_s", "backoff_max_s")
def _backoff_ordered(key: str, sup: SupervisionConfig) -> _Problems:
    if sup.backoff_min_s > sup.backoff_max_s:
        yield (
            join_key(key, "backoff_min_s"),
            f"backoff_min_s ({sup.backoff_min_s:g}) must not exceed "
            f"backoff_max_s ({sup.backoff_max_s:g})",
        )


@_rule(_TABLE_RULES, SupervisionConfig, "max_restarts", "within_s", "backoff_max_s")
def _intensity_outlasts_backoff(key: str, sup: SupervisionConfig) -> _Problems:
    bound = sup.within_s / sup.backoff_max_s + 1
    if sup.max_restarts <= bound:
        yield (
            join_key(key, "max_restarts"),
            f"must be greater than within_s / backoff_max_s + 1 = {bound:g}: a device that "
            f"stays unreachable is restarted every backoff_max_s at most, so on its own it "
            f"would use up {sup.max_restarts} restarts within {sup.within_s:g} s and the "
            f"devices supervisor would give up on every device",
        )


def _duplicate_names(items: Sequence[tuple[str, Any]], what: str) -> _Problems:
    first: dict[str, str] = {}
    for key, item in items:
        if item.name in first:
            yield (
                join_key(key, "name"),
                f"duplicate {what} name {item.name!r} (first used at {first[item.name]})",
            )
        else:
            first[item.name] = key


# ---- checking the parsed TOML against the schema ------------------------------------------

_INVALID: Any = object()
_NOT_A_TABLE = frozenset({"*"})


class _Checker:
    """Converts the parsed TOML field by field, so one bad value does not hide the others."""

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
            result, invalid = self.table(raw, table_cls, key)
            return _INVALID if invalid else result
        item_cls = _array_of_tables_type(tp)
        if item_cls is not None:
            return self.array_of_tables(raw, item_cls, key)
        try:
            return msgspec.convert(raw, tp)
        except msgspec.ValidationError as exc:
            message, _, path = str(exc).partition(" - at `$")
            if isinstance(tp, type) and issubclass(tp, Enum):
                allowed = ", ".join(str(member.value) for member in tp)
                message = f"invalid value {raw!r} (expected one of: {allowed})"
            self.problems.append((key + path.rstrip("`"), message))
            return _INVALID

    def array_of_tables(self, raw: object, cls: type[msgspec.Struct], key: str) -> Any:
        if not isinstance(raw, list):
            self.problems.append((key, f"expected an array of tables, got {_toml_type(raw)}"))
            return _INVALID
        items = [
            (index_key(key, i), *self.table(item, cls, index_key(key, i)))
            for i, item in enumerate(raw)
        ]
        for rule in _ARRAY_RULES.get(cls, ()):
            usable = [(k, item) for k, item, invalid in items if not rule.fields & invalid]
            self.problems.extend(rule.check(usable))
        if any(invalid for _, _, invalid in items):
            return _INVALID
        return tuple(item for _, item, _ in items)


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
    ]
    return next((name for cls, name in names if isinstance(value, cls)), type(value).__name__)
