"""The OPC_UA PLC link: data-change subscriptions (or reads) of bound nodes via asyncua."""

from __future__ import annotations

from collections.abc import Sequence

from actors.plc_links import LinkCallbacks, TagInfo, Value, scaled_in, scaled_out
from controller.config import BindingMode, PlcConfig, Protocol, TagBinding
from drivers.errors import DriverError, ExceptionResponse
from drivers.opcua.client import (
    OpcuaClient,
    OpcuaTag,
    TagProblems,
    TypeMismatch,
    UnknownNodes,
    WriteRefused,
)

__all__ = ["OpcuaLink", "opcua_tag", "verify_nodes"]


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


def verify_nodes(config: PlcConfig) -> tuple[list[tuple[int, str, str]], str | None]:
    """Check a PLC's OPC-UA bindings against the live server before they are accepted.

    Returns ([(binding index, field, message)], None), or ([], reason) when the server
    cannot be reached, so the caller can accept the config unverified and say so.
    """
    index = {b.name: i for i, b in enumerate(config.bindings)}
    assert config.endpoint is not None
    client = OpcuaClient(config.endpoint, [opcua_tag(b) for b in config.bindings],
                         on_change=lambda _n, _v: None, on_lost=lambda _r: None,
                         timeout_s=config.timeout_ms / 1000, name=f"{config.name}-verify")
    try:
        client.connect()  # resolves every node, checks its type and subscribes
    except TagProblems as exc:
        field = "type" if isinstance(exc, TypeMismatch) else "node"
        found = [(index[name], field, text) for name, text in exc.problems.items()]
        if isinstance(exc, UnknownNodes):
            found += [(index[name], "type", text) for name, text in exc.mismatched.items()]
        return sorted(found), None
    except DriverError as exc:
        return [], str(exc)
    finally:
        client.close()
    return [], None
