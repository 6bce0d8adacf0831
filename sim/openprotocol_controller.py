"""Open Protocol torque controller simulator: a threaded TCP server on loopback.

It answers MID 0001 (revisions up to `max_revision`), pset selection, batch sizes, tool
enable/disable, result subscription and keep-alives like a controller does, and `tighten()`
produces a tightening result (MID 0061) judged against the selected pset. Fault switches
(`drop_link`, `go_silent`, `send_malformed`) let tests script a misbehaving controller.
"""

from __future__ import annotations

import argparse
import random
import select
import socket
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from enum import StrEnum

import msgspec

from drivers.openprotocol.codec import (
    Frame,
    FrameDecoder,
    FrameError,
    Malformed,
    StreamEvent,
    encode_frame,
)
from drivers.openprotocol.mids import (
    BATCH_SIZE_DIGITS,
    START_ACK_REVISIONS,
    BatchStatus,
    CommandAccepted,
    CommandError,
    CommunicationStartAck,
    CommunicationStop,
    DisableTool,
    EnableTool,
    ErrorCode,
    KeepAlive,
    LimitStatus,
    Message,
    Mid,
    ResultSubscribe,
    ResultUnsubscribe,
    SelectParameterSet,
    SetBatchSize,
    TighteningResult,
    cnm_from_nm,
    decode_message,
    encode_message,
)
from sim.cli import serve_until_stopped
from sim.tcp_server import RECV_BYTES, ThreadedTcpServer

__all__ = [
    "DEMO_PSETS",
    "MalformedKind",
    "OpenProtocolControllerSim",
    "Pset",
    "main",
]

_JOIN_TIMEOUT_S = 5.0
# Upper bound of one wait in a client thread, so switches and stop() are noticed promptly.
_MAX_WAIT_S = 0.5
# Revisions received are kept per MID for tests and logs; this many of each are enough.
_REVISIONS_KEPT = 1000
_MAX_TORQUE_CNM = 999_999
_MAX_ANGLE = 99_999
# Highest revision the simulated controller accepts per MID; MID 0001 follows max_revision.
_ACCEPTED_REVISIONS = {
    Mid.COMMUNICATION_STOP: 1,
    Mid.SELECT_PARAMETER_SET: 1,
    Mid.DISABLE_TOOL: 1,
    Mid.ENABLE_TOOL: 1,
    Mid.RESULT_SUBSCRIBE: 1,
    Mid.RESULT_ACK: 1,
    Mid.RESULT_UNSUBSCRIBE: 1,
    Mid.KEEP_ALIVE: 1,
}
_FALLBACK_TIME = datetime(2024, 1, 1)


class Pset(msgspec.Struct, frozen=True, kw_only=True):
    """A parameter set: the limits and target a tightening is judged against.

    Torques in cN·m (hundredths of N·m), angles in degrees; batch_size 0 means no batch.
    """

    number: int
    torque_min_cnm: int
    torque_max_cnm: int
    torque_target_cnm: int
    angle_min: int = 0
    angle_max: int = 360
    angle_target: int = 180
    batch_size: int = 0
    changed_at: datetime = _FALLBACK_TIME


DEMO_PSETS = (
    Pset(
        number=1,
        torque_min_cnm=cnm_from_nm("9.0"),
        torque_max_cnm=cnm_from_nm("11.0"),
        torque_target_cnm=cnm_from_nm("10.0"),
        angle_min=30,
        angle_max=90,
        angle_target=60,
        batch_size=4,
    ),
    Pset(
        number=2,
        torque_min_cnm=cnm_from_nm("22.5"),
        torque_max_cnm=cnm_from_nm("27.5"),
        torque_target_cnm=cnm_from_nm("25.0"),
        angle_min=45,
        angle_max=180,
        angle_target=120,
    ),
)


