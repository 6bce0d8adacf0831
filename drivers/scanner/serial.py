"""Barcode reader on a serial line (RS-232, or a USB reader in virtual COM port mode).

The reader thread waits with select on the port's descriptor (and a wake-up pipe for
close()) and reads with os.read, instead of pyserial's read with `port.timeout`: pyserial
re-applies every termios setting whenever the timeout changes, and a read that blocks in
pyserial cannot be woken without closing the port under it.
"""

from __future__ import annotations

import errno
import os
import select
import termios
from collections.abc import Callable

import serial

from drivers.errors import DeviceUnavailable
from drivers.scanner.codec import Framing
from drivers.scanner.link import ScannerLink

__all__ = ["SerialScanner"]

_READ_BYTES = 4096


class SerialScanner(ScannerLink):
    """Client for one reader on the serial device port_path; see ScannerLink for the API.

    The line settings must match the reader's (9600 8N1 is the usual factory setting).
    timeout_s bounds writes and waiting for a DMCC answer.
    """

    def __init__(
        self,
        port_path: str,
        *,
        on_read: Callable[[bytes], None],
        on_malformed: Callable[[str], None],
        on_lost: Callable[[str], None],
        on_no_read: Callable[[], None] | None = None,
        baudrate: int = 9600,
        parity: str = "N",
        stopbits: int = 1,
        bytesize: int = 8,
        framing: Framing | None = None,
        timeout_s: float = 1.0,
        name: str = "scanner",
    ) -> None:
        if parity not in ("N", "E", "O"):
            raise ValueError(f"parity must be N, E or O, got {parity!r}")
        if stopbits not in (1, 2):
            raise ValueError(f"stopbits must be 1 or 2, got {stopbits}")
        if bytesize not in (7, 8):
            raise ValueError(f"bytesize must be 7 or 8, got {bytesize}")
        if baudrate <= 0:
            raise ValueError(f"baudrate must be > 0, got {baudrate}")
        super().__init__(
            f"{name} {port_path}",
            on_read=on_read,
            on_malformed=on_malformed,
            on_lost=on_lost,
            on_no_read=on_no_read,
            framing=framing,
            timeout_s=timeout_s,
            name=name,
        )
        self._port_path = port_path
        self._settings = {
            "baudrate": baudrate,
            "parity": parity,
            "stopbits": stopbits,
            "bytesize": bytesize,
        }

    def _open(self) -> _SerialStream:
        try:
            port = serial.serial_for_url(
                self._port_path,
                timeout=None,
                write_timeout=self._timeout_s,
                exclusive=True,
                **self._settings,
            )
        # ValueError and termios.error: settings the port refuses (a pty has no even parity)
        except (OSError, ValueError, termios.error) as exc:
            raise DeviceUnavailable(f"{self._where}: cannot open: {exc}") from exc
        try:
            return _SerialStream(port)
        except OSError as exc:
            port.close()
            raise DeviceUnavailable(f"{self._where}: cannot open: {exc}") from exc


class _SerialStream:
    """An open serial port as a ByteStream, with a pipe that wakes the reader for close()."""

    def __init__(self, port: serial.Serial) -> None:
        self._port = port
        self._wake_r, self._wake_w = os.pipe()

    def read(self) -> bytes:
        fd = self._port.fileno()
        while True:
            ready, _, _ = select.select([fd, self._wake_r], [], [])
            if self._wake_r in ready:
                return b""
            try:
                # b"" here means hang-up: the device (or the pty's other end) went away.
                return os.read(fd, _READ_BYTES)
            except BlockingIOError:
                continue
            except OSError as exc:
                if exc.errno == errno.EIO:  # a tty whose device went away says EIO, not EOF
                    return b""
                raise

    def write(self, data: bytes) -> None:
        # pyserial's errors (a write timeout included) are OSErrors already.
        self._port.write(data)

    def interrupt(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass  # already closed

    def close(self) -> None:
        try:
            self._port.close()
        finally:
            for fd in (self._wake_r, self._wake_w):
                try:
                    os.close(fd)
                except OSError:
                    pass
