"""Authentication and the role matrix, over the real auth actor and DuckDB."""

from __future__ import annotations

from typing import Any

import pytest

from controller.boot import Station
from tests.api.conftest import bearer, login

ROUTES = [
    # (method, path, body)         operator engineer admin  read-key read_write-key
    ("GET", "/api/v1/plcs", None, (200, 200, 200, 200, 200)),
    ("GET", "/api/v1/auth/me", None, (200, 200, 200, 200, 200)),
    ("PUT", "/api/v1/plcs/line1/signals/release", {"value": True}, (403, 200, 200, 403, 200)),
    ("GET", "/api/v1/users", None, (403, 403, 200, 403, 403)),
    ("POST", "/api/v1/api-keys", {"name": "x", "scope": "read"}, (403, 403, 201, 403, 403)),
]


async def _principals(client: Any, station: Station) -> list[dict[str, str]]:
    admin = await login(client, "admin", station.admin_password or "")
    tokens = []
    for role in ("operator", "engineer"):
        password = f"Str0ng-pass-{len(role)}"
        r = await client.post("/api/v1/users", headers=bearer(admin),
                              json={"username": role, "password": password, "role": role})
        assert r.status_code == 201, await r.get_json()
        tokens.append(bearer(await login(client, role, password)))
    tokens.append(bearer(admin))
    for scope in ("read", "read_write"):
        r = await client.post("/api/v1/api-keys", headers=bearer(admin),
                              json={"name": f"mes-{scope}", "scope": scope})
        assert r.status_code == 201
        key = (await r.get_json())["key"]
        assert key.startswith("takt_")
        tokens.append(bearer(key))
    return tokens


async def test_role_matrix(client: Any, station: Station) -> None:
    principals = await _principals(client, station)
    for method, path, body, expected in ROUTES:
        got = []
        for headers in principals:
            r = await client.open(path, method=method, headers=headers, json=body)
            got.append(r.status_code)
            if r.status_code >= 400:
                assert r.content_type == "application/problem+json"
        assert tuple(got) == expected, f"{method} {path}"


async def test_no_credentials_is_401_with_a_challenge(client: Any) -> None:
    r = await client.get("/api/v1/plcs")
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    doc = await r.get_json()
    assert doc["status"] == 401 and doc["title"] == "Unauthorized"


@pytest.mark.parametrize("header", ["Bearer nonsense", "Basic YWRtaW46eA==", "Bearer takt_forged"])
async def test_bad_credentials_are_401(client: Any, header: str) -> None:
    r = await client.get("/api/v1/plcs", headers={"Authorization": header})
    assert r.status_code == 401


async def test_wrong_password_is_401_and_changes_nothing(client: Any, station: Station) -> None:
    r = await client.post("/api/v1/auth/login", json={"username": "admin", "password": "wrong!"})
    assert r.status_code == 401
    assert await login(client, "admin", station.admin_password or "")


async def test_login_is_rate_limited_per_client(client: Any) -> None:
    codes = []
    for _ in range(12):
        r = await client.post("/api/v1/auth/login", json={"username": "x", "password": "y"})
        codes.append(r.status_code)
    assert codes[:10] == [401] * 10
    assert codes[10:] == [429, 429]
    assert int(r.headers["Retry-After"]) > 0


async def test_refresh_rotates_and_logout_revokes(client: Any, station: Station) -> None:
    r = await client.post("/api/v1/auth/login",
                          json={"username": "admin", "password": station.admin_password})
    pair = await r.get_json()
    r = await client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert r.status_code == 200
    new = await r.get_json()
    r = await client.get("/api/v1/auth/me", headers=bearer(new["access_token"]))
    assert (await r.get_json())["name"] == "admin"
    # The old refresh token was used up by the rotation.
    r = await client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert r.status_code == 401
    r = await client.post("/api/v1/auth/logout", json={"refresh_token": new["refresh_token"]})
    assert r.status_code == 200
    r = await client.post("/api/v1/auth/refresh", json={"refresh_token": new["refresh_token"]})
    assert r.status_code == 401
    # An access token cannot stand in for a refresh token, nor the other way round.
    r = await client.post("/api/v1/auth/refresh", json={"refresh_token": new["access_token"]})
    assert r.status_code == 401
    r = await client.get("/api/v1/auth/me", headers=bearer(new["refresh_token"]))
    assert r.status_code == 401


async def test_revoked_api_key_stops_working(client: Any, station: Station) -> None:
    admin = bearer(await login(client, "admin", station.admin_password or ""))
    r = await client.post("/api/v1/api-keys", headers=admin, json={"name": "mes", "scope": "read"})
    created = await r.get_json()
    key = bearer(created["key"])
    assert (await client.get("/api/v1/plcs", headers=key)).status_code == 200
    r = await client.delete(f"/api/v1/api-keys/{created['info']['id']}", headers=admin)
    assert r.status_code == 200
    assert (await client.get("/api/v1/plcs", headers=key)).status_code == 401
    listed = await (await client.get("/api/v1/api-keys", headers=admin)).get_json()
    assert all("key" not in k and "key_hash" not in k for k in listed)


async def test_weak_password_and_duplicate_user_are_refused(
    client: Any, station: Station
) -> None:
    admin = bearer(await login(client, "admin", station.admin_password or ""))
    r = await client.post("/api/v1/users", headers=admin,
                          json={"username": "op", "password": "short", "role": "operator"})
    assert r.status_code == 422
    assert {e["field"] for e in (await r.get_json())["errors"]} == {"password"}
    r = await client.post("/api/v1/users", headers=admin,
                          json={"username": "admin", "password": "Another-Pass-1",
                                "role": "operator"})
    assert r.status_code == 409
    users = await (await client.get("/api/v1/users", headers=admin)).get_json()
    assert [u["username"] for u in users] == ["admin"]


def test_admin_password_file_is_private(station: Station) -> None:
    path = station.data_dir / "admin-password"
    assert path.read_text().strip() == station.admin_password
    assert path.stat().st_mode & 0o777 == 0o600
