"""The simulators' shared TCP server, through a small echo device on loopback."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from sim.tcp_server import SEND_TIMEOUT_S, ThreadedTcpServer
from tests.waiting import wait_for

_NAME = "echo-sim"


class EchoServer(ThreadedTcpServer[list[bytes]]):
    """Echoes what a client sends; a connection whose bytes end in `bye` is closed."""

    def __init__(self, port: int = 0, *, send_timeout_s: float = SEND_TIMEOUT_S) -> None:
        super().__init__("127.0.0.1", port, name=_NAME, send_timeout_s=send_timeout_s)
        self.ended: list[bytes] = []
        """Everything each ended connection sent, in the order they ended."""

    def broadcast(self, data: bytes) -> None:
        self._broadcast(data)

    def drop_clients(self) -> None:
        self._drop_clients()

    def _on_connect(self, sock: socket.socket) -> list[bytes]:
        return []

    def _on_data(self, sock: socket.socket, state: list[bytes], data: bytes) -> bool:
        state.append(data)
        self._send(sock, data)
        return not b"".join(state).endswith(b"bye")

    def _on_disconnect(self, sock: socket.socket, state: list[bytes]) -> None:
        self.ended.append(b"".join(state))


@pytest.fixture
def server() -> Iterator[EchoServer]:
    with EchoServer() as sim:
        yield sim


def connect(port: int, *, receive_buffer: int | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer is not None:
        # Set before connecting, so the window the server sees is small from the start.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.settimeout(5)
    sock.connect(("127.0.0.1", port))
    return sock


def read_exactly(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(min(65536, size - len(data)))
        if not chunk:
            break
        data += chunk
    return bytes(data)


def at_end(sock: socket.socket) -> bool:
    """True once the server has closed the connection (EOF or reset)."""
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True


def client_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"{_NAME}-client"]


def test_start_binds_a_free_port_and_serves(server: EchoServer) -> None:
    assert server.running
    assert server.port != 0
    with connect(server.port) as client:
        client.sendall(b"hello")
        assert read_exactly(client, 5) == b"hello"


def test_restart_listens_on_the_same_port_and_drops_the_old_clients() -> None:
    sim = EchoServer()
    port = sim.start()
    with connect(port) as old:
        wait_for(lambda: sim.connections == 1)
        sim.stop()
        assert not sim.running
        assert sim.connections == 0
        assert at_end(old)
        with pytest.raises(OSError):
            connect(port)  # nothing listens while stopped
        assert sim.start() == port
    try:
        with connect(port) as new:
            new.sendall(b"again")
            assert read_exactly(new, 5) == b"again"
    finally:
        sim.stop()
        sim.stop()  # a second stop is harmless


def test_start_twice_is_refused(server: EchoServer) -> None:
    with pytest.raises(RuntimeError, match="already running"):
        server.start()


def test_a_busy_port_is_a_clear_error(server: EchoServer) -> None:
    other = EchoServer(server.port)
    with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{server.port}"):
        other.start()
    assert not other.running


def test_connections_counts_the_clients_connected_now(server: EchoServer) -> None:
    first, second = connect(server.port), connect(server.port)
    wait_for(lambda: server.connections == 2)
    first.close()
    wait_for(lambda: server.connections == 1)
    second.close()
    wait_for(lambda: server.connections == 0)
    assert sorted(server.ended) == [b"", b""]


def test_the_device_closes_a_connection_and_cleans_up_after_it(server: EchoServer) -> None:
    with connect(server.port) as leaving, connect(server.port) as staying:
        wait_for(lambda: server.connections == 2)
        leaving.sendall(b"good bye")
        assert read_exactly(leaving, 8) == b"good bye"
        assert at_end(leaving)
        wait_for(lambda: server.connections == 1)
        assert server.ended == [b"good bye"]
        staying.sendall(b"still here")
        assert read_exactly(staying, 10) == b"still here"


def test_broadcast_reaches_every_client(server: EchoServer) -> None:
    clients = [connect(server.port) for _ in range(3)]
    try:
        wait_for(lambda: server.connections == 3)
        server.broadcast(b"news")
        assert [read_exactly(client, 4) for client in clients] == [b"news"] * 3
    finally:
        for client in clients:
            client.close()


def test_broadcast_drops_a_client_that_stops_reading() -> None:
    # More than the kernel buffers of a stalled loopback connection can hold.
    payload = bytes(range(256)) * (16 * 4096)
    with EchoServer(send_timeout_s=0.2) as sim:
        reader = connect(sim.port)
        stalled = connect(sim.port, receive_buffer=4096)
        wait_for(lambda: sim.connections == 2)
        received: list[bytes] = []
        thread = threading.Thread(
            target=lambda: received.append(read_exactly(reader, len(payload)))
        )
        thread.start()
        sim.broadcast(payload)
        thread.join(10)
        assert received == [payload]
        wait_for(lambda: sim.connections == 1)
        reader.sendall(b"ok")
        assert read_exactly(reader, 2) == b"ok"
        reader.close()
        stalled.close()


def test_stop_joins_every_client_thread() -> None:
    sim = EchoServer()
    sim.start()
    clients = [connect(sim.port) for _ in range(4)]
    try:
        wait_for(lambda: sim.connections == 4)
        assert len(client_threads()) == 4
        assert [t.name for t in threading.enumerate()].count(_NAME) == 1  # the acceptor
        sim.stop()
        assert client_threads() == []
        assert _NAME not in [t.name for t in threading.enumerate()]
        assert len(sim.ended) == 4
        assert all(at_end(client) for client in clients)
    finally:
        for client in clients:
            client.close()


def test_dropping_clients_keeps_listening(server: EchoServer) -> None:
    with connect(server.port) as first:
        wait_for(lambda: server.connections == 1)
        server.drop_clients()
        assert server.connections == 0
        assert client_threads() == []
        assert at_end(first)
    with connect(server.port) as second:
        second.sendall(b"back")
        assert read_exactly(second, 4) == b"back"
