"""The PLC part of the station config: PLCs, their tag bindings, heartbeat and handshakes.

Which fields a binding needs depends on its PLC's protocol (a Modbus tag has a table and
an address, an OPC-UA tag a node, a TCP-socket tag a key); those rules live on the PLC
table so each problem is reported under the binding's own key.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from enum import StrEnum
from typing import Annotated

import msgspec
from msgspec import Meta

from controller.config_check import Problems, array_rule, duplicate_names, table_rule
from controller.config_lines import index_key, join_key

__all__ = [
    "IMPLEMENTED_PROTOCOLS",
    "UNSUPPORTED_PROTOCOLS",
    "BindingMode",
    "DeadbandType",
    "Direction",
    "Endianness",
    "HandshakeConfig",
    "HandshakeRole",
    "HeartbeatConfig",
    "Parity",
    "PlcConfig",
    "Protocol",
    "RegisterKind",
    "SerialConfig",
    "TagBinding",
    "ValueType",
]

Name = Annotated[str, Meta(pattern=r"^[a-z0-9_-]{1,32}(?!\n)$")]
BindingName = Annotated[str, Meta(pattern=r"^[a-z0-9_]{1,64}(?!\n)$")]
Port = Annotated[int, Meta(ge=1, le=65535)]
Millis = Annotated[int, Meta(ge=1, le=3_600_000)]


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
IMPLEMENTED_PROTOCOLS = frozenset(
    {Protocol.MODBUS_TCP, Protocol.MODBUS_RTU, Protocol.OPC_UA, Protocol.TCP_SOCKET}
)
_MODBUS = frozenset({Protocol.MODBUS_TCP, Protocol.MODBUS_RTU})


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
    FLOAT64 = "float64"
    STRING = "string"


INTEGER_TYPES = frozenset({ValueType.INT16, ValueType.UINT16, ValueType.INT32, ValueType.UINT32})


class Endianness(StrEnum):
    BIG = "big"
    LITTLE = "little"


class Direction(StrEnum):
    IN = "in"
    OUT = "out"


class BindingMode(StrEnum):
    POLL = "poll"
    SUBSCRIBE = "subscribe"


class DeadbandType(StrEnum):
    NONE = "none"
    ABSOLUTE = "absolute"
    PERCENT = "percent"


class Parity(StrEnum):
    NONE = "N"
    EVEN = "E"
    ODD = "O"


class HandshakeRole(StrEnum):
    RESPONDER = "responder"  # the PLC requests, Takt answers
    REQUESTER = "requester"  # Takt requests, the PLC answers


_BIT_KINDS = frozenset({RegisterKind.COIL, RegisterKind.DISCRETE_INPUT})
_READ_ONLY_KINDS = frozenset({RegisterKind.DISCRETE_INPUT, RegisterKind.INPUT_REGISTER})
_TWO_REGISTER_TYPES = frozenset({ValueType.INT32, ValueType.UINT32, ValueType.FLOAT32})
_LAST_ADDRESS = 65535
_NODE_ID = re.compile(r"^(ns=\d+;|nsu=[^;]+;)?(i=\d+|s=.+|g=[0-9a-fA-F-]{36}|b=[A-Za-z0-9+/=]+)$")


class _Table(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of every config table: immutable, and a misspelt key is an error."""


