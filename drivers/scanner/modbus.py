"""Barcode reader over Modbus: the last result kept in registers, with a result counter.

Many fixed-mount readers with a Modbus TCP interface keep the last code in a block of
registers (two bytes per register), its length in another, and a counter that steps with
every new result. `ModbusScanner` polls the counter through any `ModbusTransport` and, when
it changes, reads the result; a counter that jumped by more than one means results were
missed between polls, which is counted. The register layout is the reader's; set it in
`ResultRegisters`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

import msgspec

from drivers.errors import DeviceUnavailable, ExceptionResponse, FrameError
from drivers.modbus.codec import MAX_READ_REGISTERS, RegisterKind
from drivers.modbus.transport import ModbusTransport

__all__ = [
    "ModbusScanner",
    "ModbusScannerStatistics",
    "ResultRegisters",
    "pack_code",
    "unpack_code",
]

_log = logging.getLogger(__name__)
_JOIN_TIMEOUT_S = 5.0
# Reads of a result split over several requests are retried this often when the counter
# moves under them, before the result is reported as torn.
_SNAPSHOT_ATTEMPTS = 3
_COUNTER_MODULUS = 0x10000


class ResultRegisters(msgspec.Struct, frozen=True, kw_only=True):
    """Where a reader keeps its last result: counter, byte length and code registers.

    The code fills data_registers registers from data, high byte first (low_byte_first for
    readers that swap). A length of 0 with a new counter is a no-read.
    """

    kind: RegisterKind = RegisterKind.HOLDING_REGISTER
    counter: int = 0
    length: int = 1
    data: int = 2
    data_registers: int = 64
    low_byte_first: bool = False

    def __post_init__(self) -> None:
        if RegisterKind(self.kind).is_bit:
            raise ValueError("result registers must be holding or input registers")
        if not 1 <= self.data_registers <= MAX_READ_REGISTERS:
            raise ValueError(f"data_registers must be 1..{MAX_READ_REGISTERS}")
        for name, address in (("counter", self.counter), ("length", self.length)):
            if not 0 <= address <= 0xFFFF:
                raise ValueError(f"{name} address must be 0..65535")
        if self.data < 0 or self.data + self.data_registers > 0x10000:
            raise ValueError("data block must lie within 0..65535")
        block = range(self.data, self.data + self.data_registers)
        if self.counter == self.length or self.counter in block or self.length in block:
            raise ValueError("counter, length and data registers must not overlap")

    @property
    def max_length(self) -> int:
        """Longest code the block holds, in bytes."""
        return 2 * self.data_registers

    @property
    def span(self) -> tuple[int, int]:
        """(first address, count) of the smallest read covering all three fields."""
        first = min(self.counter, self.length, self.data)
        last = max(self.counter, self.length, self.data + self.data_registers - 1)
        return first, last - first + 1


def pack_code(code: bytes, *, low_byte_first: bool = False) -> list[int]:
    """Register words holding code, two bytes each, the last padded with NUL."""
    padded = bytes(code) + b"\x00" * (len(code) % 2)
    order = "little" if low_byte_first else "big"
    return [int.from_bytes(padded[i : i + 2], order) for i in range(0, len(padded), 2)]


def unpack_code(words: Sequence[int], length: int, *, low_byte_first: bool = False) -> bytes:
    """The first length bytes held in words."""
    order = "little" if low_byte_first else "big"
    return b"".join(int(word).to_bytes(2, order) for word in words)[:length]


class ModbusScannerStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """Counters of the current (or last) connection."""

    connected: bool
    reads: int
    no_reads: int
    malformed: int
    missed: int
    lost_reason: str | None


class ModbusScanner:
    """Polls one reader's result registers; callbacks like the TCP and serial scanners.

    Callbacks run on the poll thread: on_read(code), on_no_read(), on_malformed(report) for
    a result that cannot be read (bad length, torn, undecodable answer), on_lost(reason)
    once when the transport fails or the device refuses the reads (a wrong register map).
    The result present at connect() is old and is not delivered.
    """

    def __init__(
        self,
        transport: ModbusTransport,
        *,
        on_read: Callable[[bytes], None],
        on_malformed: Callable[[str], None],
        on_lost: Callable[[str], None],
        on_no_read: Callable[[], None] | None = None,
        registers: ResultRegisters | None = None,
        poll_interval_s: float = 0.05,
        name: str = "scanner",
    ) -> None:
        if poll_interval_s <= 0:
            raise ValueError("poll_interval_s must be > 0")
        self._transport = transport
        self._on_read = on_read
        self._on_malformed = on_malformed
        self._on_lost = on_lost
        self._on_no_read = on_no_read
        self._registers = registers or ResultRegisters()
        self._interval_s = poll_interval_s
        self._name = name
        self._where = f"{name} {transport!r}"
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_counter = 0
        self._reads = self._no_reads = self._malformed = self._missed = 0
        self._lost_reason: str | None = None

    def __repr__(self) -> str:
        return f"ModbusScanner({self._where})"

    @property
    def connected(self) -> bool:
        """True from connect() until the link is lost or closed."""
        with self._lock:
            return self._thread is not None and self._lost_reason is None

    def statistics(self) -> ModbusScannerStatistics:
        """Counts of the current or last connection."""
        with self._lock:
            return ModbusScannerStatistics(
                connected=self._thread is not None and self._lost_reason is None,
                reads=self._reads,
                no_reads=self._no_reads,
                malformed=self._malformed,
                missed=self._missed,
                lost_reason=self._lost_reason,
            )

    def connect(self) -> None:
        """Connect, take the current counter as the baseline and start polling.

        DeviceUnavailable says why it failed (a refused read of the counter included).
        """
        if self._thread is not None:
            if self._thread.is_alive() and self._lost_reason is None:
                raise RuntimeError(f"{self._where}: already connected")
            self.close()
        self._transport.connect()
        try:
            counter = self._read_counter()
        except FrameError as exc:
            self._transport.close()
            raise DeviceUnavailable(
                f"{self._where}: cannot read the result counter: {exc}"
            ) from exc
        with self._lock:
            self._last_counter = counter
            self._reads = self._no_reads = self._malformed = self._missed = 0
            self._lost_reason = None
        self._stopping.clear()
        self._thread = threading.Thread(target=self._poll, name=f"{self._name}-poll", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop polling and close the transport; on_lost is not called. Safe to repeat."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stopping.set()
        if thread is not threading.current_thread():
            thread.join(_JOIN_TIMEOUT_S)
        self._transport.close()

    # --- poll thread -----------------------------------------------------------------------

    def _poll(self) -> None:
        while not self._stopping.wait(self._interval_s):
            try:
                self._poll_once()
            except ExceptionResponse as exc:
                self._lose(f"device refused the result registers: {exc}")
                return
            except FrameError as exc:
                self._report(f"undecodable answer: {exc}")
            except DeviceUnavailable as exc:
                self._lose(str(exc))
                return

    def _poll_once(self) -> None:
        counter = self._read_counter()
        if counter == self._last_counter:
            return
        snapshot = self._snapshot()
        if snapshot is None:
            self._report("result changed while it was read (torn result)")
            counter = self._read_counter()
            self._advance(counter)
            return
        counter, length, words = snapshot
        self._advance(counter)
        regs = self._registers
        if length > regs.max_length:
            self._report(f"result length {length} exceeds the {regs.max_length}-byte block")
        elif length == 0:
            with self._lock:
                self._no_reads += 1
            if self._on_no_read is not None:
                self._call(self._on_no_read)
        else:
            code = unpack_code(words, length, low_byte_first=regs.low_byte_first)
            with self._lock:
                self._reads += 1
            self._call(self._on_read, code)

    def _advance(self, counter: int) -> None:
        # Called on the poll thread only; the lock is for statistics() readers.
        with self._lock:
            skipped = (counter - self._last_counter) % _COUNTER_MODULUS - 1
            if skipped > 0:
                self._missed += skipped
                _log.warning("%s: %d results missed between polls", self._where, skipped)
            self._last_counter = counter

    def _snapshot(self) -> tuple[int, int, list[int]] | None:
        """(counter, length, data words) read consistently, or None if it kept changing."""
        regs = self._registers
        first, count = regs.span
        if count <= MAX_READ_REGISTERS:
            # One request: the device answers it from one moment, so it cannot be torn.
            words = self._read(first, count)
            data_at = regs.data - first
            data = words[data_at : data_at + regs.data_registers]
            return words[regs.counter - first], words[regs.length - first], data
        for _ in range(_SNAPSHOT_ATTEMPTS):
            before = self._read_counter()
            length = self._read(regs.length, 1)[0]
            data = self._read(regs.data, regs.data_registers)
            if self._read_counter() == before:
                return before, length, data
        return None

    def _read_counter(self) -> int:
        return self._read(self._registers.counter, 1)[0]

    def _read(self, address: int, count: int) -> list[int]:
        words = self._transport.read(self._registers.kind, address, count)
        return [int(word) for word in words]

    def _report(self, what: str) -> None:
        with self._lock:
            self._malformed += 1
            count = self._malformed
        report = f"{self._where}: malformed result #{count}: {what}"
        _log.debug("%s", report)
        self._call(self._on_malformed, report)

    def _lose(self, reason: str) -> None:
        with self._lock:
            if self._stopping.is_set():
                return  # close() raced the failure; close() is not a loss
            self._lost_reason = reason
        self._transport.close()
        _log.info("%s: link lost: %s", self._where, reason)
        self._call(self._on_lost, reason)

    def _call(self, callback: Callable[..., None], *args: object) -> None:
        # A failing callback is the owner's bug; it must not stop the polling.
        try:
            callback(*args)
        except Exception:
            _log.exception("%s: callback %r failed", self._where, callback)
