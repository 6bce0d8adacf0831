"""What every scanner transport shares: a reader thread, result callbacks, triggers and DMCC.

A transport (TCP, serial) only opens a `ByteStream`; `ScannerLink` reads it on its own
thread, decodes with the codec and hands results to the owner's callbacks. Requests
(`command`) send a line and wait for the reader thread to see their answer. Reconnecting is
the owner's decision (the supervisor's backoff), never done here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol

import msgspec

from drivers.errors import DeviceUnavailable, DriverError
from drivers.scanner.codec import (
    CodeRead,
    DmccResponse,
    DmccStatus,
    FrameDecoder,
    Framing,
    Malformed,
    NoRead,
    ScannerMessage,
    describe_malformed,
    encode_command,
)

__all__ = [
    "ByteStream",
    "CommandRefused",
    "CommandTimeout",
    "LinkStatistics",
    "ScannerLink",
]

_log = logging.getLogger(__name__)
# How long close() waits for the reader thread; it only runs callbacks, so this is ample.
_JOIN_TIMEOUT_S = 5.0
_MAX_COMMAND_ID = 65535


class CommandRefused(DriverError):
    """The reader answered a DMCC command with an error status; the link itself is fine."""

    def __init__(self, message: str, response: DmccResponse) -> None:
        super().__init__(message)
        self.response = response


class CommandTimeout(DriverError):
    """No answer to a DMCC command in time; reads still flow.

    A reader in the default silent response mode never answers: set it to extended mode
    (`SET COM.DMCC-RESPONSE 1`, sent with `send_command`) before using `command`.
    """


class LinkStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """Counters of the current (or last) connection."""

    connected: bool
    reads: int
    no_reads: int
    malformed: int
    answers: int
    lost_reason: str | None


class ByteStream(Protocol):
    """One open connection to a reader, as a transport provides it."""

    def read(self) -> bytes:
        """Block until bytes arrive; b"" when the peer has gone, OSError on a link error."""
        ...

    def write(self, data: bytes) -> None:
        """Send all of data; OSError if the link fails."""
        ...

    def interrupt(self) -> None:
        """Make a blocked read() return at once (it then returns b"" or raises)."""
        ...

    def close(self) -> None:
        """Release the connection; called once, after the reader thread has finished."""
        ...


class ScannerLink:
    """One barcode reader: codes, no-reads and DMCC answers in, triggers and commands out.

    Callbacks run on the reader thread: on_read(code) per code, on_no_read() per no-read,
    on_malformed(report) per input that decodes to neither, on_lost(reason) once per
    connection when the peer goes away or the link fails (never after close()).
    """

    def __init__(
        self,
        where: str,
        *,
        on_read: Callable[[bytes], None],
        on_malformed: Callable[[str], None],
        on_lost: Callable[[str], None],
        on_no_read: Callable[[], None] | None,
        framing: Framing | None,
        timeout_s: float,
        name: str,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be > 0")
        self._where = where
        self._on_read = on_read
        self._on_malformed = on_malformed
        self._on_lost = on_lost
        self._on_no_read = on_no_read
        self._framing = framing or Framing()
        self._timeout_s = timeout_s
        self._name = name
        self._cond = threading.Condition()
        self._command_lock = threading.Lock()
        self._send_lock = threading.Lock()
        # Guarded by _cond; each connection has its own _Connection, so a reader still
        # winding down an old connection cannot touch a new one.
        self._connection: _Connection | None = None
        self._next_id = 1

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._where})"

    @property
    def framing(self) -> Framing:
        """How this reader's results are framed."""
        return self._framing

    @property
    def connected(self) -> bool:
        """True from connect() until the link is lost or closed."""
        with self._cond:
            return self._connection is not None and self._connection.up

    def statistics(self) -> LinkStatistics:
        """Counts of the current or last connection."""
        with self._cond:
            conn = self._connection
            if conn is None:
                return LinkStatistics(
                    connected=False, reads=0, no_reads=0, malformed=0, answers=0, lost_reason=None
                )
            return LinkStatistics(
                connected=conn.up,
                reads=conn.reads,
                no_reads=conn.no_reads,
                malformed=conn.malformed,
                answers=conn.answers,
                lost_reason=conn.lost_reason,
            )

    def connect(self) -> None:
        """Open the link and start the reader thread; DeviceUnavailable says why it failed.

        After the link was lost or closed, connect() opens a new one.
        """
        with self._cond:
            if self._connection is not None and self._connection.up:
                raise RuntimeError(f"{self._where}: already connected")
            old, self._connection = self._connection, None
        if old is not None:
            self._finish(old)
        conn = _Connection(self._open())
        conn.reader = threading.Thread(
            target=self._read, args=(conn,), name=f"{self._name}-reader", daemon=True
        )
        with self._cond:
            self._connection = conn
        conn.reader.start()

    def close(self) -> None:
        """Close the link and join the reader; on_lost is not called. Safe to repeat."""
        with self._cond:
            conn = self._connection
            if conn is None or conn.closed:
                return
            conn.closed = True
            self._cond.notify_all()
        conn.stream.interrupt()
        self._finish(conn)

    def trigger(self) -> None:
        """Start a read (`TRIGGER ON`); the code or no-read arrives through the callbacks.

        The read ends when the reader decodes a code, at the reader's own trigger timeout
        (configured on the reader) or at trigger_off(); Takt relies on the reader's timeout
        and never needs to send TRIGGER OFF for a single-shot read. The command carries a
        command id, so its extended-mode acknowledgement is never taken for the answer of
        a concurrent command().
        """
        self.send_command("TRIGGER ON")

    def trigger_off(self) -> None:
        """End a read in progress (`TRIGGER OFF`); a reader with nothing decoded sends a no-read."""
        self.send_command("TRIGGER OFF")

    def send_command(self, text: str) -> None:
        """Send a DMCC command without waiting for an answer (for readers in silent mode)."""
        with self._cond:
            conn = self._require_connection()
            command_id = self._allocate_id()
        self._send(conn, encode_command(text, command_id=command_id))

    def command(self, text: str, timeout_s: float | None = None) -> DmccResponse:
        """Send a DMCC command and return the reader's answer (status 0).

        Raises CommandRefused for an error status, CommandTimeout if no answer comes in time
        (the reader must be in extended response mode), DeviceUnavailable if the link is
        down or goes down, ValueError for text that is not a DMCC command. One command is
        in flight at a time; answers are matched by command id, and an answer without one
        (firmware that does not echo it) is taken as the answer to the pending command.
        """
        timeout = self._timeout_s if timeout_s is None else timeout_s
        with self._command_lock:
            with self._cond:
                conn = self._require_connection()
                command_id = self._allocate_id()
            wire = encode_command(text, command_id=command_id)
            with self._cond:
                conn.pending_id, conn.answer = command_id, None
            try:
                self._send(conn, wire)
                with self._cond:
                    self._cond.wait_for(lambda: conn.answer is not None or not conn.up, timeout)
                    answer = conn.answer
                    if answer is None:
                        if conn.closed:
                            raise DeviceUnavailable(f"{self._where}: closed while waiting")
                        if conn.lost_reason is not None:
                            raise DeviceUnavailable(f"{self._where}: link lost: {conn.lost_reason}")
                        raise CommandTimeout(
                            f"{self._where}: no answer to {text!r} within {timeout} s "
                            "(is the reader in extended response mode?)"
                        )
            finally:
                with self._cond:
                    conn.pending_id, conn.answer = None, None
        if answer.status != DmccStatus.OK:
            raise CommandRefused(
                f"{self._where}: {text!r} refused: {answer.status_name} {answer.text!r}".rstrip(),
                answer,
            )
        return answer

    # --- for transports ------------------------------------------------------------------

    def _open(self) -> ByteStream:
        """Open the connection; raise DeviceUnavailable with the reason if it cannot."""
        raise NotImplementedError

    # --- requests ------------------------------------------------------------------------

    def _allocate_id(self) -> int:
        # Called holding _cond.
        command_id = self._next_id
        self._next_id = command_id % _MAX_COMMAND_ID + 1
        return command_id

    def _require_connection(self) -> _Connection:
        conn = self._connection
        if conn is None or conn.closed:
            raise DeviceUnavailable(f"{self._where}: not connected")
        if conn.lost_reason is not None:
            raise DeviceUnavailable(f"{self._where}: link lost: {conn.lost_reason}")
        return conn

    def _send(self, conn: _Connection, data: bytes) -> None:
        try:
            with self._send_lock:
                conn.stream.write(data)
        except OSError as exc:
            # A partial command may be on the wire; the stream is unusable after that.
            reason = f"send failed: {exc}"
            with self._cond:
                if conn.lost_reason is None and not conn.closed:
                    conn.lost_reason = reason
                self._cond.notify_all()
            conn.stream.interrupt()
            raise DeviceUnavailable(f"{self._where}: {reason}") from exc

    # --- reader thread -------------------------------------------------------------------

    def _read(self, conn: _Connection) -> None:
        decoder = FrameDecoder(self._framing)
        reason = "connection closed by the reader"
        while True:
            try:
                data = conn.stream.read()
            except OSError as exc:
                reason = f"connection error: {exc}"
                break
            if not data:
                break
            for message in decoder.feed(data):
                self._dispatch(conn, message)
        with self._cond:
            if conn.closed:
                return
            if conn.lost_reason is None:
                conn.lost_reason = reason
            reason = conn.lost_reason
            self._cond.notify_all()
        _log.info("%s: link lost: %s", self._where, reason)
        self._call(self._on_lost, reason)

    def _dispatch(self, conn: _Connection, message: ScannerMessage) -> None:
        if isinstance(message, CodeRead):
            with self._cond:
                conn.reads += 1
            self._call(self._on_read, message.data)
        elif isinstance(message, NoRead):
            with self._cond:
                conn.no_reads += 1
            if self._on_no_read is not None:
                self._call(self._on_no_read)
        elif isinstance(message, DmccResponse):
            with self._cond:
                conn.answers += 1
                # Anything else is an acknowledgement nobody waits for (a trigger's, or one
                # that came after its command timed out).
                if (
                    conn.pending_id is not None
                    and conn.answer is None
                    and message.command_id in (conn.pending_id, None)
                ):
                    conn.answer = message
                    self._cond.notify_all()
        else:
            self._malformed(conn, message)

    def _malformed(self, conn: _Connection, message: Malformed) -> None:
        with self._cond:
            conn.malformed += 1
            count = conn.malformed
        report = f"{self._where}: malformed input #{count}: {describe_malformed(message)}"
        _log.debug("%s", report)
        self._call(self._on_malformed, report)

    def _call(self, callback: Callable[..., None], *args: object) -> None:
        # A failing callback is the owner's bug; it must not kill the link for everyone.
        try:
            callback(*args)
        except Exception:
            _log.exception("%s: callback %r failed", self._where, callback)

    def _finish(self, conn: _Connection) -> None:
        if conn.reader is not None and conn.reader is not threading.current_thread():
            conn.reader.join(_JOIN_TIMEOUT_S)
        with self._cond:
            if conn.released:
                return
            conn.released = True
        conn.stream.close()


class _Connection:
    """One open stream and its counters; guarded by the link's condition."""

    def __init__(self, stream: ByteStream) -> None:
        self.stream = stream
        self.reader: threading.Thread | None = None
        self.closed = False
        self.released = False
        self.lost_reason: str | None = None
        self.pending_id: int | None = None
        self.answer: DmccResponse | None = None
        self.reads = 0
        self.no_reads = 0
        self.malformed = 0
        self.answers = 0

    @property
    def up(self) -> bool:
        return not self.closed and self.lost_reason is None
