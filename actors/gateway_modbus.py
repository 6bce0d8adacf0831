"""Takt's own Modbus TCP server: a line PLC reads station state and writes a few inputs.

The actor keeps the station state (from inspection, coaching and health events) and
stores every change in the server's tables, on the server's own loop thread. Client
writes to the input coils enter Takt through the input boundary, one input per changed
coil, in the order written; the register map is `drivers.modbus.gateway_map`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Any, cast

import msgspec
from pymodbus.constants import ExcCodes
from pymodbus.pdu import ExceptionResponse, ModbusPDU
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType as SimDataType
from pymodbus.simulator import SimData, SimDevice

from actors.base import handles
from actors.gateway_station import StationGateway, bind_problem
from actors.health import HealthState
from actors.runtime import Runtime
from drivers.modbus.codec import RegisterKind
from drivers.modbus.gateway_map import (
    COIL_POINTS,
    INPUT_SIGNALS,
    RegisterWrite,
    encode_bits,
    encode_registers,
    writes_for,
)
from drivers.modbus.serving import stop_tcp_server
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


class ModbusGateway(StationGateway):
    """Serves one station's state over Modbus TCP; see docs/plc-gateway.md."""

    protocol = "Modbus"
    io_timeout_s = _IO_TIMEOUT_S

    def __init__(
        self, runtime: Runtime, name: str, *, station_id: str, host: str = "127.0.0.1",
        port: int = 5020, unit: int = 1, heartbeat_s: float = 1.0, **kw: Any,
    ) -> None:
        super().__init__(runtime, name, station_id=station_id, host=host, port=port,
                         heartbeat_s=heartbeat_s, loop_name=f"modbus-gateway:{name}", **kw)
        if not 0 <= unit <= 255:
            raise ValueError("unit must be 0..255")
        self.unit = unit
        self._server: ModbusTcpServer | None = None
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
        super().started()

    def _start_server(self) -> None:
        self._loop.start()
        try:
            self.port = self._loop.run(self._serve(), _IO_TIMEOUT_S)
        except BaseException:
            self._loop.stop()
            raise
        self.log.info("Modbus gateway for station %s on %s:%d unit %d",
                      self.station_id, self.host, self.port, self.unit)
        self.set_health(HealthState.UP)

    # --- messages --------------------------------------------------------------------

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

    def _push(self, fields: Collection[str]) -> None:
        if self._server is not None:
            writes = writes_for(msgspec.structs.asdict(self.state), fields)
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
        await stop_tcp_server(server)


def _bind_failure(host: str, port: int) -> str:
    """Why binding failed, in the OS's words (pymodbus only logs them)."""
    return bind_problem(host, port) or "the address could not be bound"
