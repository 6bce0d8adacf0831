"""The printer actor's link (actors/printer.py): a thread of its own that runs the blocking
ZPL client's requests in order, the requests it runs (connect, poll, prepare and print a job,
test), and the messages that tell the actor each result."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import msgspec

from actors.runtime import ActorUnavailable, Reply, Runtime, tell
from drivers.errors import DeviceUnavailable, DriverError, FrameError
from drivers.zpl.client import PrintResult, ZplPrinterClient
from drivers.zpl.status import PrinterStatus
from state.printing import PrintJob

__all__ = [
    "Connected",
    "LinkBroken",
    "LinkOp",
    "Polled",
    "Prepared",
    "Printed",
    "PrinterLink",
    "Tested",
    "connect_op",
    "poll_op",
    "prepare_op",
    "print_op",
    "printer_test_op",
]

_log = logging.getLogger("takt.actor.printer")


# ---- what the link tells the actor -------------------------------------------------------------


class Connected(msgspec.Struct, frozen=True):
    """The answer of connect_op; error says why the printer is unreachable."""

    error: str | None


class Polled(msgspec.Struct, frozen=True):
    """The answer of poll_op: the printer's ~HS status and label counter."""

    status: PrinterStatus | None  # None: the link failed (error says why)
    count: int | None
    error: str | None


class Prepared(msgspec.Struct, frozen=True):
    """The head job's first step: the status, and the label counter if it can be sent now."""

    job_id: int
    status: PrinterStatus | None  # None: the link failed
    count: int | None  # None: not ready or not idle (see status), or the link failed
    error: str | None


class Printed(msgspec.Struct, frozen=True):
    """The answer of print_op: what sending the head job found."""

    job_id: int
    result: PrintResult | None
    error: Any  # the DriverError or ValueError print_job raised


class Tested(msgspec.Struct, frozen=True):
    """The answer of printer_test_op, with the reply the actor still owes."""

    reply: Any  # the TestPrinter request's reply callback
    status: PrinterStatus | None
    count: int | None
    error: str | None
    latency_ms: float


class LinkBroken(msgspec.Struct, frozen=True):
    """A request raised something unexpected (a bug): the actor fails."""

    error: str


LinkOp = Callable[[ZplPrinterClient], Any]
"""One blocking request: it runs on the link's thread and returns what to tell the actor."""


class PrinterLink:
    """Runs the client's blocking requests in order on a daemon thread and tells each result to
    the actor, so the actor answers, and stops, while a printer is slow or silent.

    A request counts as in flight from submit() until its result is told: quiescence (tests,
    replay) waits for the printer as for any message.
    """

    def __init__(self, runtime: Runtime, ref: Any, client: ZplPrinterClient, name: str) -> None:
        self.client = client
        self._runtime, self._ref = runtime, ref
        self._ops: queue.SimpleQueue[LinkOp | None] = queue.SimpleQueue()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"{name}-link", daemon=True)
        self._thread.start()

    def submit(self, op: LinkOp) -> None:
        self._runtime.inflight.add()
        self._ops.put(op)

    def close(self) -> None:
        """Run nothing more; the request under way ends early as the client closes."""
        self._closed.set()
        self._ops.put(None)
        # On a thread of its own: closing waits for the client's lock, which a connect to a
        # host that never answers holds for up to timeout_ms; the actor must stop at once.
        threading.Thread(target=self.client.close, name=f"{self._thread.name}-close",
                         daemon=True).start()

    def _run(self) -> None:
        while (op := self._ops.get()) is not None:
            try:
                if not self._closed.is_set():
                    self._tell(self._call(op))
            finally:
                self._runtime.inflight.done()
        self.client.close()  # a connect that raced with close() leaves nothing open
        while True:
            try:
                if self._ops.get_nowait() is not None:
                    self._runtime.inflight.done()
            except queue.Empty:
                return

    def _call(self, op: LinkOp) -> Any:
        try:
            return op(self.client)
        except Exception as exc:  # a bug: the actor fails and its supervisor restarts it
            _log.exception("printer link request failed")
            return LinkBroken(f"{type(exc).__name__}: {exc}")

    def _tell(self, result: Any) -> None:
        try:
            tell(self._runtime, self._ref, result)
        except ActorUnavailable:
            pass  # stopped meanwhile; its replacement asks again


# ---- the requests ------------------------------------------------------------------------------


def connect_op(client: ZplPrinterClient) -> Connected:
    """Connect unless connected already."""
    try:
        if not client.connected:
            client.connect()
    except DriverError as exc:
        return Connected(str(exc))
    return Connected(None)


def poll_op(client: ZplPrinterClient) -> Polled:
    """Read ~HS and the label counter; a failure closes the link."""
    try:
        return Polled(client.status(), client.label_count(), None)
    except DriverError as exc:
        client.close()  # closed here, in order: a later connect request opens a fresh link
        return Polled(None, None, str(exc))


def prepare_op(job_id: int) -> LinkOp:
    """The head job's first step: the status, and the label counter if the printer is free."""

    def prepare(client: ZplPrinterClient) -> Prepared:
        try:
            status = client.status()
            count = client.label_count() if status.ready and status.idle else None
        except DriverError as exc:
            client.close()
            return Prepared(job_id, None, None, str(exc))
        return Prepared(job_id, status, count, None)

    return prepare


def print_op(job: PrintJob) -> LinkOp:
    """Send a job whose counter_before is stored, or find it printed already."""

    def send(client: ZplPrinterClient) -> Printed:
        assert job.counter_before is not None  # stored before anything is sent
        try:
            # No waiting here: the labels are looked for again on every status poll.
            result = client.print_job(job.zpl, job.labels, counter_before=job.counter_before,
                                      confirm_timeout_s=0)
        except (DriverError, ValueError) as exc:
            if isinstance(exc, DeviceUnavailable | FrameError):
                client.close()
            return Printed(job.id, None, exc)
        return Printed(job.id, result, None)

    return send


def printer_test_op(reply: Reply) -> LinkOp:
    """The TestPrinter request: connect if need be, then ~HS and the label counter, timed."""

    def test(client: ZplPrinterClient) -> Tested:
        started = time.perf_counter()
        status, count, error = None, None, None
        try:
            if not client.connected:
                client.connect()
            status, count = client.status(), client.label_count()
        except DriverError as exc:
            client.close()
            error = str(exc)
        return Tested(reply, status, count, error,
                       round((time.perf_counter() - started) * 1000, 3))

    return test
