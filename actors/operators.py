"""Operators actor: changes to shop-floor operators, their passwords (argon2) and their
authentication by name and password.

Hashing and verifying are slow on purpose, so they run here, off the trio thread. Reads that
need no hashing (listings, RFID verify, name lookup) are answered by the query actors with the
messages defined here. Failed authentications are limited per operator: after
`MAX_FAILURES` within `FAILURE_WINDOW_S` the operator is refused without checking the password
until the window has passed (TooManyAttempts), so a badge PIN cannot be guessed at API speed.
"""

from __future__ import annotations

import secrets
from collections import deque
from typing import Any

import argon2
import duckdb
import msgspec

from actors.auth import InvalidCredentials, PasswordRejected
from actors.base import handles
from actors.database import DatabaseActor
from actors.runtime import Runtime
from state import operators as db
from state.errors import NotFound
from state.operators import Operator

__all__ = [
    "FAILURE_WINDOW_S",
    "MAX_FAILURES",
    "MAX_PASSWORD",
    "MIN_PASSWORD",
    "AddOperator",
    "Authenticate",
    "FailedAttempts",
    "GetOperator",
    "InvalidCredentials",
    "ListOperators",
    "LookupOperator",
    "OperatorsActor",
    "PasswordRejected",
    "SetActive",
    "SetEmail",
    "SetName",
    "SetPassword",
    "SetRfid",
    "SetRole",
    "TooManyAttempts",
    "VerifyRfid",
    "operator_password_problems",
]

MIN_PASSWORD = 8
MAX_PASSWORD = 128
MAX_FAILURES = 5
FAILURE_WINDOW_S = 60.0


# ---- writes (the operators actor) ------------------------------------------------------------


