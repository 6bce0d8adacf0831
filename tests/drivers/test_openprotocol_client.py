"""OpenProtocolLink against the Open Protocol controller simulator over loopback."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from drivers.errors import DeviceUnavailable
from drivers.openprotocol.client import CommandRejected, OpenProtocolLink
from drivers.openprotocol.mids import LimitStatus, TighteningResult
from sim.openprotocol_controller import MalformedKind, OpenProtocolControllerSim
from tests.waiting import wait_for


class Recorder:
    """The callbacks a wrench actor would pass, recording what they were told."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.results: list[TighteningResult] = []
        self.lost: list[str] = []
        self.malformed: list[str] = []

    def on_result(self, result: TighteningResult) -> None:
        with self._lock:
            self.results.append(result)

    def on_lost(self, reason: str) -> None:
        with self._lock:
            self.lost.append(reason)

    def on_malformed(self, reason: str) -> None:
        with self._lock:
            self.malformed.append(reason)


@pytest.fixture
def sim() -> Iterator[OpenProtocolControllerSim]:
    simulator = OpenProtocolControllerSim(max_revision=1, controller_name="Line 3 PF6000")
    simulator.start()
    yield simulator
    simulator.stop()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def make_link(recorder: Recorder) -> Iterator[Callable[..., OpenProtocolLink]]:
    links: list[OpenProtocolLink] = []

    def make(port: int, rec: Recorder | None = None, **options: object) -> OpenProtocolLink:
        rec = rec or recorder
        settings: dict[str, object] = {"timeout_s": 2.0, "keepalive_s": 10.0, **options}
        link = OpenProtocolLink(
            "127.0.0.1",
            port,
            name="wrench-1",
            on_result=rec.on_result,
            on_lost=rec.on_lost,
            on_malformed=rec.on_malformed,
            **settings,  # type: ignore[arg-type]
        )
        links.append(link)
        return link

    yield make
    for link in links:
        link.close()


@pytest.fixture
def link(
    sim: OpenProtocolControllerSim, make_link: Callable[..., OpenProtocolLink]
) -> OpenProtocolLink:
    connected = make_link(sim.port)
    connected.connect()
    return connected


# --- session ----------------------------------------------------------------------------------


def test_connect_steps_down_to_the_revision_the_controller_has(
    sim: OpenProtocolControllerSim, make_link: Callable[..., OpenProtocolLink]
) -> None:
    link = make_link(sim.port)
    info = link.connect()
    assert sim.revisions_received(1) == [3, 2, 1]
    assert (info.revision, info.cell_id, info.channel_id) == (1, 1, 1)
    assert info.controller_name == "Line 3 PF6000"
    assert link.connected
    assert link.info == info
    assert link.statistics().revision == 1


def test_connect_takes_the_highest_revision_when_offered(
    make_link: Callable[..., OpenProtocolLink],
) -> None:
    with OpenProtocolControllerSim(max_revision=3) as sim:
        info = make_link(sim.port).connect()
        assert sim.revisions_received(1) == [3]
        assert info.revision == 3
        assert info.supplier_code == "ACT"
        assert info.open_protocol_version == "2.8.0"