class TagBinding(_Table):
    """One PLC signal: where it lives in the device and how its value decodes."""

    name: BindingName
    # No default type: a guessed type decodes silently and wrongly.
    type: ValueType
    direction: Direction = Direction.IN
    durable: bool = False
    scale: float = 1.0
    # Modbus: which table and address (no defaults, for the same reason as type).
    kind: RegisterKind | None = None
    address: Annotated[int, Meta(ge=0, le=_LAST_ADDRESS)] | None = None
    count: Annotated[int, Meta(ge=0)] = 0
    word_order: Endianness = Endianness.BIG
    byte_order: Endianness = Endianness.BIG
    # OPC-UA: the node, and how its changes reach Takt.
    node: str | None = None
    mode: BindingMode | None = None  # default: subscribe on OPC-UA, poll elsewhere
    publishing_interval_ms: Annotated[float, Meta(ge=0, le=3_600_000)] = 0.0
    sampling_interval_ms: Annotated[float, Meta(ge=0, le=3_600_000)] = 0.0
    queue_size: Annotated[int, Meta(ge=1, le=10_000)] = 1
    deadband_type: DeadbandType = DeadbandType.NONE
    deadband: Annotated[float, Meta(ge=0)] = 0.0
    # TCP socket: the name on the wire (default: the binding name).
    key: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.]{1,64}(?!\n)$")] | None = None
    # A bool input whose pulses the PLC also counts in this integer input: a pulse shorter
    # than the poll interval shows as a count without an edge and is reported.
    pulse_counter: BindingName | None = None

    @property
    def width(self) -> int:
        """Number of consecutive Modbus addresses (bits or registers) the tag occupies."""
        if self.kind in _BIT_KINDS:
            return 1
        if self.type is ValueType.STRING:
            return max(self.count, 1)
        return 2 if self.type in _TWO_REGISTER_TYPES else 1

    def effective_mode(self, protocol: Protocol) -> BindingMode:
        if self.mode is not None:
            return self.mode
        return BindingMode.SUBSCRIBE if protocol is Protocol.OPC_UA else BindingMode.POLL

    @property
    def wire_key(self) -> str:
        return self.key or self.name


class SerialConfig(_Table):
    """The serial line of a Modbus RTU PLC."""

    device: Annotated[str, Meta(min_length=1)]
    baudrate: Annotated[int, Meta(ge=300, le=921_600)] = 19200
    parity: Parity = Parity.NONE
    stopbits: Annotated[int, Meta(ge=1, le=2)] = 1
    bytesize: Annotated[int, Meta(ge=7, le=8)] = 8


class HeartbeatConfig(_Table):
    """Watchdog both ways: Takt counts `out_signal` up every period, and the PLC's counter in
    `in_signal` must change within `stale_periods` periods or the PLC is marked DOWN."""

    in_signal: BindingName | None = None
    out_signal: BindingName | None = None
    period_ms: Annotated[int, Meta(ge=10, le=600_000)] = 1000
    stale_periods: Annotated[int, Meta(ge=2, le=100)] = 3


class HandshakeConfig(_Table):
    """A four-phase request/ack/done/clear handshake over level signals (never pulses)."""

    name: BindingName
    role: HandshakeRole
    request: BindingName
    ack: BindingName
    done: BindingName
    data: tuple[BindingName, ...] = ()  # written by the requester before it raises request
    result: tuple[BindingName, ...] = ()  # written by the responder before it raises done
    timeout_ms: Millis = 5000


class PlcConfig(_Table):
    name: Name
    protocol: Protocol = Protocol.MODBUS_TCP
    enabled: bool = True
    host: Annotated[str, Meta(min_length=1)] = "127.0.0.1"
    port: Port = 502
    unit: Annotated[int, Meta(ge=0, le=247)] = 1
    serial: SerialConfig | None = None
    endpoint: Annotated[str, Meta(pattern=r"^opc\.tcp://[^\s]+(?!\n)$")] | None = None
    poll_interval_ms: Annotated[int, Meta(ge=5, le=60_000)] = 50
    timeout_ms: Annotated[int, Meta(ge=50, le=30_000)] = 500
    heartbeat: HeartbeatConfig | None = None
    handshakes: tuple[HandshakeConfig, ...] = ()
    bindings: tuple[TagBinding, ...] = ()

    def binding(self, name: str) -> TagBinding | None:
        return next((b for b in self.bindings if b.name == name), None)


# ---- rules on one binding ----------------------------------------------------------------


@table_rule(TagBinding, "kind", "type")
def _bits_are_bool(key: str, tag: TagBinding) -> Problems:
    if tag.kind in _BIT_KINDS and tag.type is not ValueType.BOOL:
        yield (
            join_key(key, "type"),
            f"a {tag.kind} holds one bit, so type must be bool, not {tag.type}",
        )


