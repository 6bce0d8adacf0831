"""PLC links: one object per protocol that turns a PLC's bindings into driver calls.

The PLC actor talks to every PLC the same way (connect, poll, read, write, browse); a
link owns the driver and the binding-to-wire mapping of its protocol. Links that get
changes pushed (OPC-UA subscriptions, TCP socket updates) hand them to the `push`
callback from their own thread; the actor turns that into a message to itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import msgspec

from controller.config import BindingMode, Direction, PlcConfig, TagBinding, ValueType
from drivers.errors import ExceptionResponse, FrameError
from drivers.modbus.codec import (
    EncodeError,
    ReadBlock,
    RegisterSpec,
    decode,
    encode,
    encode_bit,
    make_spec,
    plan_reads,
)
from drivers.modbus.transport import ModbusTransport

__all__ = [
    "LinkCallbacks",
    "PlcLink",
    "TagInfo",
    "make_link",
]

Value = bool | int | float | str


class TagInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A tag as the PLC offers it (browsed) or as Takt binds it (configured)."""

    name: str | None  # the binding name when Takt binds it
    address: str  # NodeId, "holding_register 10", or the TCP key
    path: str
    data_type: str
    writable: bool
    value: Value | None = None


@dataclass(frozen=True)
class LinkCallbacks:
    push: Callable[[str, Value], None]  # a changed value (push links), any thread
    malformed: Callable[[str], None]  # an undecodable frame or value, with the reason
    refused: Callable[[str], None]  # an exception response to a read (wrong address?)
    lost: Callable[[str], None]  # the link died in the background (push links)


class PlcLink(Protocol):
    @property
    def polled(self) -> bool:
        """True when the actor must call poll() every poll interval."""
        ...

    def connect(self) -> None: ...

    def close(self) -> None: ...

    def poll(self) -> list[tuple[str, Value]]:
        """Current values of the polled signals; unreadable parts are reported, not raised."""
        ...

    def read(self, names: Sequence[str]) -> list[tuple[str, Value]]: ...

    def write(self, name: str, value: Value) -> None:
        """Write an output; ValueError for a value the binding cannot hold."""
        ...

    def browse(self) -> list[TagInfo]: ...


def make_link(config: PlcConfig, callbacks: LinkCallbacks,
              transport: ModbusTransport | None = None) -> PlcLink:
    """The link for the PLC's protocol; drivers are imported only when a PLC uses them."""
    protocol = config.protocol.value
    if protocol == "MODBUS_TCP":
        from drivers.modbus.transport import ModbusTcpTransport

        return ModbusLink(config, callbacks, transport or ModbusTcpTransport(
            config.host, config.port, config.unit, config.timeout_ms / 1000))
    if protocol == "MODBUS_RTU":
        from drivers.modbus.transport import ModbusRtuTransport

        serial = config.serial
        assert serial is not None  # the config rules require it
        return ModbusLink(config, callbacks, transport or ModbusRtuTransport(
            serial.device, baudrate=serial.baudrate, parity=serial.parity.value,
            stopbits=serial.stopbits, bytesize=serial.bytesize, unit=config.unit,
            timeout_s=config.timeout_ms / 1000))
    if protocol == "OPC_UA":
        from actors.plc_opcua import OpcuaLink

        return OpcuaLink(config, callbacks)
    if protocol == "TCP_SOCKET":
        from actors.plc_linesocket import LineSocketLink

        return LineSocketLink(config, callbacks)
    raise ValueError(f"no driver for protocol {protocol}")


def scaled_in(binding: TagBinding, value: Value) -> Value:
    """A raw numeric value as the binding presents it (links without a codec of their own)."""
    if binding.scale == 1.0 or isinstance(value, bool | str):
        return value
    return value * binding.scale


def scaled_out(binding: TagBinding, value: Value) -> Value:
    if binding.scale == 1.0 or isinstance(value, bool | str):
        return value
    raw = value / binding.scale
    integer = binding.type not in (ValueType.FLOAT32, ValueType.FLOAT64)
    return round(raw) if integer else raw


class ModbusLink:
    """Modbus TCP or RTU: reads the bindings in as few requests as the address map allows."""

    polled = True

    def __init__(self, config: PlcConfig, callbacks: LinkCallbacks,
                 transport: ModbusTransport) -> None:
        self.config = config
        self.callbacks = callbacks
        self.transport = transport
        self.bindings: dict[str, tuple[TagBinding, RegisterSpec]] = {
            b.name: (b, _spec(b)) for b in config.bindings
        }
        polled = [n for n, (b, _) in self.bindings.items()
                  if b.effective_mode(config.protocol) is BindingMode.POLL]
        self.blocks = self._plan(polled)

    def _plan(self, names: Sequence[str]) -> list[tuple[ReadBlock, list[str]]]:
        specs = [self.bindings[n][1] for n in names]
        return [
            (block, [n for n in names if (s := self.bindings[n][1]).kind is block.kind
                     and block.address <= s.address < block.end])
            for block in plan_reads(specs)
        ]

    def connect(self) -> None:
        self.transport.connect()

    def close(self) -> None:
        self.transport.close()

    def poll(self) -> list[tuple[str, Value]]:
        return self._read_blocks(self.blocks)

    def read(self, names: Sequence[str]) -> list[tuple[str, Value]]:
        return self._read_blocks(self._plan(list(names)))

    def _read_blocks(self, blocks: list[tuple[ReadBlock, list[str]]]) -> list[tuple[str, Value]]:
        values: list[tuple[str, Value]] = []
        for block, names in blocks:
            try:
                raw = self.transport.read(block.kind, block.address, block.count)
                if len(raw) != block.count:
                    raise FrameError(f"{block.kind} {block.address}: got {len(raw)} values, "
                                     f"want {block.count}")
                # Checked once per block, so each tag is a slice and a decode (this loop is
                # most of the polling CPU).
                for name in names:
                    spec = self.bindings[name][1]
                    offset = spec.address - block.address
                    values.append((name, decode(spec, raw[offset:offset + spec.count])))
            except ExceptionResponse as exc:
                self.callbacks.refused(str(exc))
            except FrameError as exc:
                # A malformed answer is counted and logged; the link itself is fine.
                self.callbacks.malformed(str(exc))
        return values

    def write(self, name: str, value: Value) -> None:
        _, spec = self.bindings[name]
        try:
            if spec.kind.is_bit:
                self.transport.write_coils(spec.address, [encode_bit(spec, value)])
            else:
                self.transport.write_registers(spec.address, encode(spec, value))
        except EncodeError as exc:
            raise ValueError(f"{self.config.name}.{name}: {exc}") from None

    def browse(self) -> list[TagInfo]:
        # Modbus has no browsing: the configured bindings are the tag list.
        return [
            TagInfo(name=b.name, address=f"{b.kind} {b.address}", path=b.name,
                    data_type=b.type.value, writable=b.direction is Direction.OUT)
            for b, _ in self.bindings.values()
        ]


def _spec(b: TagBinding) -> RegisterSpec:
    assert b.kind is not None and b.address is not None  # the config rules require them
    return make_spec(b.kind.value, b.address, b.type.value, count=b.count,
                     word_order=b.word_order.value, byte_order=b.byte_order.value, scale=b.scale)

