"""Thin blocking Modbus TCP client transport; pymodbus errors become Takt driver errors here."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from pymodbus.client import ModbusTcpClient
from pymodbus.constants import ExcCodes
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.pdu import ModbusPDU

from drivers.errors import DeviceUnavailable, FrameError
from drivers.modbus.codec import MAX_READ_BITS, MAX_READ_REGISTERS, RegisterKind

__all__ = [
    "MAX_WRITE_COILS",
    "MAX_WRITE_REGISTERS",
    "ModbusTcpTransport",
    "ModbusTransport",
    "quiet_pymodbus_logging",
]

# Write limits of function codes 15 and 16 (a PDU carries at most 246 data bytes).
MAX_WRITE_COILS = 1968
MAX_WRITE_REGISTERS = 123

_READ_FUNCTION = {
    RegisterKind.COIL: 1,
    RegisterKind.DISCRETE_INPUT: 2,
    RegisterKind.HOLDING_REGISTER: 3,
    RegisterKind.INPUT_REGISTER: 4,
}


@runtime_checkable
class ModbusTransport(Protocol):
    """What a Modbus device actor needs from a connection; real and simulated ones swap here."""

    @property
    def connected(self) -> bool: ...

    def connect(self) -> None: ...

    def close(self) -> None: ...

    def read(self, kind: RegisterKind, address: int, count: int) -> list[int] | list[bool]: ...

    def write_registers(self, address: int, words: Sequence[int]) -> None: ...

    def write_coils(self, address: int, bits: Sequence[bool]) -> None: ...


def quiet_pymodbus_logging() -> None:
    """Silence pymodbus unless the application configured its logger itself."""
    # pymodbus logs every failed connect at ERROR with frame dumps; Takt's supervisor
    # logs "unavailable" and "back" once each instead.
    logger = logging.getLogger("pymodbus")
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.CRITICAL + 1)


class _ExplicitTcpClient(ModbusTcpClient):
    """pymodbus sync client that connects only when told to, and says why a connect failed."""

    def connect(self) -> bool:
        # pymodbus calls connect() before every request and would silently redial a lost
        # device; Takt's supervisor owns reconnects (with backoff), so only report state.
        return self.socket is not None

    def open(self) -> None:
        """Dial the server; raises OSError with the reason (refused, timed out...)."""
        if self.socket is None:
            self.socket = socket.create_connection(
                (self.comm_params.host, self.comm_params.port),
                timeout=self.comm_params.timeout_connect,
                source_address=self.comm_params.source_address,
            )


class ModbusTcpTransport:
    """Blocking Modbus TCP client for one unit; no implicit retries or reconnects.

    Safe to share between a poll thread and a command thread: requests are serialised.
    """

    def __init__(self, host: str, port: int, unit: int = 1, timeout_s: float = 1.0) -> None:
        if not 0 <= unit <= 255:
            raise ValueError(f"unit must be 0..255, got {unit}")
        if timeout_s <= 0:
            raise ValueError("timeout_s must be > 0")
        quiet_pymodbus_logging()
        self._where = f"modbus {host}:{port} unit {unit}"
        self._unit = unit
        self._timeout_s = timeout_s
        self._lock = threading.Lock()
        # retries=0: a timeout surfaces at once; retrying is the supervisor's decision.
        self._client = _ExplicitTcpClient(host, port=port, timeout=timeout_s, retries=0)

    def __repr__(self) -> str:
        return f"ModbusTcpTransport({self._where})"

    @property
    def connected(self) -> bool:
        """True while a TCP connection is open (a dead peer shows on the next request)."""
        return self._client.connected

    def connect(self) -> None:
        """Open the connection; raises DeviceUnavailable if the device cannot be reached."""
        with self._lock:
            try:
                self._client.open()
            except OSError as exc:
                self._client.close()
                raise DeviceUnavailable(f"{self._where}: cannot connect: {exc}") from exc

    def close(self) -> None:
        """Close the connection; safe to call twice."""
        with self._lock:
            self._client.close()

    def read(self, kind: RegisterKind, address: int, count: int) -> list[int] | list[bool]:
        """Read count registers (ints) or bits (bools) of kind starting at address."""
        kind = RegisterKind(kind)
        _check_range(address, count, MAX_READ_BITS if kind.is_bit else MAX_READ_REGISTERS)
        function = _READ_FUNCTION[kind]
        call = {
            RegisterKind.COIL: self._client.read_coils,
            RegisterKind.DISCRETE_INPUT: self._client.read_discrete_inputs,
            RegisterKind.HOLDING_REGISTER: self._client.read_holding_registers,
            RegisterKind.INPUT_REGISTER: self._client.read_input_registers,
        }[kind]
        response = self._execute(
            function, address, lambda: call(address, count=count, device_id=self._unit)
        )
        if kind.is_bit:
            # Bits arrive packed in whole bytes; anything but ceil(count / 8) bytes is malformed.
            if len(response.bits) != (count + 7) // 8 * 8:
                raise self._frame_error(function, address, f"{len(response.bits)} bits")
            return [bool(bit) for bit in response.bits[:count]]
        if len(response.registers) != count:
            raise self._frame_error(function, address, f"{len(response.registers)} registers")
        return list(response.registers)

    def write_registers(self, address: int, words: Sequence[int]) -> None:
        """Write words to consecutive holding registers (function 16)."""
        _check_range(address, len(words), MAX_WRITE_REGISTERS)
        if any(not 0 <= word <= 0xFFFF for word in words):
            raise ValueError("register words must be 0..65535")
        values = list(words)
        self._execute(
            16, address, lambda: self._client.write_registers(address, values, device_id=self._unit)
        )

    def write_coils(self, address: int, bits: Sequence[bool]) -> None:
        """Write bits to consecutive coils (function 15)."""
        _check_range(address, len(bits), MAX_WRITE_COILS)
        values = [bool(bit) for bit in bits]
        self._execute(
            15, address, lambda: self._client.write_coils(address, values, device_id=self._unit)
        )

    def _execute(self, function: int, address: int, request: Callable[[], ModbusPDU]) -> ModbusPDU:
        with self._lock:
            return self._execute_locked(function, address, request)

    def _execute_locked(
        self, function: int, address: int, request: Callable[[], ModbusPDU]
    ) -> ModbusPDU:
        if not self._client.connected:
            raise DeviceUnavailable(f"{self._where}: not connected")
        try:
            response = request()
        except ConnectionException as exc:
            self._client.close()
            raise DeviceUnavailable(f"{self._where}: connection lost") from exc
        except ModbusIOException as exc:
            if exc.fcode is None:
                # The framer raises without a function code for bytes it cannot decode.
                raise self._frame_error(function, address, "undecodable response") from exc
            # Raised with the request's function code when no matching answer came in time;
            # the stream state is unknown after that, so drop the connection.
            self._client.close()
            raise DeviceUnavailable(
                f"{self._where}: no response to function {function} within {self._timeout_s} s"
            ) from exc
        except (ModbusException, OSError) as exc:
            self._client.close()
            raise DeviceUnavailable(f"{self._where}: connection lost: {exc}") from exc
        if response.isError():
            code = getattr(response, "exception_code", None)
            try:
                name = ExcCodes(code).name
            except ValueError:
                name = "unknown"
            raise self._frame_error(function, address, f"exception {code} ({name})")
        if response.function_code != function:
            raise self._frame_error(
                function, address, f"answered function {response.function_code}"
            )
        return response

    def _frame_error(self, function: int, address: int, what: str) -> FrameError:
        return FrameError(f"{self._where}: function {function} at address {address}: {what}")


def _check_range(address: int, count: int, limit: int) -> None:
    if not 1 <= count <= limit:
        raise ValueError(f"count must be 1..{limit}, got {count}")
    if address < 0 or address + count > 0x10000:
        raise ValueError(f"address range {address}+{count} outside 0..65535")