@table_rule(TagBinding, "kind", "direction")
def _read_only_kinds_are_inputs(key: str, tag: TagBinding) -> Problems:
    if tag.kind in _READ_ONLY_KINDS and tag.direction is Direction.OUT:
        yield join_key(key, "direction"), f"{tag.kind} is read-only in Modbus; use direction = 'in'"


@table_rule(TagBinding, "type", "count", "kind")
def _count_only_for_strings(key: str, tag: TagBinding) -> Problems:
    if tag.kind is None:
        return
    if tag.type is ValueType.STRING and tag.count < 1:
        yield join_key(key, "count"), "type string needs count >= 1 (registers to read)"
    if tag.type is not ValueType.STRING and tag.count != 0:
        yield join_key(key, "count"), f"count applies only to type string, not {tag.type}"


@table_rule(TagBinding, "scale", "type")
def _scale_is_usable(key: str, tag: TagBinding) -> Problems:
    if tag.scale == 0 or not math.isfinite(tag.scale):
        yield join_key(key, "scale"), f"scale must be a finite non-zero number, not {tag.scale}"
    elif tag.scale != 1.0 and tag.type in (ValueType.BOOL, ValueType.STRING):
        yield join_key(key, "scale"), f"scale does not apply to type {tag.type}"


@table_rule(TagBinding, "kind", "type", "count", "address")
def _fits_address_space(key: str, tag: TagBinding) -> Problems:
    if tag.kind is None or tag.address is None:
        return
    last = tag.address + tag.width - 1
    if last > _LAST_ADDRESS:
        yield (
            join_key(key, "address"),
            f"the tag spans {tag.address}..{last}, past the last address {_LAST_ADDRESS}",
        )


@table_rule(TagBinding, "node")
def _node_id_syntax(key: str, tag: TagBinding) -> Problems:
    if tag.node is not None and not _NODE_ID.fullmatch(tag.node):
        yield (
            join_key(key, "node"),
            f"{tag.node!r} is not an OPC-UA NodeId "
            "(e.g. 'ns=2;s=Line1.PartPresent' or 'ns=2;i=1001')",
        )


@table_rule(TagBinding, "deadband_type", "deadband", "type")
def _deadband_applies(key: str, tag: TagBinding) -> Problems:
    if tag.deadband_type is DeadbandType.NONE:
        if tag.deadband != 0:
            yield join_key(key, "deadband"), "deadband needs deadband_type 'absolute' or 'percent'"
        return
    if tag.type in (ValueType.BOOL, ValueType.STRING):
        yield join_key(key, "deadband_type"), f"a deadband applies to numbers, not {tag.type}"
    if tag.deadband_type is DeadbandType.PERCENT and tag.deadband > 100:
        yield join_key(key, "deadband"), "a percent deadband is 0..100"


# ---- rules on the bindings of one PLC ---------------------------------------------------------


@array_rule(TagBinding, "name")
def _unique_binding_names(items: Sequence[tuple[str, TagBinding]]) -> Problems:
    return duplicate_names(items, "binding")


@array_rule(TagBinding, "name", "kind", "type", "count", "address")
def _no_overlapping_tags(items: Sequence[tuple[str, TagBinding]]) -> Problems:
    placed = [(k, t) for k, t in items if t.kind is not None and t.address is not None]
    for later, (key, tag) in enumerate(placed):
        assert tag.address is not None
        last = tag.address + tag.width - 1
        for other_key, other in placed[:later]:
            assert other.address is not None
            other_last = other.address + other.width - 1
            if other.kind is tag.kind and tag.address <= other_last and other.address <= last:
                yield (
                    join_key(key, "address"),
                    f"{tag.kind} {tag.address}..{last} overlaps {other.name!r} "
                    f"at {other_key} ({other.address}..{other_last})",
                )
                break


@array_rule(TagBinding, "name", "node")
def _unique_nodes(items: Sequence[tuple[str, TagBinding]]) -> Problems:
    first: dict[str, str] = {}
    for key, tag in items:
        if tag.node is None:
            continue
        if tag.node in first:
            yield join_key(key, "node"), f"node {tag.node} is already bound at {first[tag.node]}"
        else:
            first[tag.node] = key


