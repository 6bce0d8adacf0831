"""The registry of vision models (migration 0012): every imported or trained version, which
one is deployed, and what was deployed before it (for rollback). Written by the inspector on
its own cursor: a few rows, changed rarely."""

from __future__ import annotations

import uuid
from typing import Any, Literal

import duckdb
import msgspec

from state._sql import fetch_one, transaction
from state.errors import NotFound, translated_errors

__all__ = [
    "ModelRow",
    "active_model",
    "deploy_model",
    "get_model",
    "list_models",
    "register_model",
]

ModelKind = Literal["ir", "onnx"]
ModelSource = Literal["trained", "imported"]


class ModelRow(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    version: int
    path: str
    labels: list[str]
    kind: ModelKind
    source: ModelSource
    metrics: dict[str, Any] | None
    created_us: int
    deployed_at_us: int | None
    active: bool
    previous_id: str | None


_COLUMNS = ", ".join(ModelRow.__struct_fields__)
_DECODE_LABELS = msgspec.json.Decoder(list[str])
_DECODE_METRICS = msgspec.json.Decoder(dict[str, Any] | None)


def _model(row: tuple[Any, ...]) -> ModelRow:
    values = dict(zip(ModelRow.__struct_fields__, row, strict=True))
    values["labels"] = _DECODE_LABELS.decode(values["labels"])
    values["metrics"] = (None if values["metrics"] is None
                         else _DECODE_METRICS.decode(values["metrics"]))
    return ModelRow(**values)


def register_model(con: duckdb.DuckDBPyConnection, *, name: str, path: str,
                   labels: list[str], kind: ModelKind, source: ModelSource,
                   metrics: dict[str, Any] | None, now_us: int) -> ModelRow:
    """A new version of the model `name` (1 for a new name); not deployed."""
    model_id = str(uuid.uuid4())
    with transaction(con):
        row = fetch_one(con, "SELECT coalesce(max(version), 0) FROM vision_models WHERE name = ?",
                        [name])
        version = int(row[0]) + 1 if row else 1
        con.execute(
            f"INSERT INTO vision_models ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, "
            "false, NULL)",
            [model_id, name, version, path, msgspec.json.encode(labels).decode(), kind, source,
             None if metrics is None else msgspec.json.encode(metrics).decode(), now_us])
    found = get_model(con, model_id)
    if found is None:
        raise NotFound(f"model {model_id} vanished")
    return found


def get_model(con: duckdb.DuckDBPyConnection, model_id: str) -> ModelRow | None:
    row = fetch_one(con, f"SELECT {_COLUMNS} FROM vision_models WHERE id = ?", [model_id])
    return None if row is None else _model(row)


def list_models(con: duckdb.DuckDBPyConnection) -> list[ModelRow]:
    """Every registered model, newest first."""
    with translated_errors():
        rows = con.execute(f"SELECT {_COLUMNS} FROM vision_models "
                           "ORDER BY created_us DESC, name, version DESC").fetchall()
    return [_model(r) for r in rows]


def active_model(con: duckdb.DuckDBPyConnection) -> ModelRow | None:
    row = fetch_one(con, f"SELECT {_COLUMNS} FROM vision_models WHERE active", [])
    return None if row is None else _model(row)


def deploy_model(con: duckdb.DuckDBPyConnection, model_id: str, *, now_us: int,
                 rollback: bool = False) -> ModelRow:
    """Make model_id the active model. A deploy remembers the model it replaces (previous_id);
    a rollback keeps the target's own history, so rolling back again goes further back."""
    with transaction(con):
        target = get_model(con, model_id)
        if target is None:
            raise NotFound(f"no model {model_id}")
        current = active_model(con)
        con.execute("UPDATE vision_models SET active = false WHERE active")
        if rollback or current is None or current.id == model_id:
            con.execute("UPDATE vision_models SET active = true, deployed_at_us = ? WHERE id = ?",
                        [now_us, model_id])
        else:
            con.execute("UPDATE vision_models SET active = true, deployed_at_us = ?, "
                        "previous_id = ? WHERE id = ?", [now_us, current.id, model_id])
    deployed = get_model(con, model_id)
    if deployed is None:
        raise NotFound(f"model {model_id} vanished")
    return deployed