class MalformedKind(StrEnum):
    """What `send_malformed` sends; each leaves the stream resynchronisable."""

    BAD_LENGTH = "bad_length"  # length field not digits
    SHORT_LENGTH = "short_length"  # length below the header size
    LENGTH_MISMATCH = "length_mismatch"  # length larger than the frame; NUL comes early
    NON_DIGIT_MID = "non_digit_mid"
    MISSING_NUL = "missing_nul"  # a frame whose terminator is missing
    NON_ASCII = "non_ascii"
    BAD_RESULT = "bad_result"  # a well-framed MID 0061 whose torque is not a number


class _Client:
    """One connection: its frame decoder and session state; guarded by the simulator's lock."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.decoder = FrameDecoder()
        self.started = False
        self.subscribed = False
        self.last_received = time.monotonic()


class OpenProtocolControllerSim(ThreadedTcpServer[_Client]):
    """A torque controller that speaks Open Protocol; state survives stop()/start().

    Results are drawn from a seeded random generator: with probability nok_rate a
    tightening is NOK (torque or angle outside the limits), otherwise torque is normal
    around torque_mean_cnm (the pset target if None) with torque_stddev_cnm, judged
    against the limits as drawn. batch_size_revision is the highest MID 0019 revision taken;
    None makes it a controller without MID 0019 (error 99).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        psets: Iterable[Pset] = DEMO_PSETS,
        *,
        max_revision: int = 1,
        max_clients: int = 1,
        cell_id: int = 1,
        channel_id: int = 1,
        controller_name: str = "Takt sim controller",
        silence_timeout_s: float = 15.0,
        nok_rate: float = 0.0,
        torque_mean_cnm: int | None = None,
        torque_stddev_cnm: float = 10.0,
        angle_stddev: float = 5.0,
        batch_size_revision: int | None = max(BATCH_SIZE_DIGITS),
        seed: int = 0,
        auto_interval_s: float | None = None,
        now: Callable[[], datetime] = datetime.now,
    ) -> None:
        if max_revision not in START_ACK_REVISIONS:
            raise ValueError(f"max_revision must be one of {START_ACK_REVISIONS}")
        if max_clients < 1 or silence_timeout_s <= 0 or not 0.0 <= nok_rate <= 1.0:
            raise ValueError("need max_clients >= 1, silence_timeout_s > 0, 0 <= nok_rate <= 1")
        if batch_size_revision is not None and batch_size_revision not in BATCH_SIZE_DIGITS:
            raise ValueError(f"batch_size_revision must be None or one of "
                             f"{tuple(BATCH_SIZE_DIGITS)}")
        self._psets = {pset.number: pset for pset in psets}
        if not self._psets:
            raise ValueError("at least one pset is needed")
        super().__init__(host, port, name="op-sim")
        self._max_revision = max_revision
        self._max_clients = max_clients
        self._cell_id = cell_id
        self._channel_id = channel_id
        self._controller_name = controller_name
        self._silence_s = silence_timeout_s
        self._nok_rate = nok_rate
        self._torque_mean = torque_mean_cnm
        self._torque_sd = torque_stddev_cnm
        self._angle_sd = angle_stddev
        self._random = random.Random(seed)
        self._auto_interval_s = auto_interval_s
        self._now = now
        self._accepted = dict(_ACCEPTED_REVISIONS)
        if batch_size_revision is not None:
            self._accepted[Mid.SET_BATCH_SIZE] = batch_size_revision
        # The state is guarded by the server's lock, which sends happen under too: a state
        # change and what it sends happen together, so every client sees them in one order.
        self._sessions: dict[socket.socket, _Client] = {}
        self._auto: threading.Thread | None = None
        self._auto_stop = threading.Event()
        self._silent = False
        self._tool_enabled = True
        self._pset = min(self._psets)
        self._batch_counter = 0
        self._tightening_id = 0
        self._vin = ""
        self._received: Counter[int] = Counter()
        self._revisions: dict[int, deque[int]] = {}
        self._malformed = 0
        self._results_sent = 0

    # --- observation -----------------------------------------------------------------------

    @property
    def sessions(self) -> int:
        """Clients with a started session (MID 0001 accepted) right now."""
        with self._lock:
            return sum(client.started for client in self._sessions.values())

    @property
    def subscribers(self) -> int:
        """Clients subscribed to tightening results right now."""
        with self._lock:
            return sum(client.subscribed for client in self._sessions.values())

    @property
    def tool_enabled(self) -> bool:
        """False after MID 0042 until MID 0043."""
        with self._lock:
            return self._tool_enabled

    @property
    def selected_pset(self) -> int:
        """Number of the selected pset."""
        with self._lock:
            return self._pset

    def pset(self, number: int) -> Pset:
        """Pset number as the controller holds it now (batch sizes set by MID 0019 included)."""
        with self._lock:
            return self._psets[number]

    @property
    def batch_counter(self) -> int:
        """OK tightenings in the current batch."""
        with self._lock:
            return self._batch_counter

    @property
    def malformed(self) -> int:
        """Frames from clients that did not decode, since construction."""
        with self._lock:
            return self._malformed

    @property
    def results_sent(self) -> int:
        """MID 0061 frames sent (one per subscriber per tightening), since construction."""
        with self._lock:
            return self._results_sent

    def received(self, mid: int) -> int:
        """Frames of MID mid received from clients (also while silent), since construction."""
        with self._lock:
            return self._received[mid]

    def revisions_received(self, mid: int) -> list[int]:
        """Header revisions of the last frames of MID mid received, oldest first."""
        with self._lock:
            return list(self._revisions.get(mid, ()))

    # --- life cycle ------------------------------------------------------------------------

    def start(self) -> int:
        """Listen and return the bound port; after stop() it listens on the same port again."""
        port = super().start()
        if self._auto_interval_s is not None:
            self.start_auto(self._auto_interval_s)
        return port

    def stop(self) -> None:
        """Stop listening, the automatic mode and every connection; safe to call twice."""
        self.stop_auto()
        super().stop()

    # --- the tool --------------------------------------------------------------------------

    def set_vin(self, vin: str) -> None:
        """The VIN / identifier reported with the next results (25 printable ASCII chars)."""
        with self._lock:
            self._vin = vin

    def tighten(self, ok: bool | None = None) -> TighteningResult | None:
        """Run the tool once and send the result to every subscriber; None if disabled.

        ok=True or False forces the outcome; None draws it (see the class docstring).
        """
        with self._lock:
            if not self._tool_enabled:
                return None
            pset = self._psets[self._pset]
            torque, angle = self._draw(pset, ok)
            torque_status = _judge(torque, pset.torque_min_cnm, pset.torque_max_cnm)
            angle_status = _judge(angle, pset.angle_min, pset.angle_max)
            good = torque_status is LimitStatus.OK and angle_status is LimitStatus.OK
            batch_status = self._count_batch(pset, good)
            self._tightening_id += 1
            result = TighteningResult(
                cell_id=self._cell_id,
                channel_id=self._channel_id,
                controller_name=self._controller_name,
                vin=self._vin,
                job_id=0,
                pset=pset.number,
                batch_size=pset.batch_size,
                batch_counter=self._batch_counter,
                tightening_ok=good,
                torque_status=torque_status,
                angle_status=angle_status,
                torque_min_cnm=pset.torque_min_cnm,
                torque_max_cnm=pset.torque_max_cnm,
                torque_target_cnm=pset.torque_target_cnm,
                torque_cnm=torque,
                angle_min=pset.angle_min,
                angle_max=pset.angle_max,
                angle_target=pset.angle_target,
                angle=angle,
                timestamp=self._now().replace(microsecond=0),
                pset_changed_at=pset.changed_at,
                batch_status=batch_status,
                tightening_id=self._tightening_id,
            )
            if not self._silent:
                data = encode_message(result)
                for client in list(self._sessions.values()):
                    if client.subscribed:
                        self._results_sent += 1
                        self._send(client.sock, data)
            return result

    def start_auto(self, interval_s: float) -> None:
        """Tighten every interval_s seconds until stop_auto() (a disabled tool skips)."""
        if interval_s <= 0:
            raise ValueError("interval_s must be > 0")
        self.stop_auto()
        self._auto_stop.clear()
        self._auto = threading.Thread(
            target=self._run_auto, args=(interval_s,), name="op-sim-auto", daemon=True
        )
        self._auto.start()

    def stop_auto(self) -> None:
        """Stop the automatic mode; safe when it is not running."""
        auto, self._auto = self._auto, None
        if auto is not None:
            self._auto_stop.set()
            auto.join(_JOIN_TIMEOUT_S)

    def _run_auto(self, interval_s: float) -> None:
        while not self._auto_stop.wait(interval_s):
            self.tighten()

    def _draw(self, pset: Pset, ok: bool | None) -> tuple[int, int]:
        rng = self._random
        if ok is None and rng.random() < self._nok_rate:
            ok = False
        mean = pset.torque_target_cnm if self._torque_mean is None else self._torque_mean
        torque = round(rng.gauss(mean, self._torque_sd))
        angle = round(rng.gauss(pset.angle_target, self._angle_sd))
        if ok is True:
            torque = _clamp(torque, pset.torque_min_cnm, pset.torque_max_cnm)
            angle = _clamp(angle, pset.angle_min, pset.angle_max)
        elif ok is False:
            torque, angle = self._outside(pset)
        return _clamp(torque, 0, _MAX_TORQUE_CNM), _clamp(angle, 0, _MAX_ANGLE)

    def _outside(self, pset: Pset) -> tuple[int, int]:
        # One limit violated, chosen at random among those that can be: a real NOK is a
        # torque or an angle out of its window, rarely both.
        rng = self._random
        torque = _clamp(pset.torque_target_cnm, pset.torque_min_cnm, pset.torque_max_cnm)
        angle = _clamp(pset.angle_target, pset.angle_min, pset.angle_max)
        spread = max(1, round(3 * self._torque_sd))
        options: list[tuple[int, int]] = []
        if pset.torque_min_cnm > 0:
            low = rng.randint(max(0, pset.torque_min_cnm - spread), pset.torque_min_cnm - 1)
            options.append((low, angle))
        if pset.torque_max_cnm < _MAX_TORQUE_CNM:
            top = min(_MAX_TORQUE_CNM, pset.torque_max_cnm + spread)
            options.append((rng.randint(pset.torque_max_cnm + 1, top), angle))
        if pset.angle_min > 0:
            options.append((torque, rng.randint(max(0, pset.angle_min - 10), pset.angle_min - 1)))
        if pset.angle_max < _MAX_ANGLE:
            top = min(_MAX_ANGLE, pset.angle_max + 10)
            options.append((torque, rng.randint(pset.angle_max + 1, top)))
        if not options:
            raise ValueError(f"pset {pset.number} has limits no tightening can violate")
        return rng.choice(options)

    def _count_batch(self, pset: Pset, good: bool) -> BatchStatus:
        if pset.batch_size == 0:
            return BatchStatus.NOT_USED
        if self._batch_counter >= pset.batch_size:
            self._batch_counter = 0  # the previous batch was done; this one starts anew
        if good:
            self._batch_counter += 1
        return BatchStatus.OK if self._batch_counter == pset.batch_size else BatchStatus.NOK

    # --- fault switches --------------------------------------------------------------------

    def drop_link(self) -> None:
        """Close every client connection at once, as a controller reboot would."""
        self._drop_clients(wait=False)

    def go_silent(self, silent: bool = True) -> None:
        """While silent, read and count everything but answer nothing, keep-alives included
        (send_malformed still sends): a controller whose software hangs with the link up."""
        with self._lock:
            self._silent = silent
            if not silent:
                now = time.monotonic()
                for client in self._sessions.values():
                    client.last_received = now  # the hang was ours, not the client's

    def send_malformed(self, kind: MalformedKind | str) -> None:
        """Send one malformed frame of kind to every connected client."""
        self._broadcast(_malformed_bytes(MalformedKind(kind)))

    # --- connections -----------------------------------------------------------------------

    def _on_connect(self, sock: socket.socket) -> _Client:
        client = _Client(sock)
        with self._lock:
            self._sessions[sock] = client
        return client

    def _on_disconnect(self, sock: socket.socket, state: _Client) -> None:
        self._sessions.pop(sock, None)

    def _serve(self, sock: socket.socket, state: _Client) -> None:
        # The base's loop only reads; a controller also closes a link that stays silent.
        try:
            while True:
                with self._lock:
                    silent = self._silent
                    idle = time.monotonic() - state.last_received
                if not silent and idle > self._silence_s:
                    return  # the client stopped talking: a controller closes the link
                wait = _MAX_WAIT_S if silent else min(_MAX_WAIT_S, self._silence_s - idle)
                readable, _, _ = select.select([sock], [], [], max(wait, 0.0))
                if not readable:
                    continue
                data = sock.recv(RECV_BYTES)
                if not data or not self._on_data(sock, state, data):
                    return
        except ValueError:
            # A reply whose fields do not fit the wire; the base ends a connection on OSError only.
            return

    def _on_data(self, sock: socket.socket, state: _Client, data: bytes) -> bool:
        with self._lock:
            state.last_received = time.monotonic()
        for event in state.decoder.feed(data):
            self._handle(state, event)
        return True

    def _handle(self, client: _Client, event: StreamEvent) -> None:
        with self._lock:
            if isinstance(event, Malformed):
                self._malformed += 1
                return
            self._received[event.mid] += 1
            self._revisions.setdefault(event.mid, deque(maxlen=_REVISIONS_KEPT)).append(
                event.revision
            )
            if self._silent:
                return
            if event.mid == Mid.COMMUNICATION_START:
                self._start_session(client, event)
            elif client.started:
                self._command(client, event)
            # Before MID 0001 a controller ignores everything.

    def _start_session(self, client: _Client, frame: Frame) -> None:
        others = sum(c.started for c in self._sessions.values() if c is not client)
        if client.started or others >= self._max_clients:
            self._error(client, frame.mid, ErrorCode.CLIENT_ALREADY_CONNECTED)
        elif frame.revision > self._max_revision:
            self._error(client, frame.mid, ErrorCode.REVISION_UNSUPPORTED)
        else:
            client.started = True
            ack = CommunicationStartAck(
                revision=frame.revision,
                cell_id=self._cell_id,
                channel_id=self._channel_id,
                controller_name=self._controller_name,
                supplier_code="ACT",
                open_protocol_version="2.8.0",
                controller_software_version="takt-sim 1.0",
                tool_software_version="takt-sim 1.0",
            )
            self._reply(client, ack)

    def _command(self, client: _Client, frame: Frame) -> None:
        accepted = self._accepted.get(frame.mid)
        if accepted is None:
            self._error(client, frame.mid, ErrorCode.UNKNOWN_MID)
            return
        if frame.revision > accepted:
            self._error(client, frame.mid, ErrorCode.REVISION_UNSUPPORTED)
            return
        try:
            message = decode_message(frame)
        except FrameError:  # a known MID whose data is wrong
            self._error(client, frame.mid, ErrorCode.INVALID_DATA)
            return
        error = self._apply(client, message)
        if isinstance(message, KeepAlive):
            self._reply(client, KeepAlive())
        elif error is not None:
            self._error(client, frame.mid, error)
        elif frame.mid != Mid.RESULT_ACK:
            self._reply(client, CommandAccepted(mid=frame.mid))

    def _apply(self, client: _Client, message: Message) -> ErrorCode | None:
        """Carry out a command; the error code to answer with, or None to accept it."""
        if isinstance(message, SelectParameterSet):
            if message.pset not in self._psets:
                return ErrorCode.PSET_NOT_PRESENT
            self._pset = message.pset
            self._batch_counter = 0
        elif isinstance(message, SetBatchSize):
            return self._set_batch_size(message)
        elif isinstance(message, DisableTool | EnableTool):
            self._tool_enabled = isinstance(message, EnableTool)
        elif isinstance(message, ResultSubscribe):
            if client.subscribed:
                return ErrorCode.RESULT_SUBSCRIPTION_EXISTS
            client.subscribed = True
        elif isinstance(message, ResultUnsubscribe):
            if not client.subscribed:
                return ErrorCode.RESULT_SUBSCRIPTION_MISSING
            client.subscribed = False
        elif isinstance(message, CommunicationStop):
            client.started = client.subscribed = False
        return None

    def _set_batch_size(self, message: SetBatchSize) -> ErrorCode | None:
        pset = self._psets.get(message.pset)
        if pset is None:
            return ErrorCode.PSET_NOT_PRESENT
        if message.batch_size < 1:
            # A batch of no tightenings is no batch; invalid data is MID 0019's documented error.
            return ErrorCode.INVALID_DATA
        self._psets[pset.number] = msgspec.structs.replace(pset, batch_size=message.batch_size)
        if pset.number == self._pset:
            # The counter is the running pset's; another pset's starts at 0 when selected.
            self._batch_counter = 0
        return None

    def _error(self, client: _Client, mid: int, error: ErrorCode) -> None:
        self._reply(client, CommandError(mid=mid, error=error))

    def _reply(self, client: _Client, message: Message) -> None:
        self._send(client.sock, encode_message(message))