# ---- rules on a PLC ------------------------------------------------------------------------


@table_rule(PlcConfig, "protocol")
def _protocol_available(key: str, plc: PlcConfig) -> Problems:
    protocol = plc.protocol
    if protocol in UNSUPPORTED_PROTOCOLS:
        supported = ", ".join(p for p in Protocol if p not in UNSUPPORTED_PROTOCOLS)
        yield (
            join_key(key, "protocol"),
            f"protocol {protocol} is not supported by Takt (supported: {supported})",
        )
    elif protocol not in IMPLEMENTED_PROTOCOLS:
        yield join_key(key, "protocol"), f"protocol {protocol} is not implemented yet"


@table_rule(PlcConfig, "protocol", "serial", "endpoint", "unit")
def _link_settings(key: str, plc: PlcConfig) -> Problems:
    p = plc.protocol
    if p is Protocol.MODBUS_RTU and plc.unit == 0:
        yield join_key(key, "unit"), "unit 0 is broadcast on a serial line and never answers"
    if p is Protocol.MODBUS_RTU and plc.serial is None:
        yield join_key(key, "serial"), "MODBUS_RTU needs a [serial] table with the device path"
    if p is not Protocol.MODBUS_RTU and plc.serial is not None:
        yield join_key(key, "serial"), f"serial applies to MODBUS_RTU only, not {p}"
    if p is Protocol.OPC_UA and plc.endpoint is None:
        yield join_key(key, "endpoint"), "OPC_UA needs endpoint = 'opc.tcp://host:port/path'"
    if p is not Protocol.OPC_UA and plc.endpoint is not None:
        yield join_key(key, "endpoint"), f"endpoint applies to OPC_UA only, not {p}"


@table_rule(PlcConfig, "protocol", "bindings")
def _bindings_fit_protocol(key: str, plc: PlcConfig) -> Problems:
    if plc.protocol not in IMPLEMENTED_PROTOCOLS:
        return  # the protocol itself is the problem; do not bury it in per-binding noise
    for i, tag in enumerate(plc.bindings):
        yield from _binding_fits(index_key(join_key(key, "bindings"), i), tag, plc.protocol)


def _binding_fits(key: str, tag: TagBinding, protocol: Protocol) -> Problems:
    if protocol in _MODBUS:
        for field in ("kind", "address"):
            if getattr(tag, field) is None:
                yield join_key(key, field), f"a {protocol} binding needs {field}"
        if tag.type is ValueType.FLOAT64:
            yield join_key(key, "type"), "float64 is not available over Modbus; use float32"
        if tag.mode is BindingMode.SUBSCRIBE:
            yield join_key(key, "mode"), "Modbus has no subscriptions; use mode = 'poll'"
    else:
        for field in ("kind", "address"):
            if getattr(tag, field) is not None:
                yield join_key(key, field), f"{field} applies to Modbus bindings, not {protocol}"
    if protocol is Protocol.OPC_UA:
        if tag.node is None:
            yield join_key(key, "node"), "an OPC_UA binding needs node = 'ns=...;s=...'"
        if tag.mode is BindingMode.POLL:
            defaults = TagBinding(name="x", type=ValueType.BOOL)
            for field in ("publishing_interval_ms", "sampling_interval_ms", "queue_size",
                          "deadband_type", "deadband"):
                if getattr(tag, field) != getattr(defaults, field):
                    yield join_key(key, field), f"{field} applies to subscribed bindings only"
    elif tag.node is not None:
        yield join_key(key, "node"), f"node applies to OPC_UA bindings, not {protocol}"
    subscription_keys = ("publishing_interval_ms", "sampling_interval_ms", "queue_size",
                         "deadband_type", "deadband")
    if protocol is not Protocol.OPC_UA:
        defaults = TagBinding(name="x", type=ValueType.BOOL)
        for field in subscription_keys:
            if getattr(tag, field) != getattr(defaults, field):
                yield join_key(key, field), f"{field} applies to OPC_UA subscriptions only"
    if protocol is Protocol.TCP_SOCKET and tag.mode is BindingMode.SUBSCRIBE:
        yield join_key(key, "mode"), "TCP_SOCKET signals are pushed and polled; leave mode out"
    if protocol is not Protocol.TCP_SOCKET and tag.key is not None:
        yield join_key(key, "key"), f"key applies to TCP_SOCKET bindings, not {protocol}"


