"""TCP_SOCKET PLC simulator: a threaded TCP server speaking the line protocol on loopback.

It holds name -> raw value text, pushes every change to all connected clients, answers
`?` with a snapshot, applies writes to writable signals and refuses the rest. Fault
switches (`send_raw`, `silent`) let tests script a misbehaving PLC.
"""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Collection, Mapping, Sequence

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
from sim.tcp_server import ThreadedTcpServer

__all__ = ["DEMO_SIGNALS", "DEMO_WRITABLE", "LinePlcSimulator", "main"]

DEMO_SIGNALS: dict[str, str] = {
    "part_present": "0",
    "cycle_counter": "0",
    "temperature_c": "24.0",
    "serial": '""',
    "release": "0",
}
DEMO_WRITABLE = frozenset({"release"})


class LinePlcSimulator(ThreadedTcpServer[LineDecoder]):
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
        super().__init__(host, port, name="line-plc-sim")
        # Values are guarded by the server's lock, which sends happen under too: a change and
        # its broadcast happen together, so every client sees changes in the same order.
        self._values = values
        self._writable = frozenset(writable)
        self._malformed = 0
        self._received = 0
        self.silent = False
        """While True the simulator reads and discards everything and sends nothing
        (send_raw still sends): a PLC whose program hangs with the link up."""

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

    def _on_connect(self, sock: socket.socket) -> LineDecoder:
        return LineDecoder()

    def _on_data(self, sock: socket.socket, state: LineDecoder, data: bytes) -> bool:
        for message in state.feed(data):
            self._handle(sock, message)
        return True

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
