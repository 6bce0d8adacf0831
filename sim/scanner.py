"""Barcode reader simulator: a TCP server sending codes like a fixed-mount reader.

Free-running, every emitted code goes to every client at once; triggered, codes wait in a
queue and each `||>TRIGGER ON` sends the next one (or the no-read string). It answers DMCC
commands like a Cognex DataMan: silent by default, `||checksum:id[status]data` after
`SET COM.DMCC-RESPONSE 1`. Fault switches (`send_raw`, `silent`, `drop_clients`) let tests
script a misbehaving reader. `demo_codes` makes valid GS1 DataMatrix codes for any test.

Run `python -m sim.scanner --port 0 --demo` for a reader that sends a new code every second.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import itertools
import socket
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Literal

from drivers.scanner.codec import (
    COMMAND_CHECKSUM_MISMATCH,
    GS,
    CommandDecoder,
    DmccCommand,
    DmccStatus,
    Framing,
    Malformed,
    Terminator,
    encode_no_read,
    encode_read,
    encode_response,
)
from sim.cli import serve_until_stopped
from sim.tcp_server import ThreadedTcpServer

__all__ = [
    "DEMO_GTIN",
    "DemoEmitter",
    "Mode",
    "ReaderModel",
    "TcpScannerSimulator",
    "demo_codes",
    "framing_arguments",
    "framing_from",
    "gtin_check_digit",
    "iter_demo_codes",
    "main",
]

Mode = Literal["free", "triggered"]

DEMO_GTIN = "04607012345677"
"""A GTIN-14 with a valid check digit, for demo and test codes."""

_JOIN_TIMEOUT_S = 5.0
_DEMO_PERIOD_S = 1.0
_SERIAL_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SERIAL_LENGTH = 13
# Coprime with 62**13, so index -> serial is a bijection: unique, but not visibly sequential.
_SERIAL_STRIDE = 0x9E3779B97F4A7C15F39CC0605CEDC835
_CRYPTO_AIS = ("91", "92", "93")


def gtin_check_digit(body: str) -> str:
    """The GS1 mod-10 check digit of a GTIN without its last digit."""
    if not body.isdigit():
        raise ValueError(f"a GTIN is digits, got {body!r}")
    total = sum(int(digit) * (3 if i % 2 == 0 else 1) for i, digit in enumerate(reversed(body)))
    return str(-total % 10)


def iter_demo_codes(
    gtin: str = DEMO_GTIN, *, start: int = 1, crypto_ais: Iterable[str] = ("93",)
) -> Iterator[bytes]:
    """Endless GS1 DataMatrix codes for gtin with unique serials; see demo_codes."""
    ais = tuple(crypto_ais)
    if any(ai not in _CRYPTO_AIS for ai in ais):
        raise ValueError(f"crypto_ais must be among {_CRYPTO_AIS}, got {ais}")
    # Checked here, not on the first next(), so a bad argument fails where it is given.
    return _codes(_gtin14(gtin), start, ais)


def _codes(gtin: str, start: int, ais: tuple[str, ...]) -> Iterator[bytes]:
    for index in itertools.count(start):
        serial = _serial(index)
        digest = hashlib.sha256(f"{gtin}{serial}".encode("ascii")).digest()
        tail = base64.b64encode(digest).decode("ascii")
        values = {"91": tail[-8:-4], "92": tail, "93": tail[:4]}
        element = f"01{gtin}21{serial}" + "".join(f"{chr(GS)}{ai}{values[ai]}" for ai in ais)
        yield b"]d2" + element.encode("ascii")


def demo_codes(
    n: int, gtin: str = DEMO_GTIN, *, start: int = 1, crypto_ais: Iterable[str] = ("93",)
) -> list[bytes]:
    """n GS1 DataMatrix codes as a reader sends them: `]d2`, AI 01, AI 21, crypto AIs.

    AI 01 carries gtin (13 digits get their check digit, 14 are checked), AI 21 a unique
    13-character serial per index from start, then each of crypto_ais after a GS: 93 a
    4-character crypto tail (dairy, water), 91 a 4-character key id and 92 a 44-character
    signature (the older form).
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    return list(itertools.islice(iter_demo_codes(gtin, start=start, crypto_ais=crypto_ais), n))


