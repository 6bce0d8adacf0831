"""Users, API keys and revoked tokens, against a real database file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from state.connection import open_database
from state.errors import ConstraintError, DuplicateError, StateError
from state.users import (
    ApiKeyRow,
    UserRow,
    count_users,
    create_api_key,
    create_user,
    find_api_key_by_hash,
    get_user,
    get_user_by_name,
    is_token_revoked,
    list_api_keys,
    list_users,
    purge_expired_tokens,
    revoke_api_key,
    revoke_token,
    set_user_disabled,
    set_user_password,
)

NOW = 1_750_000_000_000_000


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "station.duckdb"


@pytest.fixture
def con(db_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    con = open_database(db_path)
    yield con
    con.close()


def test_created_user_is_found_by_id_and_name(con: duckdb.DuckDBPyConnection) -> None:
    assert count_users(con) == 0
    user_id = create_user(con, "ada", "$argon2id$hash-a", "engineer", NOW)

    expected = UserRow(
        id=user_id,
        username="ada",
        password_hash="$argon2id$hash-a",
        role="engineer",
        created_us=NOW,
        disabled=False,
    )
    assert get_user(con, user_id) == expected
    assert get_user_by_name(con, "ada") == expected
    assert get_user_by_name(con, "ADA") is None  # usernames match exactly
    assert get_user(con, user_id + 1) is None
    assert count_users(con) == 1


def test_users_are_listed_in_creation_order_with_distinct_ids(
    con: duckdb.DuckDBPyConnection,
) -> None:
    ids = [create_user(con, name, "h", "operator", NOW + i) for i, name in enumerate("zyx")]

    assert len(set(ids)) == 3
    assert [(u.id, u.username) for u in list_users(con)] == list(zip(ids, "zyx", strict=True))


def test_duplicate_username_is_a_duplicate_error_and_changes_nothing(
    con: duckdb.DuckDBPyConnection,
) -> None:
    create_user(con, "ada", "h1", "admin", NOW)

    with pytest.raises(DuplicateError, match="ada"):
        create_user(con, "ada", "h2", "operator", NOW + 1)
    assert count_users(con) == 1
    user = get_user_by_name(con, "ada")
    assert user is not None and user.password_hash == "h1"


def test_unknown_role_is_a_constraint_error_not_a_duplicate(
    con: duckdb.DuckDBPyConnection,
) -> None:
    with pytest.raises(ConstraintError) as raised:
        create_user(con, "eve", "h", "root", NOW)  # type: ignore[arg-type]
    assert not isinstance(raised.value, DuplicateError)
    assert isinstance(raised.value, StateError)
    assert count_users(con) == 0


def test_password_and_disabled_flag_change_only_the_named_user(
    con: duckdb.DuckDBPyConnection,
) -> None:
    ada = create_user(con, "ada", "old", "admin", NOW)
    bob = create_user(con, "bob", "bob-hash", "operator", NOW)

    assert set_user_password(con, ada, "new") is True
    assert set_user_disabled(con, ada, True) is True
    assert set_user_password(con, 999, "x") is False
    assert set_user_disabled(con, 999, True) is False

    after_ada, after_bob = get_user(con, ada), get_user(con, bob)
    assert after_ada is not None and (after_ada.password_hash, after_ada.disabled) == ("new", True)
    assert after_bob is not None and (after_bob.password_hash, after_bob.disabled) == (
        "bob-hash",
        False,
    )
    assert set_user_disabled(con, ada, False) is True
    assert (get_user(con, ada) or after_ada).disabled is False


def _key(con: duckdb.DuckDBPyConnection, name: str, key_hash: str, scope: str = "read") -> int:
    return create_api_key(
        con,
        name=name,
        prefix=key_hash[:6],
        key_hash=key_hash,
        scope=scope,  # type: ignore[arg-type]
        created_by="ada",
        now_us=NOW,
    )


def test_api_key_is_found_by_hash_until_revoked(con: duckdb.DuckDBPyConnection) -> None:
    key_id = _key(con, "mes uplink", "hash-of-key-1", "read_write")

    assert find_api_key_by_hash(con, "hash-of-key-1") == ApiKeyRow(
        id=key_id,
        name="mes uplink",
        prefix="hash-o",
        key_hash="hash-of-key-1",
        scope="read_write",
        created_by="ada",
        created_us=NOW,
        revoked_us=None,
    )
    assert find_api_key_by_hash(con, "other") is None

    assert revoke_api_key(con, key_id, NOW + 5) is True
    assert find_api_key_by_hash(con, "hash-of-key-1") is None
    assert revoke_api_key(con, key_id, NOW + 9) is False  # already revoked: first time stays
    assert revoke_api_key(con, 999, NOW) is False
    (listed,) = list_api_keys(con)
    assert listed.revoked_us == NOW + 5


def test_api_keys_listed_in_creation_order_including_revoked(
    con: duckdb.DuckDBPyConnection,
) -> None:
    first = _key(con, "a", "hash-a")
    second = _key(con, "b", "hash-b")
    revoke_api_key(con, first, NOW)

    assert [(k.id, k.revoked_us) for k in list_api_keys(con)] == [(first, NOW), (second, None)]


def test_duplicate_key_hash_and_bad_scope_are_rejected(con: duckdb.DuckDBPyConnection) -> None:
    _key(con, "a", "same-hash")
    with pytest.raises(DuplicateError):
        _key(con, "b", "same-hash")
    with pytest.raises(ConstraintError) as raised:
        _key(con, "c", "other-hash", "admin")
    assert not isinstance(raised.value, DuplicateError)
    assert [k.name for k in list_api_keys(con)] == ["a"]


def test_revoked_token_is_remembered_until_purged_after_expiry(
    con: duckdb.DuckDBPyConnection,
) -> None:
    revoke_token(con, "jti-old", NOW - 1)
    revoke_token(con, "jti-edge", NOW)
    revoke_token(con, "jti-new", NOW + 1_000_000)
    revoke_token(con, "jti-new", NOW + 1_000_000)  # logging out twice is fine

    assert is_token_revoked(con, "jti-old")
    assert not is_token_revoked(con, "never-seen")

    assert purge_expired_tokens(con, NOW) == 1
    assert not is_token_revoked(con, "jti-old")
    assert is_token_revoked(con, "jti-edge")  # expires exactly now: not yet forgotten
    assert is_token_revoked(con, "jti-new")
    assert purge_expired_tokens(con, NOW) == 0


def test_accounts_and_revocations_survive_close_and_reopen(db_path: Path) -> None:
    con = open_database(db_path)
    user_id = create_user(con, "ada", "h", "admin", NOW)
    _key(con, "a", "hash-a")
    revoke_token(con, "jti", NOW + 1)
    con.close()

    con = open_database(db_path)
    assert get_user_by_name(con, "ada") is not None
    assert find_api_key_by_hash(con, "hash-a") is not None
    assert is_token_revoked(con, "jti")
    # The id sequence continues after a reopen instead of handing out a used id again.
    assert create_user(con, "bob", "h", "operator", NOW) != user_id
    con.close()
