"""Settings rows: small JSON values by key, such as the config overrides made over the API.

Overrides live under `override.<section>` (e.g. `override.plcs`), each the JSON of the
config section it replaces, so an edit made on a running station survives a restart.
"""

from __future__ import annotations

from typing import Any

import duckdb
import msgspec

from state.errors import translated_errors

__all__ = ["delete_overrides", "load_overrides", "save_override"]

_PREFIX = "override."


def load_overrides(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """Every stored override, by section name."""
    with translated_errors():
        rows = con.execute(
            "SELECT key, value FROM settings WHERE starts_with(key, ?) ORDER BY key", [_PREFIX]
        ).fetchall()
    return {key[len(_PREFIX):]: msgspec.json.decode(value) for key, value in rows}


def save_override(con: duckdb.DuckDBPyConnection, section: str, value: Any, now_us: int) -> None:
    with translated_errors():
        con.execute(
            "INSERT OR REPLACE INTO settings (key, value, updated_us) VALUES (?, ?, ?)",
            [_PREFIX + section, msgspec.json.encode(value).decode(), now_us],
        )


def delete_overrides(con: duckdb.DuckDBPyConnection, sections: list[str] | None = None) -> int:
    """Drop the named overrides (all when None); how many were stored."""
    with translated_errors():
        if sections is None:
            keys = [k for (k,) in con.execute(
                "SELECT key FROM settings WHERE starts_with(key, ?)", [_PREFIX]).fetchall()]
        else:
            keys = [_PREFIX + s for s in sections]
        for key in keys:
            con.execute("DELETE FROM settings WHERE key = ?", [key])
    return len(keys)
