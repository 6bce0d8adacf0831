"""Blocking NUT client: one TCP connection to upsd (port 3493), one request at a time.

NUT is strictly request/answer, so there is no reader thread: each call sends its line and
reads until its answer is complete, under a lock that makes the client safe to share between
threads. `ERR` answers raise `NutError` and leave the link up; a lost link or a late answer
raises `DeviceUnavailable`, and an answer that is not protocol raises `FrameError`; both of
those close the link, since the stream can no longer be trusted to be in step. Reconnecting
is the owner's decision (the supervisor's backoff), never done here.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Self, TypeVar

import msgspec

from drivers.errors import DeviceUnavailable, DriverError, FrameError
from drivers.nut.codec import (
    BeginList,
    Cmd,
    EndList,
    Err,
    Malformed,
    Ok,
    Response,
    ResponseDecoder,
    Text,
    UpsEntry,
    Var,
    encode_get_var,
    encode_instcmd,
    encode_list_cmd,
    encode_list_ups,
    encode_list_var,
    encode_logout,
    encode_netver,
    encode_password,
    encode_set_var,
    encode_username,
    encode_ver,
)

__all__ = ["DEFAULT_PORT", "NutClient", "NutError", "NutStatistics"]

DEFAULT_PORT = 3493

_log = logging.getLogger(__name__)
_RECV_BYTES = 65536
# LOGOUT on close is a courtesy; never let a dead server hold close() for long.
_LOGOUT_TIMEOUT_S = 0.5
# upsd answers these when it cannot reach the UPS itself, though the link to upsd is fine.
_UNAVAILABLE_WORDS = frozenset({"DATA-STALE", "DRIVER-NOT-CONNECTED"})

_T = TypeVar("_T")
_Item = TypeVar("_Item", UpsEntry, Var, Cmd)


class NutError(DriverError):
    """upsd answered `ERR <word> [extra...]`; word is machine-readable, detail says where."""

    def __init__(self, word: str, detail: str = "") -> None:
        self.word = word
        self.detail = detail
        super().__init__(f"ERR {word}: {detail}" if detail else f"ERR {word}")

    @property
    def ups_unreachable(self) -> bool:
        """upsd is fine but has no fresh data from the UPS (DATA-STALE, DRIVER-NOT-CONNECTED)."""
        return self.word in _UNAVAILABLE_WORDS


class NutStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """Counters since the client was made."""

    connected: bool
    requests: int
    err_answers: int
    malformed: int
    """Answers that were not protocol, or not the answer to the request sent."""


class NutClient:
    """Client for one upsd. connect() logs in with username/password when given.

    Every request raises NutError for an `ERR` answer, DeviceUnavailable when the link is
    down, lost or too slow (timeout_s per request), FrameError for an answer that is not
    protocol, and ValueError for an argument that cannot be sent (a name with a blank...).
    """

    def __init__(
        self,
        host: str,
        port: int = DEFAULT_PORT,
        *,
        timeout_s: float,
        username: str | None = None,
        password: str | None = None,
        name: str = "nut",
    ) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be > 0")
        self._host = host
        self._port = port
        self._timeout_s = timeout_s
        self._username = username
        self._password = password
        self._where = f"{name} {host}:{port}"
        self._lock = threading.Lock()
        # Below: guarded by _lock.
        self._sock: socket.socket | None = None
        self._decoder = ResponseDecoder()
        self._pending: deque[Response] = deque()
        self._requests = 0
        self._err_answers = 0
        self._malformed = 0

    def __repr__(self) -> str:
        return f"NutClient({self._where})"

    def __enter__(self) -> Self:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def connected(self) -> bool:
        """True from connect() until close() or the link is lost."""
        with self._lock:
            return self._sock is not None

    def statistics(self) -> NutStatistics:
        """Request, ERR and malformed-answer counts."""
        with self._lock:
            return NutStatistics(
                connected=self._sock is not None,
                requests=self._requests,
                err_answers=self._err_answers,
                malformed=self._malformed,
            )

    def connect(self) -> None:
        """Open the connection and send the credentials; nothing to do when connected."""
        with self._lock:
            if self._sock is not None:
                return
            try:
                sock = socket.create_connection((self._host, self._port), self._timeout_s)
            except OSError as exc:
                raise DeviceUnavailable(f"{self._where}: cannot connect: {exc}") from exc
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sock = sock
            self._decoder = ResponseDecoder()
            self._pending.clear()
            try:
                if self._username is not None:
                    self._expect_ok(encode_username(self._username), "USERNAME")
                if self._password is not None:
                    self._expect_ok(encode_password(self._password), "PASSWORD")
            except (DriverError, ValueError):
                self._drop()
                raise

    def close(self) -> None:
        """Say LOGOUT (best effort) and close the connection; safe to repeat."""
        with self._lock:
            sock = self._sock
            if sock is None:
                return
            try:
                sock.settimeout(_LOGOUT_TIMEOUT_S)
                sock.sendall(encode_logout())
                sock.recv(_RECV_BYTES)  # `OK Goodbye`, or the close
            except OSError:
                pass  # the server is gone already; closing is all that is left
            self._drop()

    # --- requests ------------------------------------------------------------------------

    def ver(self) -> str:
        """The server's version text (`Network UPS Tools upsd 2.8.0 - ...`)."""
        return self._single(encode_ver(), "VER", _text)

    def netver(self) -> str:
        """The network protocol version (`1.3`)."""
        return self._single(encode_netver(), "NETVER", _text)

    def list_ups(self) -> dict[str, str]:
        """Every UPS upsd serves: name -> description."""
        items = self._list(encode_list_ups(), ("UPS",), "LIST UPS", UpsEntry)
        return {item.name: item.description for item in items}

    def list_vars(self, ups: str) -> dict[str, str]:
        """Every variable of ups: name -> value as sent."""
        what = f"LIST VAR {ups}"
        items = self._list(encode_list_var(ups), ("VAR", ups), what, Var)
        return {item.name: item.value for item in items}

    def get_var(self, ups: str, var: str) -> str:
        """One variable's value."""
        what = f"GET VAR {ups} {var}"

        def value(answer: Response) -> str | None:
            if isinstance(answer, Var) and answer.ups == ups and answer.name == var:
                return answer.value
            return None

        return self._single(encode_get_var(ups, var), what, value)

    def list_cmds(self, ups: str) -> list[str]:
        """The instant commands ups supports."""
        what = f"LIST CMD {ups}"
        items = self._list(encode_list_cmd(ups), ("CMD", ups), what, Cmd)
        return [item.name for item in items]

    def instcmd(self, ups: str, command: str, param: str | None = None) -> None:
        """Run an instant command (needs username and password with the right upsd.users)."""
        with self._lock:
            self._expect_ok(encode_instcmd(ups, command, param), f"INSTCMD {ups} {command}")

    def set_var(self, ups: str, var: str, value: str) -> None:
        """Change a writable variable (needs username and password, `actions = SET`)."""
        with self._lock:
            self._expect_ok(encode_set_var(ups, var, value), f"SET VAR {ups} {var}")

    # --- exchange (all called holding _lock) ---------------------------------------------

    def _single(self, request: bytes, what: str, accept: Callable[[Response], _T | None]) -> _T:
        with self._lock:
            deadline = self._send(request, what)
            answer = self._answer(deadline, what, err_allowed=True)
            result = accept(answer)
            if result is None:
                raise self._frame_error(f"{what}: unexpected answer {answer!r}")
            return result

    def _expect_ok(self, request: bytes, what: str) -> str:
        deadline = self._send(request, what)
        answer = self._answer(deadline, what, err_allowed=True)
        if not isinstance(answer, Ok):
            raise self._frame_error(f"{what}: unexpected answer {answer!r}")
        return answer.detail

    def _list(
        self, request: bytes, query: tuple[str, ...], what: str, kind: type[_Item]
    ) -> list[_Item]:
        with self._lock:
            deadline = self._send(request, what)
            begin = self._answer(deadline, what, err_allowed=True)
            if begin != BeginList(query=query):
                raise self._frame_error(f"{what}: expected BEGIN LIST, got {begin!r}")
            items: list[_Item] = []
            while True:
                item = self._answer(deadline, what)
                if isinstance(item, EndList) and item.query == query:
                    return items
                # Every item names its UPS; one of another UPS is a crossed answer.
                if not isinstance(item, kind) or getattr(item, "ups", query[-1]) != query[-1]:
                    raise self._frame_error(f"{what}: unexpected {item!r} in the list")
                items.append(item)

    def _send(self, request: bytes, what: str) -> float:
        sock = self._sock
        if sock is None:
            raise DeviceUnavailable(f"{self._where}: not connected")
        if self._pending:
            # Lines nobody asked for: the server is out of step; say so and start afresh.
            self._malformed += len(self._pending)
            _log.warning("%s: %d unrequested answer lines", self._where, len(self._pending))
            self._pending.clear()
        self._requests += 1
        deadline = time.monotonic() + self._timeout_s
        try:
            sock.settimeout(self._timeout_s)
            sock.sendall(request)
        except OSError as exc:
            # A partial line may be on the wire; the stream is unusable after that.
            self._drop()
            raise DeviceUnavailable(f"{self._where}: {what}: send failed: {exc}") from exc
        return deadline

    def _answer(self, deadline: float, what: str, *, err_allowed: bool = False) -> Response:
        """The next answer line; Malformed raises FrameError, ERR raises NutError where an
        answer may be one (first line) and FrameError elsewhere (inside a list)."""
        while not self._pending:
            sock = self._sock
            assert sock is not None  # _send checked, and every drop raises
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._drop()
                raise DeviceUnavailable(
                    f"{self._where}: {what}: no answer within {self._timeout_s} s"
                )
            try:
                sock.settimeout(remaining)
                _ack_at_once(sock)
                data = sock.recv(_RECV_BYTES)
            except TimeoutError:
                continue  # the deadline check above reports it
            except OSError as exc:
                self._drop()
                raise DeviceUnavailable(f"{self._where}: {what}: connection error: {exc}") from exc
            if not data:
                self._drop()
                raise DeviceUnavailable(f"{self._where}: {what}: connection closed by the server")
            self._pending.extend(self._decoder.feed(data))
        answer = self._pending.popleft()
        if isinstance(answer, Malformed):
            raise self._frame_error(f"{what}: {answer.reason}: {answer.line!r}")
        if isinstance(answer, Err) and err_allowed:
            self._err_answers += 1
            detail = " ".join((f"{self._where}: {what}", *answer.extra))
            raise NutError(answer.word, detail)
        return answer

    def _frame_error(self, reason: str) -> FrameError:
        self._malformed += 1
        self._drop()
        return FrameError(f"{self._where}: {reason}")

    def _drop(self) -> None:
        sock, self._sock = self._sock, None
        self._pending.clear()
        if sock is not None:
            sock.close()


def _text(answer: Response) -> str | None:
    return answer.line if isinstance(answer, Text) else None


def _ack_at_once(sock: socket.socket) -> None:
    # upsd writes a list line by line without TCP_NODELAY, so Nagle holds each line until
    # the previous one is acknowledged; delayed ACKs would cost ~40 ms per LIST. Linux
    # clears TCP_QUICKACK after a while, so it is set again before every read.
    quickack = getattr(socket, "TCP_QUICKACK", None)
    if quickack is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, quickack, 1)
        except OSError:
            pass  # not supported here: only slower
