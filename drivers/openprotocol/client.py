"""Blocking Open Protocol link to one torque controller: session, commands, results, keep-alive.

A reader thread decodes every frame, acknowledges tightening results (MID 0062) and hands
them to the owner's callback, answers pending commands, sends keep-alives (MID 9999) when
the link is idle and declares the link lost when the controller falls silent. Commands run
one at a time. Reconnecting is the owner's decision (the supervisor's backoff), never done here.
"""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
from collections.abc import Callable

import msgspec

from drivers.errors import DeviceUnavailable, DriverError
from drivers.openprotocol.codec import Frame, FrameDecoder, FrameError, Malformed, StreamEvent
from drivers.openprotocol.mids import (
    START_ACK_REVISIONS,
    CommandAccepted,
    CommandError,
    CommunicationStart,
    CommunicationStartAck,
    CommunicationStop,
    DisableTool,
    EnableTool,
    ErrorCode,
    KeepAlive,
    Message,
    Mid,
    ResultAck,
    ResultSubscribe,
    ResultUnsubscribe,
    SelectParameterSet,
    TighteningResult,
    batch_size_command,
    decode_message,
    encode_message,
    error_name,
    to_frame,
)

__all__ = ["CommandRejected", "LinkStatistics", "OpenProtocolLink"]

_log = logging.getLogger(__name__)
_RECV_BYTES = 65536
# How long close() waits for the reader thread; it only runs callbacks, so this is ample.
_JOIN_TIMEOUT_S = 5.0
# Upper bound of one reader wait, so a changed deadline is never missed by long.
_MAX_WAIT_S = 0.5


class CommandRejected(DriverError):
    """The controller answered a command with MID 0004; the link itself is fine."""

    def __init__(self, text: str, *, mid: int, error: int) -> None:
        super().__init__(text)
        self.mid = mid
        self.error = error
        self.error_name = error_name(error)


class LinkStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """State of the current (or last) session and counters since the link was created."""

    connected: bool
    revision: int | None
    results: int
    malformed: int
    dropped_bytes: int
    unexpected: int
    keepalives_sent: int
    lost_reason: str | None


def _ignore(*_args: object) -> None:
    return None