@table_rule(PlcConfig, "protocol", "bindings")
def _unique_wire_keys(key: str, plc: PlcConfig) -> Problems:
    if plc.protocol is not Protocol.TCP_SOCKET:
        return
    first: dict[str, str] = {}
    for i, tag in enumerate(plc.bindings):
        where = index_key(join_key(key, "bindings"), i)
        if tag.wire_key in first:
            field = "key" if tag.key is not None else "name"
            yield (join_key(where, field),
                   f"wire key {tag.wire_key!r} is already used by {first[tag.wire_key]}")
        else:
            first[tag.wire_key] = where


@table_rule(PlcConfig, "bindings")
def _pulse_counters(key: str, plc: PlcConfig) -> Problems:
    for i, tag in enumerate(plc.bindings):
        if tag.pulse_counter is None:
            continue
        where = join_key(index_key(join_key(key, "bindings"), i), "pulse_counter")
        counter = plc.binding(tag.pulse_counter)
        if tag.type is not ValueType.BOOL or tag.direction is not Direction.IN:
            yield where, "pulse_counter belongs on a bool input"
        elif counter is None:
            yield where, f"no binding named {tag.pulse_counter!r} in this PLC"
        elif counter.type not in INTEGER_TYPES or counter.direction is not Direction.IN:
            yield where, f"{tag.pulse_counter!r} must be an integer input to count pulses"


@table_rule(PlcConfig, "bindings", "heartbeat")
def _heartbeat_signals(key: str, plc: PlcConfig) -> Problems:
    hb = plc.heartbeat
    if hb is None:
        return
    if hb.in_signal is None and hb.out_signal is None:
        yield join_key(key, "heartbeat"), "name in_signal, out_signal or both"
    for field, direction in (("in_signal", Direction.IN), ("out_signal", Direction.OUT)):
        name = getattr(hb, field)
        if name is None:
            continue
        where = join_key(join_key(key, "heartbeat"), field)
        tag = plc.binding(name)
        if tag is None:
            yield where, f"no binding named {name!r} in this PLC"
        elif tag.type not in INTEGER_TYPES or tag.direction is not direction:
            yield where, f"{name!r} must be an integer binding with direction '{direction}'"


@table_rule(PlcConfig, "bindings", "handshakes")
def _handshake_signals(key: str, plc: PlcConfig) -> Problems:
    # Who drives which signal follows from the role: the requester owns request and data,
    # the responder ack, done and result.
    for i, hs in enumerate(plc.handshakes):
        where = index_key(join_key(key, "handshakes"), i)
        takt_requests = hs.role is HandshakeRole.REQUESTER
        requester = Direction.OUT if takt_requests else Direction.IN
        responder = Direction.IN if takt_requests else Direction.OUT
        owners = {"request": requester, "data": requester,
                  "ack": responder, "done": responder, "result": responder}
        for field, direction in owners.items():
            names = getattr(hs, field)
            for name in names if isinstance(names, tuple) else (names,):
                tag = plc.binding(name)
                if tag is None:
                    yield join_key(where, field), f"no binding named {name!r} in this PLC"
                elif field in ("request", "ack", "done") and tag.type is not ValueType.BOOL:
                    yield join_key(where, field), f"{name!r} must be a bool flag"
                elif tag.direction is not direction:
                    yield (
                        join_key(where, field),
                        f"as {hs.role}, {field} {name!r} must have direction '{direction}'",
                    )


@array_rule(HandshakeConfig, "name")
def _unique_handshakes(items: Sequence[tuple[str, HandshakeConfig]]) -> Problems:
    return duplicate_names(items, "handshake")


@array_rule(PlcConfig, "name")
def _unique_plc_names(items: Sequence[tuple[str, PlcConfig]]) -> Problems:
    return duplicate_names(items, "plc")
