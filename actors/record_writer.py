"""The sequencer's record writes, in order, on a thread and a cursor of their own.

Writing a step's records and step events takes ~30 ms on this machine (bench/coaching_ws.py);
on the sequencer's own thread that held up the next input, and the coaching message after it,
whenever an operator was quicker than the disk. The sequencer hands each write here and goes
on; `flush` waits until everything handed over is written (before a record's end is announced
and its part released, and when the sequencer stops).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

import duckdb

__all__ = ["RecordWriter", "Write"]

Write = Callable[[duckdb.DuckDBPyConnection], None]
_STOP = object()


class RecordWriter:
    def __init__(self, database: duckdb.DuckDBPyConnection, *, name: str,
                 log: logging.Logger) -> None:
        self._database = database
        self._log = log
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._idle = threading.Condition()
        self._pending = 0
        self.written = self.failed = 0
        self._thread = threading.Thread(target=self._run, name=f"{name}-writer", daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        with self._idle:
            return self._pending

    def submit(self, write: Write) -> None:
        with self._idle:
            self._pending += 1
        self._queue.put(write)

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until every write handed over is done; False if that took too long."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout_s)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Write what is queued, then end the thread and close its cursor."""
        self._queue.put(_STOP)
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            self._log.error("record writer did not finish within %.0f s; %d write(s) lost",
                            timeout_s, self.pending)

    def _run(self) -> None:
        con = self._database.cursor()
        try:
            while (write := self._queue.get()) is not _STOP:
                try:
                    write(con)  # type: ignore[operator]
                    self.written += 1
                except Exception:
                    # A record that could not be written is logged in full; coaching goes on
                    # (the state machine holds the truth until the record can be written).
                    self.failed += 1
                    self._log.exception("a coaching record could not be written")
                finally:
                    with self._idle:
                        self._pending -= 1
                        self._idle.notify_all()
        finally:
            con.close()
