"""Thin blocking Modbus TCP and RTU client transports; pymodbus errors become Takt driver errors."""

from __future__ import annotations

import logging
import os
import select
import socket
import termios
import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

import serial
from pymodbus.client import ModbusSerialClient, ModbusTcpClient
from pymodbus.constants import ExcCodes
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.framer import FramerRTU
from pymodbus.pdu import DecodePDU, ModbusPDU

from drivers.errors import DeviceUnavailable, ExceptionResponse, FrameError
from drivers.modbus.codec import MAX_READ_BITS, MAX_READ_REGISTERS, RegisterKind

__all__ = [
    "MAX_WRITE_COILS",
    "MAX_WRITE_REGISTERS",
    "ModbusRtuTransport",
    "ModbusTcpTransport",
    "ModbusTransport",
    "find_rtu_frame",
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

# RTU frames: unit, function, CRC at least; at most 256 bytes on the line.
_RTU_MIN_FRAME = 4
_RTU_MAX_FRAME = 256
# RTU ends a frame after 3.5 character times of silence. USB adapters and ptys deliver in
# bursts with gaps of milliseconds, so a garbled answer is declared only after this much.
_MIN_FRAME_GAP_S = 0.05


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


def find_rtu_frame(
    data: bytes, decoder: DecodePDU, unit: int | None = None
) -> tuple[int, int] | None:
    """(start, end) of the first complete RTU frame with a valid CRC in data, or None.

    Bytes before it are line noise; with unit given, frames of other units are noise too.
    decoder says which PDUs are expected (requests on a server, responses on a client).
    """
    for start in range(len(data) - _RTU_MIN_FRAME + 1):
        if unit is not None and data[start] != unit:
            continue
        candidate = data[start:]
        try:
            pdu_class = decoder.lookupPduClass(candidate)
            size = pdu_class.calculateRtuFrameSize(candidate) if pdu_class else 0
        except (IndexError, ModbusException):
            continue
        end = start + size
        if size < _RTU_MIN_FRAME or end > len(data):
            continue
        if FramerRTU.check_CRC(data[start : end - 2], int.from_bytes(data[end - 2 : end], "big")):
            return start, end
    return None


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


class _GarbledResponse(Exception):
    """Bytes came back but no frame for this unit could be cut out of them."""


class _ExplicitSerialClient(ModbusSerialClient):
    """pymodbus RTU client that opens the port only when told to and frames answers itself.

    pymodbus's own receive drops everything after one failed CRC and then waits out the
    timeout, so a noisy line would look like a dead device; this one hunts for the answer
    behind noise and reports noise without an answer as soon as the line falls silent.
    """

    def __init__(
        self,
        port: str,
        *,
        unit: int,
        baudrate: int,
        parity: str,
        stopbits: int,
        bytesize: int,
        timeout_s: float,
    ) -> None:
        # retries=0: a timeout surfaces at once; retrying is the supervisor's decision.
        super().__init__(
            port,
            baudrate=baudrate,
            parity=parity,
            stopbits=stopbits,
            bytesize=bytesize,
            timeout=timeout_s,
            retries=0,
        )
        char_s = (1 + bytesize + (parity != "N") + stopbits) / baudrate
        self.frame_gap_s = min(max(3.5 * char_s, _MIN_FRAME_GAP_S), timeout_s)
        self._unit = unit

    def connect(self) -> bool:
        # As for TCP: never reopen behind the supervisor's back.
        return self.socket is not None

    def open(self) -> None:
        """Open the serial port; raises OSError (SerialException) with the reason."""
        if self.socket is None:
            params = self.comm_params
            self.socket = serial.serial_for_url(
                params.host,
                timeout=params.timeout_connect,
                write_timeout=params.timeout_connect,
                bytesize=params.bytesize,
                stopbits=params.stopbits,
                baudrate=params.baudrate,
                parity=params.parity,
                exclusive=True,
            )

    def recv(self, size: int | None) -> bytes:
        """One whole answer frame (pymodbus asks with size None), or b"" on silence."""
        if self.socket is None:
            raise ConnectionException(str(self))
        try:
            return self._receive_frame() if size is None else super().recv(size)
        except OSError:  # SerialException included: the port went away under us
            self.close()
            raise ConnectionException(str(self)) from None

    def _receive_frame(self) -> bytes:
        port = self.socket
        assert port is not None
        deadline = time.monotonic() + self.comm_params.timeout_connect
        buffer = b""
        while True:
            left = deadline - time.monotonic()
            if buffer and left <= 0:
                break  # noise all the way to the deadline
            chunk = _read_within(port, min(left, self.frame_gap_s) if buffer else left)
            if not chunk:
                if buffer:
                    break  # the line fell silent after bytes that hold no answer
                if time.monotonic() >= deadline:
                    return b""  # pymodbus turns this into "no response"
                continue
            buffer = (buffer + chunk)[-2 * _RTU_MAX_FRAME :]
            span = find_rtu_frame(buffer, self.framer.decoder, self._unit)
            if span is not None:
                # One request, one answer: whatever is glued around it is not ours.
                return buffer[span[0] : span[1]]
        self._drain()
        raise _GarbledResponse(self._describe(buffer))

    def _describe(self, buffer: bytes) -> str:
        whole_crc = int.from_bytes(buffer[-2:], "big")
        if (
            len(buffer) >= _RTU_MIN_FRAME
            and buffer[0] == self._unit
            and FramerRTU.check_CRC(buffer[:-2], whole_crc)
        ):
            return f"undecodable response (function {buffer[1]})"
        return f"no valid frame in {len(buffer)} bytes (CRC error or line noise)"

    def _drain(self) -> None:
        # Let the rest of a garbled burst arrive, then drop it, so the next request starts
        # on a clean line; bounded so a babbling line cannot hold the caller forever.
        port = self.socket
        assert port is not None
        deadline = time.monotonic() + self.comm_params.timeout_connect
        while _read_within(port, self.frame_gap_s) and time.monotonic() < deadline:
            pass
        port.reset_input_buffer()


def _read_within(port: serial.Serial, timeout_s: float) -> bytes:
    """What the port has within timeout_s (b"" on silence).

    Waits with select instead of setting `port.timeout`: pyserial re-applies every termios
    setting on each timeout change, which costs a syscall round per read and fails outright
    on ports that refuse one of the settings (a pty refuses even parity).
    """
    ready, _, _ = select.select([port.fileno()], [], [], max(timeout_s, 0.0))
    return os.read(port.fileno(), 4096) if ready else b""


class _ClientTransport:
    """Request/response handling shared by the TCP and RTU transports; no implicit retries.

    Safe to share between a poll thread and a command thread: requests are serialised.
    """

    def __init__(
        self,
        client: _ExplicitTcpClient | _ExplicitSerialClient,
        where: str,
        unit: int,
        timeout_s: float,
    ) -> None:
        self._client = client
        self._where = where
        self._unit = unit
        self._timeout_s = timeout_s
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._where})"

    @property
    def connected(self) -> bool:
        """True while the link is open (a dead peer shows on the next request)."""
        return self._client.connected

    def close(self) -> None:
        """Close the link; safe to call twice."""
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
        except _GarbledResponse as exc:
            raise self._frame_error(function, address, str(exc)) from exc
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
            raise ExceptionResponse(
                f"{self._where}: function {function} at address {address}: "
                f"exception {code} ({name})")
        if response.function_code != function:
            raise self._frame_error(
                function, address, f"answered function {response.function_code}"
            )
        return response

    def _frame_error(self, function: int, address: int, what: str) -> FrameError:
        return FrameError(f"{self._where}: function {function} at address {address}: {what}")


