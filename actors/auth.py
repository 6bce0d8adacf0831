"""Auth actor: users, passwords (argon2), API keys, revoked refresh tokens.

Password hashing is slow on purpose, so it runs here, off the trio thread. These
rows change rarely; the actor writes them on its own cursor as single autocommitted
statements instead of through the store's group commit.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

import argon2
import duckdb
import msgspec

from actors.base import handles
from actors.database import DatabaseActor
from actors.runtime import Runtime
from controller.access import Principal, Role, Scope, check_password_rules
from state import users as db
from state.errors import DuplicateError

__all__ = [
    "ApiKeyCreated",
    "ApiKeyInfo",
    "AuthActor",
    "CheckApiKey",
    "CheckRefresh",
    "CreateApiKey",
    "CreateUser",
    "EnsureAdmin",
    "InvalidCredentials",
    "ListApiKeys",
    "ListUsers",
    "Login",
    "PasswordRejected",
    "RevokeApiKey",
    "RevokeToken",
    "UserExists",
    "UserInfo",
]

KEY_PREFIX = "takt_"


class Login(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    username: str
    password: str


class CreateUser(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    username: str
    password: str
    role: Role


class ListUsers(msgspec.Struct, frozen=True, tag=True):
    pass


class EnsureAdmin(msgspec.Struct, frozen=True, tag=True):
    """On first start: create `admin` with a generated password and return it, else None."""


class CreateApiKey(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    name: str
    scope: Scope
    created_by: str


class ListApiKeys(msgspec.Struct, frozen=True, tag=True):
    pass


class RevokeApiKey(msgspec.Struct, frozen=True, tag=True):
    key_id: int


class CheckApiKey(msgspec.Struct, frozen=True, tag=True):
    key: str


class RevokeToken(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    jti: str
    expires_us: int


class CheckRefresh(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Is this refresh token still good, and for which user (who may since be disabled)?"""

    jti: str
    username: str


class UserInfo(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    username: str
    role: Role
    created_us: int
    disabled: bool


class ApiKeyInfo(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    name: str
    prefix: str
    scope: Scope
    created_by: str | None
    created_us: int
    revoked_us: int | None


class ApiKeyCreated(msgspec.Struct, frozen=True, kw_only=True):
    key: str  # shown once; only its hash is stored
    info: ApiKeyInfo


class InvalidCredentials(PermissionError):
    pass


class PasswordRejected(ValueError):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("password " + "; ".join(problems))
        self.problems = problems


class UserExists(ValueError):
    pass


def _user_info(row: db.UserRow) -> UserInfo:
    return UserInfo(id=row.id, username=row.username, role=Role(row.role),
                    created_us=row.created_us, disabled=row.disabled)


def _key_info(row: db.ApiKeyRow) -> ApiKeyInfo:
    return ApiKeyInfo(id=row.id, name=row.name, prefix=row.prefix, scope=Scope(row.scope),
                      created_by=row.created_by, created_us=row.created_us,
                      revoked_us=row.revoked_us)


def _key_hash(key: str) -> str:
    # API keys are 256-bit random strings: a fast hash is enough (no dictionary to attack).
    return hashlib.sha256(key.encode()).hexdigest()


class AuthActor(DatabaseActor):
    critical = True

    def __init__(self, runtime: Runtime, name: str, database: duckdb.DuckDBPyConnection, *,
                 hasher: argon2.PasswordHasher | None = None, **kw: Any) -> None:
        super().__init__(runtime, name, database, **kw)
        self.hasher = hasher or argon2.PasswordHasher()
        # A dummy hash so an unknown user costs as much as a wrong password (no timing oracle).
        self._dummy = self.hasher.hash(secrets.token_hex(16))

    @handles(Login)
    def _login(self, msg: Login) -> UserInfo:
        row = db.get_user_by_name(self.con, msg.username)
        try:
            self.hasher.verify(row.password_hash if row else self._dummy, msg.password)
        except argon2.exceptions.VerificationError:
            raise InvalidCredentials("wrong user name or password") from None
        if row is None or row.disabled:
            raise InvalidCredentials("wrong user name or password")
        if self.hasher.check_needs_rehash(row.password_hash):
            db.set_user_password(self.con, row.id, self.hasher.hash(msg.password))
        return _user_info(row)

    @handles(CreateUser)
    def _create_user(self, msg: CreateUser) -> UserInfo:
        problems = check_password_rules(msg.username, msg.password)
        if problems:
            raise PasswordRejected(problems)
        try:
            user_id = db.create_user(self.con, msg.username, self.hasher.hash(msg.password),
                                     msg.role.value, self.clock.now_us())
        except DuplicateError:
            raise UserExists(f"user {msg.username!r} exists already") from None
        row = db.get_user(self.con, user_id)
        assert row is not None
        return _user_info(row)

    @handles(ListUsers)
    def _list_users(self, _: ListUsers) -> list[UserInfo]:
        return [_user_info(r) for r in db.list_users(self.con)]

    @handles(EnsureAdmin)
    def _ensure_admin(self, _: EnsureAdmin) -> str | None:
        if db.count_users(self.con) > 0:
            return None
        password = secrets.token_urlsafe(15)
        db.create_user(self.con, "admin", self.hasher.hash(password), Role.ADMIN.value,
                       self.clock.now_us())
        return password

    @handles(CreateApiKey)
    def _create_key(self, msg: CreateApiKey) -> ApiKeyCreated:
        secret = secrets.token_urlsafe(32)
        key = f"{KEY_PREFIX}{secret}"
        key_id = db.create_api_key(self.con, name=msg.name, prefix=key[:12],
                                   key_hash=_key_hash(key), scope=msg.scope.value,
                                   created_by=msg.created_by, now_us=self.clock.now_us())
        info = next(k for k in db.list_api_keys(self.con) if k.id == key_id)
        return ApiKeyCreated(key=key, info=_key_info(info))

    @handles(ListApiKeys)
    def _list_keys(self, _: ListApiKeys) -> list[ApiKeyInfo]:
        return [_key_info(k) for k in db.list_api_keys(self.con)]

    @handles(RevokeApiKey)
    def _revoke_key(self, msg: RevokeApiKey) -> bool:
        return db.revoke_api_key(self.con, msg.key_id, self.clock.now_us())

    @handles(CheckApiKey)
    def _check_key(self, msg: CheckApiKey) -> Principal | None:
        if not msg.key.startswith(KEY_PREFIX):
            return None
        row = db.find_api_key_by_hash(self.con, _key_hash(msg.key))
        if row is None:
            return None
        return Principal(name=f"key:{row.name}", kind="api_key", scope=Scope(row.scope))

    @handles(RevokeToken)
    def _revoke_token(self, msg: RevokeToken) -> None:
        db.purge_expired_tokens(self.con, self.clock.now_us())
        db.revoke_token(self.con, msg.jti, msg.expires_us)

    @handles(CheckRefresh)
    def _check_refresh(self, msg: CheckRefresh) -> UserInfo:
        row = db.get_user_by_name(self.con, msg.username)
        if row is None or row.disabled or db.is_token_revoked(self.con, msg.jti):
            raise InvalidCredentials("refresh token is no longer valid")
        return _user_info(row)
