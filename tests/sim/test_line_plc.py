"""The line PLC simulator, spoken to with plain sockets as a PLC programmer's tool would."""

from __future__ import annotations

import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from drivers.linesocket.codec import (
    LineDecoder,
    Malformed,
    Message,
    Refused,
    SnapshotEnd,
    Update,
)
from sim.line_plc import DEMO_SIGNALS, LinePlcSimulator
from tests.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]


class RawPeer:
    """A bare TCP connection that sends lines and collects decoded replies."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.decoder = LineDecoder()
        self.received: list[Message] = []
        self.closed = False

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_until(self, done: Callable[[list[Message]], bool], timeout_s: float = 5.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not done(self.received):
            if self.closed or time.monotonic() > deadline:
                pytest.fail(f"no such reply; got {self.received}")
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            if not data:
                self.closed = True
            self.received += self.decoder.feed(data)

    def read_eof(self) -> bool:
        """True once the simulator has closed this connection."""
        self.sock.settimeout(5)
        try:
            while data := self.sock.recv(65536):
                self.received += self.decoder.feed(data)
        except ConnectionResetError:
            pass
        return True

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def sim() -> Iterator[LinePlcSimulator]:
    simulator = LinePlcSimulator(signals={"a": "1", "s": '"x"'}, writable={"out"})
    simulator.start()
    yield simulator
    simulator.stop()


@pytest.fixture
def connect(sim: LinePlcSimulator) -> Iterator[Callable[[], RawPeer]]:
    peers: list[RawPeer] = []

    def make() -> RawPeer:
        peer = RawPeer(sim.port)
        peers.append(peer)
        wait_for(lambda: sim.connections == len([p for p in peers if not p.closed]))
        return peer

    yield make
    for peer in peers:
        peer.close()


def updates(messages: list[Message]) -> list[tuple[str, str]]:
    return [(m.name, m.text) for m in messages if isinstance(m, Update)]


def test_snapshot_answer_is_every_signal_then_a_dot(connect: Callable[[], RawPeer]) -> None:
    peer = connect()
    peer.send(b"?\r\n")
    peer.read_until(lambda got: SnapshotEnd() in got)
    assert peer.received == [
        Update(name="a", text="1"),
        Update(name="s", text='"x"'),
        SnapshotEnd(),
    ]


def test_set_pushes_to_every_client(sim: LinePlcSimulator, connect: Callable[[], RawPeer]) -> None:
    first, second = connect(), connect()
    sim.set("a", "0")
    sim.set("new.signal", "2.5e-3")
    for peer in (first, second):
        peer.read_until(lambda got: len(got) == 2)
        assert updates(peer.received) == [("a", "0"), ("new.signal", "2.5e-3")]
    assert sim.get("new.signal") == "2.5e-3"
    with pytest.raises(ValueError, match="invalid value"):
        sim.set("a", "maybe")
    assert sim.get("a") == "0"


def test_write_to_a_writable_signal_is_applied_and_echoed_to_all(
    sim: LinePlcSimulator, connect: Callable[[], RawPeer]
) -> None:
    writer, watcher = connect(), connect()
    writer.send(b"out=1\n")
    for peer in (writer, watcher):
        peer.read_until(bool)
        assert peer.received == [Update(name="out", text="1")]
    assert sim.get("out") == "1"
    assert sim.values() == {"a": "1", "s": '"x"', "out": "1"}


def test_write_to_other_signals_is_refused_to_the_writer_only(
    sim: LinePlcSimulator, connect: Callable[[], RawPeer]
) -> None:
    writer, watcher = connect(), connect()
    writer.send(b"a=0\nmissing=1\n")
    writer.read_until(lambda got: len(got) == 2)
    assert writer.received == [
        Refused(name="a", reason="not writable"),
        Refused(name="missing", reason="not writable"),
    ]
    assert sim.get("a") == "1"
    with pytest.raises(KeyError):
        sim.get("missing")
    sim.set("a", "5")  # a marker: the watcher sees it and nothing before it
    watcher.read_until(bool)
    assert watcher.received == [Update(name="a", text="5")]


def test_malformed_lines_from_a_client_are_counted_and_ignored(
    sim: LinePlcSimulator, connect: Callable[[], RawPeer]
) -> None:
    peer = connect()
    peer.send(b"hello\nout=on\n.\n!a no\n\xff\n" + b"z" * 2000 + b"\nout=1\n")
    peer.read_until(bool)
    assert peer.received == [Update(name="out", text="1")]
    assert sim.malformed == 6
    assert sim.get("out") == "1"


def test_send_raw_reaches_clients_unchanged(
    sim: LinePlcSimulator, connect: Callable[[], RawPeer]
) -> None:
    peer = connect()
    sim.send_raw(b"not=a=line\n")
    peer.read_until(bool)
    [message] = peer.received
    assert isinstance(message, Malformed)
    assert message.line == "not=a=line"


def test_silent_simulator_sends_nothing_until_it_speaks_again(
    sim: LinePlcSimulator, connect: Callable[[], RawPeer]
) -> None:
    peer = connect()
    sim.silent = True
    peer.send(b"?\nout=1\n")
    sim.set("a", "7")
    wait_for(lambda: sim.lines_received == 2)
    assert sim.get("a") == "7"
    assert "out" not in sim.values()  # a hung PLC applies no writes
    sim.silent = False
    peer.send(b"?\n")
    peer.read_until(lambda got: SnapshotEnd() in got)
    # The first thing the client hears is the answer to the request after silence.
    assert peer.received == [
        Update(name="a", text="7"),
        Update(name="s", text='"x"'),
        SnapshotEnd(),
    ]


def test_stop_closes_clients_and_start_reuses_the_port(
    sim: LinePlcSimulator, connect: Callable[[], RawPeer]
) -> None:
    peer = connect()
    port = sim.port
    sim.set("a", "3")
    sim.stop()
    assert peer.read_eof()
    assert not sim.running
    assert sim.connections == 0
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5)
    sim.stop()  # a second stop is harmless

    assert sim.start() == port
    again = RawPeer(port)
    try:
        again.send(b"?\n")
        again.read_until(lambda got: SnapshotEnd() in got)
        assert updates(again.received) == [("a", "3"), ("s", '"x"')]
    finally:
        again.close()


def test_start_twice_and_bad_construction() -> None:
    with LinePlcSimulator() as sim:
        with pytest.raises(RuntimeError, match="already running"):
            sim.start()
        with pytest.raises(OSError, match="cannot listen"):
            LinePlcSimulator(port=sim.port).start()
    with pytest.raises(ValueError, match="invalid signal name"):
        LinePlcSimulator(signals={"bad name": "1"})
    with pytest.raises(ValueError, match="invalid value"):
        LinePlcSimulator(signals={"x": "nan"})


# --- the process form ----------------------------------------------------------------------


def start_process(*args: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "sim.line_plc", "--port", "0", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    if not ready:
        proc.kill()
        pytest.fail("simulator process did not print READY")
    word, port = proc.stdout.readline().split()
    assert word == "READY"
    return proc, int(port)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ((), DEMO_SIGNALS),
        (("--signal", "speed=1.5", "--signal", 'name="A B"', "--writable", "speed"), None),
    ],
)
def test_process_serves_until_sigterm(
    args: tuple[str, ...], expected: dict[str, str] | None
) -> None:
    proc, port = start_process(*args)
    peer = RawPeer(port)
    try:
        peer.send(b"?\n")
        peer.read_until(lambda got: SnapshotEnd() in got)
        if expected is None:
            assert updates(peer.received) == [("speed", "1.5"), ("name", '"A B"')]
            write = b"speed=2\n"
        else:
            assert dict(updates(peer.received)) == expected
            write = b"release=1\n"
        peer.received.clear()
        peer.send(write)
        peer.read_until(bool)
        assert isinstance(peer.received[0], Update)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert peer.read_eof()
    finally:
        peer.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()


def test_process_rejects_a_bad_signal_argument() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sim.line_plc", "--signal", "speed"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "expected NAME=VALUE" in result.stderr