class OpenProtocolLink:
    """Client for one torque controller speaking Open Protocol over TCP (port 4545).

    Callbacks run on the reader thread and must not call back into the link's commands:
    on_result(result) per MID 0061 (already acknowledged), on_malformed(reason) per frame
    that does not decode, on_lost(reason) once per session when the controller closes, the
    link errors, falls silent or a command times out (never after close()).
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        name: str = "wrench",
        timeout_s: float = 2.0,
        keepalive_s: float = 10.0,
        silence_timeout_s: float | None = None,
        max_revision: int = max(START_ACK_REVISIONS),
        on_result: Callable[[TighteningResult], None] = _ignore,
        on_lost: Callable[[str], None] = _ignore,
        on_malformed: Callable[[str], None] = _ignore,
    ) -> None:
        if timeout_s <= 0 or keepalive_s <= 0:
            raise ValueError("timeout_s and keepalive_s must be > 0")
        if silence_timeout_s is not None and silence_timeout_s <= 0:
            raise ValueError("silence_timeout_s must be > 0")
        if max_revision not in START_ACK_REVISIONS:
            raise ValueError(f"max_revision must be one of {START_ACK_REVISIONS}")
        self._host = host
        self._port = port
        self._name = name
        self._where = f"{name} {host}:{port}"
        self._timeout_s = timeout_s
        self._keepalive_s = keepalive_s
        # The controller mirrors every keep-alive, so two missed echoes mean it is gone.
        self._silence_s = 2 * keepalive_s if silence_timeout_s is None else silence_timeout_s
        self._max_revision = max_revision
        self._on_result = on_result
        self._on_lost = on_lost
        self._on_malformed = on_malformed
        self._cond = threading.Condition()
        self._request_lock = threading.Lock()
        self._send_lock = threading.Lock()
        # State below is guarded by _cond; each connection has its own _Session, so a reader
        # still winding down an old connection cannot touch a new one.
        self._session: _Session | None = None
        self._results = 0
        self._malformed = 0
        self._dropped = 0
        self._unexpected = 0
        self._keepalives = 0

    def __repr__(self) -> str:
        return f"OpenProtocolLink({self._where})"

    @property
    def connected(self) -> bool:
        """True from a successful connect() until the link is lost or closed."""
        with self._cond:
            return self._session is not None and self._session.up and self._session.started

    @property
    def info(self) -> CommunicationStartAck | None:
        """The controller's MID 0002 of the current or last session."""
        with self._cond:
            return None if self._session is None else self._session.info

    @property
    def malformed(self) -> int:
        """Frames or stretches of bytes that did not decode, since the link was created."""
        with self._cond:
            return self._malformed

    def statistics(self) -> LinkStatistics:
        """Session state and counters."""
        with self._cond:
            session = self._session
            return LinkStatistics(
                connected=session is not None and session.up and session.started,
                revision=None if session is None or session.info is None else session.info.revision,
                results=self._results,
                malformed=self._malformed,
                dropped_bytes=self._dropped,
                unexpected=self._unexpected,
                keepalives_sent=self._keepalives,
                lost_reason=None if session is None else session.lost_reason,
            )

    # --- session ---------------------------------------------------------------------------

    def connect(self) -> CommunicationStartAck:
        """Open the connection and start a session (MID 0001); returns the controller's MID 0002.

        Asks for the highest MID 0002 revision first and steps down on error 97. Raises
        DeviceUnavailable if the controller cannot be reached or does not answer, and
        CommandRejected if it refuses the session (error 96: another client is connected).
        """
        with self._cond:
            if self._session is not None and self._session.up:
                raise RuntimeError(f"{self._where}: already connected")
            old, self._session = self._session, None
        if old is not None:
            self._finish(old)
        try:
            sock = socket.create_connection((self._host, self._port), timeout=self._timeout_s)
        except OSError as exc:
            raise DeviceUnavailable(f"{self._where}: cannot connect: {exc}") from exc
        # Small frames: send each at once rather than wait for Nagle to batch them.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        session = _Session(sock)
        session.reader = threading.Thread(
            target=self._read, args=(session,), name=f"{self._name}-reader", daemon=True
        )
        with self._cond:
            self._session = session
        session.reader.start()
        try:
            ack = self._negotiate(session)
        except BaseException:
            self._close(session)
            raise
        with self._cond:
            # Decided under the lock the reader ends under: either the reader sees a started
            # session (and reports its loss), or connect() sees the loss and raises.
            up, why = session.up, session.why_down()
            if up:
                session.info = ack
                session.started = True
        if not up:
            self._close(session)
            raise DeviceUnavailable(f"{self._where}: {why}")
        _log.info("%s: session started (MID 0002 revision %d)", self._where, ack.revision)
        return ack

    def _negotiate(self, session: _Session) -> CommunicationStartAck:
        for revision in range(self._max_revision, 0, -1):
            try:
                answer = self._request(session, CommunicationStart(revision=revision))
            except CommandRejected as exc:
                if exc.error == ErrorCode.REVISION_UNSUPPORTED and revision > 1:
                    continue
                raise
            if not isinstance(answer, CommunicationStartAck):
                raise DeviceUnavailable(f"{self._where}: MID 0001 answered with {answer!r}")
            return answer
        raise AssertionError("unreachable: revision 1 either answers or raises")

    def stop(self) -> None:
        """End the session politely (MID 0003), then close the connection in any case."""
        try:
            with self._cond:
                session = self._require_session()
                # Some controllers close the connection right after accepting MID 0003;
                # that end is expected, not a loss.
                session.stopping = True
            self._request(session, CommunicationStop())
        finally:
            self.close()

    def close(self) -> None:
        """Close the connection and join the reader; on_lost is not called. Safe to repeat."""
        with self._cond:
            session = self._session
        if session is not None:
            self._close(session)

    # --- commands --------------------------------------------------------------------------

    def select_pset(self, pset: int) -> None:
        """Select parameter set pset (MID 0018); CommandRejected (error 02) if it does not exist."""
        self._command(SelectParameterSet(pset=pset))

    def set_batch_size(self, pset: int, size: int) -> None:
        """Set pset's batch size (MID 0019; the controller restarts its batch counter).

        Sent as revision 1 when size fits 2 digits, else revision 2 (4 digits). ValueError if
        pset or size does not fit (nothing is sent); CommandRejected if refused: 02 unknown
        pset, 01 a size the controller does not take, 97 no revision 2, 99 no MID 0019 at all.
        """
        self._command(batch_size_command(pset, size))

    def enable_tool(self) -> None:
        """Let the tool run (MID 0043)."""
        self._command(EnableTool())

    def disable_tool(self) -> None:
        """Stop the tool from running (MID 0042)."""
        self._command(DisableTool())

    def subscribe_results(self) -> None:
        """Have every tightening result sent (MID 0060); they arrive through on_result."""
        self._command(ResultSubscribe())

    def unsubscribe_results(self) -> None:
        """Stop tightening results (MID 0063)."""
        self._command(ResultUnsubscribe())

    def _command(self, message: Message) -> None:
        with self._cond:
            session = self._require_session()
        self._request(session, message)

    def _request(self, session: _Session, message: Message) -> Message:
        """Send message and return its answer; one request in flight at a time."""
        if threading.current_thread() is session.reader:
            raise RuntimeError(f"{self._where}: commands cannot be sent from a link callback")
        mid = to_frame(message).mid
        with self._request_lock:
            pending = _Pending(mid)
            with self._cond:
                if not session.up:
                    raise DeviceUnavailable(f"{self._where}: {session.why_down()}")
                session.pending = pending
            try:
                self._send(session, message)
                with self._cond:
                    self._cond.wait_for(
                        lambda: pending.answer is not None or not session.up, self._timeout_s
                    )
                    answer = pending.answer
                    if answer is None:
                        if session.up:
                            why = f"no answer to MID {mid:04d} within {self._timeout_s} s"
                            self._drop(session, why)
                        raise DeviceUnavailable(f"{self._where}: {session.why_down()}")
            finally:
                with self._cond:
                    session.pending = None
        if isinstance(answer, CommandError):
            raise CommandRejected(
                f"{self._where}: MID {mid:04d} refused: error {answer.error:02d} "
                f"({answer.error_name})",
                mid=mid,
                error=answer.error,
            )
        return answer

    def _require_session(self) -> _Session:
        session = self._session
        if session is None or not session.started:
            raise DeviceUnavailable(f"{self._where}: not connected")
        if not session.up:
            raise DeviceUnavailable(f"{self._where}: {session.why_down()}")
        return session

    def _send(self, session: _Session, message: Message) -> None:
        data = encode_message(message)
        try:
            with self._send_lock:
                session.sock.sendall(data)
                session.last_sent = time.monotonic()
        except OSError as exc:
            # A partial frame may be on the wire; the stream is unusable after that.
            reason = f"send failed: {exc}"
            with self._cond:
                self._drop(session, reason)
            raise DeviceUnavailable(f"{self._where}: {reason}") from exc

    def _drop(self, session: _Session, reason: str) -> None:
        # Called holding _cond. The first reason wins; the reader reports it via on_lost.
        if session.lost_reason is None and not session.closed:
            session.lost_reason = reason
        self._cond.notify_all()
        _shutdown(session.sock)

    def _close(self, session: _Session) -> None:
        with self._cond:
            session.closed = True
            self._cond.notify_all()
        _shutdown(session.sock)
        self._finish(session)

    def _finish(self, session: _Session) -> None:
        reader = session.reader
        if reader is not None and reader is not threading.current_thread() and reader.is_alive():
            reader.join(_JOIN_TIMEOUT_S)
        session.sock.close()

    # --- reader thread ---------------------------------------------------------------------

    def _read(self, session: _Session) -> None:
        decoder = FrameDecoder()
        reason = "connection closed by the controller"
        while True:
            with self._cond:
                if not session.up:
                    break
                deadline = session.last_received + self._silence_s
                if session.started:
                    deadline = min(deadline, session.last_sent + self._keepalive_s)
                    longest = _MAX_WAIT_S
                else:
                    # Nothing wakes this wait when connect() starts the session; look often
                    # so the first keep-alive is not late.
                    longest = min(_MAX_WAIT_S, self._keepalive_s / 10)
            wait = min(max(deadline - time.monotonic(), 0.0), longest)
            try:
                readable, _, _ = select.select([session.sock], [], [], wait)
                data = session.sock.recv(_RECV_BYTES) if readable else None
            except (OSError, ValueError) as exc:
                reason = f"connection error: {exc}"
                break
            if data is not None:
                if not data:
                    break
                session.last_received = time.monotonic()
                events = decoder.feed(data)
                with self._cond:
                    self._dropped += decoder.dropped_bytes - session.dropped_seen
                    session.dropped_seen = decoder.dropped_bytes
                for event in events:
                    self._dispatch(session, event)
            self._keep_alive(session)
        with self._cond:
            if session.closed:
                return
            if session.lost_reason is None:
                session.lost_reason = reason
            reason = session.lost_reason
            self._cond.notify_all()
            if not session.started or session.stopping:
                return  # connect() or stop() is waiting and reports the end itself
        _shutdown(session.sock)
        _log.info("%s: link lost: %s", self._where, reason)
        self._call(self._on_lost, reason)

    def _keep_alive(self, session: _Session) -> None:
        now = time.monotonic()
        with self._cond:
            if not session.up:
                return
            if now - session.last_received > self._silence_s:
                self._drop(session, f"nothing received from the controller for {self._silence_s} s")
                return
            due = session.started and now - session.last_sent >= self._keepalive_s
        if due:
            try:
                self._send(session, KeepAlive())
            except DeviceUnavailable:
                return  # the session is dropped; the loop ends on its next turn
            with self._cond:
                self._keepalives += 1

    def _dispatch(self, session: _Session, event: StreamEvent) -> None:
        if isinstance(event, Malformed):
            self._report_malformed(event.reason, event.excerpt)
            return
        try:
            message = decode_message(event)
        except FrameError as exc:
            if event.mid == Mid.TIGHTENING_RESULT:
                # The controller holds further results until this one is acknowledged,
                # whether or not Takt could read it.
                self._ack_result(session)
            self._report_malformed(str(exc), _excerpt(event))
            return
        if isinstance(message, TighteningResult):
            self._ack_result(session)
            with self._cond:
                self._results += 1
            self._call(self._on_result, message)
        elif isinstance(message, CommandAccepted | CommandError | CommunicationStartAck):
            self._answer(session, message)
        elif not isinstance(message, KeepAlive):
            self._unexpected(f"{type(message).__name__} MID {event.mid:04d}")

    def _answer(self, session: _Session, message: Message) -> None:
        answers: int
        if isinstance(message, CommunicationStartAck):
            answers = Mid.COMMUNICATION_START
        else:
            assert isinstance(message, CommandAccepted | CommandError)
            answers = message.mid
        with self._cond:
            pending = session.pending
            if pending is not None and pending.mid == answers and pending.answer is None:
                pending.answer = message
                self._cond.notify_all()
                return
        self._unexpected(f"{message!r} with no command of MID {answers:04d} pending")

    def _ack_result(self, session: _Session) -> None:
        try:
            self._send(session, ResultAck())
        except DeviceUnavailable:
            pass  # the session is dropped; on_lost follows

    def _unexpected(self, what: str) -> None:
        with self._cond:
            self._unexpected += 1
        _log.debug("%s: ignored unexpected %s", self._where, what)

    def _report_malformed(self, reason: str, excerpt: str) -> None:
        with self._cond:
            self._malformed += 1
            count = self._malformed
        report = f"{self._where}: malformed frame #{count}: {reason}: {excerpt!r}"
        _log.warning("%s", report)
        self._call(self._on_malformed, report)

    def _call(self, callback: Callable[..., None], *args: object) -> None:
        # A failing callback is the owner's bug; it must not kill the link for everyone.
        try:
            callback(*args)
        except Exception:
            _log.exception("%s: callback %r failed", self._where, callback)


class _Pending:
    """The one command waiting for its answer; guarded by the link's condition."""

    def __init__(self, mid: int) -> None:
        self.mid = mid
        self.answer: Message | None = None


class _Session:
    """One TCP connection, its session state and timers; guarded by the link's condition."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader: threading.Thread | None = None
        self.closed = False
        self.stopping = False
        self.started = False
        self.lost_reason: str | None = None
        self.info: CommunicationStartAck | None = None
        self.pending: _Pending | None = None
        now = time.monotonic()
        self.last_sent = now
        self.last_received = now
        self.dropped_seen = 0

    @property
    def up(self) -> bool:
        return not self.closed and self.lost_reason is None

    def why_down(self) -> str:
        if self.closed:
            return "link closed"
        return f"link lost: {self.lost_reason}"


def _excerpt(frame: Frame) -> str:
    text = frame.data[:40].decode("ascii", "backslashreplace")
    return f"MID {frame.mid:04d} rev {frame.revision}: {text}"


def _shutdown(sock: socket.socket) -> None:
    # shutdown (not close) wakes a select/recv blocked in the reader thread at once.
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already disconnected
