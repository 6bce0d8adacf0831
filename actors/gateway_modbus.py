"""Takt's own Modbus TCP server: a line PLC reads station state and writes a few inputs.

The actor keeps the station state (from inspection, coaching and health events) and
stores every change in the server's tables, on the server's own loop thread. Client
writes to the input coils enter Takt through the input boundary, one input per changed
coil, in the order written; the register map is `drivers.modbus.gateway_map`.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any, cast

import msgspec
from pymodbus.constants import ExcCodes
from pymodbus.pdu import ExceptionResponse, ModbusPDU
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType as SimDataType
from pymodbus.simulator import SimData, SimDevice

from actors.base import TaktActor, handles
from actors.bus import Event
from actors.health import HealthState, overall_status
from actors.runtime import Runtime
from controller.clock import TimerHandle
from controller.station_state import (
    InvalidStationInput,
    PassRateWindow,
    StationState,
    apply_coaching,
    apply_inspection,
    apply_system_status,
    changed_fields,
    parse_coaching,
    parse_inspection,
    refresh,
    tick_heartbeat,
)
from drivers.loop_thread import LoopThread
from drivers.modbus.codec import RegisterKind
from drivers.modbus.gateway_map import (
    COIL_POINTS,
    INPUT_SIGNALS,
    RegisterWrite,
    encode_bits,
    encode_registers,
    writes_for,
)
from drivers.modbus.transport import quiet_pymodbus_logging

__all__ = ["INPUT_SOURCE", "GatewayBindError", "GatewayStatus", "GetStatus", "ModbusGateway"]

#: Client writes enter Takt as `input.gateway.modbus`.
INPUT_SOURCE = "gateway.modbus"
_IO_TIMEOUT_S = 5.0
# Function codes the datastore maps to each table; Takt's own writes to the input tables
# use the read codes, which no client can write with.
_STORE_CODE = {
    RegisterKind.INPUT_REGISTER: 4,
    RegisterKind.HOLDING_REGISTER: 16,
    RegisterKind.DISCRETE_INPUT: 2,
}
_COIL_WRITES = (5, 15)
_TAKT_WRITES = (2, 4)
_CLIENT_WRITES = frozenset({5, 6, 15, 16, 22, 23})


class GetStatus(msgspec.Struct, frozen=True, tag=True):
    """Ask the gateway for its `GatewayStatus`."""


class GatewayStatus(msgspec.Struct, frozen=True, kw_only=True):
    enabled: bool
    running: bool
    endpoint: str
    host: str
    port: int  # the bound port (not 0)
    unit: int
    clients: int  # connected now
    writes_received: int  # accepted client writes to the input coils
    writes_refused: int  # client writes to read-only or unmapped addresses
    inputs_published: int  # coil changes that entered Takt
    bad_events: int  # inspection/coaching events with data of the wrong shape
    heartbeat: int


class GatewayBindError(OSError):
    """The server cannot listen on its address (a port in use, an address not local)."""


class _Beat(msgspec.Struct, frozen=True):
    pass


class ModbusGateway(TaktActor):
    """Serves one station's state over Modbus TCP; see docs/plc-gateway.md."""

    def __init__(
        self, runtime: Runtime, name: str, *, station_id: str, host: str = "127.0.0.1",
        port: int = 5020, unit: int = 1, heartbeat_s: float = 1.0, **kw: Any,
    ) -> None:
        super().__init__(runtime, name, **kw)
        if not 0 <= unit <= 255:
            raise ValueError("unit must be 0..255")
        if heartbeat_s <= 0:
            raise ValueError("heartbeat_s must be > 0")
        self.station_id = station_id
        self.host = host
        self.port = port
        self.unit = unit
        self.heartbeat_s = heartbeat_s
        self.state = StationState()
        self.window = PassRateWindow()
        self.bad_events = 0
        self._inspection_topic = f"inspection.{station_id}.result"
        self._coaching_topic = f"coaching.{station_id}.state"
        self._loop = LoopThread(f"modbus-gateway:{name}")
        self._server: ModbusTcpServer | None = None
        self._subscription: Any = None
        self._beat: TimerHandle | None = None
        # Touched on the loop thread only (the actor reads the counters for status).
        self._coils = [False] * len(COIL_POINTS)
        self._own_write: list[int] | list[bool] | None = None
        self._clients = 0
        self._writes_received = 0
        self._writes_refused = 0
        self._inputs_published = 0

    # --- lifecycle -------------------------------------------------------------------

    def started(self) -> None:
        quiet_pymodbus_logging()
        self._subscription = self.bus.subscribe_actor(
            [self._inspection_topic, self._coaching_topic, "health.*"], self.actor_ref,
            name=f"{self.name}:station",
        )
        # A restarted gateway picks up the coaching state it missed; counts start at 0.
        for event in self.bus.retained([self._coaching_topic]):
            self.state = self._apply_event(event)
        self.state = apply_system_status(self.state, self._system_status())
        self._loop.start()
        try:
            self.port = self._loop.run(self._serve(), _IO_TIMEOUT_S)
        except BaseException:
            self._loop.stop()
            raise
        self.log.info("Modbus gateway for station %s on %s:%d unit %d",
                      self.station_id, self.host, self.port, self.unit)
        self.set_health(HealthState.UP)
        self._beat = self.tell_self_later(self.heartbeat_s, _Beat())

    def stopping(self) -> None:
        self._close()

    def failed(self, error: BaseException) -> None:
        self._close()

    def _close(self) -> None:
        if self._beat is not None:
            self._beat.cancel()
        if self._subscription is not None:
            self.bus.unsubscribe(self._subscription)
            self._subscription = None
        if self._loop.running:
            try:
                self._loop.run(self._shutdown(), _IO_TIMEOUT_S)
            except Exception:
                self.log.exception("Modbus gateway did not close cleanly")
            self._loop.stop()

    # --- messages --------------------------------------------------------------------

    @handles(Event)
    def _on_event(self, event: Event) -> None:
        self._update(self._apply_event(event))

    @handles(_Beat)
    def _on_beat(self, _msg: _Beat) -> None:
        state, self.window = refresh(tick_heartbeat(self.state), self.window, self.clock.now_us())
        self._update(state)
        self._beat = self.tell_self_later(self.heartbeat_s, _Beat())

    @handles(GetStatus)
    def _status(self, _msg: GetStatus) -> GatewayStatus:
        return GatewayStatus(
            enabled=True, running=self._server is not None,
            endpoint=f"modbus-tcp://{self.host}:{self.port}", host=self.host, port=self.port,
            unit=self.unit, clients=self._clients, writes_received=self._writes_received,
            writes_refused=self._writes_refused, inputs_published=self._inputs_published,
            bad_events=self.bad_events, heartbeat=self.state.heartbeat,
        )

    # --- state -----------------------------------------------------------------------

    def _apply_event(self, event: Event) -> StationState:
        state = self.state
        try:
            if event.topic == self._inspection_topic:
                state, self.window = apply_inspection(state, self.window,
                                                      parse_inspection(event.data))
            elif event.topic == self._coaching_topic:
                state = apply_coaching(state, parse_coaching(event.data))
            elif event.topic.startswith("health."):
                state = apply_system_status(state, self._system_status())
        except InvalidStationInput as exc:
            self.bad_events += 1
            self.log.warning("ignored %s from %s: %s", event.topic, event.source or "?", exc)
        return state

    def _system_status(self) -> Any:
        return overall_status(self.runtime.health.snapshot())

    def _update(self, state: StationState) -> None:
        fields = changed_fields(self.state, state)
        self.state = state
        if fields and self._server is not None:
            writes = writes_for(msgspec.structs.asdict(state), fields)
            # Waiting for the loop keeps the tables in step with the actor (a read after
            # the event sees it) and costs one thread hop per event.
            self._loop.run(self._store(writes), _IO_TIMEOUT_S)

    # --- the server, on its loop thread ----------------------------------------------

    async def _serve(self) -> int:
        values = msgspec.structs.asdict(self.state)
        bits = encode_bits(values)
        words = encode_registers(values)
        device = SimDevice(
            id=self.unit,
            simdata=(
                [SimData(0, values=list(self._coils), datatype=SimDataType.BITS)],
                [SimData(0, values=bits, datatype=SimDataType.BITS)],
                [SimData(0, values=list(words), datatype=SimDataType.REGISTERS)],
                [SimData(0, values=list(words), datatype=SimDataType.REGISTERS)],
            ),
            action=self._on_access,
        )
        server = ModbusTcpServer(device, address=(self.host, self.port),
                                 trace_connect=self._on_connect, trace_pdu=self._on_pdu)
        try:
            # Binding here (not probing for a free port first) keeps port=0 race-free.
            await server.serve_forever(background=True)
        except RuntimeError:  # pymodbus's word for "listen failed"; it logs the reason only
            raise GatewayBindError(
                f"Modbus gateway cannot listen on {self.host}:{self.port}: "
                f"{_bind_failure(self.host, self.port)}"
            ) from None
        self._server = server
        return cast(asyncio.Server, server.transport).sockets[0].getsockname()[1]

    async def _store(self, writes: list[RegisterWrite]) -> None:
        server = self._server
        if server is None:
            return
        for write in writes:
            self._own_write = write.values
            try:
                await server.async_setValues(self.unit, _STORE_CODE[write.table], write.address,
                                             write.values)
            finally:
                self._own_write = None

    async def _on_access(
        self, function_code: int, _start: int, address: int, _count: int,
        _registers: list[int], values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        """pymodbus calls this before every access; writes are allowed to the coils only."""
        if values is None or function_code in _TAKT_WRITES:
            return None  # a read, or Takt storing its own state
        if values is self._own_write:
            return None  # Takt mirroring its state into the holding registers
        if function_code in _COIL_WRITES and address + len(values) <= len(self._coils):
            self._writes_received += 1
            for offset, value in enumerate(values):
                self._coil_written(address + offset, bool(value))
            return None
        return ExcCodes.ILLEGAL_ADDRESS  # counted when the exception response goes out

    def _coil_written(self, address: int, value: bool) -> None:
        if self._coils[address] == value:
            return  # PLCs often rewrite the same value every cycle: only changes are news
        self._coils[address] = value
        self.runtime.ingest.input(INPUT_SOURCE, {"signal": INPUT_SIGNALS[address], "value": value})
        self._inputs_published += 1

    def _on_connect(self, connected: bool) -> None:
        self._clients += 1 if connected else -1

    def _on_pdu(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        # Counts here also the writes pymodbus refuses itself (addresses past the map).
        if sending and isinstance(pdu, ExceptionResponse) and (
            pdu.function_code & 0x7F in _CLIENT_WRITES
        ):
            self._writes_refused += 1
        return pdu

    async def _shutdown(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        # pymodbus closes only handlers whose connection_made has run, and asyncio 3.11
        # drops (without closing) a connection whose accept finishes after Server.close().
        # So stop accepting first, let accepts in flight finish, then close everything.
        loop = asyncio.get_running_loop()
        for sock in cast(asyncio.Server, server.transport).sockets:
            loop.remove_reader(sock.fileno())
        await _settle()
        await server.shutdown()
        await _settle()  # run the transports' close callbacks so clients get FIN now


async def _settle() -> None:
    # A handful of loop turns covers asyncio's accept -> connection_made and
    # close -> connection_lost callback chains (each two or three call_soon hops).
    for _ in range(10):
        await asyncio.sleep(0)


def _bind_failure(host: str, port: int) -> str:
    """Why binding failed, in the OS's words (pymodbus only logs them)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return "the address could not be bound"
