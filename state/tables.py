"""Registry of tables a WriteBatch can fill, and the Arrow insert that every batched write uses.

A table plugs into group commit by registering a TableSpec: the msgspec Struct type of its rows
and the Arrow schema of the columns to write, in the order they are written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

import duckdb
import msgspec
import pyarrow as pa

from state.errors import ConstraintError, translated_errors

__all__ = [
    "TableSpec",
    "insert_rows",
    "register_table",
    "registered_tables",
    "spec_for_row_type",
    "table_spec",
]


@dataclass(frozen=True, slots=True)
class TableSpec:
    """How rows of one Struct type land in one table; the schema's field order is column order."""

    table: str
    row_type: type[msgspec.Struct]
    schema: pa.Schema
    insert_sql: str = field(init=False, repr=False, compare=False)
    _getters: tuple[attrgetter[Any], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = list(self.schema.names)
        if set(names) != set(self.row_type.__struct_fields__) or len(names) != len(set(names)):
            raise ValueError(
                f"{self.table}: schema fields {names} differ from the fields of "
                f"{self.row_type.__name__} {list(self.row_type.__struct_fields__)}"
            )
        columns = ", ".join(names)
        # `arrow_rows` is resolved by duckdb's replacement scan to the local of that name in
        # _insert_arrow; naming the columns keeps the insert right when migrations add columns.
        sql = f"INSERT INTO {self.table} ({columns}) SELECT {columns} FROM arrow_rows"
        object.__setattr__(self, "insert_sql", sql)
        object.__setattr__(self, "_getters", tuple(attrgetter(name) for name in names))

    def to_arrow(self, rows: Sequence[msgspec.Struct]) -> pa.Table:
        """The rows as an Arrow table of this spec's schema."""
        try:
            columns = [
                pa.array(list(map(get, rows)), type=column.type)
                for get, column in zip(self._getters, self.schema, strict=True)
            ]
        except (pa.ArrowException, AttributeError) as exc:
            # msgspec does not check field types on construction, so a wrong value shows up here.
            raise ConstraintError(f"{self.table}: a row does not fit the table: {exc}") from exc
        return pa.Table.from_arrays(columns, schema=self.schema)


_by_table: dict[str, TableSpec] = {}
_by_row_type: dict[type[msgspec.Struct], TableSpec] = {}


def register_table(spec: TableSpec) -> TableSpec:
    """Make a table writable through WriteBatch; registering the same spec again is a no-op."""
    existing = _by_table.get(spec.table) or _by_row_type.get(spec.row_type)
    if existing is not None:
        if existing == spec:
            return existing
        raise ValueError(f"{spec.table} or {spec.row_type.__name__} is registered differently")
    _by_table[spec.table] = spec
    _by_row_type[spec.row_type] = spec
    return spec


def table_spec(table: str) -> TableSpec:
    """The spec registered for a table name; KeyError if none is."""
    return _by_table[table]


def spec_for_row_type(row_type: type) -> TableSpec:
    """The spec whose rows are of this type; TypeError if no table takes them."""
    try:
        return _by_row_type[row_type]
    except KeyError:
        raise TypeError(f"no table is registered for rows of type {row_type.__name__}") from None


def registered_tables() -> list[str]:
    """Names of the registered tables, in registration order."""
    return list(_by_table)


def insert_rows(
    con: duckdb.DuckDBPyConnection, spec: TableSpec, rows: Sequence[msgspec.Struct]
) -> None:
    """Insert rows in one statement through Arrow; the caller owns the transaction."""
    if not rows:
        return
    with translated_errors():
        _insert_arrow(con, spec.insert_sql, spec.to_arrow(rows))


def _insert_arrow(con: duckdb.DuckDBPyConnection, sql: str, arrow_rows: pa.Table) -> None:
    # The SQL names `arrow_rows`, which duckdb finds in this frame (a replacement scan). With
    # duckdb 2.0 this beat con.register()/unregister() (two more statements per table) and the
    # appender (slower from ~500 rows per batch on; equal below); see bench/state_batch.py.
    con.execute(sql)
