"""Access and refresh tokens: expiry on the runtime clock, types kept apart, forgeries refused."""

from __future__ import annotations

import pytest

from api.tokens import ACCESS_TTL_S, TokenError, TokenIssuer
from controller.access import Role

SECRET = b"k" * 32
NOW = 1_800_000_000.0


def test_round_trip_and_expiry_on_the_given_clock() -> None:
    tokens = TokenIssuer(SECRET)
    pair = tokens.issue("ada", Role.ENGINEER, NOW)
    claims = tokens.decode(pair.access_token, "access", NOW + 1)
    assert (claims["sub"], claims["role"]) == ("ada", "engineer")
    # A second decode comes from the cache and still honours expiry.
    tokens.decode(pair.access_token, "access", NOW + ACCESS_TTL_S - 1)
    with pytest.raises(TokenError, match="expired"):
        tokens.decode(pair.access_token, "access", NOW + ACCESS_TTL_S)


def test_token_types_are_not_interchangeable() -> None:
    tokens = TokenIssuer(SECRET)
    pair = tokens.issue("ada", Role.OPERATOR, NOW)
    with pytest.raises(TokenError, match="refresh token cannot be used"):
        tokens.decode(pair.refresh_token, "access", NOW)
    with pytest.raises(TokenError, match="access token cannot be used"):
        tokens.decode(pair.access_token, "refresh", NOW)


def test_forged_and_foreign_tokens_are_refused() -> None:
    tokens = TokenIssuer(SECRET)
    good = tokens.issue("ada", Role.ADMIN, NOW).access_token
    tokens.decode(good, "access", NOW)  # cached as verified
    head, body, sig = good.split(".")
    for forged in (f"{head}.{body}.{sig[:-2]}xx", f"{head}.{body}x.{sig}", "a.b.c", ""):
        with pytest.raises(TokenError, match="invalid token"):
            tokens.decode(forged, "access", NOW)
    other = TokenIssuer(b"o" * 32).issue("ada", Role.ADMIN, NOW).access_token
    with pytest.raises(TokenError, match="invalid token"):
        tokens.decode(other, "access", NOW)


def test_verified_cache_is_bounded() -> None:
    tokens = TokenIssuer(SECRET)
    for i in range(TokenIssuer.CACHE_SIZE + 10):
        tokens.decode(tokens.issue(f"u{i}", Role.OPERATOR, NOW).access_token, "access", NOW)
    assert len(tokens._verified) == TokenIssuer.CACHE_SIZE


def test_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        TokenIssuer(b"short")
