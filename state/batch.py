"""Group commit: every write pending in the store actor goes to disk in one transaction.

The store actor collects rows from all writers into a WriteBatch while its mailbox is non-empty,
calls commit_batch once, and acknowledges the writers only after it returns.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import suppress
from itertools import groupby

import duckdb
import msgspec

from state.errors import translated_errors

# Imported for their side effect too: importing a table module registers its table.
from state.journal import JournalRow
from state.probe import ProbeRow
from state.tables import TableSpec, insert_rows, spec_for_row_type

__all__ = ["JournalRow", "ProbeRow", "WriteBatch", "checkpoint", "commit_batch"]


class WriteBatch:
    """Rows waiting for the next commit, grouped per table in the order tables first appeared."""

    __slots__ = ("_rows",)

    def __init__(self) -> None:
        # Keyed by table name: a str hashes in no time, a TableSpec would hash its Arrow schema.
        self._rows: dict[str, tuple[TableSpec, list[msgspec.Struct]]] = {}

    def add(self, row: msgspec.Struct) -> None:
        """Queue one row; TypeError at once if no table is registered for its type."""
        self._rows_of(spec_for_row_type(type(row))).append(row)

    def extend(self, rows: Iterable[msgspec.Struct]) -> None:
        """Queue rows of any registered types; all are checked before any is queued."""
        # groupby makes one group of a run of same-typed rows, the common case, at C speed.
        groups = [(spec_for_row_type(t), list(group)) for t, group in groupby(rows, type)]
        for spec, group in groups:
            self._rows_of(spec).extend(group)

    def tables(self) -> Iterator[tuple[TableSpec, list[msgspec.Struct]]]:
        """Each table with its queued rows."""
        return iter(self._rows.values())

    def counts(self) -> dict[str, int]:
        """Queued rows per table name."""
        return {table: len(rows) for table, (_, rows) in self._rows.items()}

    def clear(self) -> None:
        """Forget every queued row (after the writers have been acknowledged)."""
        self._rows.clear()

    def _rows_of(self, spec: TableSpec) -> list[msgspec.Struct]:
        entry = self._rows.get(spec.table)
        if entry is None:
            entry = self._rows[spec.table] = (spec, [])
        return entry[1]

    def __len__(self) -> int:
        return sum(len(rows) for _, rows in self._rows.values())

    def __bool__(self) -> bool:
        return bool(self._rows)


def commit_batch(con: duckdb.DuckDBPyConnection, batch: WriteBatch) -> None:
    """Write the whole batch in one transaction: all of it is durable on return, or none of it.

    Errors come as StateError (DuplicateError, ConstraintError for bad rows); the batch itself is
    left as it was, for the caller to retry, split or reject.
    """
    if not batch:
        return
    with translated_errors():
        con.execute("BEGIN TRANSACTION")
        try:
            for spec, rows in batch.tables():
                insert_rows(con, spec, rows)
            # Returns once the WAL holds the transaction and is fsynced (see state.connection).
            con.execute("COMMIT")
        except BaseException:
            # A failed COMMIT has already ended the transaction; nothing is left to roll back.
            with suppress(duckdb.TransactionException):
                con.execute("ROLLBACK")
            raise


def checkpoint(con: duckdb.DuckDBPyConnection) -> None:
    """Move the WAL into the database file now, e.g. while idle, rather than in a later commit."""
    with translated_errors():
        con.execute("CHECKPOINT")
