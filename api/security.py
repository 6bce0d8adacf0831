"""Who is calling: bearer JWT (users) or API key (integrators), and the `requires` guard."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from quart import g, request, websocket
from quart_schema import security_scheme

from actors.auth import KEY_PREFIX, CheckApiKey
from api.http import Handler, ask_actor, facade
from api.problems import Problem
from api.tokens import TokenError
from controller.access import Principal, Role, permits

__all__ = ["authenticate", "current_principal", "requires"]

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="takt"'}


def _bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem(401, "use 'Authorization: Bearer <token or API key>'", headers=_CHALLENGE)
    return token.strip()


async def authenticate(token: str | None) -> Principal:
    if token is None:
        raise Problem(401, "authentication required", headers=_CHALLENGE)
    if token.startswith(KEY_PREFIX):
        principal = await ask_actor("auth", CheckApiKey(token))
        if principal is None:
            raise Problem(401, "unknown or revoked API key", headers=_CHALLENGE)
        return principal  # type: ignore[no-any-return]
    f = facade()
    try:
        claims = f.tokens.decode(token, "access", f.runtime.clock.now_us() / 1e6)
    except TokenError as exc:
        raise Problem(401, str(exc), headers=_CHALLENGE) from None
    return Principal(name=claims["sub"], kind="user", role=Role(claims["role"]))


def requires(min_role: Role, *, write: bool = False) -> Callable[[Handler], Handler]:
    """Guard a route: at least `min_role` for users; `write` routes need a read_write key."""

    def wrap(fn: Handler) -> Handler:
        @functools.wraps(fn)
        async def handler(*args: Any, **kwargs: Any) -> Any:
            principal = await authenticate(_bearer(request.headers.get("Authorization")))
            if not permits(principal, min_role, write):
                raise Problem(403, f"{principal.name} may not do this "
                                   f"(needs role {min_role.value}"
                                   f"{' and write access' if write else ''})")
            g.principal = principal
            return await fn(*args, **kwargs)

        return security_scheme([{"bearer": []}])(handler)  # type: ignore[no-any-return]

    return wrap


def current_principal() -> Principal:
    return g.principal  # type: ignore[no-any-return]


def websocket_token() -> str | None:
    """A WS client authenticates by header, or by `?token=` (browsers cannot set headers)."""
    header = websocket.headers.get("Authorization")
    if header:
        return _bearer(header)
    return websocket.args.get("token") or None
