"""JWT access and refresh tokens (HS256, secret from the data directory)."""

from __future__ import annotations

import secrets
from typing import Any

import jwt
import msgspec

from controller.access import Role

__all__ = ["TokenError", "TokenIssuer", "TokenPair"]

ACCESS_TTL_S = 15 * 60
REFRESH_TTL_S = 7 * 24 * 3600


class TokenError(Exception):
    pass


class TokenPair(msgspec.Struct, frozen=True, kw_only=True):
    access_token: str
    refresh_token: str
    token_type: str = "Bearer"
    expires_in: int = ACCESS_TTL_S


class TokenIssuer:
    CACHE_SIZE = 4096

    def __init__(self, secret: bytes, issuer: str = "takt") -> None:
        if len(secret) < 32:
            raise ValueError("the token secret must be at least 32 bytes")
        self._secret = secret
        self._issuer = issuer
        # Signature checks cost ~40 us each (most of a cheap GET); a token string that
        # verified once verifies again, so only its expiry is rechecked on a hit.
        self._verified: dict[str, dict[str, Any]] = {}

    def issue(self, username: str, role: Role, now_s: float) -> TokenPair:
        return TokenPair(
            access_token=self._encode(username, role, "access", now_s, ACCESS_TTL_S),
            refresh_token=self._encode(username, role, "refresh", now_s, REFRESH_TTL_S),
        )

    def decode(self, token: str, typ: str, now_s: float) -> dict[str, Any]:
        claims = self._verified.get(token)
        if claims is None:
            claims = self._verify(token)
            if len(self._verified) >= self.CACHE_SIZE:
                self._verified.pop(next(iter(self._verified)))  # the oldest entry
            self._verified[token] = claims
        if claims["typ"] != typ:
            raise TokenError(f"a {claims['typ']} token cannot be used here")
        # Expiry is checked against the runtime clock, so virtual time governs tokens too.
        if claims["exp"] <= now_s:
            raise TokenError("token expired")
        return claims

    def _verify(self, token: str) -> dict[str, Any]:
        try:
            claims = jwt.decode(
                token, self._secret, algorithms=["HS256"], issuer=self._issuer,
                options={"require": ["exp", "iat", "sub", "jti", "typ", "role"],
                         "verify_exp": False, "verify_iat": False},
            )
        except jwt.PyJWTError as exc:
            raise TokenError(f"invalid token: {exc}") from None
        if claims["role"] not in Role.__members__.values():
            raise TokenError("invalid token: unknown role")
        return claims

    def _encode(self, username: str, role: Role, typ: str, now_s: float, ttl: int) -> str:
        claims = {
            "iss": self._issuer, "sub": username, "role": role.value, "typ": typ,
            "iat": int(now_s), "exp": int(now_s) + ttl, "jti": secrets.token_hex(16),
        }
        return jwt.encode(claims, self._secret, algorithm="HS256")
