"""Who may do what: roles, API key scopes, password rules. Pure, so the matrix is testable."""

from __future__ import annotations

import enum

import msgspec

__all__ = [
    "Principal",
    "Role",
    "Scope",
    "check_password_rules",
    "permits",
]


class Role(enum.StrEnum):
    OPERATOR = "operator"
    ENGINEER = "engineer"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Role.OPERATOR: 0, Role.ENGINEER: 1, Role.ADMIN: 2}


class Scope(enum.StrEnum):
    READ = "read"
    READ_WRITE = "read_write"


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """The caller of a request: a user (role) or an integrator's API key (scope)."""

    name: str
    kind: str  # "user" | "api_key"
    role: Role | None = None
    scope: Scope | None = None


def permits(principal: Principal, min_role: Role, write: bool) -> bool:
    """Users need at least `min_role`; API keys never reach admin routes, and `read` keys
    only reach routes that change nothing."""
    if principal.kind == "user":
        return principal.role is not None and principal.role.rank >= min_role.rank
    if min_role is Role.ADMIN:
        return False
    return not write or principal.scope is Scope.READ_WRITE


MIN_PASSWORD_LENGTH = 10


def check_password_rules(username: str, password: str) -> list[str]:
    """Every rule the password breaks, as sentences for the user; empty when it is fine."""
    problems = []
    if len(password) < MIN_PASSWORD_LENGTH:
        problems.append(f"must be at least {MIN_PASSWORD_LENGTH} characters long")
    if len(password) > 256:
        problems.append("must be at most 256 characters long")
    if password.strip() != password:
        problems.append("must not start or end with white space")
    if username and username.lower() in password.lower():
        problems.append("must not contain the user name")
    if len(set(password)) < 4:
        problems.append("must use at least 4 different characters")
    return problems
