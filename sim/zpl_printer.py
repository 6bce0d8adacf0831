"""Zebra ZPL label printer simulator: raw TCP (port 9100 on a real printer) on loopback.

It reads ZPL with the driver's own tokenizer, prints each complete `^XA...^XZ` format
(^PQ times) into a list of labels with decoded field data, and counts labels. It answers
`~HS` with its status and `! U1 getvar "odometer.total_label_count"` with the counter,
obeys `~PP` (pause), `~PS` (resume) and `~JA` (cancel all). Switches (`paper_out`,
`paused`, `head_open`, `ribbon_out`, `hold`) stop printing: formats wait in the buffer
and print when the switch is cleared. `drop_connection_mid_job` loses the link mid-job.
"""

from __future__ import annotations

import argparse
import re
import socket
import sys
from collections import deque
from collections.abc import Sequence
from enum import StrEnum
from typing import NamedTuple

import msgspec

from drivers.zpl.codec import (
    Command,
    Field,
    FormatReader,
    LabelFormat,
    SgdCommand,
    Token,
    ZplTokenizer,
)
from drivers.zpl.status import (
    LABEL_COUNT_VARIABLE,
    PrinterStatus,
    encode_host_status,
    encode_sgd_value,
)
from sim.cli import serve_until_stopped
from sim.tcp_server import ThreadedTcpServer

__all__ = ["MAX_QUANTITY", "DropPoint", "PrintedLabel", "ZplPrinterSimulator", "main"]

# A ^PQ above this is refused (counted, not printed): a test printing millions of labels
# into a list is a bug in the test.
MAX_QUANTITY = 10_000
_LABEL_LENGTH_DOTS = 1200
_GETVAR = re.compile(r'!\s*U1\s+getvar\s+"([^"]*)"', re.IGNORECASE)


class DropPoint(StrEnum):
    """Where `drop_connection_mid_job` closes the connection."""

    BEFORE_END = "before_end"
    """As a format starts (^XA): the printer never gets its ^XZ and prints nothing."""
    AFTER_END = "after_end"
    """Right after a format's ^XZ is taken (and printed, if the printer can print)."""


class PrintedLabel(msgspec.Struct, frozen=True, kw_only=True):
    """One label that came out of the printer."""

    number: int
    """The label counter once this label was printed (the first label ever is 1)."""
    fields: tuple[Field, ...]


class _Connection(NamedTuple):
    """What one client's bytes go through: a format is per connection, as on a printer."""

    tokenizer: ZplTokenizer
    reader: FormatReader


