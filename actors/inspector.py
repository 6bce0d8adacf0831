"""Inspector actor: runs the station's vision models on camera frames and uploaded images."""

from __future__ import annotations

from typing import Any

import duckdb

from actors.base import TaktActor
from actors.health import HealthState
from actors.runtime import Runtime
from controller.inspector_config import InspectorConfig

__all__ = ["InspectorActor"]


class InspectorActor(TaktActor):
    def __init__(self, runtime: Runtime, name: str, config: InspectorConfig,
                 database: duckdb.DuckDBPyConnection, *, station_id: str, **kw: Any) -> None:
        super().__init__(runtime, name, **kw)
        self.config = config
        self.station_id = station_id
        self.con = database.cursor()

    def started(self) -> None:
        self.set_health(HealthState.UP)

    def stopping(self) -> None:
        self.con.close()
