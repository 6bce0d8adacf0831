"""The OPC_UA PLC link: data-change subscriptions (or reads) of bound nodes via asyncua."""

from __future__ import annotations

from collections.abc import Sequence

from actors.plc_links import LinkCallbacks, TagInfo, Value, scaled_in, scaled_out
from controller.config import BindingMode, PlcConfig, Protocol, TagBinding
from drivers.errors import ExceptionResponse
from drivers.opcua.client import OpcuaClient, OpcuaTag, WriteRefused

__all__ = ["OpcuaLink", "opcua_tag"]


def opcua_tag(binding: TagBinding) -> OpcuaTag:
    assert binding.node is not None  # the config rules require it
    return OpcuaTag(
        name=binding.name, node=binding.node, type=binding.type.value,
        subscribe=binding.effective_mode(Protocol.OPC_UA) is BindingMode.SUBSCRIBE,
        publishing_interval_ms=binding.publishing_interval_ms,
        sampling_interval_ms=binding.sampling_interval_ms, queue_size=binding.queue_size,
        deadband_type=binding.deadband_type.value, deadband=binding.deadband,
    )


class OpcuaLink:
    """Subscribed bindings are pushed by the server; poll-mode ones are read every poll."""

    def __init__(self, config: PlcConfig, callbacks: LinkCallbacks) -> None:
        assert config.endpoint is not None
        self.config = config
        self.bindings = {b.name: b for b in config.bindings}
        self.polled = any(b.effective_mode(Protocol.OPC_UA) is BindingMode.POLL
                          for b in config.bindings)

        def changed(name: str, value: Value) -> None:
            callbacks.push(name, scaled_in(self.bindings[name], value))

        self.client = OpcuaClient(
            config.endpoint, [opcua_tag(b) for b in config.bindings],
            on_change=changed, on_lost=callbacks.lost, on_malformed=callbacks.malformed,
            timeout_s=config.timeout_ms / 1000, name=config.name)

    def connect(self) -> None:
        self.client.connect()

    def close(self) -> None:
        self.client.close()

    def poll(self) -> list[tuple[str, Value]]:
        return self._scaled(self.client.poll())

    def read(self, names: Sequence[str]) -> list[tuple[str, Value]]:
        return self._scaled(self.client.read(names))

    def _scaled(self, values: list[tuple[str, Value]]) -> list[tuple[str, Value]]:
        return [(name, scaled_in(self.bindings[name], value)) for name, value in values]

    def write(self, name: str, value: Value) -> None:
        try:
            self.client.write(name, scaled_out(self.bindings[name], value))
        except WriteRefused as exc:
            raise ExceptionResponse(str(exc)) from exc

    def browse(self) -> list[TagInfo]:
        bound = {b.node: b.name for b in self.config.bindings}
        return [TagInfo(name=bound.get(t.node), address=t.node, path=t.path,
                        data_type=t.data_type, writable=t.writable, value=t.value)
                for t in self.client.browse()]
