"""The Open Protocol controller simulator, driven over loopback by a raw frame-level peer."""

from __future__ import annotations

import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest

from drivers.errors import FrameError
from drivers.openprotocol.client import OpenProtocolLink
from drivers.openprotocol.codec import Frame, FrameDecoder, Malformed, StreamEvent, encode_frame
from drivers.openprotocol.mids import (
    BatchStatus,
    CommandAccepted,
    CommandError,
    CommunicationStart,
    CommunicationStartAck,
    CommunicationStop,
    KeepAlive,
    LimitStatus,
    Message,
    OtherMid,
    ResultAck,
    ResultSubscribe,
    ResultUnsubscribe,
    SelectParameterSet,
    SetBatchSize,
    TighteningResult,
    decode_message,
    encode_message,
)
from sim.openprotocol_controller import MalformedKind, OpenProtocolControllerSim, Pset
from tests.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
PSETS = (
    Pset(number=1, torque_min_cnm=900, torque_max_cnm=1100, torque_target_cnm=1000,
         angle_min=30, angle_max=90, angle_target=60, batch_size=3),
    Pset(number=5, torque_min_cnm=2000, torque_max_cnm=3000, torque_target_cnm=2500),
)  # fmt: skip


class RawPeer:
    """A bare integrator: sends frames, reads what the controller sends back."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.decoder = FrameDecoder()
        self.pending: list[StreamEvent] = []

    def send(self, message: Message | bytes) -> None:
        self.sock.sendall(message if isinstance(message, bytes) else encode_message(message))

    def event(self, timeout_s: float = 5.0) -> StreamEvent:
        deadline = time.monotonic() + timeout_s
        while not self.pending:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                pytest.fail("nothing received from the simulator")
            data = self.sock.recv(65536)
            if not data:
                pytest.fail("the simulator closed the connection")
            self.pending += self.decoder.feed(data)
        return self.pending.pop(0)

    def message(self) -> Message:
        event = self.event()
        assert isinstance(event, Frame), event
        return decode_message(event)

    def ask(self, message: Message | bytes) -> Message:
        self.send(message)
        return self.message()

    def start(self, revision: int = 1) -> CommunicationStartAck:
        ack = self.ask(CommunicationStart(revision=revision))
        assert isinstance(ack, CommunicationStartAck), ack
        return ack

    def nothing_before_echo(self) -> None:
        """Nothing else was sent before now: a keep-alive's echo is the next message."""
        assert self.ask(KeepAlive()) == KeepAlive()

    def read_eof(self, timeout_s: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if select.select([self.sock], [], [], deadline - time.monotonic())[0]:
                try:
                    if not self.sock.recv(65536):
                        return True
                except ConnectionResetError:
                    return True
        return False

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def make_sim() -> Iterator[Callable[..., OpenProtocolControllerSim]]:
    sims: list[OpenProtocolControllerSim] = []

    def make(**options: object) -> OpenProtocolControllerSim:
        sim = OpenProtocolControllerSim(psets=PSETS, **options)  # type: ignore[arg-type]
        sim.start()
        sims.append(sim)
        return sim

    yield make
    for sim in sims:
        sim.stop()


@pytest.fixture
def sim(make_sim: Callable[..., OpenProtocolControllerSim]) -> OpenProtocolControllerSim:
    return make_sim(
        max_revision=3,
        now=lambda: datetime(2024, 5, 1, 12, 0, 0, 123),
        controller_name="Sim PF6000",
    )


@pytest.fixture
def make_peer() -> Iterator[Callable[[int], RawPeer]]:
    peers: list[RawPeer] = []

    def make(port: int) -> RawPeer:
        peer = RawPeer(port)
        peers.append(peer)
        return peer

    yield make
    for peer in peers:
        peer.close()


@pytest.fixture
def peer(sim: OpenProtocolControllerSim, make_peer: Callable[[int], RawPeer]) -> RawPeer:
    started = make_peer(sim.port)
    started.start()
    return started


# --- session ----------------------------------------------------------------------------------


@pytest.mark.parametrize("revision", [1, 2, 3])
def test_start_ack_carries_the_fields_of_the_revision(
    sim: OpenProtocolControllerSim, make_peer: Callable[[int], RawPeer], revision: int
) -> None:
    ack = make_peer(sim.port).start(revision)
    assert ack.revision == revision
    assert (ack.cell_id, ack.channel_id, ack.controller_name) == (1, 1, "Sim PF6000")
    assert ack.supplier_code == ("ACT" if revision >= 2 else "")
    assert bool(ack.open_protocol_version) == (revision >= 3)
    assert sim.sessions == 1


def test_revision_above_the_maximum_is_error_97(
    make_sim: Callable[..., OpenProtocolControllerSim], make_peer: Callable[[int], RawPeer]
) -> None:
    sim = make_sim(max_revision=1)
    peer = make_peer(sim.port)
    assert peer.ask(CommunicationStart(revision=3)) == CommandError(mid=1, error=97)
    assert peer.ask(CommunicationStart(revision=2)) == CommandError(mid=1, error=97)
    assert isinstance(peer.ask(CommunicationStart(revision=1)), CommunicationStartAck)
    assert sim.revisions_received(1) == [3, 2, 1]


def test_commands_before_communication_start_are_ignored(
    sim: OpenProtocolControllerSim, make_peer: Callable[[int], RawPeer]
) -> None:
    peer = make_peer(sim.port)
    peer.send(SelectParameterSet(pset=5))
    peer.send(KeepAlive())
    assert isinstance(peer.ask(CommunicationStart()), CommunicationStartAck)
    assert sim.received(18) == 1
    assert sim.selected_pset == 1


def test_second_client_gets_error_96_until_the_first_leaves(
    sim: OpenProtocolControllerSim, make_peer: Callable[[int], RawPeer]
) -> None:
    first = make_peer(sim.port)
    first.start()
    second = make_peer(sim.port)
    assert second.ask(CommunicationStart()) == CommandError(mid=1, error=96)
    assert first.ask(CommunicationStart()) == CommandError(mid=1, error=96)  # already started
    first.close()
    wait_for(lambda: sim.sessions == 0)
    second.start()


def test_several_clients_when_allowed_and_results_only_to_subscribers(
    make_sim: Callable[..., OpenProtocolControllerSim], make_peer: Callable[[int], RawPeer]
) -> None:
    sim = make_sim(max_clients=2)
    subscriber, bystander = make_peer(sim.port), make_peer(sim.port)
    subscriber.start()
    bystander.start()
    assert sim.sessions == 2
    assert subscriber.ask(ResultSubscribe()) == CommandAccepted(mid=60)
    sent = sim.tighten()
    assert subscriber.message() == sent
    bystander.nothing_before_echo()
    assert sim.results_sent == 1


def test_communication_stop_ends_the_session(sim: OpenProtocolControllerSim, peer: RawPeer) -> None:
    assert peer.ask(ResultSubscribe()) == CommandAccepted(mid=60)
    assert peer.ask(CommunicationStop()) == CommandAccepted(mid=3)
    assert sim.sessions == 0
    assert sim.subscribers == 0
    peer.send(SelectParameterSet(pset=5))
    assert isinstance(peer.ask(CommunicationStart()), CommunicationStartAck)
    assert sim.selected_pset == 1


# --- commands ---------------------------------------------------------------------------------


def test_command_answers(sim: OpenProtocolControllerSim, peer: RawPeer) -> None:
    assert peer.ask(SelectParameterSet(pset=5)) == CommandAccepted(mid=18)
    assert sim.selected_pset == 5
    assert peer.ask(SelectParameterSet(pset=2)) == CommandError(mid=18, error=2)
    assert sim.selected_pset == 5
    assert peer.ask(CommandAccepted(mid=1)) == CommandError(mid=5, error=99)
    assert peer.ask(OtherMid(mid=10)) == CommandError(mid=10, error=99)
    rev2 = encode_frame(Frame(mid=18, revision=2, data=b"001"))
    assert peer.ask(rev2) == CommandError(mid=18, error=97)
    assert peer.ask(encode_frame(Frame(mid=18, data=b"0X1"))) == CommandError(mid=18, error=1)
    assert peer.ask(ResultUnsubscribe()) == CommandError(mid=63, error=10)
    assert peer.ask(ResultSubscribe()) == CommandAccepted(mid=60)
    assert peer.ask(ResultSubscribe()) == CommandError(mid=60, error=9)
    assert peer.ask(ResultSubscribe(revision=2)) == CommandError(mid=60, error=97)
    assert peer.ask(KeepAlive()) == KeepAlive()
    assert sim.received(18) == 4


def test_results_are_acknowledged_without_an_answer(
    sim: OpenProtocolControllerSim, peer: RawPeer
) -> None:
    peer.send(ResultAck())
    peer.nothing_before_echo()
    assert sim.received(62) == 1


def test_garbage_from_a_client_is_counted_and_the_session_goes_on(
    sim: OpenProtocolControllerSim, peer: RawPeer
) -> None:
    peer.send(b"hello\r\n\x00")
    peer.nothing_before_echo()
    assert sim.malformed == 1


# --- tightening -------------------------------------------------------------------------------


def test_tightening_result_reports_the_selected_pset(
    sim: OpenProtocolControllerSim, peer: RawPeer
) -> None:
    assert peer.ask(ResultSubscribe()) == CommandAccepted(mid=60)
    sim.set_vin("WDB123")
    sent = sim.tighten(ok=True)
    assert sent is not None
    received = peer.message()
    assert received == sent
    assert isinstance(received, TighteningResult)
    assert (received.pset, received.torque_target_cnm, received.angle_target) == (1, 1000, 60)
    assert 900 <= received.torque_cnm <= 1100
    assert 30 <= received.angle <= 90
    assert received.vin == "WDB123"
    assert received.controller_name == "Sim PF6000"
    assert received.timestamp == datetime(2024, 5, 1, 12, 0, 0)
    assert received.tightening_id == 1


def test_disabled_tool_does_not_tighten(sim: OpenProtocolControllerSim, peer: RawPeer) -> None:
    assert peer.ask(ResultSubscribe()) == CommandAccepted(mid=60)
    assert peer.ask(encode_frame(Frame(mid=42))) == CommandAccepted(mid=42)
    assert sim.tighten() is None
    assert sim.tighten(ok=True) is None
    peer.nothing_before_echo()
    assert peer.ask(encode_frame(Frame(mid=43))) == CommandAccepted(mid=43)
    result = sim.tighten()
    assert result is not None
    assert result.tightening_id == 1


def test_forced_outcomes_are_judged_against_the_limits(
    make_sim: Callable[..., OpenProtocolControllerSim],
) -> None:
    sim = make_sim(torque_stddev_cnm=500.0, angle_stddev=100.0)
    for _ in range(50):
        good, bad = sim.tighten(ok=True), sim.tighten(ok=False)
        assert good is not None and bad is not None
        assert good.tightening_ok
        assert (good.torque_status, good.angle_status) == (LimitStatus.OK, LimitStatus.OK)
        assert 900 <= good.torque_cnm <= 1100 and 30 <= good.angle <= 90
        assert not bad.tightening_ok
        assert consistent(bad)


def test_drawn_results_follow_the_distribution(
    make_sim: Callable[..., OpenProtocolControllerSim],
) -> None:
    results = draw(make_sim(nok_rate=0.3, seed=7), 400)
    nok = sum(not result.tightening_ok for result in results)
    assert 70 <= nok <= 170  # 120 expected
    assert all(consistent(result) for result in results)
    assert all(r.torque_cnm for r in results)
    high = draw(make_sim(torque_mean_cnm=1300, torque_stddev_cnm=10.0), 20)
    assert all(r.torque_status is LimitStatus.HIGH and not r.tightening_ok for r in high)


def test_same_seed_same_results(make_sim: Callable[..., OpenProtocolControllerSim]) -> None:
    def torques(seed: int) -> list[int]:
        return [r.torque_cnm for r in draw(make_sim(seed=seed, nok_rate=0.2), 30)]

    assert torques(3) == torques(3)
    assert torques(3) != torques(4)


def test_batch_counter(sim: OpenProtocolControllerSim, peer: RawPeer) -> None:
    outcomes = [True, False, True, True, True]
    results = [sim.tighten(ok=ok) for ok in outcomes]
    assert [r.batch_counter for r in results if r] == [1, 1, 2, 3, 1]
    assert [r.batch_status for r in results if r] == [
        BatchStatus.NOK, BatchStatus.NOK, BatchStatus.NOK, BatchStatus.OK, BatchStatus.NOK,
    ]  # fmt: skip
    assert peer.ask(SelectParameterSet(pset=1)) == CommandAccepted(mid=18)
    assert sim.batch_counter == 0
    assert peer.ask(SelectParameterSet(pset=5)) == CommandAccepted(mid=18)
    unused = sim.tighten()
    assert unused is not None
    assert (unused.batch_status, unused.batch_size) == (BatchStatus.NOT_USED, 0)


def test_set_batch_size_restarts_the_batch_and_results_follow(
    sim: OpenProtocolControllerSim, peer: RawPeer
) -> None:
    assert peer.ask(ResultSubscribe()) == CommandAccepted(mid=60)
    sim.tighten(ok=True)
    assert message_batch(peer.message()) == (3, 1, BatchStatus.NOK)
    assert peer.ask(SetBatchSize(pset=1, batch_size=2)) == CommandAccepted(mid=19)
    assert sim.pset(1).batch_size == 2
    assert sim.batch_counter == 0  # the running pset's batch starts over
    for ok in (True, False, True, True):
        sim.tighten(ok=ok)
    assert [message_batch(peer.message()) for _ in range(4)] == [
        (2, 1, BatchStatus.NOK),
        (2, 1, BatchStatus.NOK),  # a NOK does not count
        (2, 2, BatchStatus.OK),
        (2, 1, BatchStatus.NOK),  # the next batch
    ]
    # Another pset's size leaves the running batch alone; revision 2 carries 4 digits.
    rev2 = SetBatchSize(pset=5, batch_size=1500, revision=2)
    assert peer.ask(rev2) == CommandAccepted(mid=19)
    assert (sim.pset(5).batch_size, sim.batch_counter) == (1500, 1)
    assert peer.ask(SelectParameterSet(pset=5)) == CommandAccepted(mid=18)
    sim.tighten(ok=True)
    assert message_batch(peer.message()) == (1500, 1, BatchStatus.NOK)
    assert sim.received(19) == 2 and sim.revisions_received(19) == [1, 2]


def test_set_batch_size_refusals(
    sim: OpenProtocolControllerSim, peer: RawPeer,
    make_sim: Callable[..., OpenProtocolControllerSim], make_peer: Callable[[int], RawPeer],
) -> None:
    assert peer.ask(SetBatchSize(pset=2, batch_size=5)) == CommandError(mid=19, error=2)
    assert peer.ask(SetBatchSize(pset=1, batch_size=0)) == CommandError(mid=19, error=1)
    assert peer.ask(encode_frame(Frame(mid=19, data=b"0010X"))) == CommandError(mid=19, error=1)
    bad_rev = encode_frame(Frame(mid=19, revision=3, data=b"0010005"))
    assert peer.ask(bad_rev) == CommandError(mid=19, error=97)
    assert sim.pset(1).batch_size == 3 and sim.received(19) == 4
    without = make_peer(make_sim(batch_size_revision=None).port)
    without.start()
    assert without.ask(SetBatchSize(pset=1, batch_size=5)) == CommandError(mid=19, error=99)
    rev1_only = make_peer(make_sim(batch_size_revision=1).port)
    rev1_only.start()
    rev2 = SetBatchSize(pset=1, batch_size=500, revision=2)
    assert rev1_only.ask(rev2) == CommandError(mid=19, error=97)
    assert rev1_only.ask(SetBatchSize(pset=1, batch_size=50)) == CommandAccepted(mid=19)


def test_automatic_mode_tightens_until_stopped(
    sim: OpenProtocolControllerSim, peer: RawPeer
) -> None:
    assert peer.ask(ResultSubscribe()) == CommandAccepted(mid=60)
    sim.start_auto(0.01)
    ids = [message_id(peer.message()) for _ in range(3)]
    sim.stop_auto()
    assert ids == [1, 2, 3]
    while sim.results_sent > len(ids):
        ids.append(message_id(peer.message()))
    last = sim.tighten()
    assert last is not None
    assert last.tightening_id == ids[-1] + 1
    assert message_id(peer.message()) == last.tightening_id


# --- faults -----------------------------------------------------------------------------------


def test_silent_client_is_dropped(
    make_sim: Callable[..., OpenProtocolControllerSim], make_peer: Callable[[int], RawPeer]
) -> None:
    # Long enough for the session to start on a loaded machine; the drop comes after it.
    sim = make_sim(silence_timeout_s=1.0)
    peer = make_peer(sim.port)
    peer.start()
    assert peer.read_eof()
    wait_for(lambda: sim.connections == 0)


def test_go_silent_answers_nothing_until_resumed(
    sim: OpenProtocolControllerSim, peer: RawPeer
) -> None:
    assert peer.ask(ResultSubscribe()) == CommandAccepted(mid=60)
    sim.go_silent()
    peer.send(KeepAlive())
    peer.send(SelectParameterSet(pset=5))
    sim.tighten()
    wait_for(lambda: sim.received(18) == 1)
    assert sim.selected_pset == 1
    sim.go_silent(False)
    # Had the silent simulator sent anything, it would come before this echo.
    peer.nothing_before_echo()
    assert sim.received(9999) == 2


def test_drop_link_closes_every_connection(sim: OpenProtocolControllerSim, peer: RawPeer) -> None:
    sim.drop_link()
    assert peer.read_eof()
    wait_for(lambda: sim.connections == 0)


@pytest.mark.parametrize("kind", list(MalformedKind))
def test_send_malformed_is_rejected_by_the_codec_and_the_stream_recovers(
    sim: OpenProtocolControllerSim, peer: RawPeer, kind: MalformedKind
) -> None:
    sim.send_malformed(kind)
    # A frame that lost its NUL is only known bad once the next frame arrives; send one.
    peer.send(KeepAlive())
    event = peer.event()
    if kind is MalformedKind.BAD_RESULT:
        assert isinstance(event, Frame) and event.mid == 61
        with pytest.raises(FrameError, match="torque"):
            decode_message(event)
    else:
        assert isinstance(event, Malformed)
    assert peer.message() == KeepAlive()
    assert peer.decoder.malformed == (kind is not MalformedKind.BAD_RESULT)


def test_restart_listens_on_the_same_port(
    make_sim: Callable[..., OpenProtocolControllerSim], make_peer: Callable[[int], RawPeer]
) -> None:
    sim = make_sim()
    port = sim.port
    sim.stop()
    assert not sim.running
    assert sim.start() == port
    make_peer(port).start()


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ValueError):
        OpenProtocolControllerSim(max_revision=4)
    with pytest.raises(ValueError):
        OpenProtocolControllerSim(nok_rate=1.5)
    with pytest.raises(ValueError):
        OpenProtocolControllerSim(psets=())
    with pytest.raises(ValueError):
        OpenProtocolControllerSim(batch_size_revision=3)


