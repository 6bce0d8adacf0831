"""The NUT server simulator, seen through the same NutClient that talks to the real upsd."""

from __future__ import annotations

import select
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from drivers.errors import DeviceUnavailable
from drivers.nut.client import NutClient, NutError
from drivers.nut.status import reading_from_vars
from sim.nut_ups import DEMO_COMMANDS, DEMO_UPS, DEMO_VARS, InstantCommand, NutUpsSimulator

REPO = Path(__file__).resolve().parents[2]
TIMEOUT_S = 2.0
USERS = {"takt": "secret"}


@pytest.fixture
def sim() -> Iterator[NutUpsSimulator]:
    simulator = NutUpsSimulator(
        upses={"ups1": DEMO_VARS, "ups2": {"ups.status": "OL", "battery.charge": "80"}},
        descriptions={"ups1": "Line 3 UPS"},
        users=USERS,
        writable={"ups.delay.shutdown", "battery.charge.low"},
    )
    simulator.start()
    yield simulator
    simulator.stop()


@pytest.fixture
def client(sim: NutUpsSimulator) -> Iterator[NutClient]:
    with NutClient("127.0.0.1", sim.port, timeout_s=TIMEOUT_S) as c:
        yield c


def admin(sim: NutUpsSimulator, password: str = "secret") -> NutClient:
    return NutClient("127.0.0.1", sim.port, timeout_s=TIMEOUT_S, username="takt", password=password)


