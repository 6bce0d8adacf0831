"""The four-phase request/ack/done/clear handshake: effects in order, timeouts, recovery."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controller.handshake import (
    Effect,
    HandshakeBusy,
    Phase,
    Read,
    Report,
    Requester,
    Responder,
    Write,
)

TIMEOUT_US = 1_000_000


def _responder() -> Responder:
    return Responder("load", request="req", ack="ack", done="done",
                     data=("part", "recipe"), result=("verdict",), timeout_us=TIMEOUT_US)


def _requester() -> Requester:
    return Requester("release", request="req", ack="ack", done="done",
                     data=("part",), result=("slot", "code"), timeout_us=TIMEOUT_US)


def _busy_responder() -> Responder:
    """A responder that has read the PLC's data and acked it."""
    machine = _responder()
    machine.flag_changed("req", True, 0)
    machine.data_read({"part": "A1", "recipe": 3}, 10)
    assert machine.phase is Phase.BUSY
    return machine


def _acked_requester() -> Requester:
    machine = _requester()
    machine.start({"part": "A1"}, 0)
    machine.flag_changed("ack", True, 100)
    assert machine.phase is Phase.ACKED
    return machine


# ---- responder: the PLC requests, Takt answers --------------------------------------------


def test_responder_happy_path_emits_each_phase_in_order() -> None:
    machine = _responder()

    assert machine.flag_changed("req", True, 0) == [Read(("part", "recipe"))]
    assert machine.phase is Phase.READING
    assert machine.data_read({"part": "A1", "recipe": 3}, 10) == [
        Write("ack", True),
        Report("requested", {"data": {"part": "A1", "recipe": 3}}),
    ]
    assert machine.phase is Phase.BUSY
    # The result lands in the PLC before done rises, so the PLC never reads a stale result.
    assert machine.complete({"verdict": 2}, 20) == [
        Write("verdict", 2),
        Write("done", True),
        Report("done", {"result": {"verdict": 2}}),
    ]
    assert machine.phase is Phase.DONE
    assert machine.flag_changed("req", False, 30) == [
        Write("done", False),
        Write("ack", False),
        Report("cleared"),
    ]
    assert machine.phase is Phase.IDLE
    assert machine.status() == {"name": "load", "phase": "idle", "stalled": False,
                                "completed": 1, "faults": 0}


def test_responder_serves_the_next_request_after_a_clear() -> None:
    machine = _busy_responder()
    machine.complete({"verdict": 1}, 20)
    machine.flag_changed("req", False, 30)

    assert machine.flag_changed("req", True, 40) == [Read(("part", "recipe"))]


def test_responder_ignores_signals_it_does_not_watch() -> None:
    machine = _responder()

    assert machine.flag_changed("ack", True, 0) == []
    assert machine.flag_changed("verdict", True, 0) == []
    assert machine.phase is Phase.IDLE


@pytest.mark.parametrize("acked", [False, True], ids=["while-reading", "while-busy"])
def test_request_withdrawn_before_done_drops_ack_and_reports(acked: bool) -> None:
    machine = _responder()
    machine.flag_changed("req", True, 0)
    if acked:
        machine.data_read({"part": "A1", "recipe": 3}, 10)

    assert machine.flag_changed("req", False, 20) == [Write("ack", False), Report("withdrawn")]
    assert machine.phase is Phase.IDLE
    # A late read result for the withdrawn request is dropped, not acked.
    assert machine.data_read({"part": "A1", "recipe": 3}, 30) == []
    with pytest.raises(HandshakeBusy):
        machine.complete({"verdict": 1}, 40)
    assert machine.status()["completed"] == 0


@pytest.mark.parametrize("phase", [Phase.IDLE, Phase.READING, Phase.DONE])
def test_complete_outside_busy_is_refused(phase: Phase) -> None:
    machine = _responder()
    if phase is not Phase.IDLE:
        machine.flag_changed("req", True, 0)
    if phase is Phase.DONE:
        machine.data_read({}, 10)
        machine.complete({"verdict": 1}, 20)
    assert machine.phase is phase

    with pytest.raises(HandshakeBusy, match="load"):
        machine.complete({"verdict": 1}, 30)
    assert machine.phase is phase


