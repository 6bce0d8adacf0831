"""/api/v1/step_events against a real station, with seed 004's bodies, answers and error
messages; and the seed's time formats as properties."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.app import create_app
from api.operators import blueprint as operators_blueprint
from api.step_events import blueprint, iso_time, parse_time, ruby_time, week_of
from controller.boot import Station, start_station
from controller.config import parse_config
from state.step_events import add_machine
from tests.api.conftest import admin, bearer, eventually

STATION = """
[station]
id = "cell-7"
name = "Cell 7"
"""

URL = "/api/v1/step_events"
S = 1_000_000
T0 = 1_748_340_000_000_000  # 2025-05-27T10:00:00Z
ADA = "ada@example.com"


@pytest.fixture
def station(tmp_path: Path) -> Iterator[Station]:
    st_ = start_station(parse_config(STATION, "t.toml"), tmp_path / "d")
    yield st_
    st_.stop()


@pytest.fixture
async def client(station: Station) -> AsyncIterator[Any]:
    app = create_app(station.runtime, station.config, station.token_secret)
    for bp in (operators_blueprint, blueprint):
        if bp.name not in app.blueprints:
            app.register_blueprint(bp)
    async with app.test_app() as test_app:
        yield test_app.test_client()


@pytest.fixture
async def auth(client: Any, station: Station) -> dict[str, str]:
    headers = await admin(client, station)
    r = await client.post("/api/v1/operators", headers=headers, json={
        "first_name": "Ada", "last_name": "Lovelace", "email": "Ada@Example.com"})
    assert r.status_code == 201
    return headers


async def _key(client: Any, auth: dict[str, str], scope: str) -> dict[str, str]:
    r = await client.post("/api/v1/api-keys", headers=auth, json={"name": scope, "scope": scope})
    return bearer((await r.get_json())["key"])


def _body(**fields: Any) -> dict[str, Any]:
    return {"step_event": {
        "machine_display_name": "Cell 7", "start": "2025-05-27T10:00:00Z", "user_email": ADA,
        "part_unique_identifier": "PART123", "recipe_version": "1", "step_number": "10",
        "step_expected_cycle_time": 120, "step_expected_setup_time": 30, "qty_expected": 5,
        "wo_number": "WO-123", **fields}}


def _finish(**fields: Any) -> dict[str, Any]:
    return {"step_event": {"machine_display_name": "Cell 7", **fields}}


async def _problem(response: Any, status: int, error: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, await response.get_data()
    assert response.content_type == "application/problem+json"
    doc: dict[str, Any] = await response.get_json()
    if error is not None:
        assert doc["error"] == error, doc
    return doc


async def _summary(client: Any, headers: dict[str, str], query: str) -> list[dict[str, Any]]:
    r = await client.get(f"{URL}?{query}", headers=headers)
    assert r.status_code == 200, await r.get_data()
    return (await r.get_json())["data"]  # type: ignore[no-any-return]


async def test_a_started_event_answers_as_the_seed_shows(client: Any, auth: dict[str, str]
                                                         ) -> None:
    r = await client.post(URL, headers=auth, json=_body())
    assert r.status_code == 201, await r.get_data()
    doc = await r.get_json()
    assert set(doc) == {"event", "step", "recipe", "part"}
    event, step, recipe, part = doc["event"], doc["step"], doc["recipe"], doc["part"]
    assert event["range"] == event["tzrange"] == "2025-05-27 10:00:00 UTC..."
    assert event["start"] == "2025-05-27T10:00:00Z" and event["end"] is None
    assert (event["machine_id"], event["machine_name"]) == (1, "cell-7")
    assert (event["eventable_type"], event["eventable_id"]) == ("Step", step["id"])
    assert event["ending_type"] == "manual" and event["deleted_at"] is None
    assert event["metadata"] == {"qty_expected": 5, "wo_number": "WO-123"}
    assert event["display_name"] == "PART123 Op10"
    assert (event["operator_id"], event["user_id"]) == (1, None)
    assert event["created_at"].endswith("Z") and event["source"] == "api"
    assert (step["number"], step["recipe_id"], step["machine_id"]) == ("10", recipe["id"], None)
    assert (step["expected_cycle_time"], step["expected_setup_time"]) == (120, 30)
    assert (recipe["version"], recipe["part_id"]) == (1, part["id"])
    assert part["unique_identifier"] == "PART123" and part["organisation_id"] is None

    async def journaled() -> Any:
        r = await client.get("/api/v1/journal?topic=command.api", headers=auth)
        return [e for e in (await r.get_json())["items"]
                if e["data"].get("step_events") == "start"]

    assert (await eventually(journaled))[0]["data"]["part_unique_identifier"] == "PART123"


async def test_finish_and_the_daily_summary(client: Any, auth: dict[str, str],
                                            station: Station) -> None:
    add_machine(station.database.cursor(), name="press-1", display_name="Press 1", now_us=T0)
    await client.post(URL, headers=auth, json=_body())
    r = await client.patch(f"{URL}/finish", headers=auth, json=_finish(
        end="2025-05-27T11:00:00Z", qty_made=42, qty_scrapped=3))
    assert r.status_code == 200, await r.get_data()
    event = (await r.get_json())["event"]
    assert event["tzrange"] == "2025-05-27T10:00:00Z..2025-05-27T11:00:00Z"
    assert event["range"] == "2025-05-27 10:00:00 UTC...2025-05-27 11:00:00 UTC"
    assert event["metadata"] == {"qty_expected": 5, "wo_number": "WO-123",
                                 "quantity_made": 42, "quantity_scrapped": 3}
    assert event["ending_type"] == "manual" and event["operator_id"] == 1
    # Two more on the 27th: the first is finished by the second (auto), the second stays open.
    await client.post(URL, headers=auth, json=_body(start="2025-05-27T12:00:00Z"))
    await client.post(URL, headers=auth, json=_body(start="2025-05-27T12:30:00+00:00",
                                                    step_number=20))
    # And on the 28th, on the press, 90 s.
    await client.post(URL, headers=auth, json=_body(machine_display_name="Press 1",
                                                    start="2025-05-28T08:00:00Z"))
    r = await client.patch(f"{URL}/finish", headers=auth, json=_finish(
        machine_display_name="Press 1", end="2025-05-28T08:01:30Z"))
    assert r.status_code == 200
    expected = [
        {"date": "2025-05-27", "machine": "Cell 7", "machine_id": 1, "events_count": 3,
         "total_cycle_time": 3600 + 1800},
        {"date": "2025-05-28", "machine": "Press 1", "machine_id": 2, "events_count": 1,
         "total_cycle_time": 90},
    ]
    assert await _summary(client, auth, "from=2025-05-20&to=2025-05-28") == expected
    assert await _summary(client, auth, "from=2025-05-20&to=2025-05-27") == expected[:1]
    assert await _summary(client, auth, "from=2025-05-27T12:00:00Z&to=2025-05-29&"
                                        "machine_ids=2") == expected[1:]
    assert (await _summary(client, auth, "from=2025-05-27T12:00:00Z&to=2025-05-28&"
                                         "machine_ids=1,3"))[0]["events_count"] == 2
    assert await _summary(client, auth, "from=2025-05-20&to=2025-05-28&machine_ids=9") == []


async def test_the_default_range_is_the_current_week(client: Any, auth: dict[str, str],
                                                     station: Station) -> None:
    clock = station.runtime.clock
    monday, _ = week_of(clock.now_us())
    await client.post(URL, headers=auth, json=_body(start=iso_time(monday - S)))  # last week
    await client.post(URL, headers=auth, json=_body(start=iso_time(monday)))  # ends the other
    before = clock.now_us()
    r = await client.patch(f"{URL}/finish", headers=auth, json=_finish())  # ends now
    after = clock.now_us()
    assert r.status_code == 200
    end = parse_time((await r.get_json())["event"]["end"])
    assert before <= end <= after
    data = await _summary(client, auth, "")
    assert [(d["date"], d["events_count"]) for d in data] == [(iso_time(monday)[:10], 1)]
    assert data[0]["total_cycle_time"] == (end - monday) / S
    last_week = await _summary(client, auth, f"from={iso_time(monday - 7 * 86_400 * S)}")
    assert [d["total_cycle_time"] for d in last_week] == [1, (end - monday) / S]


async def test_every_seed_error_with_its_status(client: Any, auth: dict[str, str]) -> None:
    await _problem(await client.post(URL, headers=auth, json=_body(machine_display_name="Nope")),
                   404, "Machine not found")
    await _problem(await client.post(URL, headers=auth, json=_body(user_email="x@example.com")),
                   404, "User not found")
    await _problem(await client.patch(f"{URL}/finish", headers=auth,
                                      json=_finish(machine_display_name="Nope")),
                   404, "Machine not found")
    await _problem(await client.patch(f"{URL}/finish", headers=auth, json=_finish()),
                   409, "No active step event found for this machine")
    await client.post(URL, headers=auth, json=_body())
    doc = await _problem(await client.patch(f"{URL}/finish", headers=auth,
                                            json=_finish(end="2025-05-27T09:59:59Z")),
                         422, "Invalid end timestamp")
    assert doc["errors"][0]["field"] == "step_event.end"
    await _problem(await client.patch(f"{URL}/finish", headers=auth,
                                      json=_finish(end="yesterday")), 422,
                   "Invalid end timestamp")
    await _problem(await client.post(URL, headers=auth, json=_body(start="2025-05-27T09:00:00Z")),
                   422, "Invalid start timestamp")
    # None of it changed anything: one event, open.
    data = await _summary(client, auth, "from=2025-05-27&to=2025-05-27")
    assert [(d["events_count"], d["total_cycle_time"]) for d in data] == [(1, 0)]


async def test_a_takt_user_email_names_the_user(client: Any, auth: dict[str, str]) -> None:
    r = await client.post("/api/v1/users", headers=auth, json={
        "username": "qa@example.com", "password": "Line-2-Shift-B", "role": "engineer"})
    user_id = (await r.get_json())["id"]
    r = await client.post(URL, headers=auth, json=_body(user_email="QA@example.com"))
    event = (await r.get_json())["event"]
    assert (event["user_id"], event["operator_id"]) == (user_id, None)


async def test_a_read_only_key_may_read_but_not_write(client: Any, auth: dict[str, str]) -> None:
    read, write = await _key(client, auth, "read"), await _key(client, auth, "read_write")
    message = "This API key does not have write permissions"
    await _problem(await client.post(URL, headers=read, json=_body()), 403, message)
    await _problem(await client.patch(f"{URL}/finish", headers=read, json=_finish()), 403,
                   message)
    await _problem(await client.post(URL, headers=read, json={"bad": 1}), 403, message)
    assert await _summary(client, read, "from=2025-05-20&to=2025-05-28") == []  # nothing written
    r = await client.post(URL, headers=write, json=_body())
    assert r.status_code == 201
    r = await client.patch(f"{URL}/finish", headers=write, json=_finish(end="2025-05-27T10:02:00Z"))
    assert r.status_code == 200
    data = await _summary(client, read, "from=2025-05-20&to=2025-05-28")
    assert [(d["events_count"], d["total_cycle_time"]) for d in data] == [(1, 120)]
    await _problem(await client.get(URL), 401)


BAD_STARTS = [
    {"machine_display_name": "Cell 7"},  # not wrapped in step_event
    {"step_event": {"machine_display_name": "Cell 7"}},  # required fields missing
    _body(extra="x"),
    _body(start="27/05/2025 10:00"),
    _body(start="2025-02-30T10:00:00Z"),
    _body(start="1969-12-31T23:59:59Z"),
    _body(qty_expected=-1),
    _body(step_expected_cycle_time="long"),
    _body(machine_display_name=""),
    _body(recipe_version=None),
    [1, 2],
]


async def test_bad_bodies_are_422_and_change_nothing(client: Any, auth: dict[str, str]) -> None:
    for payload in BAD_STARTS:
        doc = await _problem(await client.post(URL, headers=auth, json=payload), 422)
        assert doc["errors"], payload
    await client.post(URL, headers=auth, json=_body())
    for payload in (_finish(qty_made=-5), _finish(end=12), {"machine_display_name": "Cell 7"},
                    _finish(qty_scrapped=1.5)):
        await _problem(await client.patch(f"{URL}/finish", headers=auth, json=payload), 422)
    r = await client.post(URL, headers={**auth, "content-type": "application/json"},
                          data=b'{"step_event": ')
    await _problem(r, 400)
    data = await _summary(client, auth, "from=2025-05-27&to=2025-05-27")
    assert [(d["events_count"], d["total_cycle_time"]) for d in data] == [(1, 0)]  # still open


async def test_bad_summary_queries_are_400(client: Any, auth: dict[str, str]) -> None:
    for query, field in (("from=soon", "from"), ("to=2025-13-01", "to"),
                         ("machine_ids=1,x", "machine_ids"), ("machine_ids=-1", "machine_ids"),
                         ("from=2025-05-28&to=2025-05-20", "to"), ("limit=3", "")):
        doc = await _problem(await client.get(f"{URL}?{query}", headers=auth), 400)
        assert doc["errors"][0]["field"].startswith(field), (query, doc)


# ---- the seed's time formats -------------------------------------------------------------------

instants = st.datetimes(min_value=dt.datetime(1970, 1, 2), max_value=dt.datetime(9999, 12, 30),
                        timezones=st.builds(dt.timezone, st.integers(-23 * 60 - 59, 23 * 60 + 59)
                                            .map(lambda m: dt.timedelta(minutes=m))))
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _us(stamp: dt.datetime) -> int:
    return (stamp - EPOCH) // dt.timedelta(microseconds=1)


@given(instants)
def test_rfc3339_times_parse_to_their_instant(stamp: dt.datetime) -> None:
    us = _us(stamp)
    assert parse_time(stamp.isoformat()) == us
    assert parse_time(stamp.isoformat(sep=" ")) == us
    utc = stamp.astimezone(dt.UTC).replace(tzinfo=None)
    assert parse_time(utc.isoformat() + "Z") == us
    assert parse_time(utc.isoformat()) == us  # no zone: UTC


@given(st.integers(0, 253_402_214_400 * S - 1))
def test_the_seed_formats_read_back(us: int) -> None:
    assert parse_time(iso_time(us)) == us
    assert parse_time(ruby_time(us)) == us - us % S  # the seed prints whole seconds
    assert ruby_time(us).endswith(" UTC") and iso_time(us).endswith("Z")


@given(st.dates(min_value=dt.date(1970, 1, 1), max_value=dt.date(9999, 12, 30)))
def test_a_date_is_utc_midnight_or_the_whole_day(day: dt.date) -> None:
    midnight = _us(dt.datetime.combine(day, dt.time(), dt.UTC))
    assert parse_time(day.isoformat()) == midnight
    assert parse_time(day.isoformat(), end_of_day=True) == midnight + 86_400 * S


@given(st.text(max_size=40))
def test_anything_else_is_a_value_error_never_a_crash(text: str) -> None:
    try:
        us = parse_time(text)
    except ValueError:
        return
    assert us >= 0


def test_fractions_beyond_microseconds_are_cut_and_offsets_checked() -> None:
    assert parse_time("2025-05-27T10:00:00.123456789Z") == T0 + 123_456
    assert parse_time("2025-05-27T10:00:00,5+02:00") == T0 - 2 * 3600 * S + 500_000
    assert parse_time("2025-05-27T10:00") == T0
    assert parse_time("2025-05-27 10:00:00 UTC") == T0
    for bad in ("2025-05-27T10:00:00+24:00", "2025-05-27T25:00:00Z", "2025-5-27", ""):
        with pytest.raises(ValueError):
            parse_time(bad)


@given(st.integers(0, 100_000 * 86_400 * S))
def test_the_week_runs_monday_to_monday(us: int) -> None:
    start, end = week_of(us)
    assert start <= us < end and end - start == 7 * 86_400 * S
    assert dt.datetime.fromtimestamp(start / S, dt.UTC).weekday() == 0
    assert start % (86_400 * S) == 0
