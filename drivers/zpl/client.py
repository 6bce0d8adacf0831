"""Blocking raw-TCP client for a Zebra ZPL printer (port 9100): status, send, confirmed print.

One request at a time, answered in order on the same connection: `~HS` for the status and
the Set-Get-Do variable `odometer.total_label_count` for the label counter (a lifetime
count that only grows). A job is confirmed when the counter has grown by the job's
labels, so "sent" is never taken for "printed".

Never printing a job twice: the caller stores the job with the counter read before it was
sent (`JobInterrupted.counter_before`, or its own `label_count()` call), and on a retry
passes it back as `print_job(..., counter_before=n)`. The client then compares: counter
grown by the job's labels -> printed already, confirmed without sending; counter unchanged
and printer idle -> the job never arrived (a format cut before ^XZ is discarded by the
printer), sent again; job still in the printer -> waited for. This assumes the printer
prints for this station only (another sender would move the counter too).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Self, TypeVar

import msgspec

from drivers.errors import DeviceUnavailable, DriverError, FrameError
from drivers.zpl.codec import Command, count_labels, tokenize
from drivers.zpl.status import (
    HOST_STATUS_QUERY,
    LABEL_COUNT_QUERY,
    PrinterStatus,
    ReplyReader,
    parse_host_status_frames,
    parse_label_count,
)

__all__ = [
    "JobInterrupted",
    "PartiallyPrinted",
    "PrintResult",
    "PrinterNotReady",
    "ZplPrinterClient",
]

_log = logging.getLogger(__name__)
_RECV_BYTES = 4096
_T = TypeVar("_T")


class PrinterNotReady(DriverError):
    """The printer reports a condition that stops printing; nothing was sent."""

    def __init__(self, message: str, status: PrinterStatus) -> None:
        super().__init__(message)
        self.status = status
        self.conditions = status.problems


class JobInterrupted(DeviceUnavailable):
    """The link was lost during print_job; keep the job and retry with counter_before."""

    def __init__(self, message: str, *, counter_before: int | None, sent: bool) -> None:
        super().__init__(message)
        self.counter_before = counter_before
        """The label counter before the job was sent (None: lost before it was read, so
        nothing was sent)."""
        self.sent = sent
        """True if the job's bytes were handed to the connection, so it may have printed."""


class PartiallyPrinted(DriverError):
    """The printer is idle with only part of the job's labels printed; an operator decides."""

    def __init__(self, message: str, *, printed: int, labels: int) -> None:
        super().__init__(message)
        self.printed = printed
        self.labels = labels


class PrintResult(msgspec.Struct, frozen=True, kw_only=True):
    """How a print job ended."""

    confirmed: bool
    """True once the label counter shows every label of the job printed."""
    labels: int
    counter_before: int
    counter_after: int
    sent: bool
    """False when a retry found the job printed already and sent nothing."""
    status: PrinterStatus
    """The last status seen (why a job is not confirmed: paused, paper out...)."""