class ModbusTcpTransport(_ClientTransport):
    """Blocking Modbus TCP client for one unit; no implicit retries or reconnects.

    Safe to share between a poll thread and a command thread: requests are serialised.
    """

    def __init__(self, host: str, port: int, unit: int = 1, timeout_s: float = 1.0) -> None:
        if not 0 <= unit <= 255:
            raise ValueError(f"unit must be 0..255, got {unit}")
        _check_timeout(timeout_s)
        quiet_pymodbus_logging()
        # retries=0: a timeout surfaces at once; retrying is the supervisor's decision.
        client = _ExplicitTcpClient(host, port=port, timeout=timeout_s, retries=0)
        super().__init__(client, f"modbus {host}:{port} unit {unit}", unit, timeout_s)
        self._tcp = client

    def connect(self) -> None:
        """Open the connection; raises DeviceUnavailable if the device cannot be reached."""
        with self._lock:
            try:
                self._tcp.open()
            except OSError as exc:
                self._tcp.close()
                raise DeviceUnavailable(f"{self._where}: cannot connect: {exc}") from exc


class ModbusRtuTransport(_ClientTransport):
    """Blocking Modbus RTU client for one unit on a serial line; no implicit retries or reopens.

    A garbled answer (CRC error, noise, unknown function) is a FrameError and the line is
    drained so the next request works; silence until timeout_s is DeviceUnavailable and
    closes the port, so the supervisor's connect() reopens it.
    """

    def __init__(
        self,
        port: str,
        *,
        baudrate: int = 19200,
        parity: str = "N",
        stopbits: int = 1,
        bytesize: int = 8,
        unit: int = 1,
        timeout_s: float = 1.0,
    ) -> None:
        # 0 is broadcast (never answered) and 248..255 are reserved on a serial line.
        if not 1 <= unit <= 247:
            raise ValueError(f"unit must be 1..247, got {unit}")
        if parity not in ("N", "E", "O"):
            raise ValueError(f"parity must be N, E or O, got {parity!r}")
        if stopbits not in (1, 2):
            raise ValueError(f"stopbits must be 1 or 2, got {stopbits}")
        if bytesize not in (7, 8):
            raise ValueError(f"bytesize must be 7 or 8, got {bytesize}")
        if baudrate <= 0:
            raise ValueError(f"baudrate must be > 0, got {baudrate}")
        _check_timeout(timeout_s)
        quiet_pymodbus_logging()
        client = _ExplicitSerialClient(
            port,
            unit=unit,
            baudrate=baudrate,
            parity=parity,
            stopbits=stopbits,
            bytesize=bytesize,
            timeout_s=timeout_s,
        )
        super().__init__(client, f"modbus rtu {port} unit {unit}", unit, timeout_s)
        self._port = port
        self._serial = client

    def connect(self) -> None:
        """Open the serial port; raises DeviceUnavailable naming the port if it cannot."""
        with self._lock:
            try:
                self._serial.open()
            # ValueError and termios.error: settings the port refuses (a pty has no even parity)
            except (OSError, ValueError, termios.error) as exc:
                self._serial.close()
                raise DeviceUnavailable(f"{self._where}: cannot open {self._port}: {exc}") from exc


def _check_timeout(timeout_s: float) -> None:
    if timeout_s <= 0:
        raise ValueError("timeout_s must be > 0")


def _check_range(address: int, count: int, limit: int) -> None:
    if not 1 <= count <= limit:
        raise ValueError(f"count must be 1..{limit}, got {count}")
    if address < 0 or address + count > 0x10000:
        raise ValueError(f"address range {address}+{count} outside 0..65535")
