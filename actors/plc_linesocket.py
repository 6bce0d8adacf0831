"""The TCP_SOCKET PLC link: `name=value` lines pushed by the PLC (docs/tcp-socket-protocol.md)."""

from __future__ import annotations

from collections.abc import Sequence

from actors.plc_links import LinkCallbacks, TagInfo, Value, scaled_in, scaled_out
from controller.config import Direction, PlcConfig, TagBinding
from drivers.errors import ExceptionResponse
from drivers.linesocket.client import LineSocketClient, WriteRefused
from drivers.linesocket.codec import InvalidValue, format_value, parse_value

__all__ = ["LineSocketLink"]


class LineSocketLink:
    """Values arrive as pushed updates; each poll asks for a snapshot, which both proves the
    PLC alive (a silent one is a lost link) and re-sends every value."""

    polled = True

    def __init__(self, config: PlcConfig, callbacks: LinkCallbacks) -> None:
        self.config = config
        self.callbacks = callbacks
        self.by_key: dict[str, TagBinding] = {b.wire_key: b for b in config.bindings}
        self.by_name: dict[str, TagBinding] = {b.name: b for b in config.bindings}
        self.client = LineSocketClient(
            config.host, config.port, on_update=self._update, on_lost=callbacks.lost,
            on_malformed=callbacks.malformed, timeout_s=config.timeout_ms / 1000,
            name=config.name)

    def _decode(self, key: str, text: str) -> tuple[str, Value] | None:
        binding = self.by_key.get(key)
        if binding is None:
            return None  # a signal Takt does not bind: the PLC may send more than we use
        try:
            return binding.name, scaled_in(binding, parse_value(binding.type.value, text))
        except InvalidValue as exc:
            self.callbacks.malformed(f"{key}={text[:64]}: {exc}")
            return None

    def _update(self, key: str, text: str) -> None:
        decoded = self._decode(key, text)
        if decoded is not None:
            self.callbacks.push(*decoded)

    def connect(self) -> None:
        self.client.connect()
        self.client.snapshot()  # the current values, pushed to the actor

    def close(self) -> None:
        self.client.close()

    def poll(self) -> list[tuple[str, Value]]:
        self.client.snapshot()
        return []  # the snapshot's values reach the actor as pushes, in stream order

    def read(self, names: Sequence[str]) -> list[tuple[str, Value]]:
        wanted = set(names)
        values = []
        for key, text in self.client.snapshot().items():
            decoded = self._decode(key, text)
            if decoded is not None and decoded[0] in wanted:
                values.append(decoded)
        return values

    def write(self, name: str, value: Value) -> None:
        binding = self.by_name[name]
        try:
            text = format_value(binding.type.value, scaled_out(binding, value))
        except InvalidValue as exc:
            raise ValueError(f"{self.config.name}.{name}: {exc}") from None
        try:
            self.client.write(binding.wire_key, text)
        except WriteRefused as exc:
            raise ExceptionResponse(str(exc)) from exc

    def browse(self) -> list[TagInfo]:
        return [TagInfo(name=b.name, address=b.wire_key, path=b.name, data_type=b.type.value,
                        writable=b.direction is Direction.OUT)
                for b in self.config.bindings]
