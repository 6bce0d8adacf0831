"""Delivery of the robot's alerts to its webhook: a bounded queue and one sender thread.

An alert is POSTed once as JSON; a failed delivery is reported, not retried, like a robot
that does not hold alerts back. A full queue drops the new alert and counts it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

import httpx
import msgspec

from drivers.robot.messages import Alert, encode

__all__ = ["WebhookSender", "WebhookStatistics"]

_JOIN_TIMEOUT_S = 5.0

DeliveryReport = Callable[[Alert, str, str | None], None]
"""(alert, url, error or None) after each delivery attempt; runs on the sender thread."""


class WebhookStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """Deliveries since the sender was created."""

    sent: int
    failed: int
    dropped: int


class WebhookSender:
    """POSTs alerts to their URL from a thread of its own; restartable."""

    def __init__(
        self,
        *,
        on_report: DeliveryReport,
        timeout_s: float = 2.0,
        capacity: int = 100,
        name: str = "robot-webhook",
    ) -> None:
        self._on_report = on_report
        self._timeout_s = timeout_s
        self._capacity = capacity
        self._name = name
        self._queue: queue.Queue[tuple[str, Alert] | None] = queue.Queue(capacity)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._sent = self._failed = self._dropped = 0

    def start(self) -> None:
        """Start the sender thread (no-op if it runs)."""
        if self._thread is not None:
            return
        self._queue = queue.Queue(self._capacity)
        self._thread = threading.Thread(
            target=self._run, args=(self._queue,), name=self._name, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop after the delivery in progress; queued alerts are dropped. Safe to repeat."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        pending = self._queue
        while True:
            try:
                pending.get_nowait()
            except queue.Empty:
                break
            with self._lock:
                self._dropped += 1
        pending.put(None)
        thread.join(_JOIN_TIMEOUT_S)

    def submit(self, url: str, alert: Alert) -> bool:
        """Queue alert for url; False (and counted) if the queue is full or not running."""
        if self._thread is not None:
            try:
                self._queue.put_nowait((url, alert))
                return True
            except queue.Full:
                pass
        with self._lock:
            self._dropped += 1
        return False

    def statistics(self) -> WebhookStatistics:
        """Sent, failed and dropped deliveries."""
        with self._lock:
            return WebhookStatistics(sent=self._sent, failed=self._failed, dropped=self._dropped)

    def _run(self, jobs: queue.Queue[tuple[str, Alert] | None]) -> None:
        # Made on the first alert: building an httpx client costs tens of milliseconds,
        # which every start/stop of a simulator that never alerts would otherwise pay.
        http: httpx.Client | None = None
        try:
            while (job := jobs.get()) is not None:
                if http is None:
                    http = httpx.Client(timeout=self._timeout_s)
                url, alert = job
                error: str | None = None
                try:
                    reply = http.post(
                        url, content=encode(alert), headers={"content-type": "application/json"}
                    )
                    if not reply.is_success:
                        error = f"HTTP {reply.status_code}"
                except httpx.HTTPError as exc:
                    error = f"{type(exc).__name__}: {exc}"
                with self._lock:
                    if error is None:
                        self._sent += 1
                    else:
                        self._failed += 1
                self._on_report(alert, url, error)
        finally:
            if http is not None:
                http.close()