def _judge(value: int, low: int, high: int) -> LimitStatus:
    if value < low:
        return LimitStatus.LOW
    if value > high:
        return LimitStatus.HIGH
    return LimitStatus.OK


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


def _malformed_bytes(kind: MalformedKind) -> bytes:
    good = encode_frame(Frame(mid=Mid.KEEP_ALIVE))
    if kind is MalformedKind.BAD_LENGTH:
        return b"00X0" + good[4:]
    if kind is MalformedKind.SHORT_LENGTH:
        return b"0010" + good[4:]
    if kind is MalformedKind.LENGTH_MISMATCH:
        return b"0030" + good[4:]
    if kind is MalformedKind.NON_DIGIT_MID:
        return good[:4] + b"99X9" + good[8:]
    if kind is MalformedKind.MISSING_NUL:
        return good[:-1]
    if kind is MalformedKind.NON_ASCII:
        return encode_frame(Frame(mid=Mid.KEEP_ALIVE, data=b"?")).replace(b"?", b"\xff")
    result = encode_message(
        TighteningResult(
            cell_id=1,
            channel_id=1,
            controller_name="",
            vin="",
            job_id=0,
            pset=1,
            batch_size=0,
            batch_counter=0,
            tightening_ok=True,
            torque_status=LimitStatus.OK,
            angle_status=LimitStatus.OK,
            torque_min_cnm=0,
            torque_max_cnm=0,
            torque_target_cnm=0,
            torque_cnm=424242,
            angle_min=0,
            angle_max=0,
            angle_target=0,
            angle=0,
            timestamp=_FALLBACK_TIME,
            pset_changed_at=_FALLBACK_TIME,
            batch_status=BatchStatus.NOT_USED,
            tightening_id=0,
        )
    )
    return result.replace(b"15424242", b"1542X242", 1)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulator as a process; prints `READY <port>` once listening."""
    parser = argparse.ArgumentParser(
        prog="python -m sim.openprotocol_controller", description=__doc__
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (real: 4545)")
    parser.add_argument("--max-revision", type=int, default=1, choices=START_ACK_REVISIONS)
    parser.add_argument("--max-clients", type=int, default=1)
    parser.add_argument(
        "--auto", type=float, default=None, metavar="SECONDS", help="tighten every SECONDS s"
    )
    parser.add_argument("--nok-rate", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    sim = OpenProtocolControllerSim(
        args.host,
        args.port,
        max_revision=args.max_revision,
        max_clients=args.max_clients,
        nok_rate=args.nok_rate,
        seed=args.seed,
        auto_interval_s=args.auto,
    )
    return serve_until_stopped(sim.start, sim.stop)


if __name__ == "__main__":
    sys.exit(main())