class ReaderModel:
    """What a simulated reader does apart from the wire: settings, queued codes, DMCC answers.

    Not thread-safe; a simulator calls it holding its own lock.
    """

    def __init__(
        self,
        *,
        mode: Mode = "free",
        framing: Framing | None = None,
        answer_no_read: bool = True,
        code_source: Iterator[bytes] | None = None,
        extended: bool = False,
        device_type: str = "DataMan 370 (simulated)",
    ) -> None:
        if mode not in ("free", "triggered"):
            raise ValueError(f"mode must be free or triggered, got {mode!r}")
        self.mode: Mode = mode
        self.framing = framing or Framing()
        self.answer_no_read = answer_no_read
        self._source = code_source
        self._queue: deque[bytes] = deque()
        self.triggers = 0
        self.commands: list[str] = []
        self.malformed = 0
        self.settings: dict[str, str] = {
            "COM.DMCC-RESPONSE": "1" if extended else "0",
            "DEVICE.TYPE": device_type,
            "DEVICE.NAME": "takt-sim",
            "DEVICE.FIRMWARE-VER": "6.1.16 (sim)",
            "DEVICE.SERIAL-NUMBER": "1A0000SIM001",
            "TRIGGER.TYPE": "1" if mode == "triggered" else "5",
        }

    @property
    def extended(self) -> bool:
        """True if the reader answers commands (COM.DMCC-RESPONSE not 0)."""
        return self.settings["COM.DMCC-RESPONSE"] != "0"

    @property
    def queued(self) -> int:
        """Codes waiting for a trigger."""
        return len(self._queue)

    def frame(self, code: bytes) -> bytes:
        """The wire form of code; ValueError if the framing cannot carry it."""
        return encode_read(code, self.framing)

    def queue(self, code: bytes) -> None:
        """Keep code for the next trigger (checked against the framing now)."""
        self.frame(code)
        self._queue.append(bytes(code))

    def handle(self, message: DmccCommand | Malformed) -> tuple[bytes, bytes]:
        """(answer to the sender, bytes for every client) for one command line."""
        if isinstance(message, Malformed):
            self.malformed += 1
            if message.reason == COMMAND_CHECKSUM_MISMATCH and self.extended:
                return encode_response(DmccStatus.CHECKSUM_INCORRECT), b""
            return b"", b""
        self.commands.append(message.text)
        # Answered in the mode in force when the command arrived, so switching a silent
        # reader to extended gets no answer, as on a real DataMan.
        extended = self.extended
        status, data, broadcast = self._run(message.words)
        if not extended:
            return b"", broadcast
        answer = encode_response(
            status, data, command_id=message.command_id, checksum=message.checksum
        )
        return answer, broadcast

    def _run(self, words: list[str]) -> tuple[int, bytes, bytes]:
        name = words[0]
        args = [word.upper() for word in words[1:]]
        if name == "TRIGGER" and args == ["ON"]:
            self.triggers += 1
            return DmccStatus.OK, b"", self._trigger_result()
        if name == "TRIGGER" and args == ["OFF"]:
            return DmccStatus.OK, b"", b""
        if name == "GET" and len(args) == 1:
            if args[0] not in self.settings:
                return DmccStatus.COMMAND_INVALID, b"", b""
            return DmccStatus.OK, self.settings[args[0]].encode("latin-1"), b""
        if name == "SET" and len(words) >= 3:
            return self._set(args[0], " ".join(words[2:])), b"", b""
        return DmccStatus.COMMAND_INVALID, b"", b""

    def _set(self, parameter: str, value: str) -> int:
        if parameter not in self.settings:
            return DmccStatus.COMMAND_INVALID
        if parameter == "COM.DMCC-RESPONSE":
            if value not in ("0", "1", "2"):
                return DmccStatus.PARAMETER_INVALID
        elif parameter == "TRIGGER.TYPE":
            if value not in ("0", "1", "2", "3", "4", "5"):
                return DmccStatus.PARAMETER_INVALID
        elif parameter == "DEVICE.NAME":
            if len(value) < 2 or not value.startswith('"') or not value.endswith('"'):
                return DmccStatus.PARAMETER_INVALID
            value = value[1:-1]
        else:
            return DmccStatus.PARAMETER_REJECTED  # read-only
        self.settings[parameter] = value
        return DmccStatus.OK

    def _trigger_result(self) -> bytes:
        if self.mode != "triggered":
            return b""
        if self._queue:
            return self.frame(self._queue.popleft())
        if self._source is not None:
            code = next(self._source, None)
            if code is not None:
                return self.frame(code)
        if self.answer_no_read and self.framing.no_read:
            return encode_no_read(self.framing)
        return b""


