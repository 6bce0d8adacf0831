"""Users, API keys and revoked refresh tokens.

These rows change rarely, so each function is one autocommitted statement on the connection it is
given. Passwords and keys arrive already hashed: hashing belongs to the auth code, not here.
"""

from __future__ import annotations

from typing import Any, Literal

import duckdb
import msgspec

from state._sql import first_row
from state.errors import StateError, translated_errors

__all__ = [
    "ApiKeyRow",
    "ApiKeyScope",
    "Role",
    "UserRow",
    "count_users",
    "create_api_key",
    "create_user",
    "find_api_key_by_hash",
    "get_user",
    "get_user_by_name",
    "is_token_revoked",
    "list_api_keys",
    "list_users",
    "purge_expired_tokens",
    "revoke_api_key",
    "revoke_token",
    "set_user_disabled",
    "set_user_password",
]

Role = Literal["operator", "engineer", "admin"]
ApiKeyScope = Literal["read", "read_write"]


class UserRow(msgspec.Struct, frozen=True, kw_only=True):
    """A stored user account."""

    id: int
    username: str
    password_hash: str
    role: Role
    created_us: int
    disabled: bool


class ApiKeyRow(msgspec.Struct, frozen=True, kw_only=True):
    """A stored API key; only its hash and visible prefix are kept."""

    id: int
    name: str
    prefix: str
    key_hash: str
    scope: ApiKeyScope
    created_by: str | None
    created_us: int
    revoked_us: int | None


_USER_COLUMNS = "id, username, password_hash, role, created_us, disabled"
_KEY_COLUMNS = "id, name, prefix, key_hash, scope, created_by, created_us, revoked_us"


def create_user(
    con: duckdb.DuckDBPyConnection, username: str, password_hash: str, role: Role, now_us: int
) -> int:
    """Store a new user and return its id; DuplicateError if the username is taken."""
    return _insert_returning_id(
        con,
        "INSERT INTO users (username, password_hash, role, created_us) VALUES (?, ?, ?, ?)",
        [username, password_hash, role, now_us],
    )


def get_user(con: duckdb.DuckDBPyConnection, user_id: int) -> UserRow | None:
    """The user with this id, or None."""
    row = _fetch_one(con, f"SELECT {_USER_COLUMNS} FROM users WHERE id = ?", [user_id])
    return _user(row) if row is not None else None


def get_user_by_name(con: duckdb.DuckDBPyConnection, username: str) -> UserRow | None:
    """The user with exactly this username, or None."""
    row = _fetch_one(con, f"SELECT {_USER_COLUMNS} FROM users WHERE username = ?", [username])
    return _user(row) if row is not None else None


def list_users(con: duckdb.DuckDBPyConnection) -> list[UserRow]:
    """Every user, disabled ones included, in creation order."""
    with translated_errors():
        rows = con.execute(f"SELECT {_USER_COLUMNS} FROM users ORDER BY id").fetchall()
    return [_user(row) for row in rows]


def count_users(con: duckdb.DuckDBPyConnection) -> int:
    """How many users exist; zero on first start, when the admin account must be created."""
    row = _fetch_one(con, "SELECT count(*) FROM users", [])
    return int(row[0]) if row is not None else 0


def set_user_password(con: duckdb.DuckDBPyConnection, user_id: int, password_hash: str) -> bool:
    """Replace a user's password hash; False if there is no such user."""
    return _changed(
        con, "UPDATE users SET password_hash = ? WHERE id = ?", [password_hash, user_id]
    )


def set_user_disabled(con: duckdb.DuckDBPyConnection, user_id: int, disabled: bool) -> bool:
    """Disable or re-enable a user; False if there is no such user."""
    return _changed(con, "UPDATE users SET disabled = ? WHERE id = ?", [disabled, user_id])