class AddOperator(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    first_name: str
    last_name: str
    role: str
    active: bool = True
    rfid: str | None = None
    email: str | None = None
    password: str | None = None


class SetActive(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    operator_id: int
    active: bool


class SetRole(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    operator_id: int
    role: str


class SetName(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    operator_id: int
    first_name: str
    last_name: str


class SetPassword(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Set the operator's password (checked against the rules); None removes it."""

    operator_id: int
    password: str | None


class SetRfid(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    operator_id: int
    rfid: str | None


class SetEmail(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    operator_id: int
    email: str | None


class Authenticate(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    first_name: str
    last_name: str
    password: str


# ---- reads (the query actors) ----------------------------------------------------------------


class ListOperators(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    active_only: bool = False


class GetOperator(msgspec.Struct, frozen=True, tag=True):
    operator_id: int


class VerifyRfid(msgspec.Struct, frozen=True, tag=True):
    """The active operator with this RFID, or NotFound."""

    rfid: str


class LookupOperator(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """The operator with this name, or NotFound."""

    first_name: str
    last_name: str


class TooManyAttempts(PermissionError):
    def __init__(self, retry_after_s: float) -> None:
        super().__init__("too many failed attempts for this operator; try again later")
        self.retry_after_s = retry_after_s


def operator_password_problems(first_name: str, last_name: str, password: str) -> list[str]:
    """Every rule the password breaks, as sentences for the operator; empty when it is fine."""
    problems = []
    if len(password) < MIN_PASSWORD:
        problems.append(f"must be at least {MIN_PASSWORD} characters long")
    if len(password) > MAX_PASSWORD:
        problems.append(f"must be at most {MAX_PASSWORD} characters long")
    if password.isdigit():
        problems.append("must not be only digits")
    first, last = first_name.casefold(), last_name.casefold()
    names = {first, last, first + last, last + first, f"{first} {last}", f"{last} {first}"}
    if password.casefold() in names:
        problems.append("must not be the operator's name")
    return problems


class FailedAttempts:
    """Failed attempts per key within a sliding window; a success clears the key. Bounded: the
    oldest keys are forgotten beyond `max_keys`."""

    def __init__(self, limit: int, window_s: float, max_keys: int = 10_000) -> None:
        self.limit = limit
        self.window_s = window_s
        self.max_keys = max_keys
        self._failures: dict[str, deque[float]] = {}

    def retry_after(self, key: str, now_s: float) -> float | None:
        """None if the key may try now, else seconds until it may."""
        failures = self._failures.get(key)
        if failures is None:
            return None
        while failures and failures[0] <= now_s - self.window_s:
            failures.popleft()
        if len(failures) < self.limit:
            return None
        return failures[0] + self.window_s - now_s

    def failed(self, key: str, now_s: float) -> None:
        if key not in self._failures and len(self._failures) >= self.max_keys:
            self._failures.pop(next(iter(self._failures)))
        self._failures.setdefault(key, deque(maxlen=self.limit)).append(now_s)

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)


class OperatorsActor(DatabaseActor):
    def __init__(self, runtime: Runtime, name: str, database: duckdb.DuckDBPyConnection, *,
                 hasher: argon2.PasswordHasher | None = None, **kw: Any) -> None:
        super().__init__(runtime, name, database, **kw)
        self.hasher = hasher or argon2.PasswordHasher()
        # A dummy hash so an unknown operator costs as much as a wrong password (no timing
        # oracle telling which names exist).
        self._dummy = self.hasher.hash(secrets.token_hex(16))
        self.failures = FailedAttempts(MAX_FAILURES, FAILURE_WINDOW_S)

    def _hash(self, first_name: str, last_name: str, password: str | None) -> str | None:
        if password is None:
            return None
        problems = operator_password_problems(first_name, last_name, password)
        if problems:
            raise PasswordRejected(problems)
        return self.hasher.hash(password)

    @handles(AddOperator)
    def _add(self, msg: AddOperator) -> Operator:
        password_hash = self._hash(msg.first_name, msg.last_name, msg.password)
        row = db.add_operator(self.con, first_name=msg.first_name, last_name=msg.last_name,
                              role=msg.role, active=msg.active, rfid=msg.rfid, email=msg.email,
                              password_hash=password_hash, now_us=self.clock.now_us())
        return row.public()

    @handles(SetActive)
    def _active(self, msg: SetActive) -> Operator:
        return db.set_active(self.con, msg.operator_id, msg.active, self.clock.now_us()).public()

    @handles(SetRole)
    def _role(self, msg: SetRole) -> Operator:
        return db.set_role(self.con, msg.operator_id, msg.role, self.clock.now_us()).public()

    @handles(SetName)
    def _name(self, msg: SetName) -> Operator:
        return db.set_name(self.con, msg.operator_id, msg.first_name, msg.last_name,
                           self.clock.now_us()).public()

    @handles(SetPassword)
    def _password(self, msg: SetPassword) -> Operator:
        row = db.get_operator(self.con, msg.operator_id)
        if row is None:
            raise NotFound(f"no operator {msg.operator_id}")
        password_hash = self._hash(row.first_name, row.last_name, msg.password)
        return db.set_password_hash(self.con, row.id, password_hash, self.clock.now_us()).public()

    @handles(SetRfid)
    def _rfid(self, msg: SetRfid) -> Operator:
        return db.set_rfid(self.con, msg.operator_id, msg.rfid, self.clock.now_us()).public()

    @handles(SetEmail)
    def _email(self, msg: SetEmail) -> Operator:
        return db.set_email(self.con, msg.operator_id, msg.email, self.clock.now_us()).public()

    @handles(Authenticate)
    def _authenticate(self, msg: Authenticate) -> Operator:
        row = db.find_operator_by_name(self.con, msg.first_name, msg.last_name)
        key = (f"id:{row.id}" if row is not None
               else f"name:{msg.first_name.casefold()}\x1f{msg.last_name.casefold()}")
        now_s = self.clock.monotonic()
        wait = self.failures.retry_after(key, now_s)
        if wait is not None:
            raise TooManyAttempts(wait)
        stored = row.password_hash if row is not None else None
        if not self._verify(stored, msg.password):
            self.failures.failed(key, now_s)
            raise InvalidCredentials("wrong name or password")
        assert row is not None and stored is not None  # _verify is False without both
        self.failures.succeeded(key)
        if not row.active:
            raise InvalidCredentials(f"operator {row.id} is inactive")
        if self.hasher.check_needs_rehash(stored):
            db.set_password_hash(self.con, row.id, self.hasher.hash(msg.password),
                                 self.clock.now_us())
        return row.public()

    def _verify(self, stored: str | None, password: str) -> bool:
        if len(password) > MAX_PASSWORD:  # no password this long was ever accepted
            return False
        try:
            self.hasher.verify(stored or self._dummy, password)
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            return False
        return stored is not None
