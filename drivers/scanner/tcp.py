"""Barcode reader over TCP: fixed-mount readers that serve their results on a TCP port.

Cognex DataMan readers serve DMCC and results on port 23 by default; Datalogic and Hikrobot
readers on a port set in their configuration tool. Either way Takt is the client, and the
result format (terminator, STX/ETX, no-read string) is set to match the reader's `Framing`.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

from drivers.errors import DeviceUnavailable
from drivers.scanner.codec import Framing
from drivers.scanner.link import ScannerLink

__all__ = ["TcpScanner"]

_RECV_BYTES = 65536


class TcpScanner(ScannerLink):
    """Client for one reader on host:port; see ScannerLink for callbacks and commands.

    timeout_s bounds connecting, sending and waiting for a DMCC answer; an idle link (no
    codes for hours) is normal and never times out.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        on_read: Callable[[bytes], None],
        on_malformed: Callable[[str], None],
        on_lost: Callable[[str], None],
        on_no_read: Callable[[], None] | None = None,
        framing: Framing | None = None,
        timeout_s: float = 1.0,
        name: str = "scanner",
    ) -> None:
        super().__init__(
            f"{name} {host}:{port}",
            on_read=on_read,
            on_malformed=on_malformed,
            on_lost=on_lost,
            on_no_read=on_no_read,
            framing=framing,
            timeout_s=timeout_s,
            name=name,
        )
        self._host = host
        self._port = port

    def _open(self) -> _TcpStream:
        try:
            sock = socket.create_connection((self._host, self._port), timeout=self._timeout_s)
        except OSError as exc:
            raise DeviceUnavailable(f"{self._where}: cannot connect: {exc}") from exc
        # Commands are small lines: send each at once rather than wait for Nagle.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return _TcpStream(sock)


class _TcpStream:
    """A connected socket as a ByteStream."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def read(self) -> bytes:
        while True:
            try:
                return self._sock.recv(_RECV_BYTES)
            except TimeoutError:
                continue  # the socket timeout bounds sends; an idle reader is fine

    def write(self, data: bytes) -> None:
        self._sock.sendall(data)

    def interrupt(self) -> None:
        # shutdown (not close) wakes a recv blocked in the reader thread at once.
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass  # already disconnected

    def close(self) -> None:
        self._sock.close()
