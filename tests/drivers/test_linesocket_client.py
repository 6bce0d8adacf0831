"""LineSocketClient against the line PLC simulator over loopback."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import pytest

from drivers.errors import DeviceUnavailable, DriverError
from drivers.linesocket.client import LineSocketClient, WriteRefused
from sim.line_plc import LinePlcSimulator
from tests.waiting import wait_for

SIGNALS = {
    "part_present": "0",
    "cycle_counter": "17",
    "temperature_c": "24.5",
    "serial": '"SN-1"',
    "release": "0",
    "lamp": "0",
}
WRITABLE = {"release", "lamp"}


class Recorder:
    """The callbacks a device actor would pass, recording what they were told."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.updates: list[tuple[str, str]] = []
        self.lost: list[str] = []
        self.malformed: list[str] = []

    def on_update(self, name: str, text: str) -> None:
        with self._lock:
            self.updates.append((name, text))

    def on_lost(self, reason: str) -> None:
        with self._lock:
            self.lost.append(reason)

    def on_malformed(self, reason: str) -> None:
        with self._lock:
            self.malformed.append(reason)

    def latest(self) -> dict[str, str]:
        with self._lock:
            return dict(self.updates)


@pytest.fixture
def sim() -> Iterator[LinePlcSimulator]:
    simulator = LinePlcSimulator(signals=SIGNALS, writable=WRITABLE)
    simulator.start()
    yield simulator
    simulator.stop()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def make_client(recorder: Recorder) -> Iterator[Callable[..., LineSocketClient]]:
    clients: list[LineSocketClient] = []

    def make(port: int, timeout_s: float = 2.0, rec: Recorder | None = None) -> LineSocketClient:
        rec = rec or recorder
        client = LineSocketClient(
            "127.0.0.1",
            port,
            on_update=rec.on_update,
            on_lost=rec.on_lost,
            on_malformed=rec.on_malformed,
            timeout_s=timeout_s,
            name="plc:line",
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(sim: LinePlcSimulator, make_client: Callable[..., LineSocketClient]) -> LineSocketClient:
    connected = make_client(sim.port)
    connected.connect()
    wait_for(lambda: sim.connections == 1)
    return connected


def test_snapshot_after_connect_returns_every_signal(
    client: LineSocketClient, recorder: Recorder
) -> None:
    assert client.connected
    assert client.snapshot() == SIGNALS
    # The snapshot also went to on_update, complete by the time snapshot() returned.
    assert recorder.latest() == SIGNALS
    assert recorder.lost == []
    assert recorder.malformed == []


def test_pushed_changes_arrive_in_order(
    client: LineSocketClient, sim: LinePlcSimulator, recorder: Recorder
) -> None:
    for count in range(18, 118):
        sim.set("cycle_counter", str(count))
    sim.set("serial", '"SN=2\\n"')
    wait_for(lambda: recorder.latest().get("serial") == '"SN=2\\n"')
    counts = [int(text) for name, text in recorder.updates if name == "cycle_counter"]
    assert counts == list(range(18, 118))
    assert client.statistics().updates == 101


def test_write_is_echoed_and_applied(
    client: LineSocketClient, sim: LinePlcSimulator, recorder: Recorder
) -> None:
    assert client.write("release", "1") == "1"
    assert sim.get("release") == "1"
    assert recorder.latest()["release"] == "1"
    assert client.snapshot()["release"] == "1"


def test_refused_write_raises_and_the_link_stays_up(
    client: LineSocketClient, sim: LinePlcSimulator
) -> None:
    with pytest.raises(WriteRefused, match=r"cycle_counter=0: not writable") as refused:
        client.write("cycle_counter", "0")
    assert isinstance(refused.value, DriverError)
    assert sim.get("cycle_counter") == "17"
    assert client.connected
    assert client.write("lamp", "true") == "true"


def test_invalid_write_is_rejected_before_sending(
    client: LineSocketClient, sim: LinePlcSimulator
) -> None:
    with pytest.raises(ValueError, match="invalid value"):
        client.write("lamp", "on")
    with pytest.raises(ValueError, match="invalid signal name"):
        client.write("lamp 2", "1")
    assert client.write("lamp", "1") == "1"
    assert sim.malformed == 0


def test_concurrent_writes_each_get_their_own_echo(
    client: LineSocketClient, sim: LinePlcSimulator
) -> None:
    results: dict[str, list[str]] = {"release": [], "lamp": []}
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        try:
            for value in range(50):
                results[name].append(client.write(name, str(value)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(name,)) for name in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert results == {name: [str(v) for v in range(50)] for name in results}
    assert sim.get("release") == sim.get("lamp") == "49"


def test_malformed_lines_are_counted_while_good_lines_flow(
    client: LineSocketClient, sim: LinePlcSimulator, recorder: Recorder
) -> None:
    sim.send_raw(b"garbage\n")
    sim.set("part_present", "1")
    sim.send_raw(b"bad name=1\ntemperature_c=nan\n\xff\xfe\n" + b"x" * 5000 + b"\n")
    sim.send_raw(b"!lamp nobody asked\n?\n")
    sim.set("cycle_counter", "18")
    wait_for(lambda: recorder.latest().get("cycle_counter") == "18")
    assert recorder.latest()["part_present"] == "1"
    assert len(recorder.malformed) == 7
    assert client.statistics().malformed == 7
    assert "plc:line" in recorder.malformed[0]
    assert "#1" in recorder.malformed[0]
    assert "'garbage'" in recorder.malformed[0]
    assert "longer than 1024 bytes" in recorder.malformed[4]
    assert "no write pending" in recorder.malformed[5]
    assert client.connected
    assert client.snapshot()["part_present"] == "1"


def test_failing_callback_does_not_stop_the_reader(
    sim: LinePlcSimulator, make_client: Callable[..., LineSocketClient], recorder: Recorder
) -> None:
    def on_update(name: str, text: str) -> None:
        recorder.on_update(name, text)
        if name == "part_present":
            raise RuntimeError("owner bug")

    client = LineSocketClient(
        "127.0.0.1",
        sim.port,
        on_update=on_update,
        on_lost=recorder.on_lost,
        on_malformed=recorder.on_malformed,
    )
    try:
        client.connect()
        assert client.snapshot() == SIGNALS
        assert client.write("lamp", "1") == "1"
        assert recorder.lost == []
    finally:
        client.close()


def test_plc_stop_reports_lost_once_and_requests_fail_at_once(
    client: LineSocketClient, sim: LinePlcSimulator, recorder: Recorder
) -> None:
    client.snapshot()
    sim.stop()
    wait_for(lambda: recorder.lost != [])
    assert not client.connected
    with pytest.raises(DeviceUnavailable, match="link lost: connection closed by the PLC"):
        client.snapshot()
    with pytest.raises(DeviceUnavailable, match="link lost"):
        client.write("lamp", "1")
    client.close()  # joins the reader, so nothing can be reported after this
    assert recorder.lost == ["connection closed by the PLC"]
    assert client.statistics().lost_reason == "connection closed by the PLC"


def test_close_is_idempotent_and_not_reported_as_lost(
    client: LineSocketClient, recorder: Recorder
) -> None:
    client.snapshot()
    client.close()
    client.close()
    assert not client.connected
    assert recorder.lost == []
    with pytest.raises(DeviceUnavailable, match="not connected"):
        client.snapshot()


def test_silent_plc_fails_the_snapshot_and_drops_the_link(
    client: LineSocketClient, sim: LinePlcSimulator, recorder: Recorder
) -> None:
    client.snapshot()
    sim.silent = True
    with pytest.raises(DeviceUnavailable, match=r"no end of snapshot within 0\.2 s"):
        client.snapshot(timeout_s=0.2)
    wait_for(lambda: recorder.lost != [])
    assert recorder.lost == ["no end of snapshot within 0.2 s"]
    assert not client.connected
    wait_for(lambda: sim.connections == 0)


def test_silent_plc_fails_a_write(
    client: LineSocketClient, sim: LinePlcSimulator, recorder: Recorder
) -> None:
    sim.silent = True
    with pytest.raises(DeviceUnavailable, match="no echo of lamp"):
        client.write("lamp", "1", timeout_s=0.2)
    wait_for(lambda: recorder.lost != [])
    assert sim.get("lamp") == "0"


def test_waiting_request_fails_when_the_link_drops(
    client: LineSocketClient, sim: LinePlcSimulator
) -> None:
    sim.silent = True
    outcome: list[BaseException] = []

    def ask() -> None:
        try:
            client.snapshot(timeout_s=30)
        except DeviceUnavailable as exc:
            outcome.append(exc)

    asker = threading.Thread(target=ask)
    asker.start()
    wait_for(lambda: sim.lines_received == 1)  # the `?` is out; the client is waiting
    sim.stop()
    asker.join(30)
    # It failed because the link dropped, not because it waited out its timeout.
    assert [str(exc) for exc in outcome] == [
        f"plc:line 127.0.0.1:{sim.port}: link lost: connection closed by the PLC"
    ]


def test_restart_on_the_same_port_serves_a_fresh_snapshot(
    client: LineSocketClient,
    sim: LinePlcSimulator,
    recorder: Recorder,
    make_client: Callable[..., LineSocketClient],
) -> None:
    client.write("release", "1")
    port = sim.port
    sim.stop()
    wait_for(lambda: recorder.lost != [])
    sim.set("cycle_counter", "99")  # changed while nobody was connected
    assert sim.start() == port

    # The same client object reconnects, as a restarted device actor would do.
    client.connect()
    expected = {**SIGNALS, "release": "1", "cycle_counter": "99"}
    assert client.snapshot() == expected
    assert recorder.latest() == expected

    other = Recorder()
    second = make_client(port, rec=other)
    second.connect()
    assert second.snapshot() == expected
    assert recorder.lost == ["connection closed by the PLC"]


def test_connect_to_nothing_raises_device_unavailable(
    make_client: Callable[..., LineSocketClient],
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound but not listening: connections are refused
        client = make_client(port)
        with pytest.raises(DeviceUnavailable, match=f"plc:line 127.0.0.1:{port}: cannot connect"):
            client.connect()
    assert not client.connected
    with pytest.raises(DeviceUnavailable, match="not connected"):
        client.write("lamp", "1")


def test_connect_twice_is_an_error(client: LineSocketClient) -> None:
    with pytest.raises(RuntimeError, match="already connected"):
        client.connect()