def test_connect_to_nothing_is_device_unavailable(
    make_link: Callable[..., OpenProtocolLink], recorder: Recorder
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    link = make_link(port)
    with pytest.raises(DeviceUnavailable, match="cannot connect"):
        link.connect()
    assert not link.connected
    assert recorder.lost == []


def test_second_client_is_refused_and_the_first_keeps_working(
    sim: OpenProtocolControllerSim,
    link: OpenProtocolLink,
    make_link: Callable[..., OpenProtocolLink],
) -> None:
    second = make_link(sim.port, rec=Recorder())
    with pytest.raises(CommandRejected) as refused:
        second.connect()
    assert (refused.value.mid, refused.value.error) == (1, 96)
    assert refused.value.error_name == "client already connected"
    assert not second.connected
    link.select_pset(2)
    assert sim.selected_pset == 2


def test_controller_that_never_answers_fails_connect_without_on_lost(
    sim: OpenProtocolControllerSim, make_link: Callable[..., OpenProtocolLink], recorder: Recorder
) -> None:
    sim.go_silent()
    link = make_link(sim.port, timeout_s=0.2)
    with pytest.raises(DeviceUnavailable, match="no answer to MID 0001"):
        link.connect()
    assert not link.connected
    assert recorder.lost == []


def test_stop_ends_the_session(sim: OpenProtocolControllerSim, link: OpenProtocolLink) -> None:
    link.stop()
    assert sim.received(3) == 1
    assert not link.connected
    wait_for(lambda: sim.connections == 0)
    with pytest.raises(DeviceUnavailable):
        link.select_pset(1)


def test_close_is_idempotent_and_does_not_report_a_loss(
    link: OpenProtocolLink, recorder: Recorder
) -> None:
    link.close()
    link.close()
    assert not link.connected
    with pytest.raises(DeviceUnavailable, match="closed"):
        link.enable_tool()
    assert recorder.lost == []


def test_reconnect_after_the_controller_dropped_the_link(
    sim: OpenProtocolControllerSim, link: OpenProtocolLink, recorder: Recorder
) -> None:
    sim.drop_link()
    wait_for(lambda: recorder.lost != [])
    assert recorder.lost == ["connection closed by the controller"]
    assert not link.connected
    with pytest.raises(DeviceUnavailable, match="link lost"):
        link.select_pset(1)
    # The controller takes one client: reconnect once it has let the old session go (a
    # reconnect before that is refused with error 96, as a real controller does).
    wait_for(lambda: sim.connections == 0)
    link.connect()
    link.select_pset(2)
    assert sim.selected_pset == 2
    assert len(recorder.lost) == 1


# --- commands ---------------------------------------------------------------------------------


def test_select_pset_and_unknown_pset(
    sim: OpenProtocolControllerSim, link: OpenProtocolLink
) -> None:
    link.select_pset(2)
    assert sim.selected_pset == 2
    with pytest.raises(CommandRejected, match="error 02") as refused:
        link.select_pset(7)
    assert (refused.value.mid, refused.value.error) == (18, 2)
    assert refused.value.error_name == "parameter set number not present"
    assert sim.selected_pset == 2
    with pytest.raises(ValueError, match="pset 1000"):
        link.select_pset(1000)  # does not fit the 3-digit field; nothing is sent
    assert sim.received(18) == 2
    assert link.connected


def test_set_batch_size_answered_and_refused(
    sim: OpenProtocolControllerSim, link: OpenProtocolLink
) -> None:
    link.set_batch_size(1, 2)
    assert sim.pset(1).batch_size == 2
    link.set_batch_size(2, 150)  # more than 2 digits: revision 2
    assert sim.pset(2).batch_size == 150
    assert sim.revisions_received(19) == [1, 2]
    with pytest.raises(CommandRejected, match="error 02") as refused:
        link.set_batch_size(7, 2)
    assert (refused.value.mid, refused.value.error) == (19, 2)
    with pytest.raises(CommandRejected) as refused:
        link.set_batch_size(1, 0)
    assert (refused.value.error, refused.value.error_name) == (1, "invalid data")
    assert sim.pset(1).batch_size == 2
    with pytest.raises(ValueError, match="batch size 10000"):
        link.set_batch_size(1, 10_000)  # fits no revision; nothing is sent
    assert sim.received(19) == 4
    assert link.connected


@pytest.mark.parametrize(
    ("revision", "size", "error"), [(None, 2, 99), (1, 150, 97)], ids=["no-mid-0019", "rev-1"]
)
def test_set_batch_size_refused_by_a_controller_without_it(
    make_link: Callable[..., OpenProtocolLink], revision: int | None, size: int, error: int
) -> None:
    with OpenProtocolControllerSim(batch_size_revision=revision) as sim:
        link = make_link(sim.port)
        link.connect()
        with pytest.raises(CommandRejected) as refused:
            link.set_batch_size(1, size)
        assert (refused.value.mid, refused.value.error) == (19, error)
        assert sim.pset(1).batch_size == 4  # as configured
        if revision == 1:
            link.set_batch_size(1, 99)
            assert sim.pset(1).batch_size == 99
        link.select_pset(2)  # the session goes on
        assert link.connected


def test_disabled_tool_gives_no_result(
    sim: OpenProtocolControllerSim, link: OpenProtocolLink, recorder: Recorder
) -> None:
    link.subscribe_results()
    link.disable_tool()
    assert not sim.tool_enabled
    assert sim.tighten() is None
    link.enable_tool()
    assert sim.tool_enabled
    sent = sim.tighten()
    wait_for(lambda: recorder.results != [])
    # Results arrive in order, so the only one is the tightening made after enabling.
    assert recorder.results == [sent]


def test_results_arrive_with_their_fields_and_are_acknowledged(
    sim: OpenProtocolControllerSim, link: OpenProtocolLink, recorder: Recorder
) -> None:
    link.subscribe_results()
    link.select_pset(1)
    sim.set_vin("VIN-0042")
    good = sim.tighten(ok=True)
    bad = sim.tighten(ok=False)
    wait_for(lambda: len(recorder.results) == 2)
    assert recorder.results == [good, bad]
    first, second = recorder.results
    assert first.tightening_ok
    assert first.vin == "VIN-0042"
    assert (first.pset, first.torque_min_cnm, first.torque_max_cnm) == (1, 900, 1100)
    assert first.torque_min_nm <= first.torque_nm <= first.torque_max_nm
    assert first.torque_status is LimitStatus.OK
    assert not second.tightening_ok
    assert LimitStatus.OK in (second.torque_status, second.angle_status)
    assert second.tightening_id == first.tightening_id + 1
    wait_for(lambda: sim.received(62) == 2)
    assert link.statistics().results == 2


def test_unsubscribe_stops_results(
    sim: OpenProtocolControllerSim, link: OpenProtocolLink, recorder: Recorder
) -> None:
    link.subscribe_results()
    with pytest.raises(CommandRejected) as refused:
        link.subscribe_results()
    assert refused.value.error == 9
    link.unsubscribe_results()
    assert sim.tighten() is not None
    with pytest.raises(CommandRejected) as refused:
        link.unsubscribe_results()
    assert refused.value.error == 10
    link.subscribe_results()
    sent = sim.tighten()
    wait_for(lambda: recorder.results != [])
    assert recorder.results == [sent]


def test_results_between_commands_do_not_confuse_answers(
    sim: OpenProtocolControllerSim, link: OpenProtocolLink, recorder: Recorder
) -> None:
    link.subscribe_results()
    sim.start_auto(0.001)
    try:
        for pset in (1, 2) * 20:
            link.select_pset(pset)
            assert sim.selected_pset == pset
        wait_for(lambda: len(recorder.results) >= 5)
    finally:
        sim.stop_auto()
    assert link.statistics().unexpected == 0
    assert link.malformed == 0


def test_a_failing_callback_does_not_stop_results(
    sim: OpenProtocolControllerSim, make_link: Callable[..., OpenProtocolLink]
) -> None:
    seen: list[TighteningResult] = []

    class Failing(Recorder):
        def on_result(self, result: TighteningResult) -> None:
            seen.append(result)
            raise RuntimeError("owner bug")

    link = make_link(sim.port, rec=Failing())
    link.connect()
    link.subscribe_results()
    sim.tighten()
    sim.tighten()
    wait_for(lambda: len(seen) == 2)
    assert link.connected


def test_commands_from_a_callback_are_refused(
    sim: OpenProtocolControllerSim, make_link: Callable[..., OpenProtocolLink]
) -> None:
    errors: list[Exception] = []
    holder: list[OpenProtocolLink] = []

    class Reentrant(Recorder):
        def on_result(self, result: TighteningResult) -> None:
            try:
                holder[0].select_pset(2)
            except RuntimeError as exc:
                errors.append(exc)

    link = make_link(sim.port, rec=Reentrant())
    holder.append(link)
    link.connect()
    link.subscribe_results()
    sim.tighten()
    wait_for(lambda: errors != [])
    assert "callback" in str(errors[0])
    assert link.connected


# --- keep-alive and loss ----------------------------------------------------------------------


def test_keepalive_is_sent_when_idle_and_keeps_the_link_up(
    make_link: Callable[..., OpenProtocolLink], recorder: Recorder
) -> None:
    with OpenProtocolControllerSim(silence_timeout_s=0.3) as sim:
        link = make_link(sim.port, keepalive_s=0.1)
        link.connect()
        # Well past both silence timeouts (0.2 s here, 0.3 s in the controller).
        wait_for(lambda: sim.received(9999) >= 6)
        assert link.connected
        assert sim.sessions == 1
        assert recorder.lost == []
        assert link.statistics().keepalives_sent >= 6


def test_no_keepalive_while_commands_keep_the_link_busy(
    sim: OpenProtocolControllerSim, make_link: Callable[..., OpenProtocolLink]
) -> None:
    link = make_link(sim.port, keepalive_s=0.3)
    link.connect()
    deadline = time.monotonic() + 0.6
    while time.monotonic() < deadline:
        link.enable_tool()
    assert sim.received(9999) == 0


def test_silent_controller_is_declared_lost(
    sim: OpenProtocolControllerSim, make_link: Callable[..., OpenProtocolLink], recorder: Recorder
) -> None:
    link = make_link(sim.port, keepalive_s=0.05)
    link.connect()
    sim.go_silent()
    wait_for(lambda: recorder.lost != [])
    assert recorder.lost == ["nothing received from the controller for 0.1 s"]
    assert not link.connected
    assert link.statistics().lost_reason == recorder.lost[0]
    with pytest.raises(DeviceUnavailable, match="nothing received"):
        link.select_pset(1)


def test_unanswered_command_is_device_unavailable_and_drops_the_link(
    sim: OpenProtocolControllerSim, make_link: Callable[..., OpenProtocolLink], recorder: Recorder
) -> None:
    link = make_link(sim.port, timeout_s=0.3)
    link.connect()
    sim.go_silent()
    with pytest.raises(DeviceUnavailable, match="no answer to MID 0018"):
        link.select_pset(2)
    wait_for(lambda: recorder.lost != [])
    assert recorder.lost == ["no answer to MID 0018 within 0.3 s"]
    assert not link.connected


# --- malformed input --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(MalformedKind))
def test_malformed_frame_is_counted_and_the_link_keeps_working(
    sim: OpenProtocolControllerSim,
    link: OpenProtocolLink,
    recorder: Recorder,
    kind: MalformedKind,
) -> None:
    link.subscribe_results()
    sim.send_malformed(kind)
    # The command's answer comes after the bad bytes, so they were decoded by then.
    link.select_pset(2)
    assert link.malformed == 1
    assert len(recorder.malformed) == 1
    assert recorder.malformed[0].startswith("wrench-1 127.0.0.1:")
    assert link.connected
    if kind is MalformedKind.BAD_RESULT:
        assert "torque" in recorder.malformed[0]
        wait_for(lambda: sim.received(62) == 1)  # acknowledged although unreadable
    sent = sim.tighten()
    wait_for(lambda: recorder.results != [])
    assert recorder.results == [sent]
    assert recorder.lost == []