class TcpScannerSimulator(ThreadedTcpServer[CommandDecoder]):
    """A fixed-mount reader serving results and DMCC on a TCP port; settings survive restarts."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        mode: Mode = "free",
        framing: Framing | None = None,
        answer_no_read: bool = True,
        code_source: Iterator[bytes] | None = None,
        extended: bool = False,
    ) -> None:
        super().__init__(host, port, name="scanner-sim")
        # The model is guarded by the server's lock, which sends happen under too: a code and
        # its broadcast happen together, so every client sees codes in the same order.
        self._model = ReaderModel(
            mode=mode,
            framing=framing,
            answer_no_read=answer_no_read,
            code_source=code_source,
            extended=extended,
        )
        self.silent = False
        """While True the reader reads and discards everything and sends nothing (send_raw
        still sends): a reader whose firmware hangs with the link up."""
        self._ignored = 0

    @property
    def model(self) -> ReaderModel:
        """The reader's settings and counters; not locked, so for tests and checks."""
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
        """Lines from clients that were not DMCC commands, since construction."""
        with self._lock:
            return self._model.malformed

    def emit(self, code: bytes) -> None:
        """Free-running: send code to every client now. Triggered: queue it for a trigger.

        ValueError if the framing cannot carry code.
        """
        with self._lock:
            if self._model.mode == "triggered":
                self._model.queue(code)
                return
            wire = self._model.frame(code)
            if not self.silent:
                self._broadcast(wire)

    def send_raw(self, data: bytes) -> None:
        """Send data as it is to every client (garbage, partial frames)."""
        with self._lock:
            self._broadcast(bytes(data))

    @property
    def ignored(self) -> int:
        """Commands that arrived while silent and were dropped unanswered."""
        with self._lock:
            return self._ignored

    def drop_clients(self) -> None:
        """Close every client connection (the listener stays up): a reader that reboots."""
        self._drop_clients()

    # --- connections ---------------------------------------------------------------------

    def _on_connect(self, sock: socket.socket) -> CommandDecoder:
        return CommandDecoder()

    def _on_data(self, sock: socket.socket, state: CommandDecoder, data: bytes) -> bool:
        for message in state.feed(data):
            with self._lock:
                if self.silent:
                    self._ignored += 1
                    continue
                answer, broadcast = self._model.handle(message)
                if answer:
                    self._send(sock, answer)
                if broadcast:
                    self._broadcast(broadcast)
        return True


def _gtin14(gtin: str) -> str:
    if not gtin.isdigit() or len(gtin) not in (13, 14):
        raise ValueError(f"gtin must be 13 or 14 digits, got {gtin!r}")
    if len(gtin) == 13:
        return gtin + gtin_check_digit(gtin)
    if gtin_check_digit(gtin[:-1]) != gtin[-1]:
        raise ValueError(f"gtin {gtin} has a wrong check digit")
    return gtin


def _serial(index: int) -> str:
    space = len(_SERIAL_ALPHABET) ** _SERIAL_LENGTH
    value = index * _SERIAL_STRIDE % space
    chars = []
    for _ in range(_SERIAL_LENGTH):
        value, digit = divmod(value, len(_SERIAL_ALPHABET))
        chars.append(_SERIAL_ALPHABET[digit])
    return "".join(chars)


def framing_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the result-format options shared by the scanner simulators' command lines."""
    parser.add_argument(
        "--terminator", choices=[t.value for t in Terminator], default=Terminator.CRLF.value
    )
    parser.add_argument("--stx-etx", action="store_true", help="frame codes as STX code ETX")
    parser.add_argument("--triggered", action="store_true", help="send codes on TRIGGER ON")
    parser.add_argument("--extended", action="store_true", help="answer DMCC commands")
    parser.add_argument(
        "--demo", action="store_true", help="send a new GS1 code every second (or per trigger)"
    )


def framing_from(args: argparse.Namespace) -> Framing:
    """The Framing the shared command-line options ask for."""
    return Framing(terminator=Terminator(args.terminator), stx_etx=args.stx_etx)


class DemoEmitter:
    """Emits the next code every period_s on a daemon thread, from start() until stop()."""

    def __init__(
        self,
        emit: Callable[[bytes], None],
        codes: Iterator[bytes],
        period_s: float = _DEMO_PERIOD_S,
    ) -> None:
        if period_s <= 0:
            raise ValueError("period_s must be > 0")
        self._emit = emit
        self._codes = codes
        self._period_s = period_s
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start emitting (the first code after one period)."""
        if self._thread is not None:
            raise RuntimeError("demo emitter already running")
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="scanner-demo", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop emitting; safe to call twice."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stopping.set()
            thread.join(_JOIN_TIMEOUT_S)

    def _run(self) -> None:
        while not self._stopping.wait(self._period_s):
            self._emit(next(self._codes))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulator as a process; prints `READY <port>` once listening."""
    parser = argparse.ArgumentParser(prog="python -m sim.scanner", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    framing_arguments(parser)
    args = parser.parse_args(argv)

    mode: Mode = "triggered" if args.triggered else "free"
    demo = iter_demo_codes() if args.demo else None
    sim = TcpScannerSimulator(
        args.host,
        args.port,
        mode=mode,
        framing=framing_from(args),
        code_source=demo if mode == "triggered" else None,
        extended=args.extended,
    )
    emitter = DemoEmitter(sim.emit, demo) if demo is not None and mode == "free" else None

    def stop() -> None:
        if emitter is not None:
            emitter.stop()
        sim.stop()

    return serve_until_stopped(
        sim.start, stop, program=emitter.start if emitter is not None else None
    )


if __name__ == "__main__":
    sys.exit(main())