class RawPeer:
    """A bare TCP client, to send what NutClient never would."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S)
        self.lines = self.sock.makefile("rb")

    def ask(self, line: bytes) -> bytes:
        self.sock.sendall(line)
        return self.lines.readline()

    def close(self) -> None:
        self.lines.close()
        self.sock.close()


# --- reading -------------------------------------------------------------------------------


def test_lists_and_reads_like_upsd(client: NutClient) -> None:
    assert client.ver().startswith("Network UPS Tools upsd")
    assert client.netver() == "1.3"
    assert client.list_ups() == {"ups1": "Line 3 UPS", "ups2": "Unavailable"}
    assert client.list_vars("ups1") == DEMO_VARS
    assert client.list_vars("ups2") == {"ups.status": "OL", "battery.charge": "80"}
    assert client.get_var("ups1", "ups.model") == "Demo UPS 1500"
    assert client.list_cmds("ups1") == sorted(DEMO_COMMANDS)


def test_demo_ups_reads_as_a_healthy_ups_on_line(client: NutClient) -> None:
    reading = reading_from_vars(client.list_vars("ups1"))
    assert reading.status is not None and reading.status.online
    assert reading.battery_charge == 100.0
    assert reading.battery_runtime_s == 3600
    assert reading.input_voltage == 230.0
    assert reading.load == 23.0
    assert reading.problems == ()


@pytest.mark.parametrize(
    ("call", "word"),
    [
        (lambda c: c.get_var("nope", "ups.status"), "UNKNOWN-UPS"),
        (lambda c: c.list_vars("nope"), "UNKNOWN-UPS"),
        (lambda c: c.list_cmds("nope"), "UNKNOWN-UPS"),
        (lambda c: c.get_var("ups1", "no.such.var"), "VAR-NOT-SUPPORTED"),
        (lambda c: c.instcmd("ups1", "beeper.enable"), "USERNAME-REQUIRED"),
        (lambda c: c.set_var("ups1", "ups.delay.shutdown", "5"), "USERNAME-REQUIRED"),
    ],
)
def test_errors_are_upsd_words(
    client: NutClient, call: Callable[[NutClient], object], word: str
) -> None:
    with pytest.raises(NutError) as caught:
        call(client)
    assert caught.value.word == word
    assert client.get_var("ups1", "ups.status") == "OL"


# --- switches ------------------------------------------------------------------------------


def test_on_battery_then_low_then_back_on_line(sim: NutUpsSimulator, client: NutClient) -> None:
    sim.on_battery(60, ups="ups1")
    reading = reading_from_vars(client.list_vars("ups1"))
    assert reading.status is not None
    assert reading.status.on_battery and not reading.status.low_battery
    assert (reading.battery_charge, reading.battery_runtime_s) == (60.0, 2160)
    assert reading.input_voltage == 0.0

    sim.on_battery(15, ups="ups1")  # below battery.charge.low (20)
    assert client.get_var("ups1", "ups.status") == "OB DISCHRG LB"

    sim.on_line(ups="ups1")
    reading = reading_from_vars(client.list_vars("ups1"))
    assert reading.status is not None and reading.status.online
    assert client.get_var("ups1", "ups.status") == "OL CHRG"  # not full yet
    assert reading.input_voltage == 230.0
    sim.set_vars({"battery.charge": "100"}, ups="ups1")
    sim.on_line(ups="ups1")
    assert client.get_var("ups1", "ups.status") == "OL"


def test_switches_default_to_the_first_ups(sim: NutUpsSimulator, client: NutClient) -> None:
    sim.on_battery(50)
    assert client.get_var("ups1", "ups.status") == "OB DISCHRG"
    assert client.get_var("ups2", "ups.status") == "OL"


def test_set_vars_adds_changes_and_removes(sim: NutUpsSimulator, client: NutClient) -> None:
    sim.set_vars({"ups.alarm": "Replace battery", "ups.load": "80", "input.voltage": ""})
    values = client.list_vars("ups1")
    assert values["ups.alarm"] == "Replace battery"
    assert values["ups.load"] == "80"
    assert "input.voltage" not in values
    with pytest.raises(ValueError):
        sim.set_vars({"bad": "two\nlines"})
    with pytest.raises(KeyError, match="no UPS named"):
        sim.set_vars({"ups.load": "1"}, ups="nope")
    with pytest.raises(ValueError, match=r"0\.\.100"):
        sim.on_battery(101)


def test_stale_ups_answers_data_stale(sim: NutUpsSimulator, client: NutClient) -> None:
    sim.set_stale(True, ups="ups1")
    with pytest.raises(NutError) as caught:
        client.list_vars("ups1")
    assert caught.value.word == "DATA-STALE"
    assert caught.value.ups_unreachable
    assert client.get_var("ups2", "ups.status") == "OL"  # the other UPS is fine
    sim.set_stale(False, ups="ups1")
    assert client.get_var("ups1", "ups.status") == "OL"


# --- credentials ---------------------------------------------------------------------------


def test_credentials_allow_instcmd_and_set_var(sim: NutUpsSimulator) -> None:
    with admin(sim) as c:
        c.instcmd("ups1", "test.battery.start.quick")
        c.instcmd("ups1", "beeper.disable", "now")
        c.set_var("ups1", "battery.charge.low", "30")
        assert c.get_var("ups1", "battery.charge.low") == "30"
        for call, word in [
            (lambda: c.instcmd("ups1", "load.off"), "CMD-NOT-SUPPORTED"),
            (lambda: c.set_var("ups1", "ups.model", "x"), "READONLY"),
            (lambda: c.set_var("ups1", "nope", "x"), "VAR-NOT-SUPPORTED"),
            (lambda: c.instcmd("nope", "beeper.enable"), "UNKNOWN-UPS"),
        ]:
            with pytest.raises(NutError) as caught:
                call()
            assert caught.value.word == word
    assert sim.instcmds == [
        InstantCommand(ups="ups1", command="test.battery.start.quick"),
        InstantCommand(ups="ups1", command="beeper.disable", param="now"),
    ]


def test_wrong_password_is_refused_where_it_matters(sim: NutUpsSimulator) -> None:
    with admin(sim, password="wrong") as c:  # upsd accepts any PASSWORD at first
        assert c.get_var("ups1", "ups.status") == "OL"
        with pytest.raises(NutError) as caught:
            c.instcmd("ups1", "beeper.enable")
        assert caught.value.word == "ACCESS-DENIED"
    assert sim.instcmds == []


def test_session_rules_of_upsd(sim: NutUpsSimulator) -> None:
    peer = RawPeer(sim.port)
    try:
        assert peer.ask(b"INSTCMD ups1 beeper.enable\n") == b"ERR USERNAME-REQUIRED\n"
        assert peer.ask(b"USERNAME takt\n") == b"OK\n"
        assert peer.ask(b"USERNAME again\n") == b"ERR ALREADY-SET-USERNAME\n"
        assert peer.ask(b"INSTCMD ups1 beeper.enable\n") == b"ERR PASSWORD-REQUIRED\n"
        assert peer.ask(b'PASSWORD "secret"\n') == b"OK\n"
        assert peer.ask(b"PASSWORD again\n") == b"ERR ALREADY-SET-PASSWORD\n"
        assert peer.ask(b"LOGIN ups1\n") == b"OK\n"
        assert peer.ask(b"LOGIN ups1\n") == b"ERR ALREADY-LOGGED-IN\n"
        assert peer.ask(b"get var ups1 ups.status\n") == b'VAR ups1 ups.status "OL"\n'
        assert peer.ask(b"GET UPSDESC ups1\n") == b'UPSDESC ups1 "Line 3 UPS"\n'
        assert peer.ask(b"LIST RW ups1\n") == b"BEGIN LIST RW ups1\n"
        assert peer.lines.readline() == b'RW ups1 battery.charge.low "20"\n'
        assert peer.lines.readline() == b"END LIST RW ups1\n"
        assert peer.ask(b"STARTTLS\n") == b"ERR FEATURE-NOT-CONFIGURED\n"
        assert peer.ask(b"FOO\n") == b"ERR UNKNOWN-COMMAND\n"
        assert peer.ask(b"GET VAR ups1\n") == b"ERR INVALID-ARGUMENT\n"
        assert peer.ask(b"LIST FOO ups1\n") == b"ERR INVALID-ARGUMENT\n"
        assert peer.ask(b'GET VAR "ups1\n') == b"ERR INVALID-ARGUMENT\n"
        assert peer.ask(b"LOGOUT\n") == b"OK Goodbye\n"
        assert peer.lines.readline() == b""  # upsd closes after LOGOUT
    finally:
        peer.close()
    assert sim.malformed == 1


def test_overlong_request_is_refused_and_the_session_goes_on(sim: NutUpsSimulator) -> None:
    peer = RawPeer(sim.port)
    try:
        assert peer.ask(b"GET VAR ups1 " + b"x" * 10_000 + b"\n") == b"ERR INVALID-ARGUMENT\n"
        assert peer.ask(b"GET VAR ups1 ups.status\n") == b'VAR ups1 ups.status "OL"\n'
    finally:
        peer.close()


# --- lifecycle -----------------------------------------------------------------------------


def test_stop_makes_clients_unavailable_and_restart_keeps_values(sim: NutUpsSimulator) -> None:
    client = NutClient("127.0.0.1", sim.port, timeout_s=TIMEOUT_S)
    client.connect()
    sim.on_battery(40)
    sim.stop()
    assert not sim.running
    with pytest.raises(DeviceUnavailable):
        client.get_var("ups1", "ups.status")
    with pytest.raises(DeviceUnavailable, match="cannot connect"):
        client.connect()
    port = sim.port
    assert sim.start() == port
    client.connect()
    assert client.get_var("ups1", "battery.charge") == "40"
    client.close()


def test_constructor_refuses_what_upsd_could_not_send() -> None:
    with pytest.raises(ValueError):
        NutUpsSimulator(upses={"my ups": {"ups.status": "OL"}})
    with pytest.raises(ValueError):
        NutUpsSimulator(upses={"ups": {"ups.status": "two\nlines"}})
    with pytest.raises(ValueError, match="at least one UPS"):
        NutUpsSimulator(upses={})


def test_process_serves_until_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "sim.nut_ups", "--port", "0", "--user", "takt:secret"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        assert ready, "simulator process did not print READY"
        word, port = proc.stdout.readline().split()
        assert word == "READY"
        with NutClient(
            "127.0.0.1", int(port), timeout_s=TIMEOUT_S, username="takt", password="secret"
        ) as client:
            assert client.list_ups() == {DEMO_UPS: "Takt demo UPS"}
            assert client.get_var(DEMO_UPS, "ups.status") == "OL"
            client.instcmd(DEMO_UPS, "beeper.disable")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
