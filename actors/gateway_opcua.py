"""Takt's own OPC-UA server: a PLC or SCADA reads station state and writes a few inputs.

The address space is `Objects/Stations/<station>/` (state variables, read-only, and the
Boolean inputs PartPresent, Request, Reset) plus `Objects/SystemStatus`, in namespace
`urn:takt:station` with string NodeIds such as `ns=2;s=Stations.line1.LastDecision`.

asyncua needs about 1.5 s of CPU to build its standard address space (more when its
generated modules have no bytecode cache), so the server starts on its loop thread while
the actor already runs: the actor is UP once the server listens. Value updates are
local writes queued to that loop in order, never a client round trip.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Collection, Iterable
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import msgspec

from actors.base import handles
from actors.gateway_station import StationGateway, bind_problem
from actors.health import HealthState
from actors.runtime import ActorUnavailable, Runtime, tell
from controller.station_state import StationState
from drivers.opcua.serving import stop_server

if TYPE_CHECKING:
    from asyncua import Server

__all__ = [
    "INPUT_SOURCE",
    "NAMESPACE",
    "GetOpcuaStatus",
    "OpcuaBindError",
    "OpcuaGateway",
    "OpcuaStatus",
    "input_node_ids",
    "state_node_ids",
]

NAMESPACE = "urn:takt:station"
#: Client writes enter Takt as `input.gateway.opcua`.
INPUT_SOURCE = "gateway.opcua"
_IO_TIMEOUT_S = 10.0
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NO_TIME = datetime(1601, 1, 1, tzinfo=UTC)  # OPC-UA's "no date" (DateTime 0)
_I32_MAX = 2**31 - 1


def _timestamp(us: int | None) -> datetime:
    return _NO_TIME if us is None else _EPOCH + timedelta(microseconds=us)


# Browse name, StationState field, OPC-UA built-in type, value as published.
_STATE_NODES: tuple[tuple[str, str, str, Callable[[Any], Any]], ...] = (
    ("LastDecision", "last_decision", "String", str),
    ("LastConfidence", "last_confidence", "Double", float),
    ("ObjectsFound", "objects_found", "Int32", lambda v: min(v, _I32_MAX)),
    ("CycleTimeMs", "cycle_time_ms", "Double", float),
    ("PassCount", "pass_count", "UInt32", lambda v: v % 2**32),
    ("FailCount", "fail_count", "UInt32", lambda v: v % 2**32),
    ("UncertainCount", "uncertain_count", "UInt32", lambda v: v % 2**32),
    ("PassRate1h", "pass_rate_1h", "Double", float),
    ("LastInspectionTime", "last_inspection_us", "DateTime", _timestamp),
    ("SystemStatus", "system_status", "String", str),
    ("CurrentAssembly", "current_assembly", "String", lambda v: v or ""),
    ("CurrentStep", "current_step", "Int32", lambda v: -1 if v is None else min(v, _I32_MAX)),
    ("StepState", "step_state", "String", str),
    ("ReleaseAllowed", "release_allowed", "Boolean", bool),
    ("Heartbeat", "heartbeat", "UInt16", int),
)
_INPUT_NODES: tuple[tuple[str, str], ...] = (
    ("PartPresent", "part_present"),
    ("Request", "request"),
    ("Reset", "reset"),
)
_SYSTEM_STATUS = "SystemStatus"  # the top-level node's string id


def state_node_ids(station_id: str) -> dict[str, str]:
    """Browse name -> string NodeId identifier of every state variable of a station."""
    return {name: f"Stations.{station_id}.{name}" for name, *_ in _STATE_NODES}


def input_node_ids(station_id: str) -> dict[str, str]:
    """Browse name -> string NodeId identifier of every writable input of a station."""
    return {name: f"Stations.{station_id}.{name}" for name, _ in _INPUT_NODES}


class GetOpcuaStatus(msgspec.Struct, frozen=True, tag=True):
    """Ask the gateway for its `OpcuaStatus`."""


class OpcuaStatus(msgspec.Struct, frozen=True, kw_only=True):
    """The shape of `GET /api/v1/opcua/status`."""

    enabled: bool
    running: bool
    endpoint: str
    station_count: int
    nodes: list[str]


class OpcuaBindError(OSError):
    """The server cannot listen on its address (a port in use, an address not local)."""


class _ServerUp(msgspec.Struct, frozen=True):
    server: Any
    namespace: int
    port: int
    seconds: float


class _ServerFailed(msgspec.Struct, frozen=True):
    error: BaseException


class OpcuaGateway(StationGateway):
    """Serves one station's state over OPC-UA; see docs/plc-gateway.md."""

    protocol = "OPC-UA"
    io_timeout_s = _IO_TIMEOUT_S

    def __init__(
        self, runtime: Runtime, name: str, *, station_id: str, host: str = "127.0.0.1",
        port: int = 4840, path: str = "/takt", heartbeat_s: float = 1.0, **kw: Any,
    ) -> None:
        super().__init__(runtime, name, station_id=station_id, host=host, port=port,
                         heartbeat_s=heartbeat_s, loop_name=f"opcua-gateway:{name}", **kw)
        if not station_id or any(c in station_id for c in " ;./"):
            raise ValueError(f"station id {station_id!r} cannot name OPC-UA nodes")
        self.path = path if path.startswith("/") else f"/{path}"
        self._starting: Future[_ServerUp] | None = None
        self._server: Server | None = None  # set in the actor thread once it listens
        self._targets: dict[str, list[tuple[Any, Any, Callable[[Any], Any]]]] = {}
        # Loop-thread state: the server once it listens, the queue of value writes, the
        # input nodes and their last values.
        self._listening: Server | None = None
        self._pending: collections.deque[tuple[Any, Any]] = collections.deque()
        self._writer: asyncio.Task[None] | None = None
        self._input_ids: dict[Any, str] = {}
        self._inputs = {signal: False for _, signal in _INPUT_NODES}

    # --- lifecycle -------------------------------------------------------------------

    def started(self) -> None:
        _quiet_asyncua_logging()
        if self.port:
            _check_bindable(self.host, self.port)  # fail now, not seconds later
        super().started()

    def _start_server(self) -> None:
        self._loop.start()
        self._starting = asyncio.run_coroutine_threadsafe(self._serve(), self._loop.loop)
        self._starting.add_done_callback(self._on_started)

    def _on_started(self, future: Future[_ServerUp]) -> None:  # runs on the loop thread
        if future.cancelled():
            return
        error = future.exception()
        message: Any = _ServerFailed(error=error) if error is not None else future.result()
        try:
            tell(self.runtime, self.actor_ref, message)
        except ActorUnavailable:
            pass  # stopped meanwhile; stopping() closes the server

    def _stop_server(self) -> None:
        if self._starting is not None:
            self._starting.cancel()
        super()._stop_server()
        self._server = None

    # --- messages --------------------------------------------------------------------

    @handles(_ServerUp)
    def _on_up(self, msg: _ServerUp) -> None:
        self._server, self.port = msg.server, msg.port
        self._targets = _targets(self.station_id, msg.namespace)
        self.log.info("OPC-UA gateway for station %s at %s (server start took %.2f s)",
                      self.station_id, self._endpoint(), msg.seconds)
        self._publish(StationState.__struct_fields__)  # whatever changed while starting
        self.set_health(HealthState.UP)

    @handles(_ServerFailed)
    def _on_failed(self, msg: _ServerFailed) -> None:
        raise msg.error

    @handles(GetOpcuaStatus)
    def _status(self, _msg: GetOpcuaStatus) -> OpcuaStatus:
        return OpcuaStatus(
            enabled=True, running=self._server is not None, endpoint=self._endpoint(),
            station_count=1, nodes=[f"station/{self.station_id}", _SYSTEM_STATUS],
        )

    def _endpoint(self) -> str:
        return f"opc.tcp://{self.host}:{self.port}{self.path}"

    # --- state -----------------------------------------------------------------------

    def _push(self, fields: Collection[str]) -> None:
        if self._server is not None:
            self._publish(fields)

    def _publish(self, fields: Iterable[str]) -> None:
        from asyncua import ua

        now = datetime.now(UTC)
        updates: list[tuple[Any, Any]] = []
        for field in fields:
            for nodeid, vtype, convert in self._targets.get(field, ()):
                variant = ua.Variant(convert(getattr(self.state, field)), vtype)
                updates.append((nodeid, ua.DataValue(variant, SourceTimestamp=now,
                                                     ServerTimestamp=now)))
        if updates:
            self._loop.call_soon(self._enqueue, updates)

    # --- the server, on its loop thread ----------------------------------------------

    def _enqueue(self, updates: list[tuple[Any, Any]]) -> None:
        self._pending.extend(updates)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        # One writer keeps updates in order: a subscriber sees every value, in sequence.
        while self._pending:
            nodeid, value = self._pending.popleft()
            server = self._listening
            if server is not None:
                await server.write_attribute_value(nodeid, value)

    async def _serve(self) -> _ServerUp:
        began = time.perf_counter()
        from asyncua import Server, ua
        from asyncua.common.callback import CallbackType

        server = Server()
        await server.init()
        server.set_endpoint(f"opc.tcp://{self.host}:{self.port}{self.path}")
        server.set_server_name(f"Takt station {self.station_id}")
        # Anonymous clients get the User role: they may write only nodes marked writable.
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        ns = await server.register_namespace(NAMESPACE)
        await self._build(server, ns)
        server.subscribe_server_callback(CallbackType.PostWrite, self._on_client_write)
        try:
            await server.start()
        except OSError as exc:
            raise OpcuaBindError(
                f"OPC-UA gateway cannot listen on {self.host}:{self.port}: "
                f"{exc.strerror or exc}"
            ) from None
        except asyncio.CancelledError:
            await server.stop()  # stopped while binding: leave no listener behind
            raise
        if server.bserver is None:
            raise RuntimeError("asyncua started without a listener")
        self._listening = server
        return _ServerUp(server=server, namespace=ns, port=server.bserver.port,
                         seconds=time.perf_counter() - began)

    async def _build(self, server: Server, ns: int) -> None:
        from asyncua import ua

        def qn(name: str) -> ua.QualifiedName:
            return ua.QualifiedName(name, ns)

        objects = server.nodes.objects
        stations = await objects.add_folder(ua.NodeId("Stations", ns), qn("Stations"))
        station = await stations.add_object(
            ua.NodeId(f"Stations.{self.station_id}", ns), qn(self.station_id)
        )
        state = self.state
        for name, field, vtype, convert in _STATE_NODES:
            await station.add_variable(
                ua.NodeId(f"Stations.{self.station_id}.{name}", ns), qn(name),
                ua.Variant(convert(getattr(state, field)), ua.VariantType[vtype]),
            )
        for name, signal in _INPUT_NODES:
            nodeid = ua.NodeId(f"Stations.{self.station_id}.{name}", ns)
            node = await station.add_variable(nodeid, qn(name),
                                              ua.Variant(False, ua.VariantType.Boolean))
            await node.set_writable()
            self._input_ids[nodeid] = signal
        await objects.add_variable(ua.NodeId(_SYSTEM_STATUS, ns), qn(_SYSTEM_STATUS),
                                   ua.Variant(state.system_status, ua.VariantType.String))

    async def _on_client_write(self, event: Any, _dispatcher: Any) -> None:
        """After every client write request: each accepted input change enters Takt."""
        if not event.is_external or event.response_params is None:
            return
        for write, status in zip(event.request_params.NodesToWrite, event.response_params,
                                 strict=False):
            signal = self._input_ids.get(write.NodeId)
            if signal is None or not status.is_good():
                continue
            value = write.Value.Value.Value if write.Value and write.Value.Value else None
            if not isinstance(value, bool) or self._inputs[signal] == value:
                continue  # a rewrite of the same value is not news
            self._inputs[signal] = value
            self.runtime.ingest.input(INPUT_SOURCE, {"signal": signal, "value": value})

    async def _shutdown(self) -> None:
        server, self._listening = self._listening, None
        if server is None:
            return
        await stop_server(server)


def _targets(station_id: str, ns: int) -> dict[str, list[tuple[Any, Any, Callable[[Any], Any]]]]:
    """StationState field -> the nodes that show it, with their variant type and converter."""
    from asyncua import ua

    targets: dict[str, list[tuple[Any, Any, Callable[[Any], Any]]]] = {}
    for name, field, vtype, convert in _STATE_NODES:
        targets.setdefault(field, []).append(
            (ua.NodeId(f"Stations.{station_id}.{name}", ns), ua.VariantType[vtype], convert))
    targets["system_status"].append(
        (ua.NodeId(_SYSTEM_STATUS, ns), ua.VariantType.String, str))
    return targets


def _check_bindable(host: str, port: int) -> None:
    problem = bind_problem(host, port)
    if problem is not None:
        raise OpcuaBindError(f"OPC-UA gateway cannot listen on {host}:{port}: {problem}")


def _quiet_asyncua_logging() -> None:
    """asyncua warns at every start about the security policies Takt leaves out on purpose."""
    logger = logging.getLogger("asyncua")
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.ERROR)