# --- the process form -------------------------------------------------------------------------


def test_process_serves_a_link_until_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "sim.openprotocol_controller", "--port", "0", "--auto", "0.05"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    results: list[TighteningResult] = []
    assert proc.stdout is not None
    try:
        if not select.select([proc.stdout], [], [], 30)[0]:
            pytest.fail("simulator process did not print READY")
        word, port = proc.stdout.readline().split()
        assert word == "READY"
        link = OpenProtocolLink("127.0.0.1", int(port), on_result=results.append)
        try:
            assert link.connect().revision == 1
            link.subscribe_results()
            wait_for(lambda: len(results) >= 2)
        finally:
            link.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()


# --- helpers ----------------------------------------------------------------------------------


def draw(sim: OpenProtocolControllerSim, count: int) -> list[TighteningResult]:
    results = [sim.tighten() for _ in range(count)]
    return [result for result in results if result is not None]


def consistent(result: TighteningResult) -> bool:
    """Statuses agree with the values and limits, as a controller reports them."""

    def judge(value: int, low: int, high: int) -> LimitStatus:
        return (
            LimitStatus.LOW if value < low else LimitStatus.HIGH if value > high else LimitStatus.OK
        )

    torque = judge(result.torque_cnm, result.torque_min_cnm, result.torque_max_cnm)
    angle = judge(result.angle, result.angle_min, result.angle_max)
    ok = torque is LimitStatus.OK and angle is LimitStatus.OK
    return (result.torque_status, result.angle_status, result.tightening_ok) == (torque, angle, ok)


def message_batch(message: Message) -> tuple[int, int, BatchStatus]:
    assert isinstance(message, TighteningResult), message
    return message.batch_size, message.batch_counter, message.batch_status


def message_id(message: Message) -> int:
    assert isinstance(message, TighteningResult), message
    return message.tightening_id
