"""NutClient against the real NUT server (Debian's upsd + dummy-ups) and scripted peers."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from drivers.errors import DeviceUnavailable, FrameError
from drivers.nut.client import NutClient, NutError
from drivers.nut.status import reading_from_vars
from tests.nut_server import PASSWORD, USERNAME, NutServer, starting_nut
from tests.waiting import wait_for

INITIAL = {
    "ups.status": "OL",
    "battery.charge": "100",
    "battery.runtime": "3600",
    "ups.id": "Line 3 cell UPS",
    "ups.delay.shutdown": "20",
}
TIMEOUT_S = 2.0


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NutServer, NutServer]]:
    # Two servers started together: each takes ~3 s to come up (dummy-ups' poll cycle).
    base = tmp_path_factory.mktemp("nut")
    with starting_nut(base, "ups1", INITIAL) as main, starting_nut(base, "spare") as spare:
        main.wait_ready()
        spare.wait_ready()
        yield main, spare


@pytest.fixture
def nut(servers: tuple[NutServer, NutServer]) -> NutServer:
    return servers[0]


@pytest.fixture
def client(nut: NutServer) -> Iterator[NutClient]:
    with NutClient("127.0.0.1", nut.port, timeout_s=TIMEOUT_S) as c:
        yield c


# --- the real server -----------------------------------------------------------------------


def test_server_identifies_itself_and_lists_its_ups(client: NutClient) -> None:
    assert client.ver().startswith("Network UPS Tools upsd")
    assert client.netver().count(".") == 1
    assert client.list_ups() == {"ups1": "Takt test UPS"}


def test_list_vars_gives_the_ups_state(client: NutClient) -> None:
    values = client.list_vars("ups1")
    assert {name: values[name] for name in INITIAL} == INITIAL
    assert values["driver.name"] == "dummy-ups"
    reading = reading_from_vars(values)
    assert reading.status is not None and reading.status.online
    assert reading.battery_charge == 100.0
    assert reading.battery_runtime_s == 3600
    assert reading.problems == ()


def test_get_var_keeps_blanks_in_values(client: NutClient) -> None:
    assert client.get_var("ups1", "ups.id") == "Line 3 cell UPS"
    assert client.get_var("ups1", "battery.charge") == "100"


@pytest.mark.parametrize(
    ("call", "word"),
    [
        (lambda c: c.get_var("nope", "ups.status"), "UNKNOWN-UPS"),
        (lambda c: c.list_vars("nope"), "UNKNOWN-UPS"),
        (lambda c: c.get_var("ups1", "no.such.var"), "VAR-NOT-SUPPORTED"),
        (lambda c: c.instcmd("ups1", "load.off"), "USERNAME-REQUIRED"),
    ],
)
def test_err_answers_raise_nut_error_and_keep_the_link(
    client: NutClient, call: Callable[[NutClient], object], word: str
) -> None:
    with pytest.raises(NutError) as caught:
        call(client)
    assert caught.value.word == word
    assert f"ERR {word}" in str(caught.value)
    assert client.connected
    assert client.get_var("ups1", "ups.status") == "OL"
    assert client.statistics().err_answers == 1


def test_wrong_password_is_refused_where_it_matters(nut: NutServer) -> None:
    with NutClient(
        "127.0.0.1", nut.port, timeout_s=TIMEOUT_S, username=USERNAME, password="wrong"
    ) as c:
        with pytest.raises(NutError) as caught:
            c.set_var("ups1", "ups.delay.shutdown", "25")
        assert caught.value.word == "ACCESS-DENIED"


def test_credentials_allow_set_var_and_instcmd(nut: NutServer) -> None:
    with NutClient(
        "127.0.0.1", nut.port, timeout_s=TIMEOUT_S, username=USERNAME, password=PASSWORD
    ) as c:
        assert "load.off" in c.list_cmds("ups1")
        c.instcmd("ups1", "load.off")
        with pytest.raises(NutError) as caught:
            c.instcmd("ups1", "no.such.command")
        assert caught.value.word == "CMD-NOT-SUPPORTED"
        c.set_var("ups1", "ups.delay.shutdown", "30")
        # upsd answers OK once the driver has the request; the value follows.
        wait_for(lambda: c.get_var("ups1", "ups.delay.shutdown") == "30")


def test_client_sees_the_ups_go_on_battery_and_come_back(nut: NutServer, client: NutClient) -> None:
    try:
        nut.set_vars({"ups.status": "OB DISCHRG LB", "battery.charge": "15"})
        wait_for(lambda: client.get_var("ups1", "ups.status") == "OB DISCHRG LB")
        reading = reading_from_vars(client.list_vars("ups1"))
        assert reading.status is not None
        assert reading.status.on_battery and reading.status.low_battery
        assert reading.battery_charge == 15.0
        nut.set_vars(INITIAL)  # power back
        wait_for(lambda: client.get_var("ups1", "battery.charge") == "100")
        reading = reading_from_vars(client.list_vars("ups1"))
        assert reading.status is not None and reading.status.online
        assert not reading.status.low_battery
    except BaseException:
        # The other tests expect the initial state.
        nut.set_vars(INITIAL)
        nut.wait_vars(INITIAL)
        raise


def test_stopped_server_makes_the_device_unavailable(
    servers: tuple[NutServer, NutServer],
) -> None:
    spare = servers[1]
    client = NutClient("127.0.0.1", spare.port, timeout_s=TIMEOUT_S)
    client.connect()
    assert client.get_var("spare", "ups.status") == "OL"
    spare.stop()
    with pytest.raises(DeviceUnavailable):
        client.get_var("spare", "ups.status")
    assert not client.connected
    with pytest.raises(DeviceUnavailable, match="not connected"):
        client.list_ups()
    with pytest.raises(DeviceUnavailable, match="cannot connect"):
        client.connect()
    client.close()


def test_close_is_idempotent_and_connect_reopens(nut: NutServer) -> None:
    client = NutClient("127.0.0.1", nut.port, timeout_s=TIMEOUT_S)
    client.connect()
    client.connect()  # already connected: nothing to do
    client.close()
    client.close()
    assert not client.connected
    with pytest.raises(DeviceUnavailable, match="not connected"):
        client.get_var("ups1", "ups.status")
    client.connect()
    assert client.get_var("ups1", "ups.status") == "OL"
    client.close()


def test_one_client_can_be_shared_between_threads(client: NutClient) -> None:
    results: list[str] = []
    errors: list[BaseException] = []

    def ask() -> None:
        try:
            for _ in range(20):
                results.append(client.get_var("ups1", "ups.id"))
                results.append(str(len(client.list_vars("ups1"))))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert results.count("Line 3 cell UPS") == 80
    assert client.statistics().malformed == 0


# --- scripted peers ------------------------------------------------------------------------


class ScriptedPeer:
    """A one-connection TCP server that answers each request line with a scripted reply."""

    def __init__(self, replies: dict[bytes, bytes]) -> None:
        self.replies = {b"LOGOUT": b"OK Goodbye\n", **replies}
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn, conn.makefile("rb") as lines:
            for line in lines:
                reply = self.replies.get(line.rstrip(b"\r\n"))
                if reply:
                    conn.sendall(reply)

    def close(self) -> None:
        self.listener.close()
        self.thread.join(5)


@pytest.fixture
def peer_factory() -> Iterator[Callable[[dict[bytes, bytes]], ScriptedPeer]]:
    peers: list[ScriptedPeer] = []

    def make(replies: dict[bytes, bytes]) -> ScriptedPeer:
        peers.append(ScriptedPeer(replies))
        return peers[-1]

    yield make
    for peer in peers:
        peer.close()


@pytest.mark.parametrize(
    ("request_line", "reply", "call"),
    [
        (b"GET VAR u x", b"VAR u x\n", lambda c: c.get_var("u", "x")),
        (b"GET VAR u x", b'VAR u other "1"\n', lambda c: c.get_var("u", "x")),
        (b"GET VAR u x", b"OK\n", lambda c: c.get_var("u", "x")),
        (
            b"LIST VAR u",
            b'BEGIN LIST VAR u\nVAR v x "1"\nEND LIST VAR u\n',
            lambda c: c.list_vars("u"),
        ),
        (b"LIST VAR u", b"BEGIN LIST VAR u\nOK\nEND LIST VAR u\n", lambda c: c.list_vars("u")),
        (b"LIST UPS", b"BEGIN LIST VAR u\nEND LIST VAR u\n", lambda c: c.list_ups()),
        (b"VER", b"ERR\n", lambda c: c.ver()),
        (b"LIST VAR u", b"BEGIN LIST VAR u\nERR DATA-STALE\n", lambda c: c.list_vars("u")),
    ],
)
def test_malformed_answer_raises_frame_error_and_drops_the_link(
    peer_factory: Callable[[dict[bytes, bytes]], ScriptedPeer],
    request_line: bytes,
    reply: bytes,
    call: Callable[[NutClient], object],
) -> None:
    peer = peer_factory({request_line: reply})
    client = NutClient("127.0.0.1", peer.port, timeout_s=TIMEOUT_S)
    client.connect()
    with pytest.raises(FrameError):
        call(client)
    assert not client.connected
    assert client.statistics().malformed == 1
    client.close()


def test_silent_server_times_out_as_unavailable(
    peer_factory: Callable[[dict[bytes, bytes]], ScriptedPeer],
) -> None:
    peer = peer_factory({})
    client = NutClient("127.0.0.1", peer.port, timeout_s=0.2)
    client.connect()
    with pytest.raises(DeviceUnavailable, match=r"no answer within 0\.2 s"):
        client.get_var("u", "x")
    assert not client.connected
    client.close()


def test_login_failure_at_connect_leaves_the_client_closed(
    peer_factory: Callable[[dict[bytes, bytes]], ScriptedPeer],
) -> None:
    peer = peer_factory({b"USERNAME bad": b"ERR INVALID-USERNAME\n"})
    client = NutClient("127.0.0.1", peer.port, timeout_s=TIMEOUT_S, username="bad", password="x")
    with pytest.raises(NutError) as caught:
        client.connect()
    assert caught.value.word == "INVALID-USERNAME"
    assert not client.connected


def test_unreachable_host_is_unavailable() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(DeviceUnavailable, match="cannot connect"):
        NutClient("127.0.0.1", port, timeout_s=TIMEOUT_S).connect()


def test_arguments_that_cannot_be_sent_are_value_errors(
    peer_factory: Callable[[dict[bytes, bytes]], ScriptedPeer],
) -> None:
    peer = peer_factory({})
    with NutClient("127.0.0.1", peer.port, timeout_s=TIMEOUT_S) as client:
        with pytest.raises(ValueError, match="invalid UPS name"):
            client.get_var("my ups", "ups.status")
        assert client.connected
