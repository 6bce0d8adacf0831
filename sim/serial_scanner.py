"""Barcode reader simulator on a serial line: the reader of sim.scanner behind a serial port.

Tests serve one end of a `sim.ptypair.PtyPair` and point the client at the other. Run
`python -m sim.serial_scanner --pty --demo` to get such a pair without hardware: it prints
`READY <path>` with the end to open.
"""

from __future__ import annotations

import argparse
import os
import select
import sys
import termios
import threading
from collections.abc import Iterator, Sequence
from typing import Self

import serial

from drivers.scanner.codec import CommandDecoder, Framing
from sim.cli import serve_until_stopped
from sim.ptypair import PtyPair
from sim.scanner import (
    DemoEmitter,
    Mode,
    ReaderModel,
    framing_arguments,
    framing_from,
    iter_demo_codes,
)

__all__ = ["SerialScannerSimulator", "main"]

_READ_BYTES = 4096
_WRITE_TIMEOUT_S = 2.0
_JOIN_TIMEOUT_S = 5.0


class SerialScannerSimulator:
    """A reader on the serial device port_path; settings survive stop()/start()."""

    def __init__(
        self,
        port_path: str,
        *,
        mode: Mode = "free",
        framing: Framing | None = None,
        baudrate: int = 9600,
        answer_no_read: bool = True,
        code_source: Iterator[bytes] | None = None,
        extended: bool = False,
    ) -> None:
        if baudrate <= 0:
            raise ValueError("baudrate must be > 0")
        self._port_path = port_path
        self._baudrate = baudrate
        self._model = ReaderModel(
            mode=mode,
            framing=framing,
            answer_no_read=answer_no_read,
            code_source=code_source,
            extended=extended,
        )
        # One lock for the model and writes, so answers and codes never interleave.
        self._lock = threading.RLock()
        self._port: serial.Serial | None = None
        self._wake: tuple[int, int] | None = None
        self._thread: threading.Thread | None = None
        self.silent = False
        """While True the reader reads and discards everything and sends nothing (send_raw
        still sends)."""

    @property
    def port_path(self) -> str:
        """The serial device the reader is on."""
        return self._port_path

    @property
    def running(self) -> bool:
        """True between start() and stop()."""
        return self._port is not None

    @property
    def model(self) -> ReaderModel:
        """The reader's settings and counters."""
        return self._model

    @property
    def triggers(self) -> int:
        """TRIGGER ON commands received, since construction."""
        with self._lock:
            return self._model.triggers

    @property
    def commands(self) -> list[str]:
        """Text of every DMCC command received, since construction."""
        with self._lock:
            return list(self._model.commands)

    @property
    def malformed(self) -> int:
        """Lines from the host that were not DMCC commands, since construction."""
        with self._lock:
            return self._model.malformed

    def start(self) -> None:
        """Open the serial device and serve it; OSError says why it cannot be opened."""
        if self._port is not None:
            raise RuntimeError("simulator already running")
        try:
            port = serial.serial_for_url(
                self._port_path,
                baudrate=self._baudrate,
                timeout=None,
                write_timeout=_WRITE_TIMEOUT_S,
                exclusive=True,
            )
        except (OSError, ValueError, termios.error) as exc:
            raise OSError(f"cannot open serial port {self._port_path}: {exc}") from exc
        self._port = port
        self._wake = os.pipe()
        self._thread = threading.Thread(
            target=self._serve, args=(port, self._wake[0]), name="serial-scanner-sim", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the device; safe to call twice."""
        port, wake, thread = self._port, self._wake, self._thread
        if port is None or wake is None or thread is None:
            return
        os.write(wake[1], b"x")
        thread.join(_JOIN_TIMEOUT_S)
        with self._lock:
            port.close()
            self._port = self._wake = self._thread = None
        for fd in wake:
            os.close(fd)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def emit(self, code: bytes) -> None:
        """Free-running: send code now. Triggered: queue it for a trigger.

        ValueError if the framing cannot carry code.
        """
        with self._lock:
            if self._model.mode == "triggered":
                self._model.queue(code)
                return
            wire = self._model.frame(code)
            if not self.silent:
                self._write(wire)

    def send_raw(self, data: bytes) -> None:
        """Send data as it is (garbage, partial frames)."""
        with self._lock:
            self._write(bytes(data))

    def _serve(self, port: serial.Serial, wake: int) -> None:
        decoder = CommandDecoder()
        fd = port.fileno()
        while True:
            ready, _, _ = select.select([fd, wake], [], [])
            if wake in ready:
                return
            try:
                data = os.read(fd, _READ_BYTES)
            except BlockingIOError:
                continue
            except OSError:
                return  # the device went away
            if not data:
                return  # hang-up
            for message in decoder.feed(data):
                with self._lock:
                    if self.silent:
                        continue
                    answer, broadcast = self._model.handle(message)
                    self._write(answer + broadcast)

    def _write(self, data: bytes) -> None:
        # Called holding _lock. A line nobody reads fills up; a real reader drops output then.
        port = self._port
        if port is None or not data:
            return
        try:
            port.write(data)
        except OSError:
            pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulator as a process; prints `READY <device path>` for the client to open."""
    parser = argparse.ArgumentParser(prog="python -m sim.serial_scanner", description=__doc__)
    line = parser.add_mutually_exclusive_group(required=True)
    line.add_argument("--serial", metavar="PATH", help="serve on this serial device")
    line.add_argument(
        "--pty", action="store_true", help="make a pty pair, serve one end, print the other"
    )
    parser.add_argument("--baudrate", type=int, default=9600)
    framing_arguments(parser)
    args = parser.parse_args(argv)

    mode: Mode = "triggered" if args.triggered else "free"
    demo = iter_demo_codes() if args.demo else None
    pair = PtyPair().start() if args.pty else None
    try:
        client_path = pair.a_path if pair is not None else args.serial
        sim = SerialScannerSimulator(
            pair.b_path if pair is not None else args.serial,
            mode=mode,
            framing=framing_from(args),
            baudrate=args.baudrate,
            code_source=demo if mode == "triggered" else None,
            extended=args.extended,
        )
        emitter = DemoEmitter(sim.emit, demo) if demo is not None and mode == "free" else None

        def start() -> str:
            sim.start()
            return client_path

        def stop() -> None:
            if emitter is not None:
                emitter.stop()
            sim.stop()

        return serve_until_stopped(
            start, stop, program=emitter.start if emitter is not None else None
        )
    finally:
        if pair is not None:
            pair.stop()


if __name__ == "__main__":
    sys.exit(main())
