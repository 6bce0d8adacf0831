"""Store actor: owns the write connection and commits in groups.

Writes accumulate while the mailbox still holds messages; when it runs dry (or the
batch is full) everything pending goes to disk in one transaction, and only then is
every writer acknowledged. A writer that got its ack can rely on the row surviving a
SIGKILL; a writer that got no ack was never told its row is safe.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any, NoReturn

import duckdb
import msgspec

from actors.base import handles
from actors.bus import Event
from actors.database import DatabaseActor
from actors.runtime import Reply, Runtime
from controller.events import classify
from state.batch import WriteBatch, checkpoint, commit_batch
from state.errors import ConstraintError, StateError
from state.events import EventRow
from state.journal import JournalRow

__all__ = ["CommitFailed", "Flush", "StoreActor", "Write"]

_JSON = msgspec.json.Encoder()


class Write(msgspec.Struct, frozen=True, tag=True):
    """Rows of registered table types; answered after the transaction holding them commits."""

    rows: Sequence[msgspec.Struct]


class Flush(msgspec.Struct, frozen=True, tag=True):
    """Commit what is pending and checkpoint the WAL into the database file."""


class CommitFailed(StateError):
    """A commit failed for a reason other than a bad row (disk, I/O, the database itself)."""


class StoreActor(DatabaseActor):
    critical = True
    # commit_batch raises duckdb's errors as StateError, so a failed commit fails the store as
    # CommitFailed; other StateErrors (a Flush that cannot checkpoint now) go to their caller.
    fatal = (CommitFailed, duckdb.IOException, duckdb.FatalException)

    def __init__(self, runtime: Runtime, name: str, database: duckdb.DuckDBPyConnection, *,
                 max_batch: int = 5000, **kw: Any) -> None:
        super().__init__(runtime, name, database, **kw)
        self.max_batch = max_batch
        self.batch = WriteBatch()
        # Writers to ack after the commit, with their rows in case one must be isolated.
        self.waiting: list[tuple[Reply, Sequence[msgspec.Struct]]] = []
        self.journal_rows: list[JournalRow | EventRow] = []
        # Subscribed here, not in started(): start() returns before started() runs, and a
        # durable event published in between would never reach the journal. Events that come
        # early wait in the mailbox. Large bound: a dropped one would be a gap in the journal.
        self.bus.subscribe_actor(
            ["*"], self.actor_ref, name=f"{self.name}.journal", maxsize=1_000_000,
            durable_only=True,
        )

    def stopping(self) -> None:
        try:
            self._commit()
            checkpoint(self.con)
        finally:
            super().stopping()

    def failed(self, error: BaseException) -> None:
        self._fail_waiting(error)
        super().failed(error)

    @handles(Write, deferred=True)
    def _write(self, msg: Write, reply: Reply) -> None:
        try:
            self.batch.extend(msg.rows)
        except TypeError as exc:  # a row type with no table: the writer's bug, not ours
            reply(None, exc)
            return
        self.waiting.append((reply, msg.rows))
        self._maybe_commit()

    @handles(Event)
    def _journal(self, event: Event) -> None:
        try:
            payload = _JSON.encode(event.data).decode()
        except (TypeError, msgspec.EncodeError) as exc:
            # The publisher's bug: counted and logged here, never a reason to fail the store.
            self._lost(event.seq, event.topic, event.source, exc)
            return
        row = JournalRow(
            seq=event.seq, ts_us=event.ts_us, topic=event.topic, source=event.source,
            payload=payload,
        )
        self.batch.add(row)
        self.journal_rows.append(row)
        entry = classify(event.topic, event.source, event.data)
        if entry is not None:
            # In the same transaction as its journal row: an entry exists iff its event does.
            event_row = EventRow(id=event.seq, ts_us=event.ts_us, severity=entry.severity.value,
                                 category=entry.category.value, source=event.source or None,
                                 message=entry.message, topic=event.topic)
            self.batch.add(event_row)
            self.journal_rows.append(event_row)
        self._maybe_commit()

    @handles(Flush)
    def _flush(self, _: Flush) -> None:
        self._commit()
        checkpoint(self.con)

    def _maybe_commit(self) -> None:
        if len(self.batch) >= self.max_batch or self.actor_inbox.empty():
            self._commit()

    def _commit(self) -> None:
        if not self.batch:
            self._ack_waiting()  # writes of no rows: nothing to wait for
            return
        rows = len(self.batch)
        t0 = time.perf_counter()
        try:
            commit_batch(self.con, self.batch)
        except ConstraintError:
            self._commit_one_by_one()
            return
        except StateError as exc:
            self._commit_failed(exc)
        finally:
            self.runtime.metrics.store_commit_seconds.observe(time.perf_counter() - t0)
        self.runtime.metrics.store_batch_rows.observe(rows)
        self.batch.clear()
        self._announce(self.journal_rows)
        self.journal_rows.clear()
        self._ack_waiting()

    def _announce(self, rows: Sequence[msgspec.Struct]) -> None:
        """Publish the journal entries just committed, for /ws (`event` messages)."""
        for row in rows:
            if isinstance(row, EventRow):
                self.publish(f"event.{row.severity}.{row.category}", msgspec.to_builtins(row))

    def _ack_waiting(self) -> None:
        waiting, self.waiting = self.waiting, []
        for reply, written in waiting:
            reply(len(written), None)

    def _fail_waiting(self, error: BaseException) -> None:
        waiting, self.waiting = self.waiting, []
        for reply, _ in waiting:
            reply(None, error)

    def _commit_failed(self, exc: StateError) -> NoReturn:
        """Not a bad row but the disk or the database: tell every unacked writer, fail the store."""
        failure = CommitFailed(str(exc))
        self._fail_waiting(failure)
        raise failure from exc

    def _commit_one_by_one(self) -> None:
        """A bad row spoils its group; isolate it so every other writer still gets its ack."""
        self.log.warning("a write broke a constraint; committing %d writers one by one",
                         len(self.waiting))
        journal_rows, self.journal_rows = self.journal_rows, []
        try:
            if self._commit_alone(journal_rows) is None:
                self._announce(journal_rows)
            else:
                for row in journal_rows:  # find the event(s) the journal refuses
                    error = self._commit_alone([row])
                    if error is None:
                        self._announce([row])
                    elif isinstance(row, JournalRow):
                        self._lost(row.seq, row.topic, row.source, error)
        except StateError as exc:
            self._commit_failed(exc)
        waiting, self.waiting = self.waiting, []
        for done, (reply, rows) in enumerate(waiting):
            try:
                error = self._commit_alone(rows)
            except StateError as exc:
                self.waiting = waiting[done:]  # not answered yet
                self._commit_failed(exc)
            if error is None:
                reply(len(rows), None)
            else:
                self.errors += 1
                reply(None, error)
        self.batch.clear()

    def _commit_alone(self, rows: Sequence[msgspec.Struct]) -> ConstraintError | None:
        """Commit rows in a transaction of their own; the constraint they break, if any."""
        self.batch.clear()
        self.batch.extend(rows)
        try:
            commit_batch(self.con, self.batch)
        except ConstraintError as exc:
            return exc
        return None

    def _lost(self, seq: int, topic: str, source: str | None, exc: BaseException) -> None:
        self.errors += 1
        self.log.error("durable event %d (%s from %s) not journaled: %s", seq, topic, source, exc)
