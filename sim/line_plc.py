"""TCP_SOCKET PLC simulator: a threaded TCP server speaking the line protocol on loopback.

It holds name -> raw value text, pushes every change to all connected clients, answers
`?` with a snapshot, applies writes to writable signals and refuses the rest. Fault
switches (`send_raw`, `silent`) let tests script a misbehaving PLC.
"""

from __future__ import annotations

import argparse
import select
import socket
import sys
import threading
from collections.abc import Collection, Mapping, Sequence
from typing import Self

from drivers.linesocket.codec import (
    SNAPSHOT_END,
    LineDecoder,
    Message,
    SnapshotRequest,
    Update,
    encode_refused,
    encode_update,
)
from sim.cli import serve_until_stopped

__all__ = ["DEMO_SIGNALS", "DEMO_WRITABLE", "LinePlcSimulator", "main"]

DEMO_SIGNALS: dict[str, str] = {
    "part_present": "0",
    "cycle_counter": "0",
    "temperature_c": "24.0",
    "serial": '""',
    "release": "0",
}
DEMO_WRITABLE = frozenset({"release"})

_RECV_BYTES = 65536
# A client that does not read for this long is dropped rather than stall every other one.
_SEND_TIMEOUT_S = 2.0
_JOIN_TIMEOUT_S = 5.0


