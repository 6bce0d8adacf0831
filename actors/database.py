"""Base of the actors that use the station database: each works on a cursor of its own."""

from __future__ import annotations

from typing import Any

import duckdb

from actors.base import TaktActor
from actors.runtime import Runtime

__all__ = ["DatabaseActor"]


class DatabaseActor(TaktActor):
    """Opens a cursor (a connection of its own to the same database) on start, closes it on
    stop or failure, so a restarted actor never inherits a broken transaction."""

    def __init__(self, runtime: Runtime, name: str, database: duckdb.DuckDBPyConnection,
                 **kw: Any) -> None:
        super().__init__(runtime, name, **kw)
        self.database = database
        self._con: duckdb.DuckDBPyConnection | None = None

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            raise RuntimeError(f"{self.name} has no database cursor (not started)")
        return self._con

    def started(self) -> None:
        self._con = self.database.cursor()
        super().started()

    def stopping(self) -> None:
        self._close()

    def failed(self, error: BaseException) -> None:
        self._close()

    def _close(self) -> None:
        con, self._con = self._con, None
        if con is not None:
            con.close()
