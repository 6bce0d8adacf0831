"""PLC actor over Modbus TCP: polls its bindings, publishes changes, writes outputs on ask.

Every decoded change passes the input boundary (`input.plc.<name>`) before the actor
applies it, and replay feeds the same `SignalInput` messages back in. A lost link
fails the actor; its supervisor reconnects with backoff, and the first poll after a
reconnect republishes every signal so subscribers see the current state.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from actors.base import TaktActor, handles
from actors.health import HealthState
from actors.runtime import Runtime
from controller.config import Direction, PlcConfig, TagBinding
from drivers.errors import DeviceUnavailable, FrameError
from drivers.modbus.codec import (
    EncodeError,
    ReadBlock,
    RegisterSpec,
    encode,
    encode_bit,
    extract,
    make_spec,
    plan_reads,
)
from drivers.modbus.transport import ModbusTcpTransport, ModbusTransport

__all__ = [
    "NotWritable",
    "PlcActor",
    "PlcInfo",
    "ReadSignals",
    "SignalInput",
    "SignalValue",
    "UnknownSignal",
    "WriteSignal",
]

Value = bool | int | float | str
TransportFactory = Callable[[PlcConfig], ModbusTransport]


class SignalInput(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """A decoded value as it came from the PLC (the recorded input)."""

    signal: str
    value: Value


class SignalValue(msgspec.Struct, frozen=True, kw_only=True):
    value: Value | None
    ts_us: int | None
    direction: str


class ReadSignals(msgspec.Struct, frozen=True, tag=True):
    pass


class WriteSignal(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    signal: str
    value: Value


class PlcInfo(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    state: str
    last_error: str | None
    protocol: str
    host: str
    port: int
    unit: int
    poll_interval_ms: int
    signals: dict[str, SignalValue]
    malformed_frames: int


class UnknownSignal(KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class NotWritable(ValueError):
    pass


class _Poll(msgspec.Struct, frozen=True):
    pass


def modbus_tcp(config: PlcConfig) -> ModbusTransport:
    return ModbusTcpTransport(config.host, config.port, config.unit, config.timeout_ms / 1000)


class PlcActor(TaktActor):
    fatal = (DeviceUnavailable,)

    def __init__(self, runtime: Runtime, name: str, config: PlcConfig, *,
                 transport_factory: TransportFactory = modbus_tcp, poll: bool = True,
                 **kw: Any) -> None:
        super().__init__(runtime, name, **kw)
        self.config = config
        self.transport = transport_factory(config)
        self.poll_enabled = poll  # replay drives the actor with SignalInput instead
        self.bindings: dict[str, tuple[TagBinding, RegisterSpec]] = {
            b.name: (b, make_spec(b.kind.value, b.address, b.type.value, count=b.count,
                                  word_order=b.word_order.value, byte_order=b.byte_order.value,
                                  scale=b.scale))
            for b in config.bindings
        }
        self.blocks: list[tuple[ReadBlock, list[str]]] = [
            (block, [n for n, (_, s) in self.bindings.items()
                     if s.kind is block.kind and block.address <= s.address < block.end])
            for block in plan_reads(spec for _, spec in self.bindings.values())
        ]
        self.values: dict[str, tuple[Value, int]] = {}
        self.malformed = 0
        self.period_s = config.poll_interval_ms / 1000
        self.next_poll_s = 0.0
        self.source = f"plc.{config.name}"
        self.topic = f"device.plc.{config.name}.signal"

    # --- lifecycle -------------------------------------------------------------------

    def started(self) -> None:
        if not self.poll_enabled:
            self.set_health(HealthState.UP)
            return
        self.transport.connect()  # DeviceUnavailable fails the start: backoff, then retry
        self._poll_once()  # the first read after (re)connecting republishes every signal
        self.set_health(HealthState.UP)
        self.next_poll_s = self.clock.monotonic() + self.period_s
        self.tell_self_later(self.period_s, _Poll())

    def stopping(self) -> None:
        self.transport.close()

    def failed(self, error: BaseException) -> None:
        self.transport.close()

    # --- messages --------------------------------------------------------------------

    @handles(_Poll)
    def _on_poll(self, msg: _Poll) -> None:
        self._poll_once()
        # Fixed rate, not fixed delay: the read time must not stretch the period. A poll
        # that overran skips the slots it missed instead of bunching up behind them.
        now = self.clock.monotonic()
        self.next_poll_s += self.period_s
        if self.next_poll_s < now:
            self.next_poll_s = now + self.period_s
        self.tell_self_later(self.next_poll_s - now, msg)

    @handles(SignalInput)
    def _on_input(self, msg: SignalInput) -> None:
        self._apply(msg)

    @handles(ReadSignals)
    def _read(self, _: ReadSignals) -> PlcInfo:
        c = self.config
        signals = {}
        for name, (binding, _spec) in self.bindings.items():
            value, ts = self.values.get(name, (None, None))
            signals[name] = SignalValue(value=value, ts_us=ts, direction=binding.direction.value)
        health = self.runtime.health.component(self.name)
        return PlcInfo(name=c.name, state=health.state.value, last_error=health.last_error,
                       protocol=c.protocol.value, host=c.host, port=c.port,
                       unit=c.unit, poll_interval_ms=c.poll_interval_ms, signals=signals,
                       malformed_frames=self.malformed)

    @handles(WriteSignal)
    def _write(self, msg: WriteSignal) -> Value:
        entry = self.bindings.get(msg.signal)
        if entry is None:
            raise UnknownSignal(f"{self.config.name} has no signal {msg.signal!r}")
        binding, spec = entry
        if binding.direction is not Direction.OUT:
            raise NotWritable(f"{self.config.name}.{msg.signal} is an input; it cannot be written")
        try:
            if spec.kind.is_bit:
                self.transport.write_coils(spec.address, [encode_bit(spec, msg.value)])
            else:
                self.transport.write_registers(spec.address, encode(spec, msg.value))
        except EncodeError as exc:
            raise ValueError(f"{self.config.name}.{msg.signal}: {exc}") from None
        return msg.value

    # --- helpers ---------------------------------------------------------------------

    def _poll_once(self) -> None:
        for block, names in self.blocks:
            try:
                raw = self.transport.read(block.kind, block.address, block.count)
                decoded = [(n, extract(self.bindings[n][1], block, raw)) for n in names]
            except FrameError as exc:
                # A malformed answer is counted and logged; the link itself is fine.
                self.malformed += 1
                self.errors += 1
                self.log.warning("malformed frame from %s: %s", self.config.name, exc)
                continue
            for name, value in decoded:
                last = self.values.get(name)
                if last is None or last[0] != value:
                    sample = SignalInput(signal=name, value=value)
                    self.runtime.ingest.input(self.source, sample)
                    self._apply(sample)

    def _apply(self, sample: SignalInput) -> None:
        entry = self.bindings.get(sample.signal)
        if entry is None:
            self.log.warning("input for unknown signal %r ignored", sample.signal)
            return
        last = self.values.get(sample.signal)
        now = self.clock.now_us()
        self.values[sample.signal] = (sample.value, now)
        self.publish(
            self.topic,
            {"signal": sample.signal, "value": sample.value,
             "previous": None if last is None else last[0]},
            durable=entry[0].durable,
        )
