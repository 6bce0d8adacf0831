"""Robot controller simulator: HTTP/1.1 (h11) and a WebSocket (wsproto) on loopback.

Each client connection gets a thread (`ThreadedTcpServer`); requests are parsed with h11,
answered by `routes.handle` against a `RobotDevice`, and `GET /ws` is upgraded with
wsproto to the push stream. Time comes from a ticker thread (real time, `tick_s`) or, with
`realtime=False`, only from `step(dt)`, which makes a test deterministic. Fault switches
(`go_offline`, `set_battery`, `raise_alert`, `drop_ws_clients`, `push_raw`) script a
misbehaving robot. Run `python -m sim.robot --port 8765` for a robot that serves
until stopped. See docs/robot-protocol.md.
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from http import HTTPStatus
from typing import TypeVar
from urllib.parse import urlsplit

import h11
import msgspec
import wsproto
import wsproto.events as wse
import wsproto.utilities

from drivers.robot.messages import (
    Alert,
    Reason,
    RobotState,
    StreamMessage,
    StreamRequest,
    encode,
)
from sim.cli import serve_until_stopped
from sim.robot.device import RobotDevice
from sim.robot.routes import MAX_BODY_BYTES, HttpReply, error_reply, handle
from sim.robot.webhook import WebhookSender, WebhookStatistics
from sim.tcp_server import ThreadedTcpServer

__all__ = ["RobotSim", "SimStatistics", "main"]

_log = logging.getLogger(__name__)
_T = TypeVar("_T")
_JOIN_TIMEOUT_S = 5.0
_MAX_HEAD_BYTES = 16 * 1024
_MAX_WS_MESSAGE = 64 * 1024
_CLIENT_HEADER = b"x-client-name"
_MAX_CLIENT_NAME = 64


class SimStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """What the simulator has served since it was created."""

    requests: int
    error_replies: int
    ws_clients: int
    ws_messages_sent: int
    ws_bad_requests: int
    webhook: WebhookStatistics


class _Conn:
    """One client connection: HTTP until it upgrades, then a WebSocket."""

    def __init__(self) -> None:
        self.http = h11.Connection(h11.SERVER, max_incomplete_event_size=_MAX_HEAD_BYTES)
        self.request: h11.Request | None = None
        self.body = bytearray()
        self.too_large = False
        self.ws: wsproto.WSConnection | None = None
        self.seq = 0
        self.text: list[str] = []
        self.text_bytes = 0


class RobotSim(ThreadedTcpServer[_Conn]):
    """A robot controller on host:port (0 picks a free port; read `.port` after start)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        device: RobotDevice | None = None,
        realtime: bool = True,
        tick_s: float = 0.05,
        ws_ping_s: float = 1.0,
        webhook_timeout_s: float = 2.0,
        monotonic: Callable[[], float] = time.monotonic,
        name: str = "robot-sim",
    ) -> None:
        if tick_s <= 0 or ws_ping_s <= 0:
            raise ValueError("tick_s and ws_ping_s must be > 0")
        super().__init__(host, port, name=name)
        self._device = device if device is not None else RobotDevice()
        self._realtime = realtime
        self._tick_s = tick_s
        self._ping_s = ws_ping_s
        self._monotonic = monotonic
        self._ws: dict[socket.socket, _Conn] = {}
        self._webhook = WebhookSender(
            on_report=self._on_delivery, timeout_s=webhook_timeout_s, name=f"{name}-webhook"
        )
        self._halt = threading.Event()
        self._clock: threading.Thread | None = None
        self._requests = self._errors = self._ws_sent = self._ws_bad = 0

    # --- life cycle ------------------------------------------------------------------------

    @property
    def device(self) -> RobotDevice:
        """The simulated robot; touch it only through `inspect` while the sim runs."""
        return self._device

    @property
    def base_url(self) -> str:
        """`http://host:port` of the controller."""
        return f"http://{self._host}:{self.port}"

    @property
    def ws_url(self) -> str:
        """`ws://host:port/ws`, the push stream."""
        return f"ws://{self._host}:{self.port}/ws"

    def start(self) -> int:
        """Start the clock, the webhook sender and the listener; returns the bound port."""
        port = super().start()
        self._webhook.start()
        if self._clock is None:
            self._halt.clear()
            self._clock = threading.Thread(
                target=self._run_clock, name=f"{self._name}-clock", daemon=True
            )
            self._clock.start()
        return port

    def stop(self) -> None:
        """Stop listening, drop every client, stop the clock and the sender; safe to repeat."""
        super().stop()
        self._halt.set()
        clock, self._clock = self._clock, None
        if clock is not None:
            clock.join(_JOIN_TIMEOUT_S)
        self._webhook.stop()

    def statistics(self) -> SimStatistics:
        """Counters since creation."""
        with self._lock:
            return SimStatistics(
                requests=self._requests,
                error_replies=self._errors,
                ws_clients=len(self._ws),
                ws_messages_sent=self._ws_sent,
                ws_bad_requests=self._ws_bad,
                webhook=self._webhook.statistics(),
            )

    # --- time and inspection ---------------------------------------------------------------

    def step(self, dt: float) -> None:
        """Let dt seconds of robot time pass now and push what changed."""
        with self._lock:
            self._device.tick(dt)
            self._flush()

    def inspect(self, read: Callable[[RobotDevice], _T]) -> _T:
        """read(device) under the simulator's lock, for tests and demos."""
        with self._lock:
            return read(self._device)

    def state(self) -> RobotState:
        """The robot's state as `GET /state` would give it."""
        return self.inspect(RobotDevice.state)

    # --- fault switches --------------------------------------------------------------------

    def go_offline(self) -> None:
        """Close the listener and every connection: clients get connection refused."""
        super().stop()

    def go_online(self) -> None:
        """Listen again on the same port after go_offline()."""
        if not self.running:
            super().start()

    def set_battery(self, pct: float) -> None:
        """Force the charge level; crossing the thresholds raises the usual alerts."""
        with self._lock:
            self._device.set_battery(pct)
            self._flush()

    def raise_alert(self, severity: int, header: str, body: str) -> Alert:
        """Raise an alert as the robot would: pushed on /ws and POSTed to the webhook."""
        with self._lock:
            alert = self._device.raise_alert(severity, header, body, source="fault")
            self._flush()
            return alert

    def drop_ws_clients(self) -> None:
        """Cut every WebSocket connection without a close frame (HTTP clients stay)."""
        with self._lock:
            socks = list(self._ws)
        for sock in socks:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def push_raw(self, text: str) -> None:
        """Send text as one WebSocket message to every client (malformed-input tests)."""
        with self._lock:
            for sock, conn in list(self._ws.items()):
                assert conn.ws is not None
                self._send(sock, conn.ws.send(wse.TextMessage(data=text)))

    @property
    def ws_clients(self) -> int:
        """WebSocket clients connected now."""
        with self._lock:
            return len(self._ws)

    # --- clock -----------------------------------------------------------------------------

    def _run_clock(self) -> None:
        last = self._monotonic()
        next_ping = last + self._ping_s
        period = self._tick_s if self._realtime else self._ping_s
        while not self._halt.wait(period):
            now = self._monotonic()
            if self._realtime:
                with self._lock:
                    self._device.tick(max(0.0, now - last))
                    self._flush()
            last = now
            if now >= next_ping:
                next_ping = now + self._ping_s
                with self._lock:
                    for sock, conn in list(self._ws.items()):
                        assert conn.ws is not None
                        self._send(sock, conn.ws.send(wse.Ping(payload=b"takt")))

    def _flush(self) -> None:
        """Send queued pushes to every WS client and alerts to the webhook (lock held)."""
        pushes, alerts = self._device.drain()
        for sock, conn in list(self._ws.items()):
            self._push(sock, conn, pushes)
        url = self._device.webhook_url
        for alert in alerts:
            if url is not None:
                self._webhook.submit(url, alert)

    def _push(self, sock: socket.socket, conn: _Conn, messages: Sequence[StreamMessage]) -> None:
        assert conn.ws is not None
        data = bytearray()
        for message in messages:
            conn.seq += 1
            text = encode(msgspec.structs.replace(message, seq=conn.seq)).decode()
            data += conn.ws.send(wse.TextMessage(data=text))
        if data:
            self._ws_sent += len(messages)
            self._send(sock, bytes(data))

    def _on_delivery(self, alert: Alert, url: str, error: str | None) -> None:
        with self._lock:
            status = "webhook_delivered" if error is None else "webhook_failed"
            self._device.log_connectivity(status, f"alert {alert.uuid} to {url}: {error or 'ok'}")

    # --- connections -----------------------------------------------------------------------

    def _on_connect(self, sock: socket.socket) -> _Conn:
        return _Conn()

    def _on_disconnect(self, sock: socket.socket, state: _Conn) -> None:
        if self._ws.pop(sock, None) is not None:
            self._device.log_connectivity("ws_disconnected", "push stream client left")

    def _on_data(self, sock: socket.socket, state: _Conn, data: bytes) -> bool:
        with self._lock:
            if state.ws is not None:
                return self._ws_data(sock, state, data)
            state.http.receive_data(data)
            return self._http_events(sock, state)

    def _http_events(self, sock: socket.socket, conn: _Conn) -> bool:
        while True:
            try:
                event = conn.http.next_event()
            except h11.RemoteProtocolError as exc:
                if conn.http.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    self._respond(sock, conn, error_reply(Reason.BAD_REQUEST, f"bad HTTP: {exc}"))
                return False
            if event is h11.NEED_DATA:
                return True
            if isinstance(event, h11.Request):
                conn.request, conn.too_large = event, False
                conn.body.clear()
                length = dict(event.headers).get(b"content-length", b"0")
                if length.isdigit() and int(length) > MAX_BODY_BYTES:
                    reply = error_reply(Reason.TOO_LARGE, f"body over {MAX_BODY_BYTES} bytes")
                    self._respond(sock, conn, reply, close=True)
                    return False
            elif isinstance(event, h11.Data):
                if len(conn.body) + len(event.data) > MAX_BODY_BYTES:
                    conn.too_large = True
                else:
                    conn.body += event.data
            elif isinstance(event, h11.EndOfMessage):
                request = conn.request
                assert request is not None
                if _is_upgrade(request):
                    return self._upgrade(sock, conn, request)
                self._respond(sock, conn, self._answer(conn, request))
                if conn.http.our_state is h11.MUST_CLOSE:
                    return False
            elif event is h11.PAUSED:
                if conn.http.our_state is h11.DONE and conn.http.their_state is h11.DONE:
                    conn.http.start_next_cycle()
                    continue
                return False
            elif isinstance(event, h11.ConnectionClosed):
                return False

    def _answer(self, conn: _Conn, request: h11.Request) -> HttpReply:
        self._requests += 1
        target = request.target.decode("latin-1")
        method = request.method.decode("ascii", "replace")
        if urlsplit(target).path.rstrip("/") == "/ws":
            return error_reply(
                Reason.UPGRADE_REQUIRED, "/ws is a WebSocket", headers=(("upgrade", "websocket"),)
            )
        if conn.too_large:
            return error_reply(Reason.TOO_LARGE, f"body over {MAX_BODY_BYTES} bytes")
        client = dict(request.headers).get(_CLIENT_HEADER, b"api").decode("latin-1")
        client = client[:_MAX_CLIENT_NAME] or "api"
        try:
            return handle(
                self._device,
                "GET" if method == "HEAD" else method,
                target,
                bytes(conn.body),
                client=client,
            )
        except Exception:
            # A simulator bug must not kill the connection's thread; the client sees a 500.
            _log.exception("%s: %s %s failed", self._name, method, target)
            return error_reply(Reason.INTERNAL, "internal error in the robot simulator")
        finally:
            self._device.sync_pushes()
            self._flush()

    def _respond(
        self, sock: socket.socket, conn: _Conn, reply: HttpReply, *, close: bool = False
    ) -> None:
        if reply.status >= 400:
            self._errors += 1
        headers = [("content-length", str(len(reply.body))), *reply.headers]
        if close:
            headers.append(("connection", "close"))
        head = conn.request is not None and conn.request.method == b"HEAD"
        try:
            phrase = HTTPStatus(reply.status).phrase.encode("ascii")
            response = h11.Response(status_code=reply.status, headers=headers, reason=phrase)
            out = conn.http.send(response)
            if not head:
                out += conn.http.send(h11.Data(data=reply.body))
            out += conn.http.send(h11.EndOfMessage())
        except h11.LocalProtocolError:
            return  # the exchange cannot carry a reply; the connection is closed by the caller
        self._send(sock, out)

    # --- WebSocket -------------------------------------------------------------------------

    def _upgrade(self, sock: socket.socket, conn: _Conn, request: h11.Request) -> bool:
        self._requests += 1
        ws = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
        try:
            ws.initiate_upgrade_connection(request.headers, request.target)
        except wsproto.utilities.RemoteProtocolError as exc:
            self._respond(sock, conn, error_reply(Reason.BAD_REQUEST, f"bad upgrade: {exc}"))
            return False
        for _ in ws.events():
            pass  # the Request event: accepted below
        self._send(sock, ws.send(wse.AcceptConnection()))
        conn.ws = ws
        self._ws[sock] = conn
        self._device.log_connectivity("ws_connected", "push stream client joined")
        self._push(sock, conn, self._device.snapshot())
        trailing, _ = conn.http.trailing_data
        return self._ws_data(sock, conn, trailing) if trailing else True

    def _ws_data(self, sock: socket.socket, conn: _Conn, data: bytes) -> bool:
        ws = conn.ws
        assert ws is not None
        ws.receive_data(data)
        for event in ws.events():
            if isinstance(event, wse.TextMessage):
                conn.text.append(event.data)
                conn.text_bytes += len(event.data)
                if conn.text_bytes > _MAX_WS_MESSAGE:
                    self._send(sock, ws.send(wse.CloseConnection(code=1009)))
                    return False
                if event.message_finished:
                    text = "".join(conn.text)
                    conn.text, conn.text_bytes = [], 0
                    self._ws_request(sock, conn, text)
            elif isinstance(event, wse.BytesMessage):
                self._ws_bad += 1
            elif isinstance(event, wse.Ping):
                self._send(sock, ws.send(event.response()))
            elif isinstance(event, wse.CloseConnection):
                if ws.state is wsproto.connection.ConnectionState.REMOTE_CLOSING:
                    self._send(sock, ws.send(event.response()))
                return False
        return True

    def _ws_request(self, sock: socket.socket, conn: _Conn, text: str) -> None:
        try:
            msgspec.json.decode(text, type=StreamRequest)
        except (msgspec.DecodeError, msgspec.ValidationError):
            self._ws_bad += 1
            return
        self._push(sock, conn, self._device.snapshot())


def _is_upgrade(request: h11.Request) -> bool:
    headers = {name: value.lower() for name, value in request.headers}
    return (
        request.method == b"GET"
        and urlsplit(request.target.decode("latin-1")).path.rstrip("/") == "/ws"
        and headers.get(b"upgrade") == b"websocket"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Serve a simulated robot until SIGTERM/SIGINT; prints `READY http://host:port`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args(argv)
    sim = RobotSim(args.host, args.port)

    def start() -> str:
        sim.start()
        return sim.base_url

    return serve_until_stopped(start, sim.stop)


if __name__ == "__main__":
    sys.exit(main())