def test_complete_with_an_unknown_result_signal_changes_nothing() -> None:
    machine = _busy_responder()

    with pytest.raises(ValueError, match="color"):
        machine.complete({"verdict": 1, "color": "red"}, 20)

    assert machine.phase is Phase.BUSY
    # Still answerable with a correct result.
    assert machine.complete({"verdict": 1}, 30)[-2:] == [
        Write("done", True),
        Report("done", {"result": {"verdict": 1}}),
    ]


def test_plc_that_never_drops_request_is_reported_stalled_once() -> None:
    machine = _busy_responder()
    machine.complete({"verdict": 1}, 1_000)

    assert machine.tick(1_000 + TIMEOUT_US - 1) == []
    assert machine.tick(1_000 + TIMEOUT_US) == [
        Report("stalled", {"waiting_for": "req to drop", "timeout_ms": TIMEOUT_US // 1000})
    ]
    assert machine.tick(1_000 + 5 * TIMEOUT_US) == []
    assert machine.phase is Phase.DONE
    assert machine.status()["stalled"] is True
    assert machine.status()["faults"] == 1
    # When the PLC finally drops request, the handshake still completes normally.
    assert machine.flag_changed("req", False, 10 * TIMEOUT_US)[-1] == Report("cleared")
    assert machine.status()["stalled"] is False


def test_responder_tick_never_reports_while_takt_is_working() -> None:
    machine = _busy_responder()

    assert machine.tick(100 * TIMEOUT_US) == []
    assert machine.phase is Phase.BUSY


def test_responder_reset_drops_flags_and_serves_a_still_raised_request_afresh() -> None:
    machine = _busy_responder()
    machine.complete({"verdict": 1}, 20)

    assert machine.reset() == [Write("done", False), Write("ack", False)]
    assert machine.phase is Phase.IDLE
    # After reconnecting the actor re-reads every signal: the request is still high.
    assert machine.flag_changed("req", True, 40) == [Read(("part", "recipe"))]
    assert machine.data_read({"part": "A2", "recipe": 3}, 50)[0] == Write("ack", True)


# ---- requester: Takt requests, the PLC answers --------------------------------------------


def test_requester_happy_path_emits_each_phase_in_order() -> None:
    machine = _requester()

    assert machine.start({"part": "A1"}, 0) == [
        Write("part", "A1"),
        Write("req", True),
        Report("requested", {"data": {"part": "A1"}}),
    ]
    assert machine.phase is Phase.REQUESTED
    assert machine.flag_changed("ack", True, 10) == []
    assert machine.phase is Phase.ACKED
    assert machine.flag_changed("done", True, 20) == [Read(("slot", "code"))]
    assert machine.data_read({"slot": 4, "code": 0}, 30) == [
        Report("done", {"result": {"slot": 4, "code": 0}}),
        Write("req", False),
    ]
    assert machine.phase is Phase.CLEARING
    assert machine.flag_changed("ack", False, 40) == []
    assert machine.phase is Phase.CLEARING
    assert machine.flag_changed("done", False, 50) == [Report("cleared")]
    assert machine.phase is Phase.IDLE
    assert machine.status()["completed"] == 1
    # And it can request again.
    assert machine.start({}, 60)[0] == Write("req", True)


@pytest.mark.parametrize("order", [("ack", "done"), ("done", "ack")])
def test_ack_and_done_seen_in_one_poll_still_complete(order: tuple[str, str]) -> None:
    machine = _requester()
    machine.start({"part": "A1"}, 0)

    effects = [e for flag in order for e in machine.flag_changed(flag, True, 10)]

    assert effects == [Read(("slot", "code"))]
    assert machine.data_read({"slot": 1, "code": 0}, 20)[-1] == Write("req", False)
    machine.flag_changed("ack", False, 30)
    assert machine.flag_changed("done", False, 30) == [Report("cleared")]
    assert machine.phase is Phase.IDLE


def test_plc_that_acks_but_never_finishes_times_out_once_then_recovers() -> None:
    machine = _acked_requester()  # acked at t=100

    assert machine.tick(100 + TIMEOUT_US - 1) == []
    assert machine.tick(100 + TIMEOUT_US) == [
        Write("req", False),
        Report("timeout", {"waiting_for": "done", "timeout_ms": TIMEOUT_US // 1000}),
    ]
    assert machine.phase is Phase.FAULTED
    assert machine.tick(100 + 10 * TIMEOUT_US) == []
    with pytest.raises(HandshakeBusy):
        machine.start({"part": "A2"}, 100 + 10 * TIMEOUT_US)

    assert machine.flag_changed("ack", False, 200 + 10 * TIMEOUT_US) == [Report("recovered")]
    assert machine.phase is Phase.IDLE
    assert machine.status()["faults"] == 1
    assert machine.status()["completed"] == 0
    assert machine.start({"part": "A2"}, 300 + 10 * TIMEOUT_US)[1] == Write("req", True)


def test_plc_that_never_acks_times_out_waiting_for_ack() -> None:
    machine = _requester()
    machine.start({"part": "A1"}, 0)

    assert machine.tick(TIMEOUT_US) == [
        Write("req", False),
        Report("timeout", {"waiting_for": "ack", "timeout_ms": TIMEOUT_US // 1000}),
    ]


def test_requester_can_start_again_after_a_timeout_with_no_plc_flags_raised() -> None:
    machine = _requester()
    machine.start({"part": "A1"}, 0)
    machine.tick(TIMEOUT_US)  # the PLC never answered: ack and done were never raised

    # Nothing is held by the PLC, so an operator's retry must be accepted.
    assert machine.start({"part": "A1"}, 2 * TIMEOUT_US)[1] == Write("req", True)


def test_requester_stalled_in_clearing_is_reported_once() -> None:
    machine = _acked_requester()
    machine.flag_changed("done", True, 200)
    machine.data_read({"slot": 1, "code": 0}, 300)

    assert machine.tick(300 + TIMEOUT_US - 1) == []
    (report,) = machine.tick(300 + TIMEOUT_US)
    assert report == Report("stalled", {"waiting_for": "ack and done to drop",
                                        "timeout_ms": TIMEOUT_US // 1000})
    assert machine.tick(300 + 3 * TIMEOUT_US) == []
    machine.flag_changed("ack", False, 400 + 3 * TIMEOUT_US)
    assert machine.flag_changed("done", False, 400 + 3 * TIMEOUT_US) == [Report("cleared")]


@pytest.mark.parametrize("held", ["ack", "done"])
def test_start_while_the_plc_still_holds_a_flag_is_refused(held: str) -> None:
    machine = _requester()
    machine.flag_changed(held, True, 0)

    with pytest.raises(HandshakeBusy, match="PLC still holds"):
        machine.start({"part": "A1"}, 10)
    assert machine.phase is Phase.IDLE

    machine.flag_changed(held, False, 20)
    assert machine.start({"part": "A1"}, 30)[1] == Write("req", True)


def test_start_while_a_request_is_running_is_refused() -> None:
    machine = _acked_requester()

    with pytest.raises(HandshakeBusy):
        machine.start({"part": "A2"}, 200)
    assert machine.phase is Phase.ACKED


def test_start_with_an_unknown_data_signal_changes_nothing() -> None:
    machine = _requester()

    with pytest.raises(ValueError, match="colour"):
        machine.start({"part": "A1", "colour": "red"}, 0)

    assert machine.phase is Phase.IDLE
    assert machine.tick(10 * TIMEOUT_US) == []


def test_requester_reset_withdraws_the_request() -> None:
    machine = _acked_requester()

    assert machine.reset() == [Write("req", False)]
    # The PLC still held ack: wait for it to drop before requesting again.
    assert machine.phase is Phase.FAULTED
    assert machine.flag_changed("ack", False, 500) == [Report("recovered")]

    fresh = _requester()
    assert fresh.reset() == [Write("req", False)]
    assert fresh.phase is Phase.IDLE


# ---- any sequence of events keeps the invariants --------------------------------------------

# Payload names for start/complete: the requester's data, the responder's result, and
# names neither machine knows (including its own flags).
_PAYLOAD_NAMES = ("part", "verdict", "bogus", "req", "done")

_ARGS: dict[str, st.SearchStrategy[Any]] = {
    "plc": st.none(),  # the PLC's next move by the protocol
    "flag": st.tuples(st.sampled_from(("req", "ack", "done", "part")), st.booleans()),
    "tick": st.sampled_from((1, TIMEOUT_US // 2, TIMEOUT_US - 1, TIMEOUT_US))
    | st.integers(0, 2 * TIMEOUT_US),
    # None: Takt's start/complete with every data/result signal; else these names.
    "call": st.none() | st.lists(st.sampled_from(_PAYLOAD_NAMES), max_size=2),
    "deliver": st.booleans(),  # feed a pending Read back, or drop it
    "reset": st.none(),
}
# Repeats weight the draw: protocol moves are common, reconnects rare.
_KINDS = ["plc"] * 6 + ["flag"] * 2 + ["tick"] * 4 + ["call"] * 3 + ["deliver"] * 2 + ["reset"]
_actions = st.lists(
    st.sampled_from(_KINDS).flatmap(lambda kind: st.tuples(st.just(kind), _ARGS[kind])),
    max_size=80,
)


# Time passing at the end with nothing happening, so every timeout in the run comes due.
_LONG_QUIET = [("tick", 2 * TIMEOUT_US), ("tick", 2 * TIMEOUT_US)]


class _Harness:
    """Carries out a machine's effects as the PLC actor would, and checks every effect list."""

    def __init__(self, machine: Responder | Requester, *, immediate_reads: bool,
                 plc_stops: bool) -> None:
        self.machine = machine
        self.immediate_reads = immediate_reads
        self.plc_stops = plc_stops  # the PLC's program never makes its final move
        self.now = 0
        self.plc: dict[str, bool] = {}  # PLC-owned flag levels
        self.written: dict[str, Any] = {}  # last value Takt wrote per signal
        self.pending: list[Read] = []
        self.reports: list[Report] = []
        requester = isinstance(machine, Requester)
        self.flag = machine.request if requester else machine.done
        self.payload = set(machine.data if requester else machine.result)
        self.takt_owned = {self.flag, *self.payload} | (set() if requester else {machine.ack})
        self.plc_owned = set(machine.flags) | set(machine.result if requester else machine.data)

    def run(self, effects: Sequence[Effect]) -> None:
        self.check_list(effects)
        for effect in effects:
            if isinstance(effect, Write):
                self.written[effect.signal] = effect.value
            elif isinstance(effect, Report):
                self.reports.append(effect)
            elif isinstance(effect, Read):
                assert set(effect.signals) <= self.plc_owned
                if self.immediate_reads:
                    self.run(self.machine.data_read({s: 0 for s in effect.signals}, self.now))
                else:
                    self.pending.append(effect)

    def check_list(self, effects: Sequence[Effect]) -> None:
        writes = [e for e in effects if isinstance(e, Write)]
        for write in writes:
            assert write.signal in self.takt_owned, f"wrote a PLC-owned signal: {write}"
        flag_at = [i for i, w in enumerate(writes) if w.signal == self.flag and w.value is True]
        payload_at = [i for i, w in enumerate(writes) if w.signal in self.payload]
        if payload_at:
            # Data/result go out only together with the flag that announces them, and first.
            assert flag_at and max(payload_at) < min(flag_at), effects

    def level(self, signal: str) -> bool:
        return bool(self.written.get(signal, False))


def _drive(harness: _Harness, actions: Iterable[tuple[str, Any]]) -> None:
    machine = harness.machine
    for drawn_kind, drawn_arg in actions:
        kind, arg = ("flag", _plc_move(harness)) if drawn_kind == "plc" else (drawn_kind, drawn_arg)
        if kind == "flag" and arg is not None:
            signal, value = arg
            if signal in machine.flags:
                harness.plc[signal] = value
            harness.run(machine.flag_changed(signal, value, harness.now))
        elif kind == "tick":
            harness.now += arg
            harness.run(machine.tick(harness.now))
        elif kind == "call":
            _call_machine(harness, arg)
        elif kind == "deliver" and harness.pending:
            read = harness.pending.pop(0)
            if arg:
                harness.run(machine.data_read({s: 1 for s in read.signals}, harness.now))
        elif kind == "reset":
            harness.pending.clear()
            harness.reports.append(Report("<reset>"))
            harness.run(machine.reset())
            # After reconnecting, the first read republishes every PLC flag.
            for signal in machine.flags:
                harness.run(machine.flag_changed(signal, harness.plc.get(signal, False),
                                                 harness.now))
        _check_levels(harness)


def _plc_move(harness: _Harness) -> tuple[str, bool] | None:
    """The flag a PLC that follows the protocol changes next, if any."""
    plc, takt = harness.plc.get, harness.level
    if isinstance(harness.machine, Responder):  # the PLC is the requester
        if not plc("req") and not takt("ack") and not takt("done"):
            return "req", True
        done_seen = plc("req") and takt("done")
        return ("req", False) if done_seen and not harness.plc_stops else None
    if takt("req"):
        if not plc("ack"):
            return "ack", True
        return None if plc("done") or harness.plc_stops else ("done", True)
    if plc("done"):
        return "done", False
    return ("ack", False) if plc("ack") else None


def _call_machine(harness: _Harness, names: list[str] | None) -> None:
    machine = harness.machine
    if names is None:
        names = sorted(harness.payload)
    before = (machine.phase, dict(harness.written))
    payload = dict.fromkeys(names, 7)
    plc_busy = harness.plc.get("ack", False) or harness.plc.get("done", False)
    try:
        if isinstance(machine, Requester):
            effects = machine.start(payload, harness.now)
            assert before[0] is Phase.IDLE and not plc_busy
        else:
            effects = machine.complete(payload, harness.now)
            assert before[0] is Phase.BUSY
    except (HandshakeBusy, ValueError):
        assert (machine.phase, harness.written) == before
        return
    assert set(names) <= harness.payload
    harness.run(effects)


def _check_levels(harness: _Harness) -> None:
    machine, level = harness.machine, harness.level
    if isinstance(machine, Requester):
        raised = machine.phase in (Phase.REQUESTED, Phase.ACKED, Phase.READING)
        assert level("req") is raised, (machine.phase, harness.written)
    else:
        expected = {
            Phase.IDLE: (False, False),
            Phase.READING: (False, False),
            Phase.BUSY: (True, False),
            Phase.DONE: (True, True),
        }[machine.phase]
        assert (level("ack"), level("done")) == expected, (machine.phase, harness.written)


@settings(max_examples=250, deadline=None)
@given(actions=_actions, immediate_reads=st.booleans(), plc_stops=st.booleans())
def test_requester_invariants_hold_for_any_event_sequence(
    actions: list[tuple[str, Any]], immediate_reads: bool, plc_stops: bool
) -> None:
    machine = _requester()
    harness = _Harness(machine, immediate_reads=immediate_reads, plc_stops=plc_stops)

    _drive(harness, [*actions, *_LONG_QUIET])

    events = [r.event for r in harness.reports]
    # Each request times out at most once, and each completion is reported once.
    assert events.count("timeout") <= events.count("requested")
    assert machine.status()["completed"] == events.count("cleared")
    _at_most_one_stall_per_episode(events)


@settings(max_examples=250, deadline=None)
@given(actions=_actions, immediate_reads=st.booleans(), plc_stops=st.booleans())
def test_responder_invariants_hold_for_any_event_sequence(
    actions: list[tuple[str, Any]], immediate_reads: bool, plc_stops: bool
) -> None:
    machine = _responder()
    harness = _Harness(machine, immediate_reads=immediate_reads, plc_stops=plc_stops)

    _drive(harness, [*actions, *_LONG_QUIET])

    events = [r.event for r in harness.reports]
    assert events.count("done") <= events.count("requested")
    assert machine.status()["completed"] == events.count("cleared")
    _at_most_one_stall_per_episode(events)


def _at_most_one_stall_per_episode(events: list[str]) -> None:
    stalls = 0
    for event in events:
        if event in ("requested", "<reset>"):
            stalls = 0
        elif event == "stalled":
            stalls += 1
            assert stalls == 1, f"stalled reported twice for one request: {events}"
