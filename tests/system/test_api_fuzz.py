"""schemathesis fuzzes every documented operation of a running station, with valid and with
malformed input: none gets a 500, every error is a problem document."""

from __future__ import annotations

import itertools
import signal
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable

from sim.robot import RobotSim
from tests.system.procs import free_port, start_sim, start_takt

STATION = """
[station]
id = "fuzz"
name = "Fuzzed station"

[[plcs]]
name = "line1"
port = {port}

  [[plcs.bindings]]
  name = "release"
  kind = "coil"
  address = 8
  type = "bool"
  direction = "out"

[[robots]]
name = "amr"
url = "http://127.0.0.1:{robot_port}"
"""


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    tmp = tmp_path_factory.mktemp("fuzz")
    sim_port = free_port()
    sim = start_sim(sim_port)
    robot = RobotSim(realtime=True)  # robot routes are fuzzed against a robot that is there
    robot.start()
    config = tmp / "station.toml"
    config.write_text(STATION.format(port=sim_port, robot_port=robot.port))
    port = free_port()
    takt = start_takt(config, tmp / "data", port)
    base = f"http://127.0.0.1:{port}"
    password = (tmp / "data" / "admin-password").read_text().strip()
    token = httpx.post(f"{base}/api/v1/auth/login",
                       json={"username": "admin", "password": password}).json()["access_token"]
    yield base, {"Authorization": f"Bearer {token}"}
    assert takt.stop(signal.SIGINT) == 0
    sim.stop()
    robot.stop()


@pytest.fixture(scope="module")
def api_schema(running: tuple[str, dict[str, str]]) -> Any:
    return schemathesis.openapi.from_url(f"{running[0]}/openapi.json")


OPEN = ("/api/v1/health", "/metrics", "/api/v1/auth/login", "/api/v1/auth/refresh",
        "/api/v1/auth/logout")


def check_response(case: Any, base: str, auth: dict[str, str]) -> None:
    response = case.call(base_url=base, headers=auth)
    # 503 is the contract for a device that is DOWN (a fuzzed config points a scanner or a
    # wrench at nothing): a problem with Retry-After, never an error of the server itself.
    unavailable = response.status_code == 503 and "retry-after" in response.headers
    assert response.status_code < 500 or unavailable, (case.method, case.path, response.text)
    if response.status_code >= 400:
        assert "application/problem+json" in str(response.headers["content-type"])
        assert response.json()["status"] == response.status_code
    if case.path not in OPEN:  # without credentials, refused
        anonymous = case.call(base_url=base)
        assert anonymous.status_code in (401, 404, 405), (case.method, case.path)


def test_no_input_gets_a_server_error(api_schema: Any,
                                      running: tuple[str, dict[str, str]]) -> None:
    """Short form: 3 valid and 3 malformed cases per operation (`make test` stays quick with
    200-odd operations); the long form below takes 20 of each."""
    _fuzz(api_schema, running, examples=3)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_no_input_gets_a_server_error_long(api_schema: Any,
                                           running: tuple[str, dict[str, str]]) -> None:
    _fuzz(api_schema, running, examples=20)


def _fuzz(api_schema: Any, running: tuple[str, dict[str, str]], *, examples: int) -> None:
    # schemathesis's pytest plugin does not run on this pytest; drive its strategies here.
    base, auth = running
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 12
    for operation, mode in itertools.product(operations, schemathesis.GenerationMode):

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=examples, deadline=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        def fuzz(case: Any) -> None:
            check_response(case, base, auth)

        try:
            fuzz()
        except Unsatisfiable:
            # An operation with nothing to get wrong (no parameters, no body) has no
            # malformed form; a valid form must always exist.
            assert mode is schemathesis.GenerationMode.NEGATIVE, operation.label