class ZplPrinterClient:
    """Client for one Zebra printer over raw TCP; connect() first, close() when done."""

    def __init__(
        self,
        host: str,
        port: int = 9100,
        timeout_s: float = 2.0,
        *,
        poll_interval_s: float = 0.05,
        name: str = "printer",
    ) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be > 0")
        if poll_interval_s <= 0:
            raise ValueError("poll_interval_s must be > 0")
        self._host = host
        self._port = port
        self._timeout_s = timeout_s
        self._poll_s = poll_interval_s
        self._where = f"{name} {host}:{port}"
        self._lock = threading.RLock()
        self._sock: socket.socket | None = None
        self._lost: str | None = None
        self._replies = ReplyReader()
        self._closed = threading.Event()
        self.malformed = 0
        """Answers that did not decode, since construction."""

    def __repr__(self) -> str:
        return f"ZplPrinterClient({self._where})"

    @property
    def connected(self) -> bool:
        """True from connect() until the link is lost or closed."""
        return self._sock is not None and self._lost is None

    def connect(self) -> None:
        """Open the connection; DeviceUnavailable says why it failed. Reconnects after a loss."""
        with self._lock:
            if self.connected:
                raise RuntimeError(f"{self._where}: already connected")
            self._close_socket()
            try:
                sock = socket.create_connection((self._host, self._port), self._timeout_s)
            except OSError as exc:
                raise DeviceUnavailable(f"{self._where}: cannot connect: {exc}") from exc
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sock, self._lost = sock, None
            self._replies.clear()
            self._closed.clear()

    def close(self) -> None:
        """Close the connection; safe to repeat. A print_job waiting in another thread ends."""
        self._closed.set()
        sock = self._sock
        if sock is not None:
            # Wakes a request blocked in recv in another thread instead of waiting for it.
            _shutdown(sock)
        with self._lock:
            self._close_socket()

    def __enter__(self) -> Self:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- requests ------------------------------------------------------------------------

    def status(self) -> PrinterStatus:
        """The printer's `~HS` status."""
        frames = self._request(HOST_STATUS_QUERY, lambda r: r.take_frames(3), "~HS answer")
        try:
            return parse_host_status_frames(frames)
        except FrameError as exc:
            self.malformed += 1
            raise FrameError(f"{self._where}: {exc}") from None

    def label_count(self) -> int:
        """The printer's lifetime label counter (SGD `odometer.total_label_count`)."""
        value = self._request(LABEL_COUNT_QUERY, ReplyReader.take_quoted, "label count")
        try:
            return parse_label_count(value)
        except FrameError as exc:
            self.malformed += 1
            raise FrameError(f"{self._where}: {exc}") from None

    def send(self, zpl: bytes) -> None:
        """Send ZPL as it is, without checks or confirmation.

        It should end with a complete command (^XZ): a printer reads whatever follows an
        unfinished command, the next status query included, as its parameters.
        """
        with self._lock:
            self._send(self._require(), zpl)

    def print_job(
        self,
        zpl: bytes,
        labels: int,
        *,
        counter_before: int | None = None,
        confirm_timeout_s: float = 30.0,
    ) -> PrintResult:
        """Print a job and wait until the label counter shows it printed.

        Refuses with PrinterNotReady (nothing sent) when the printer is paused, out of paper
        or ribbon, open or too hot, unless a retry finds the job printed already. labels
        must be what the job prints (formats times ^PQ) and the job must end with ^XZ
        (ValueError). Give counter_before when retrying a job whose link was lost (see the
        module docstring). Returns confirmed=False if the labels do not come out within
        confirm_timeout_s (the job may still be in the printer: retry with counter_before).
        A lost link raises JobInterrupted, which carries counter_before.
        """
        self._check_job(zpl, labels)
        sent = False
        try:
            status = self.status()
            must_send = counter_before is None
            if counter_before is None:
                self._require_ready(status)
                counter_before = self.label_count()
            target = counter_before + labels
            deadline = time.monotonic() + confirm_timeout_s
            while True:
                count = self.label_count()
                if count >= target:
                    return PrintResult(
                        confirmed=True,
                        labels=labels,
                        counter_before=counter_before,
                        counter_after=count,
                        sent=sent,
                        status=status,
                    )
                if not sent and (must_send or self._never_arrived(count, counter_before, status)):
                    self._require_ready(status)
                    sent = True
                    self.send(zpl)
                    _log.info("%s: job of %d label(s) sent", self._where, labels)
                    continue
                if not sent and status.idle and count > counter_before:
                    raise PartiallyPrinted(
                        f"{self._where}: {count - counter_before} of {labels} label(s) of this "
                        "job printed and the printer holds no more of it",
                        printed=count - counter_before,
                        labels=labels,
                    )
                if time.monotonic() >= deadline or self._closed.wait(self._poll_s):
                    return PrintResult(
                        confirmed=False,
                        labels=labels,
                        counter_before=counter_before,
                        counter_after=count,
                        sent=sent,
                        status=status,
                    )
                status = self.status()
        except (DeviceUnavailable, FrameError) as exc:
            # Whatever happened to the link, the job's fate is only known from the counter.
            raise JobInterrupted(
                f"{exc} (during a job of {labels} label(s); counter before: {counter_before})",
                counter_before=counter_before,
                sent=sent,
            ) from exc

    # --- internals -----------------------------------------------------------------------

    def _require_ready(self, status: PrinterStatus) -> None:
        if not status.ready:
            raise PrinterNotReady(
                f"{self._where}: printer not ready: {', '.join(status.problems)}", status
            )

    @staticmethod
    def _never_arrived(count: int, counter_before: int, status: PrinterStatus) -> bool:
        # A retry: nothing printed and nothing pending means the earlier attempt is gone.
        return count == counter_before and status.idle

    @staticmethod
    def _check_job(zpl: bytes, labels: int) -> None:
        if labels < 1:
            raise ValueError("a job prints at least one label")
        tokens = tokenize(zpl)
        last = tokens[-1] if tokens else None
        if not (isinstance(last, Command) and not last.control and last.name == "XZ"):
            # A trailing partial format would also swallow the status queries that follow.
            raise ValueError("a print job must end with ^XZ")
        counted = count_labels(zpl)
        if counted != labels:
            raise ValueError(f"the job prints {counted} label(s), not {labels}")

    def _request(self, query: bytes, take: Callable[[ReplyReader], _T | None], what: str) -> _T:
        with self._lock:
            sock = self._require()
            self._send(sock, query)
            deadline = time.monotonic() + self._timeout_s
            while True:
                try:
                    answer = take(self._replies)
                except FrameError as exc:
                    self.malformed += 1
                    # The stream is out of step now; only a new connection is trustworthy.
                    self._drop(f"malformed {what}: {exc}")
                    raise FrameError(f"{self._where}: malformed {what}: {exc}") from None
                if answer is not None:
                    return answer
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    reason = f"no {what} within {self._timeout_s} s"
                    self._drop(reason)
                    raise DeviceUnavailable(f"{self._where}: {reason}")
                sock.settimeout(remaining)
                try:
                    data = sock.recv(_RECV_BYTES)
                except TimeoutError:
                    continue
                except OSError as exc:
                    self._drop(f"connection error: {exc}")
                    raise DeviceUnavailable(f"{self._where}: connection error: {exc}") from exc
                if not data:
                    self._drop("connection closed by the printer")
                    raise DeviceUnavailable(f"{self._where}: connection closed by the printer")
                self._replies.feed(data)

    def _require(self) -> socket.socket:
        if self._sock is None:
            raise DeviceUnavailable(f"{self._where}: not connected")
        if self._lost is not None:
            raise DeviceUnavailable(f"{self._where}: link lost: {self._lost}")
        return self._sock

    def _send(self, sock: socket.socket, data: bytes) -> None:
        sock.settimeout(self._timeout_s)
        try:
            sock.sendall(data)
        except OSError as exc:
            self._drop(f"send failed: {exc}")
            raise DeviceUnavailable(f"{self._where}: send failed: {exc}") from exc

    def _drop(self, reason: str) -> None:
        if self._lost is None:
            self._lost = reason
            _log.info("%s: link lost: %s", self._where, reason)
        if self._sock is not None:
            _shutdown(self._sock)

    def _close_socket(self) -> None:
        if self._sock is not None:
            self._sock.close()
        self._sock, self._lost = None, None


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already disconnected
