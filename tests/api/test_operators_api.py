"""/api/v1/operators against a real station: adding operators, password rules, RFID badges,
name lookup and authentication, as an engineer, an HMI and an integrator would use them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from actors.operators import FailedAttempts
from api.app import create_app
from api.operators import blueprint
from controller.boot import Station, start_station
from controller.config import parse_config
from tests.api.conftest import admin, bearer, eventually, login

STATION = """
[station]
id = "ops"
name = "Operators test station"
"""

URL = "/api/v1/operators"
GOOD = "Torque-4-ever"


@pytest.fixture
def station(tmp_path: Path) -> Iterator[Station]:
    st = start_station(parse_config(STATION, "t.toml"), tmp_path / "d")
    yield st
    st.stop()


@pytest.fixture
async def client(station: Station) -> AsyncIterator[Any]:
    app = create_app(station.runtime, station.config, station.token_secret)
    if "operators" not in app.blueprints:
        app.register_blueprint(blueprint)
    async with app.test_app() as test_app:
        yield test_app.test_client()


@pytest.fixture
async def auth(client: Any, station: Station) -> dict[str, str]:
    return await admin(client, station)


async def _user(client: Any, auth: dict[str, str], role: str) -> dict[str, str]:
    r = await client.post("/api/v1/users", headers=auth, json={
        "username": f"{role}-user", "password": "Line-2-Shift-B", "role": role})
    assert r.status_code == 201, await r.get_data()
    return bearer(await login(client, f"{role}-user", "Line-2-Shift-B"))


async def _key(client: Any, auth: dict[str, str], scope: str) -> dict[str, str]:
    r = await client.post("/api/v1/api-keys", headers=auth, json={"name": "mes", "scope": scope})
    return bearer((await r.get_json())["key"])


async def _add(client: Any, auth: dict[str, str], **fields: Any) -> Any:
    r = await client.post(URL, headers=auth, json={"first_name": "Ada", "last_name": "Lovelace",
                                                   **fields})
    assert r.status_code == 201, await r.get_data()
    return await r.get_json()


async def _problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, await response.get_data()
    assert response.content_type == "application/problem+json"
    return await response.get_json()  # type: ignore[no-any-return]


async def test_an_added_operator_is_listed_without_its_password(
        client: Any, auth: dict[str, str]) -> None:
    r = await client.post(URL, headers=auth, json={
        "first_name": "Ada", "last_name": "Lovelace", "role": "lead", "rfid": "04A1B2C3",
        "email": "Ada@Example.com", "password": GOOD})
    assert r.status_code == 201, await r.get_data()
    ada = await r.get_json()
    assert r.headers["Location"] == f"{URL}/{ada['id']}"
    assert {k: ada[k] for k in ("first_name", "last_name", "role", "active", "rfid", "email",
                                "has_password", "num_records")} == {
        "first_name": "Ada", "last_name": "Lovelace", "role": "lead", "active": True,
        "rfid": "04A1B2C3", "email": "ada@example.com", "has_password": True, "num_records": 0}
    assert "password" not in ada and "password_hash" not in ada
    bob = await _add(client, auth, first_name="Bob", active=False)
    assert bob["has_password"] is False and bob["role"] == "operator"

    listed = await (await client.get(URL, headers=auth)).get_json()
    assert [o["id"] for o in listed] == [ada["id"], bob["id"]]
    active = await (await client.get(f"{URL}/active", headers=auth)).get_json()
    assert [o["id"] for o in active] == [ada["id"]]
    assert await (await client.get(f"{URL}/{ada['id']}", headers=auth)).get_json() == ada
    await _problem(await client.get(f"{URL}/999", headers=auth), 404)

    async def journaled() -> Any:
        r = await client.get("/api/v1/journal?topic=command.api", headers=auth)
        return [e for e in (await r.get_json())["items"] if e["data"].get("operators") == "add"]

    entries = await eventually(journaled)
    text = json.dumps(entries)
    assert GOOD not in text and "argon2" not in text and entries[0]["data"]["has_password"]


RULES = [  # (a password for Ada Lovelace, one for Bob Babbage, the rule both break)
    ("Sh0rt!", "Sh0rt!", "must be at least 8 characters long"),
    ("12345678901", "12345678901", "must not be only digits"),
    ("lovelace", "BABBAGEBOB", "must not be the operator's name"),
    ("Ada Lovelace", "bob babbage", "must not be the operator's name"),
    ("x" * 129, "y" * 129, "must be at most 128 characters long"),
]


async def test_a_password_breaking_a_rule_is_refused_with_the_rule(
        client: Any, auth: dict[str, str]) -> None:
    ada = await _add(client, auth)
    for password, for_bob, rule in RULES:
        r = await client.put(f"{URL}/{ada['id']}/password", headers=auth,
                             json={"password": password})
        problem = await _problem(r, 422)
        assert rule in problem["detail"]
        assert {"field": "password", "message": rule} in problem["errors"]
        r = await client.post(URL, headers=auth, json={
            "first_name": "Bob", "last_name": "Babbage", "password": for_bob})
        assert {"field": "password", "message": rule} in (await _problem(r, 422))["errors"]
    after = await (await client.get(f"{URL}/{ada['id']}", headers=auth)).get_json()
    assert after["has_password"] is False  # nothing was stored
    names = [o["first_name"] for o in await (await client.get(URL, headers=auth)).get_json()]
    assert names == ["Ada"]


async def test_password_check_says_which_rules_a_password_breaks(
        client: Any, auth: dict[str, str]) -> None:
    r = await client.post(f"{URL}/password/check", headers=auth,
                          json={"password": "1234", "first_name": "Ada"})
    assert await r.get_json() == {"valid": False, "problems": [
        "must be at least 8 characters long", "must not be only digits"]}
    r = await client.post(f"{URL}/password/check", headers=auth, json={"password": GOOD})
    assert await r.get_json() == {"valid": True, "problems": []}


async def test_rfid_verify_finds_only_active_badge_holders(
        client: Any, auth: dict[str, str]) -> None:
    ada = await _add(client, auth, rfid="BADGE-1")
    bob = await _add(client, auth, first_name="Bob", rfid="BADGE-2")
    r = await client.post(f"{URL}/rfid/verify", headers=auth, json={"rfid": "BADGE-1"})
    assert r.status_code == 200 and (await r.get_json())["id"] == ada["id"]
    await _problem(await client.post(f"{URL}/rfid/verify", headers=auth,
                                     json={"rfid": "BADGE-9"}), 404)
    await client.patch(f"{URL}/{bob['id']}/active", headers=auth, json={"active": False})
    await _problem(await client.post(f"{URL}/rfid/verify", headers=auth,
                                     json={"rfid": "BADGE-2"}), 404)


async def test_an_rfid_belongs_to_one_operator_at_most(client: Any, auth: dict[str, str]) -> None:
    ada = await _add(client, auth, rfid="BADGE-1")
    r = await client.post(URL, headers=auth, json={"first_name": "Bob", "last_name": "Byte",
                                                   "rfid": "BADGE-1"})
    assert f"operator {ada['id']}" in (await _problem(r, 409))["detail"]
    bob = await _add(client, auth, first_name="Bob", rfid="BADGE-2")
    r = await client.put(f"{URL}/{bob['id']}/rfid", headers=auth, json={"rfid": "BADGE-1"})
    await _problem(r, 409)
    unchanged = await (await client.get(f"{URL}/{bob['id']}", headers=auth)).get_json()
    assert unchanged["rfid"] == "BADGE-2"
    # Ada gives her badge back; then Bob may have it.
    r = await client.put(f"{URL}/{ada['id']}/rfid", headers=auth, json={"rfid": None})
    assert r.status_code == 200 and (await r.get_json())["rfid"] is None
    r = await client.put(f"{URL}/{bob['id']}/rfid", headers=auth, json={"rfid": "BADGE-1"})
    assert r.status_code == 200 and (await r.get_json())["rfid"] == "BADGE-1"
    r = await client.post(f"{URL}/rfid/verify", headers=auth, json={"rfid": "BADGE-1"})
    assert (await r.get_json())["id"] == bob["id"]
    await _problem(await client.put(f"{URL}/999/rfid", headers=auth, json={"rfid": "X"}), 404)


async def test_email_and_name_are_unique_too(client: Any, auth: dict[str, str]) -> None:
    ada = await _add(client, auth, email="ada@example.com")
    r = await client.post(URL, headers=auth, json={"first_name": "Bob", "last_name": "Byte",
                                                   "email": "ADA@example.com"})
    await _problem(r, 409)
    r = await client.post(URL, headers=auth, json={"first_name": "ada", "last_name": "LOVELACE"})
    await _problem(r, 409)
    bob = await _add(client, auth, first_name="Bob")
    r = await client.patch(f"{URL}/{bob['id']}/name", headers=auth,
                           json={"first_name": "Ada", "last_name": "Lovelace"})
    await _problem(r, 409)
    r = await client.put(f"{URL}/{bob['id']}/email", headers=auth,
                         json={"email": "ada@example.com"})
    await _problem(r, 409)
    r = await client.put(f"{URL}/{ada['id']}/email", headers=auth,
                         json={"email": "Countess@Example.com"})
    assert (await r.get_json())["email"] == "countess@example.com"


async def test_role_name_and_active_changes(client: Any, auth: dict[str, str]) -> None:
    ada = await _add(client, auth)
    r = await client.patch(f"{URL}/{ada['id']}/role", headers=auth, json={"role": "trainee"})
    assert (await r.get_json())["role"] == "trainee"
    r = await client.patch(f"{URL}/{ada['id']}/name", headers=auth,
                           json={"first_name": "Augusta", "last_name": "King"})
    renamed = await r.get_json()
    assert (renamed["first_name"], renamed["last_name"]) == ("Augusta", "King")
    r = await client.patch(f"{URL}/{ada['id']}/active", headers=auth, json={"active": False})
    assert (await r.get_json())["active"] is False
    r = await client.post(f"{URL}/lookup", headers=auth,
                          json={"first_name": "augusta", "last_name": "KING"})
    assert await r.get_json() == {"id": ada["id"]}
    await _problem(await client.post(f"{URL}/lookup", headers=auth,
                                     json={"first_name": "Ada", "last_name": "Lovelace"}), 404)
    for path, payload in (("active", {"active": True}), ("role", {"role": "lead"}),
                          ("name", {"first_name": "A", "last_name": "B"})):
        await _problem(await client.patch(f"{URL}/999/{path}", headers=auth, json=payload), 404)


async def test_authentication_right_wrong_and_inactive(
        client: Any, auth: dict[str, str]) -> None:
    ada = await _add(client, auth, password=GOOD)
    await _add(client, auth, first_name="Bob")  # no password: cannot log in by name
    creds = {"first_name": "ada", "last_name": "lovelace"}
    r = await client.post(f"{URL}/authenticate", headers=auth, json={**creds, "password": GOOD})
    assert r.status_code == 200 and (await r.get_json())["id"] == ada["id"]
    r = await client.post(f"{URL}/authenticate", headers=auth,
                          json={**creds, "password": GOOD.upper()})
    assert (await _problem(r, 401))["detail"] == "wrong name or password"
    r = await client.post(f"{URL}/authenticate", headers=auth, json={
        "first_name": "Bob", "last_name": "Lovelace", "password": GOOD})
    await _problem(r, 401)
    r = await client.post(f"{URL}/authenticate", headers=auth, json={
        "first_name": "Nobody", "last_name": "Here", "password": GOOD})
    await _problem(r, 401)
    await client.patch(f"{URL}/{ada['id']}/active", headers=auth, json={"active": False})
    r = await client.post(f"{URL}/authenticate", headers=auth, json={**creds, "password": GOOD})
    assert "inactive" in (await _problem(r, 401))["detail"]
    # A new password works at once; the old one no longer does.
    await client.patch(f"{URL}/{ada['id']}/active", headers=auth, json={"active": True})
    r = await client.put(f"{URL}/{ada['id']}/password", headers=auth,
                         json={"password": "Another-Pass-7"})
    assert r.status_code == 200
    r = await client.post(f"{URL}/authenticate", headers=auth, json={**creds, "password": GOOD})
    await _problem(r, 401)
    r = await client.post(f"{URL}/authenticate", headers=auth,
                          json={**creds, "password": "Another-Pass-7"})
    assert r.status_code == 200
    r = await client.put(f"{URL}/{ada['id']}/password", headers=auth, json={"password": None})
    assert (await r.get_json())["has_password"] is False
    r = await client.post(f"{URL}/authenticate", headers=auth,
                          json={**creds, "password": "Another-Pass-7"})
    await _problem(r, 401)


async def test_failed_authentications_are_limited_per_operator(
        client: Any, auth: dict[str, str]) -> None:
    await _add(client, auth, password=GOOD)
    await _add(client, auth, first_name="Bob", password=GOOD)
    ada = {"first_name": "Ada", "last_name": "Lovelace"}
    for _ in range(5):
        r = await client.post(f"{URL}/authenticate", headers=auth,
                              json={**ada, "password": "not-the-one"})
        await _problem(r, 401)
    r = await client.post(f"{URL}/authenticate", headers=auth, json={**ada, "password": GOOD})
    await _problem(r, 429)  # even the right password waits until the window has passed
    assert int(r.headers["Retry-After"]) >= 1
    r = await client.post(f"{URL}/authenticate", headers=auth,
                          json={"first_name": "Bob", "last_name": "Lovelace", "password": GOOD})
    assert r.status_code == 200  # another operator is not affected


def test_the_failure_limit_lifts_when_the_window_has_passed() -> None:
    failures = FailedAttempts(limit=5, window_s=60.0, max_keys=2)
    for t in range(5):
        assert failures.retry_after("id:1", float(t)) is None
        failures.failed("id:1", float(t))
    assert failures.retry_after("id:1", 10.0) == pytest.approx(50.0)
    assert failures.retry_after("id:1", 60.0) is None  # the first failure left the window
    failures.failed("id:1", 30.0)  # five again within the window: locked until 1 + 60
    assert failures.retry_after("id:1", 30.0) == pytest.approx(31.0)
    failures.succeeded("id:1")
    assert failures.retry_after("id:1", 30.0) is None
    for key in ("a", "b", "c"):  # bounded: the oldest key is forgotten
        failures.failed(key, 0.0)
    assert set(failures._failures) == {"b", "c"}


async def test_who_may_read_and_who_may_change(client: Any, auth: dict[str, str]) -> None:
    ada = await _add(client, auth, rfid="BADGE-1")
    operator = await _user(client, auth, "operator")
    engineer = await _user(client, auth, "engineer")
    read_key = await _key(client, auth, "read")
    write_key = await _key(client, auth, "read_write")
    for headers in (operator, read_key):
        assert (await client.get(URL, headers=headers)).status_code == 200
        r = await client.post(f"{URL}/rfid/verify", headers=headers, json={"rfid": "BADGE-1"})
        assert r.status_code == 200
        await _problem(await client.patch(f"{URL}/{ada['id']}/role", headers=headers,
                                          json={"role": "lead"}), 403)
        await _problem(await client.post(URL, headers=headers,
                                         json={"first_name": "X", "last_name": "Y"}), 403)
    await _problem(await client.get(URL), 401)
    for n, headers in enumerate((engineer, write_key)):
        r = await client.post(URL, headers=headers, json={"first_name": f"E{n}",
                                                          "last_name": "Z"})
        assert r.status_code == 201
    unchanged = await (await client.get(f"{URL}/{ada['id']}", headers=auth)).get_json()
    assert unchanged["role"] == "operator"


BAD_NEW = [
    {"first_name": "", "last_name": "Lovelace"},
    {"first_name": " Ada", "last_name": "Lovelace"},
    {"first_name": "Ada\n", "last_name": "Lovelace"},
    {"first_name": "Ada", "last_name": "x" * 65},
    {"first_name": "Ada"},
    {"first_name": "Ada", "last_name": "Lovelace", "role": "Boss Man"},
    {"first_name": "Ada", "last_name": "Lovelace", "rfid": "has space"},
    {"first_name": "Ada", "last_name": "Lovelace", "email": "not-an-email"},
    {"first_name": "Ada", "last_name": "Lovelace", "active": "yes"},
    {"first_name": "Ada", "last_name": "Lovelace", "password_hash": "$argon2id$..."},
    {"first_name": "Ada", "last_name": "Lovelace", "num_records": 5},
    ["Ada", "Lovelace"],
]


async def test_bad_bodies_are_422_and_add_nothing(client: Any, auth: dict[str, str]) -> None:
    for payload in BAD_NEW:
        problem = await _problem(await client.post(URL, headers=auth, json=payload), 422)
        assert problem["errors"], payload
    r = await client.post(URL, headers={**auth, "content-type": "application/json"},
                          data=b'{"first_name": "Ada",')
    await _problem(r, 400)
    assert await (await client.get(URL, headers=auth)).get_json() == []


async def test_bad_change_bodies_are_422_and_change_nothing(
        client: Any, auth: dict[str, str]) -> None:
    ada = await _add(client, auth, rfid="BADGE-1")
    for method, path, payload in (
            ("patch", "active", {"active": 1}), ("patch", "role", {}),
            ("patch", "name", {"first_name": "Ada"}), ("put", "rfid", {"rfid": ""}),
            ("put", "password", {"password": 12345678}), ("put", "email", {"email": "@x"})):
        r = await getattr(client, method)(f"{URL}/{ada['id']}/{path}", headers=auth, json=payload)
        await _problem(r, 422)
    assert await (await client.get(f"{URL}/{ada['id']}", headers=auth)).get_json() == ada
