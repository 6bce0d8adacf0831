"""The TCP server the loopback device simulators share: a listener, one thread a client.

A simulator subclasses ThreadedTcpServer and says only what a connection does: the state it
keeps (`_on_connect`), what received bytes do (`_on_data`) and what is left to undo when it
ends (`_on_disconnect`). A device whose connections also act on time (a silence timeout)
overrides the read loop, `_serve`. Sends go through `_send` and `_broadcast`, which shut
down a client that cannot take them.
"""

from __future__ import annotations

import select
import socket
import threading
from abc import ABC, abstractmethod
from typing import Generic, Self, TypeVar

__all__ = ["RECV_BYTES", "SEND_TIMEOUT_S", "ThreadedTcpServer"]

RECV_BYTES = 65536
"""Most bytes taken from a client in one read."""
SEND_TIMEOUT_S = 2.0
"""A client that does not read for this long is dropped rather than stall every other one."""
_JOIN_TIMEOUT_S = 5.0

C = TypeVar("C")
"""What a simulator keeps for one connection: a decoder, a login session..."""


class ThreadedTcpServer(ABC, Generic[C]):
    """A TCP server with an acceptor thread and a daemon thread a client; restartable.

    name names the threads (`name`, `name-client`). The subclass guards its own state with
    `self._lock`, which is re-entrant and also guards the client list, so sending under it
    makes a state change and what it sends one step that every client sees in order.
    """

    def __init__(
        self, host: str, port: int, *, name: str, send_timeout_s: float = SEND_TIMEOUT_S
    ) -> None:
        if send_timeout_s <= 0:
            raise ValueError("send_timeout_s must be > 0")
        self._host = host
        self._port = port
        self._name = name
        self._send_timeout_s = send_timeout_s
        self._lock = threading.RLock()
        self._clients: dict[socket.socket, threading.Thread] = {}
        self._listener: socket.socket | None = None
        self._wake: tuple[socket.socket, socket.socket] | None = None
        self._acceptor: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (the requested one until start() has bound a free port)."""
        return self._port

    @property
    def running(self) -> bool:
        """True between start() and stop()."""
        return self._listener is not None

    @property
    def connections(self) -> int:
        """Clients connected right now."""
        with self._lock:
            return len(self._clients)

    def start(self) -> int:
        """Listen and return the bound port; after stop() it listens on the same port again."""
        if self._listener is not None:
            raise RuntimeError("simulator already running")
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            # Our own closed connections sit in TIME_WAIT; a restart must still bind.
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((self._host, self._port))
            listener.listen()
        except OSError as exc:
            listener.close()
            raise OSError(f"cannot listen on {self._host}:{self._port}: {exc}") from exc
        self._port = listener.getsockname()[1]
        self._listener = listener
        # select() on the listener cannot be interrupted by closing it from another thread;
        # a byte on this pair is what wakes the acceptor for stop().
        self._wake = socket.socketpair()
        self._acceptor = threading.Thread(
            target=self._accept, args=(listener, self._wake[0]), name=self._name, daemon=True
        )
        self._acceptor.start()
        return self._port

    def stop(self) -> None:
        """Stop listening and close every client connection; safe to call twice."""
        listener, wake, acceptor = self._listener, self._wake, self._acceptor
        if listener is None or wake is None or acceptor is None:
            return
        wake[1].send(b"x")
        acceptor.join(_JOIN_TIMEOUT_S)
        listener.close()
        for end in wake:
            end.close()
        self._listener = self._wake = self._acceptor = None
        self._drop_clients()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- for subclasses ------------------------------------------------------------------

    @abstractmethod
    def _on_connect(self, sock: socket.socket) -> C:
        """The new connection's state; runs on its thread before the first read."""

    @abstractmethod
    def _on_data(self, sock: socket.socket, state: C, data: bytes) -> bool:
        """Act on bytes from the client; False closes the connection, and so does OSError."""

    def _on_disconnect(self, sock: socket.socket, state: C) -> None:
        """Undo what the connection leaves behind; runs under the lock as it ends."""

    def _serve(self, sock: socket.socket, state: C) -> None:
        """The connection's read loop: returns when the client leaves or is to be dropped."""
        while True:
            try:
                data = sock.recv(RECV_BYTES)
            except TimeoutError:
                continue  # idle client; the timeout is there for sends
            if not data or not self._on_data(sock, state, data):
                return

    def _send(self, sock: socket.socket, data: bytes) -> None:
        """Send data to one client; one that cannot take it is shut down."""
        try:
            sock.sendall(data)
        except OSError:
            _shutdown(sock)  # its thread sees the end and unregisters it

    def _broadcast(self, data: bytes) -> None:
        """Send data to every client, shutting down each one that cannot take it."""
        with self._lock:
            for sock in list(self._clients):
                self._send(sock, data)

    def _drop_clients(self, *, wait: bool = True) -> None:
        """Close every client connection (the listener stays); wait for their threads."""
        with self._lock:
            clients = list(self._clients.items())
        for sock, _ in clients:
            _shutdown(sock)
        if not wait:
            return
        for _, thread in clients:
            if thread is not threading.current_thread():
                thread.join(_JOIN_TIMEOUT_S)

    # --- threads -------------------------------------------------------------------------

    def _accept(self, listener: socket.socket, wake: socket.socket) -> None:
        while True:
            readable, _, _ = select.select([listener, wake], [], [])
            if wake in readable:
                return
            try:
                sock, _ = listener.accept()
            except OSError:
                continue  # the peer gave up between select and accept
            sock.settimeout(self._send_timeout_s)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            thread = threading.Thread(
                target=self._run_client, args=(sock,), name=f"{self._name}-client", daemon=True
            )
            with self._lock:  # started under the lock: stop() must never join an unstarted one
                self._clients[sock] = thread
                thread.start()

    def _run_client(self, sock: socket.socket) -> None:
        state = self._on_connect(sock)
        try:
            self._serve(sock, state)
        except OSError:
            pass  # reset by the client, a stalled send, or shut down by stop()
        finally:
            with self._lock:
                self._on_disconnect(sock, state)
                self._clients.pop(sock, None)
            _shutdown(sock)
            sock.close()


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already disconnected
