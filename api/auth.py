"""/api/v1/auth: login, refresh, logout, me."""

from __future__ import annotations

import msgspec
from quart import Blueprint, request
from quart_schema import document_response, tag

from actors.auth import CheckRefresh, InvalidCredentials, Login, RevokeToken
from api.http import ask_actor, body, facade, json_response
from api.problems import Problem
from api.security import current_principal, requires
from api.tokens import TokenError, TokenPair
from controller.access import Principal, Role

__all__ = ["blueprint"]

blueprint = Blueprint("auth", __name__, url_prefix="/api/v1/auth")


class LoginRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    username: str
    password: str


class RefreshRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    refresh_token: str


def _client() -> str:
    return request.remote_addr or "unknown"


@blueprint.post("/login")
@tag(["auth"])
@body(LoginRequest)
@document_response(TokenPair)
async def login(data: LoginRequest) -> object:
    """Exchange user name and password for an access and a refresh token."""
    f = facade()
    wait = f.login_limiter.hit(_client(), f.runtime.clock.monotonic())
    if wait is not None:
        raise Problem(429, "too many login attempts; try again later",
                      headers={"Retry-After": str(max(1, round(wait)))})
    if not data.username or len(data.username) > 64 or len(data.password) > 256:
        raise Problem(401, "wrong user name or password")
    try:
        user = await ask_actor("auth", Login(username=data.username, password=data.password))
    except InvalidCredentials as exc:
        raise Problem(401, str(exc)) from None
    return json_response(f.tokens.issue(user.username, user.role, f.runtime.clock.now_us() / 1e6))


@blueprint.post("/refresh")
@tag(["auth"])
@body(RefreshRequest)
@document_response(TokenPair)
async def refresh(data: RefreshRequest) -> object:
    """Trade a refresh token for a new pair; the old refresh token stops working."""
    f = facade()
    now = f.runtime.clock.now_us() / 1e6
    try:
        claims = f.tokens.decode(data.refresh_token, "refresh", now)
    except TokenError as exc:
        raise Problem(401, str(exc)) from None
    try:
        user = await ask_actor("auth", CheckRefresh(jti=claims["jti"], username=claims["sub"]))
    except InvalidCredentials as exc:
        raise Problem(401, str(exc)) from None
    await ask_actor("auth", RevokeToken(jti=claims["jti"], expires_us=claims["exp"] * 1_000_000))
    return json_response(f.tokens.issue(user.username, user.role, now))


@blueprint.post("/logout")
@tag(["auth"])
@body(RefreshRequest)
async def logout(data: RefreshRequest) -> object:
    """Revoke a refresh token (access tokens expire on their own within minutes)."""
    f = facade()
    try:
        claims = f.tokens.decode(data.refresh_token, "refresh", f.runtime.clock.now_us() / 1e6)
    except TokenError as exc:
        raise Problem(401, str(exc)) from None
    await ask_actor("auth", RevokeToken(jti=claims["jti"], expires_us=claims["exp"] * 1_000_000))
    return json_response({"logged_out": True})


@blueprint.get("/me")
@tag(["auth"])
@requires(Role.OPERATOR)
@document_response(Principal)
async def me() -> object:
    """Who the token or API key belongs to."""
    return json_response(current_principal())