def create_api_key(
    con: duckdb.DuckDBPyConnection,
    *,
    name: str,
    prefix: str,
    key_hash: str,
    scope: ApiKeyScope,
    created_by: str | None,
    now_us: int,
) -> int:
    """Store a new API key and return its id; DuplicateError if the hash is already stored."""
    return _insert_returning_id(
        con,
        "INSERT INTO api_keys (name, prefix, key_hash, scope, created_by, created_us) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [name, prefix, key_hash, scope, created_by, now_us],
    )


def find_api_key_by_hash(con: duckdb.DuckDBPyConnection, key_hash: str) -> ApiKeyRow | None:
    """The key with this hash if it has not been revoked, else None."""
    row = _fetch_one(
        con,
        f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE key_hash = ? AND revoked_us IS NULL",
        [key_hash],
    )
    return _api_key(row) if row is not None else None


def list_api_keys(con: duckdb.DuckDBPyConnection) -> list[ApiKeyRow]:
    """Every key, revoked ones included, in creation order."""
    with translated_errors():
        rows = con.execute(f"SELECT {_KEY_COLUMNS} FROM api_keys ORDER BY id").fetchall()
    return [_api_key(row) for row in rows]


def revoke_api_key(con: duckdb.DuckDBPyConnection, key_id: int, now_us: int) -> bool:
    """Revoke a key; False if there is no such key or it was already revoked."""
    return _changed(
        con,
        "UPDATE api_keys SET revoked_us = ? WHERE id = ? AND revoked_us IS NULL",
        [now_us, key_id],
    )


def revoke_token(con: duckdb.DuckDBPyConnection, jti: str, expires_us: int) -> None:
    """Record a refresh token as revoked until it expires; revoking it again is a no-op."""
    with translated_errors():
        con.execute(
            "INSERT INTO revoked_tokens (jti, expires_us) VALUES (?, ?) ON CONFLICT DO NOTHING",
            [jti, expires_us],
        )


def is_token_revoked(con: duckdb.DuckDBPyConnection, jti: str) -> bool:
    """Whether the refresh token with this id has been revoked."""
    return _fetch_one(con, "SELECT 1 FROM revoked_tokens WHERE jti = ?", [jti]) is not None


def purge_expired_tokens(con: duckdb.DuckDBPyConnection, now_us: int) -> int:
    """Forget revocations of tokens that expired before now_us; return how many were dropped.

    A token is only forgotten strictly after its expiry: pass now minus any clock leeway that
    token validation allows, or a revoked token would be accepted again inside that leeway.
    """
    row = _fetch_one(con, "DELETE FROM revoked_tokens WHERE expires_us < ?", [now_us])
    return int(row[0]) if row is not None else 0


def _user(row: tuple[Any, ...]) -> UserRow:
    user_id, username, password_hash, role, created_us, disabled = row
    return UserRow(
        id=user_id,
        username=username,
        password_hash=password_hash,
        role=role,
        created_us=created_us,
        disabled=disabled,
    )


def _api_key(row: tuple[Any, ...]) -> ApiKeyRow:
    key_id, name, prefix, key_hash, scope, created_by, created_us, revoked_us = row
    return ApiKeyRow(
        id=key_id,
        name=name,
        prefix=prefix,
        key_hash=key_hash,
        scope=scope,
        created_by=created_by,
        created_us=created_us,
        revoked_us=revoked_us,
    )


def _fetch_one(
    con: duckdb.DuckDBPyConnection, sql: str, params: list[object]
) -> tuple[Any, ...] | None:
    with translated_errors():
        return first_row(con.execute(sql, params))


def _insert_returning_id(con: duckdb.DuckDBPyConnection, sql: str, params: list[object]) -> int:
    row = _fetch_one(con, sql + " RETURNING id", params)
    if row is None:
        raise StateError("insert returned no id")
    return int(row[0])


def _changed(con: duckdb.DuckDBPyConnection, sql: str, params: list[object]) -> bool:
    # duckdb answers UPDATE and DELETE with one row holding the number of rows changed.
    row = _fetch_one(con, sql, params)
    return row is not None and int(row[0]) > 0