class LinePlcSimulator:
    """A PLC that speaks TCP_SOCKET; values survive stop()/start(), connections do not."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        signals: Mapping[str, str] | None = None,
        *,
        writable: Collection[str] = (),
    ) -> None:
        values = dict(signals or {})
        for name, text in values.items():
            encode_update(name, text)  # raises ValueError for a bad name or value
        self._host = host
        self._port = port
        self._values = values
        self._writable = frozenset(writable)
        # One lock for values, the client list and sends: a change and its broadcast
        # happen together, so every client sees changes in the same order.
        self._lock = threading.RLock()
        self._clients: dict[socket.socket, threading.Thread] = {}
        self._listener: socket.socket | None = None
        self._wake: tuple[socket.socket, socket.socket] | None = None
        self._acceptor: threading.Thread | None = None
        self._malformed = 0
        self._received = 0
        self.silent = False
        """While True the simulator reads and discards everything and sends nothing
        (send_raw still sends): a PLC whose program hangs with the link up."""

    @property
    def port(self) -> int:
        """The bound port (the requested one until start() has bound a free port)."""
        return self._port

    @property
    def running(self) -> bool:
        """True between start() and stop()."""
        return self._listener is not None

    @property
    def connections(self) -> int:
        """Clients connected right now."""
        with self._lock:
            return len(self._clients)

    @property
    def malformed(self) -> int:
        """Lines from clients that were not protocol, since construction."""
        with self._lock:
            return self._malformed

    @property
    def lines_received(self) -> int:
        """Lines received from clients (also while silent), since construction."""
        with self._lock:
            return self._received

    def start(self) -> int:
        """Listen and return the bound port; after stop() it listens on the same port again."""
        if self._listener is not None:
            raise RuntimeError("simulator already running")
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            # Our own closed connections sit in TIME_WAIT; a restart must still bind.
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((self._host, self._port))
            listener.listen()
        except OSError as exc:
            listener.close()
            raise OSError(f"cannot listen on {self._host}:{self._port}: {exc}") from exc
        self._port = listener.getsockname()[1]
        self._listener = listener
        self._wake = socket.socketpair()
        self._acceptor = threading.Thread(
            target=self._accept, args=(listener, self._wake[0]), name="line-plc-sim", daemon=True
        )
        self._acceptor.start()
        return self._port

    def stop(self) -> None:
        """Stop listening and close every client connection; safe to call twice."""
        listener, wake, acceptor = self._listener, self._wake, self._acceptor
        if listener is None or wake is None or acceptor is None:
            return
        wake[1].send(b"x")
        acceptor.join(_JOIN_TIMEOUT_S)
        listener.close()
        for end in wake:
            end.close()
        self._listener = self._wake = self._acceptor = None
        with self._lock:
            clients = list(self._clients.items())
        for sock, _ in clients:
            _shutdown(sock)
        for _, thread in clients:
            thread.join(_JOIN_TIMEOUT_S)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def get(self, name: str) -> str:
        """Current raw text of signal name (including client writes); KeyError if unknown."""
        with self._lock:
            return self._values[name]

    def values(self) -> dict[str, str]:
        """A copy of every signal's raw text."""
        with self._lock:
            return dict(self._values)

    def set(self, name: str, text: str) -> None:
        """Change a signal as the PLC program would, and push `name=text` to every client."""
        line = encode_update(name, text)
        with self._lock:
            self._values[name] = text
            if not self.silent:
                self._broadcast(line)

    def send_raw(self, data: bytes) -> None:
        """Send data as it is to every client (for malformed-frame tests)."""
        with self._lock:
            self._broadcast(data)

    # --- connections ---------------------------------------------------------------------

    def _accept(self, listener: socket.socket, wake: socket.socket) -> None:
        while True:
            readable, _, _ = select.select([listener, wake], [], [])
            if wake in readable:
                return
            try:
                sock, _ = listener.accept()
            except OSError:
                continue  # the peer gave up between select and accept
            sock.settimeout(_SEND_TIMEOUT_S)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            thread = threading.Thread(
                target=self._serve, args=(sock,), name="line-plc-sim-client", daemon=True
            )
            with self._lock:  # started under the lock: stop() must never join an unstarted one
                self._clients[sock] = thread
                thread.start()

    def _serve(self, sock: socket.socket) -> None:
        decoder = LineDecoder()
        try:
            while True:
                try:
                    data = sock.recv(_RECV_BYTES)
                except TimeoutError:
                    continue  # idle client; the timeout is there for sends
                if not data:
                    return
                for message in decoder.feed(data):
                    self._handle(sock, message)
        except OSError:
            return  # reset by the client, or shut down by stop()
        finally:
            with self._lock:
                self._clients.pop(sock, None)
            sock.close()

    def _handle(self, sock: socket.socket, message: Message) -> None:
        with self._lock:
            self._received += 1
            if self.silent:
                return
            if isinstance(message, SnapshotRequest):
                lines = [encode_update(name, text) for name, text in self._values.items()]
                self._send(sock, b"".join(lines) + SNAPSHOT_END)
            elif isinstance(message, Update):
                if message.name in self._writable:
                    self._values[message.name] = message.text
                    self._broadcast(encode_update(message.name, message.text))
                else:
                    self._send(sock, encode_refused(message.name, "not writable"))
            else:
                # Malformed lines, and `.` or `!` which only a PLC may send.
                self._malformed += 1

    def _broadcast(self, data: bytes) -> None:
        for sock in list(self._clients):
            self._send(sock, data)

    def _send(self, sock: socket.socket, data: bytes) -> None:
        try:
            sock.sendall(data)
        except OSError:
            _shutdown(sock)  # its reader thread sees the end and unregisters it


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already disconnected


def _parse_signal(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not equals:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        encode_update(name, value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return name, value


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulator as a process; prints `READY <port>` once listening."""
    parser = argparse.ArgumentParser(prog="python -m sim.line_plc", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--signal",
        type=_parse_signal,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a signal and its wire value, e.g. speed=1.5 (default: the demo signals)",
    )
    parser.add_argument(
        "--writable", action="append", default=[], metavar="NAME", help="a signal Takt may write"
    )
    args = parser.parse_args(argv)
    signals = dict(args.signal) if args.signal else DEMO_SIGNALS
    writable = set(args.writable) if args.signal or args.writable else DEMO_WRITABLE

    sim = LinePlcSimulator(args.host, args.port, signals, writable=writable)
    return serve_until_stopped(sim.start, sim.stop)


if __name__ == "__main__":
    sys.exit(main())