class ZplPrinterSimulator(ThreadedTcpServer[_Connection]):
    """A Zebra printer on raw TCP; labels, counter and buffer survive stop()/start()."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, label_count: int = 0) -> None:
        super().__init__(host, port, name="zpl-sim")
        # The printer state is guarded by the server's lock, which sends happen under too,
        # so an answer always reflects the state at the moment it was asked.
        self._counter = label_count
        self._labels: list[PrintedLabel] = []
        self._buffer: deque[LabelFormat] = deque()
        self._switches = {"paper_out": False, "paused": False, "head_open": False,
                          "ribbon_out": False, "hold": False}  # fmt: skip
        self._partial: set[socket.socket] = set()
        self._ignored = 0
        self._discarded = 0
        self._formats_received = 0
        self._queries = 0
        self._refused = 0
        self.drop_connection_mid_job: DropPoint | None = None
        """One-shot fault: the next job loses its connection at this point."""

    # --- switches ------------------------------------------------------------------------

    @property
    def paper_out(self) -> bool:
        """Out of media: nothing prints; formats wait in the buffer."""
        return self._switches["paper_out"]

    @paper_out.setter
    def paper_out(self, value: bool) -> None:
        self._switch("paper_out", value)

    @property
    def paused(self) -> bool:
        """Paused (pause key or ~PP): nothing prints until resumed (or ~PS)."""
        return self._switches["paused"]

    @paused.setter
    def paused(self, value: bool) -> None:
        self._switch("paused", value)

    @property
    def head_open(self) -> bool:
        """Print head lifted: nothing prints."""
        return self._switches["head_open"]

    @head_open.setter
    def head_open(self, value: bool) -> None:
        self._switch("head_open", value)

    @property
    def ribbon_out(self) -> bool:
        """Out of ribbon: nothing prints."""
        return self._switches["ribbon_out"]

    @ribbon_out.setter
    def ribbon_out(self, value: bool) -> None:
        self._switch("ribbon_out", value)

    @property
    def hold(self) -> bool:
        """A slow print engine: formats wait in the buffer (and in ~HS) while True, though
        the printer reports no problem."""
        return self._switches["hold"]

    @hold.setter
    def hold(self, value: bool) -> None:
        self._switch("hold", value)

    def _switch(self, name: str, value: bool) -> None:
        with self._lock:
            self._switches[name] = bool(value)
            self._print_ready()

    # --- what came out -------------------------------------------------------------------

    @property
    def labels(self) -> list[PrintedLabel]:
        """Every printed label, oldest first."""
        with self._lock:
            return list(self._labels)

    @property
    def label_count(self) -> int:
        """The odometer: labels printed in the printer's life (the starting count included)."""
        with self._lock:
            return self._counter

    @property
    def formats_in_buffer(self) -> int:
        """Formats received and not printed yet."""
        with self._lock:
            return len(self._buffer)

    @property
    def formats_received(self) -> int:
        """Complete formats received since construction (printed or not)."""
        with self._lock:
            return self._formats_received

    @property
    def discarded_formats(self) -> int:
        """Partial formats dropped (connection lost before ^XZ, a second ^XA, ~JA)."""
        with self._lock:
            return self._discarded

    @property
    def ignored_bytes(self) -> int:
        """Bytes received that were part of no command."""
        with self._lock:
            return self._ignored

    @property
    def refused_formats(self) -> int:
        """Formats not printed because their ^PQ exceeds MAX_QUANTITY."""
        with self._lock:
            return self._refused

    @property
    def queries(self) -> int:
        """~HS and getvar questions answered, since construction."""
        with self._lock:
            return self._queries

    def status(self) -> PrinterStatus:
        """The status the printer reports to ~HS right now."""
        with self._lock:
            remaining = sum(f.quantity for f in self._buffer)
            return PrinterStatus(
                communication_settings=0,
                paper_out=self.paper_out,
                paused=self.paused,
                label_length_dots=_LABEL_LENGTH_DOTS,
                formats_in_buffer=min(len(self._buffer), 999),
                partial_format=bool(self._partial),
                head_open=self.head_open,
                ribbon_out=self.ribbon_out,
                thermal_transfer=True,
                print_mode=2,
                labels_remaining=min(remaining, 99_999_999),
            )

    # --- connections ---------------------------------------------------------------------

    def _on_connect(self, sock: socket.socket) -> _Connection:
        return _Connection(ZplTokenizer(), FormatReader())

    def _on_data(self, sock: socket.socket, state: _Connection, data: bytes) -> bool:
        tokenizer, reader = state
        ignored, discarded = tokenizer.ignored, reader.discarded
        tokens = tokenizer.feed(data)
        with self._lock:
            self._ignored += tokenizer.ignored - ignored
            keep = self._handle(sock, reader, tokens)
            self._discarded += reader.discarded - discarded
            return keep

    def _on_disconnect(self, sock: socket.socket, state: _Connection) -> None:
        # A format without its ^XZ never prints, as on a real printer.
        reader = state.reader
        discarded = reader.discarded
        reader.discard()
        self._discarded += reader.discarded - discarded
        self._partial.discard(sock)

    def _handle(self, sock: socket.socket, reader: FormatReader, tokens: list[Token]) -> bool:
        """Act on tokens (holding the lock); False once the connection is to be dropped."""
        for token in tokens:
            if isinstance(token, SgdCommand):
                self._sgd(sock, token.line)
                continue
            if token.control:
                self._control(sock, token)
                continue
            if token.name == "XA" and self.drop_connection_mid_job is DropPoint.BEFORE_END:
                self.drop_connection_mid_job = None
                reader.feed(token)  # the partial format is discarded when the link closes
                return False
            done = reader.feed(token)
            if reader.in_format:
                self._partial.add(sock)
            else:
                self._partial.discard(sock)
            if done is None:
                continue
            self._formats_received += 1
            if done.quantity > MAX_QUANTITY:
                self._refused += 1
                continue
            self._buffer.append(done)
            self._print_ready()
            if self.drop_connection_mid_job is DropPoint.AFTER_END:
                self.drop_connection_mid_job = None
                return False
        return True

    def _control(self, sock: socket.socket, command: Command) -> None:
        name = command.name
        if name == "HS":
            self._queries += 1
            self._send(sock, encode_host_status(self.status()))
        elif name == "PP":
            self._switches["paused"] = True
        elif name == "PS":
            self._switches["paused"] = False
            self._print_ready()
        elif name == "JA":
            self._discarded += len(self._buffer)
            self._buffer.clear()
        # Other control commands (~HI, ~HQ...) are not simulated and get no answer.

    def _sgd(self, sock: socket.socket, line: str) -> None:
        match = _GETVAR.match(line)
        if match is None:
            return  # setvar/do: nothing here needs them
        self._queries += 1
        if match[1].lower() == LABEL_COUNT_VARIABLE:
            self._send(sock, encode_sgd_value(str(self._counter)))
        else:
            self._send(sock, encode_sgd_value("?"))  # what a printer answers for an unknown name

    def _print_ready(self) -> None:
        # Called holding the lock: print buffered formats while nothing stops the printer.
        while self._buffer and not any(self._switches.values()):
            label_format = self._buffer.popleft()
            for _ in range(label_format.quantity):
                self._counter += 1
                self._labels.append(PrintedLabel(number=self._counter, fields=label_format.fields))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulator as a process; prints `READY <port>` once listening."""
    parser = argparse.ArgumentParser(prog="python -m sim.zpl_printer", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--label-count", type=int, default=0, help="starting odometer")
    args = parser.parse_args(argv)
    sim = ZplPrinterSimulator(args.host, args.port, label_count=args.label_count)
    return serve_until_stopped(sim.start, sim.stop)


if __name__ == "__main__":
    sys.exit(main())
