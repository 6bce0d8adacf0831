"""Two linked pseudo-terminals, like `socat pty,raw,echo=0 pty,raw,echo=0`, in pure Python.

A serial client opens `a_path`, a serial device simulator opens `b_path`, and a relay thread
copies bytes between them, so tests exercise real serial framing without hardware. Tests can
also put faults on the line: raw bytes injected into one direction, or the next relayed chunk
rewritten (glued to garbage, corrupted, dropped).
"""

from __future__ import annotations

import errno
import os
import select
import threading
import tty
from collections import deque
from collections.abc import Callable
from typing import Self

import msgspec

__all__ = ["PtyPair", "PtyPairStatistics", "Tamper"]

Tamper = Callable[[bytes], bytes]
"""Rewrites one relayed chunk; returning b"" drops it."""

_CHUNK = 4096
_JOIN_TIMEOUT_S = 5.0


class PtyPairStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """Bytes relayed toward each end, and bytes lost because that end's input was full."""

    relayed_to_a: int
    relayed_to_b: int
    dropped_to_a: int
    dropped_to_b: int


class _End:
    """One pty: the master the relay uses, the slave kept open so the device path stays up."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        try:
            self.path = os.ttyname(self.slave)
            # Raw, no echo, so every byte value crosses unchanged (no ^C, no CR/LF mapping);
            # a client reconfigures the line when it opens the path anyway.
            tty.setraw(self.slave)
            # Never block the relay on a full peer: a line with nobody reading loses bytes.
            os.set_blocking(self.master, False)
        except BaseException:
            self.close()
            raise
        self.tampers: deque[Tamper] = deque()
        self.write_lock = threading.Lock()
        self.relayed = 0
        self.dropped = 0

    def deliver(self, data: bytes) -> None:
        """Write data so it appears as input on this end's device path."""
        with self.write_lock:
            sent = 0
            try:
                sent = os.write(self.master, data) if data else 0
            except BlockingIOError:
                pass
            self.relayed += sent
            self.dropped += len(data) - sent

    def close(self) -> None:
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass


class PtyPair:
    """Two raw pseudo-terminals joined back to back by a relay thread; restartable."""

    def __init__(self) -> None:
        self._a: _End | None = None
        self._b: _End | None = None
        self._wake_r = self._wake_w = -1
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    @property
    def a_path(self) -> str:
        """Device path of end A (bytes written here come out at B)."""
        return self._ends()[0].path

    @property
    def b_path(self) -> str:
        """Device path of end B (bytes written here come out at A)."""
        return self._ends()[1].path

    @property
    def running(self) -> bool:
        """True between start() and stop()."""
        return self._thread is not None

    def start(self) -> Self:
        """Create both ptys and start relaying; new device paths on every start."""
        if self._thread is not None:
            raise RuntimeError("pty pair already running")
        self._a = _End()
        try:
            self._b = _End()
            self._wake_r, self._wake_w = os.pipe()
        except BaseException:
            self._close_fds()
            raise
        self._stopping.clear()
        self._thread = threading.Thread(target=self._relay, name="pty-pair-relay", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the relay and close every descriptor; the device paths go away. Idempotent."""
        thread = self._thread
        if thread is None:
            return
        self._stopping.set()
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass
        thread.join(_JOIN_TIMEOUT_S)
        self._thread = None
        self._close_fds()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def inject_to_a(self, data: bytes) -> None:
        """Put raw bytes on the line toward A, as if B had sent them."""
        self._ends()[0].deliver(bytes(data))

    def inject_to_b(self, data: bytes) -> None:
        """Put raw bytes on the line toward B, as if A had sent them."""
        self._ends()[1].deliver(bytes(data))

    def tamper_next_to_a(self, tamper: Tamper) -> None:
        """Pass the next chunk relayed toward A through tamper (one chunk per call, in order)."""
        self._ends()[0].tampers.append(tamper)

    def tamper_next_to_b(self, tamper: Tamper) -> None:
        """Pass the next chunk relayed toward B through tamper (one chunk per call, in order)."""
        self._ends()[1].tampers.append(tamper)

    def statistics(self) -> PtyPairStatistics:
        """Counters of the relay (including injected bytes)."""
        a, b = self._ends()
        # Under the write locks: a reader can see a byte before the relay has counted it,
        # and statistics taken right after reading it must include it.
        with a.write_lock, b.write_lock:
            return PtyPairStatistics(
                relayed_to_a=a.relayed,
                relayed_to_b=b.relayed,
                dropped_to_a=a.dropped,
                dropped_to_b=b.dropped,
            )

    def _ends(self) -> tuple[_End, _End]:
        if self._a is None or self._b is None or self._thread is None:
            raise RuntimeError("pty pair is not running")
        return self._a, self._b

    def _relay(self) -> None:
        a, b = self._a, self._b
        assert a is not None and b is not None
        poller = select.poll()
        route = {a.master: b, b.master: a}
        for fd in (a.master, b.master, self._wake_r):
            poller.register(fd, select.POLLIN)
        while not self._stopping.is_set():
            for fd, events in poller.poll():
                if fd == self._wake_r:
                    return
                if events & (select.POLLERR | select.POLLNVAL):
                    return
                try:
                    data = os.read(fd, _CHUNK)
                except BlockingIOError:
                    continue
                except OSError as exc:
                    # EIO: no slave is open any more; nothing left to relay.
                    if exc.errno == errno.EIO:
                        return
                    raise
                target = route[fd]
                if target.tampers:
                    data = target.tampers.popleft()(data)
                target.deliver(data)

    def _close_fds(self) -> None:
        for end in (self._a, self._b):
            if end is not None:
                end.close()
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._a = self._b = None
        self._wake_r = self._wake_w = -1
