"""Takt's own state error types; duckdb errors are translated into these at the boundary."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import duckdb

__all__ = [
    "ConstraintError",
    "DuplicateError",
    "MigrationError",
    "NotFound",
    "StateError",
    "StoreBroken",
    "TransitionError",
    "translate_error",
    "translated_errors",
]


class StateError(Exception):
    """Base class of every error the state package raises."""


class ConstraintError(StateError):
    """A row breaks a rule of the schema: NOT NULL, CHECK, a wrong type, malformed JSON."""


class DuplicateError(ConstraintError):
    """A row repeats a primary key or unique value that is already stored."""


class MigrationError(StateError):
    """A migration could not be loaded or applied; the message names the file."""


class NotFound(StateError):
    """The row named (a code, a batch) does not exist."""


class StoreBroken(StateError):
    """The database or the disk under it failed (I/O, a fatal or internal error), not a row:
    the connection is not to be trusted any more."""


class TransitionError(ConstraintError):
    """A status change or batch move that the rules refuse; the message says why."""


def translate_error(exc: duckdb.Error) -> StateError:
    """The Takt error for a duckdb error, keeping duckdb's message."""
    message = str(exc)
    if isinstance(exc, duckdb.ConstraintException):
        # duckdb raises one exception class for every constraint kind; only the message tells
        # a repeated key apart from a failed CHECK or NOT NULL. It says "Duplicate key" for a
        # clash with a stored row and "duplicate key" for a clash inside one insert.
        if "duplicate key" in message.lower():
            return DuplicateError(message)
        return ConstraintError(message)
    if isinstance(exc, (duckdb.IOException, duckdb.FatalException, duckdb.InternalException)):
        return StoreBroken(message)
    if isinstance(exc, duckdb.DataError):
        # Conversion and range errors are about the value written, not about the store.
        return ConstraintError(message)
    return StateError(message)


@contextmanager
def translated_errors() -> Iterator[None]:
    """Re-raise any duckdb error inside the block as a StateError, chained to the original."""
    try:
        yield
    except duckdb.Error as exc:
        raise translate_error(exc) from exc
