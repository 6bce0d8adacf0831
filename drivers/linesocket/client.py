"""Blocking TCP_SOCKET client: one connection to a PLC, a reader thread, snapshot and write.

The reader thread decodes every line and hands updates to the owner's callbacks; requests
(`snapshot`, `write`) send a line and wait for the reader to see their answer. Reconnecting
is the owner's decision (the supervisor's backoff), never done here.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable

import msgspec

from drivers.errors import DeviceUnavailable, DriverError
from drivers.linesocket.codec import (
    SNAPSHOT_REQUEST,
    LineDecoder,
    Message,
    Refused,
    SnapshotEnd,
    SnapshotRequest,
    Update,
    encode_update,
)

__all__ = ["LineSocketClient", "LinkStatistics", "WriteRefused"]

_log = logging.getLogger(__name__)
_RECV_BYTES = 65536
# How long close() waits for the reader thread; it only runs callbacks, so this is ample.
_JOIN_TIMEOUT_S = 5.0


class WriteRefused(DriverError):
    """The PLC answered a write with `!name reason`; the link itself is fine."""


class LinkStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """Counters of the current (or last) connection."""

    connected: bool
    updates: int
    malformed: int
    lost_reason: str | None


class _Refusal(msgspec.Struct, frozen=True):
    reason: str


class LineSocketClient:
    """Client for one PLC speaking the TCP_SOCKET line protocol.

    Callbacks run on the reader thread: on_update(name, raw_text) per received value,
    on_malformed(reason) per line that is not protocol, on_lost(reason) once per connection
    when the peer closes, the link errors or a request times out (never after close()).
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        on_update: Callable[[str, str], None],
        on_lost: Callable[[str], None],
        on_malformed: Callable[[str], None],
        timeout_s: float = 1.0,
        name: str = "tcp",
    ) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be > 0")
        self._host = host
        self._port = port
        self._on_update = on_update
        self._on_lost = on_lost
        self._on_malformed = on_malformed
        self._timeout_s = timeout_s
        self._name = name
        self._where = f"{name} {host}:{port}"
        self._cond = threading.Condition()
        self._snapshot_lock = threading.Lock()
        self._write_lock = threading.Lock()
        # State below is guarded by _cond; each connection has its own _Link, so a reader
        # still winding down an old connection cannot touch a new one.
        self._link: _Link | None = None
        self._snapshot: dict[str, str] | None = None
        self._snapshot_done = False
        self._write_name: str | None = None
        self._write_answer: str | _Refusal | None = None

    def __repr__(self) -> str:
        return f"LineSocketClient({self._where})"

    @property
    def connected(self) -> bool:
        """True from connect() until the link is lost or closed."""
        with self._cond:
            return self._link is not None and self._link.up

    def statistics(self) -> LinkStatistics:
        """Update and malformed-line counts of the current or last connection."""
        with self._cond:
            link = self._link
            if link is None:
                return LinkStatistics(connected=False, updates=0, malformed=0, lost_reason=None)
            return LinkStatistics(
                connected=link.up,
                updates=link.updates,
                malformed=link.malformed,
                lost_reason=link.lost_reason,
            )

    def connect(self) -> None:
        """Open the connection and start the reader; DeviceUnavailable says why it failed.

        Call snapshot() next to learn every signal's current value. After the link was lost
        or closed, connect() opens a new one.
        """
        with self._cond:
            if self._link is not None and self._link.up:
                raise RuntimeError(f"{self._where}: already connected")
            old, self._link = self._link, None
        if old is not None:
            # Its reader has seen the end (or close() joined it); let it finish on_lost.
            if old.reader is not None and old.reader is not threading.current_thread():
                old.reader.join(_JOIN_TIMEOUT_S)
            old.sock.close()
        try:
            sock = socket.create_connection((self._host, self._port), timeout=self._timeout_s)
        except OSError as exc:
            raise DeviceUnavailable(f"{self._where}: cannot connect: {exc}") from exc
        # Small lines: send each at once rather than wait for Nagle to batch them.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        link = _Link(sock)
        link.reader = threading.Thread(
            target=self._read, args=(link,), name=f"{self._name}-reader", daemon=True
        )
        with self._cond:
            self._link = link
        link.reader.start()

    def close(self) -> None:
        """Close the connection and join the reader; on_lost is not called. Safe to repeat."""
        with self._cond:
            link = self._link
            if link is None:
                return
            link.closed = True
            self._cond.notify_all()
        _shutdown(link.sock)
        if link.reader is not None and link.reader is not threading.current_thread():
            link.reader.join(_JOIN_TIMEOUT_S)
        link.sock.close()

    def snapshot(self, timeout_s: float | None = None) -> dict[str, str]:
        """Ask for every signal (`?`) and return name -> raw text once the PLC sends `.`.

        The values also go to on_update. No answer in time means the PLC is not serving
        the link: the connection is dropped (on_lost follows) and DeviceUnavailable raised.
        """
        timeout = self._timeout_s if timeout_s is None else timeout_s
        with self._snapshot_lock:
            with self._cond:
                link = self._require_link()
                self._snapshot, self._snapshot_done = {}, False
            try:
                self._send(link, SNAPSHOT_REQUEST)
                with self._cond:
                    self._wait(link, lambda: self._snapshot_done, timeout, "end of snapshot")
                    return dict(self._snapshot or {})
            finally:
                with self._cond:
                    self._snapshot, self._snapshot_done = None, False

    def write(self, name: str, text: str, timeout_s: float | None = None) -> str:
        """Write raw value text to signal name; returns the text the PLC echoed.

        Raises WriteRefused if the PLC answers `!name reason`, DeviceUnavailable if it does
        not answer in time (the connection is then dropped), ValueError for a bad line.
        """
        line = encode_update(name, text)
        timeout = self._timeout_s if timeout_s is None else timeout_s
        # One write in flight: the echo names only the signal, so two writes to the same
        # name could not tell their answers apart.
        with self._write_lock:
            with self._cond:
                link = self._require_link()
                self._write_name, self._write_answer = name, None
            try:
                self._send(link, line)
                with self._cond:
                    self._wait(
                        link, lambda: self._write_answer is not None, timeout, f"echo of {name}"
                    )
                    answer = self._write_answer
            finally:
                with self._cond:
                    self._write_name, self._write_answer = None, None
        if isinstance(answer, _Refusal):
            raise WriteRefused(f"{self._where}: PLC refused {name}={text}: {answer.reason}")
        assert answer is not None
        return answer

    # --- requests ------------------------------------------------------------------------

    def _require_link(self) -> _Link:
        link = self._link
        if link is None or link.closed:
            raise DeviceUnavailable(f"{self._where}: not connected")
        if link.lost_reason is not None:
            raise DeviceUnavailable(f"{self._where}: link lost: {link.lost_reason}")
        return link

    def _send(self, link: _Link, data: bytes) -> None:
        try:
            link.sock.sendall(data)
        except OSError as exc:
            # A partial line may be on the wire; the stream is unusable after that.
            reason = f"send failed: {exc}"
            with self._cond:
                self._drop(link, reason)
            raise DeviceUnavailable(f"{self._where}: {reason}") from exc

    def _wait(self, link: _Link, answered: Callable[[], bool], timeout_s: float, what: str) -> None:
        # Called holding _cond; wakes on the answer, on link loss and on close().
        self._cond.wait_for(lambda: answered() or not link.up, timeout_s)
        if answered():
            return
        if link.closed:
            raise DeviceUnavailable(f"{self._where}: closed while waiting for the {what}")
        if link.lost_reason is not None:
            raise DeviceUnavailable(f"{self._where}: link lost: {link.lost_reason}")
        reason = f"no {what} within {timeout_s} s"
        self._drop(link, reason)
        raise DeviceUnavailable(f"{self._where}: {reason}")

    def _drop(self, link: _Link, reason: str) -> None:
        # Called holding _cond. The first reason wins; the reader reports it via on_lost.
        if link.lost_reason is None and not link.closed:
            link.lost_reason = reason
        self._cond.notify_all()
        _shutdown(link.sock)

    # --- reader thread -------------------------------------------------------------------

    def _read(self, link: _Link) -> None:
        decoder = LineDecoder()
        reason = "connection closed by the PLC"
        while True:
            try:
                data = link.sock.recv(_RECV_BYTES)
            except TimeoutError:
                continue  # the socket timeout bounds sends; an idle link is fine
            except OSError as exc:
                reason = f"connection error: {exc}"
                break
            if not data:
                break
            for message in decoder.feed(data):
                self._dispatch(link, message)
        with self._cond:
            if link.closed:
                return
            if link.lost_reason is None:
                link.lost_reason = reason
            reason = link.lost_reason
            self._cond.notify_all()
        _log.info("%s: link lost: %s", self._where, reason)
        self._call(self._on_lost, reason)

    def _dispatch(self, link: _Link, message: Message) -> None:
        if isinstance(message, Update):
            with self._cond:
                link.updates += 1
            # Deliver before waking a request, so a returned snapshot was seen by on_update.
            self._call(self._on_update, message.name, message.text)
            with self._cond:
                if link is self._link:
                    if self._snapshot is not None and not self._snapshot_done:
                        self._snapshot[message.name] = message.text
                    if message.name == self._write_name and self._write_answer is None:
                        self._write_answer = message.text
                    self._cond.notify_all()
        elif isinstance(message, SnapshotEnd):
            with self._cond:
                # A `.` nobody asked for is harmless: snapshots are idempotent.
                if link is self._link and self._snapshot is not None:
                    self._snapshot_done = True
                    self._cond.notify_all()
        elif isinstance(message, Refused):
            with self._cond:
                pending = (
                    link is self._link
                    and message.name == self._write_name
                    and self._write_answer is None
                )
                if pending:
                    self._write_answer = _Refusal(message.reason)
                    self._cond.notify_all()
            if not pending:
                self._malformed_line(
                    link, "refusal with no write pending", f"!{message.name} {message.reason}"
                )
        elif isinstance(message, SnapshotRequest):
            self._malformed_line(link, "snapshot request sent by the PLC", "?")
        else:
            self._malformed_line(link, message.reason, message.line)

    def _malformed_line(self, link: _Link, reason: str, line: str) -> None:
        with self._cond:
            link.malformed += 1
            count = link.malformed
        report = f"{self._where}: malformed line #{count}: {reason}: {line!r}"
        self._call(self._on_malformed, report)

    def _call(self, callback: Callable[..., None], *args: str) -> None:
        # A failing callback is the owner's bug; it must not kill the link for everyone.
        try:
            callback(*args)
        except Exception:
            _log.exception("%s: callback %r failed", self._where, callback)


class _Link:
    """One TCP connection and its counters; guarded by the client's condition."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader: threading.Thread | None = None
        self.closed = False
        self.lost_reason: str | None = None
        self.updates = 0
        self.malformed = 0

    @property
    def up(self) -> bool:
        return not self.closed and self.lost_reason is None


def _shutdown(sock: socket.socket) -> None:
    # shutdown (not close) wakes a recv blocked in the reader thread at once.
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already disconnected
