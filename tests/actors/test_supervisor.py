"""Supervisor semantics on virtual time: restarts, backoff, intensity, strategies."""

from __future__ import annotations

import threading
from typing import Any

import msgspec
import pykka
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actors.base import handles
from actors.health import HealthState
from actors.runtime import ActorUnavailable, Runtime, call, tell
from actors.supervisor import ChildSpec, RestartChild, SetChildren, Supervisor, WhichChildren
from controller.clock import VirtualClock
from controller.supervision import Backoff, Restart, RestartIntensity, Strategy
from tests.actors.probe import Boom, Echo, Probe

NO_JITTER = Backoff(min_s=0.1, max_s=2.0, jitter=0.0, stable_s=10.0)


def start_sup(runtime: Runtime, specs: list[ChildSpec], **kw: Any) -> pykka.ActorRef[Any]:
    kw.setdefault("backoff", NO_JITTER)
    ref = Supervisor.start(runtime, "sup", specs, **kw)
    assert runtime.wait_idle(5)
    return ref


def crash(runtime: Runtime, child: str) -> None:
    tell(runtime, runtime.directory.get(child), Boom(f"{child} fault"))
    assert runtime.wait_idle(5)


def children(runtime: Runtime, sup: pykka.ActorRef[Any]) -> dict[str, Any]:
    return {c.id: c for c in call(runtime, sup, WhichChildren())}


def test_a_child_that_raises_restarts_after_its_backoff(
    runtime: Runtime, vclock: VirtualClock
) -> None:
    sup = start_sup(runtime, [ChildSpec.of(Probe, "a")])
    first = runtime.directory.get("a")
    crash(runtime, "a")
    assert runtime.health.state("a") == HealthState.DOWN
    with pytest.raises(ActorUnavailable):
        runtime.directory.get("a")
    vclock.advance(0.099)
    assert runtime.wait_idle(5)
    assert not children(runtime, sup)["a"].alive
    vclock.advance(0.002)
    assert runtime.wait_idle(5)
    assert runtime.directory.get("a") is not first
    assert call(runtime, runtime.directory.get("a"), Echo("again")) == "again"
    snap = runtime.health.snapshot()["a"]
    assert (snap.state, snap.restarts) == (HealthState.UP, 1)
    assert "a fault" in (snap.last_error or "")


def test_backoff_doubles_up_to_the_cap_then_resets_when_stable(
    runtime: Runtime, vclock: VirtualClock
) -> None:
    start_sup(runtime, [ChildSpec.of(Probe, "a")],
              intensity=RestartIntensity(max_restarts=100, within_s=1.0))
    delays = []
    for _ in range(6):
        crash(runtime, "a")
        t0 = vclock.now_us()
        vclock.run_until_idle(runtime.wait_idle)
        delays.append((vclock.now_us() - t0) / 1e6)
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.6, 2.0])
    vclock.advance(10.0)  # stable for stable_s: the next failure starts over
    crash(runtime, "a")
    t0 = vclock.now_us()
    vclock.run_until_idle(runtime.wait_idle)
    assert (vclock.now_us() - t0) / 1e6 == pytest.approx(0.1)


def test_jitter_stays_within_its_bound(runtime: Runtime, vclock: VirtualClock) -> None:
    start_sup(runtime, [ChildSpec.of(Probe, "a")], rng=lambda: 0.999,
              backoff=Backoff(min_s=1.0, max_s=8.0, jitter=0.5, stable_s=100.0))
    crash(runtime, "a")
    t0 = vclock.now_us()
    vclock.run_until_idle(runtime.wait_idle)
    assert (vclock.now_us() - t0) / 1e6 == pytest.approx(1.0 * (1 + 0.999 * 0.5))


def test_intensity_exceeded_fails_upward(runtime: Runtime, vclock: VirtualClock) -> None:
    escalated: list[str] = []
    sup = start_sup(runtime, [ChildSpec.of(Probe, "a"), ChildSpec.of(Probe, "b")],
                    intensity=RestartIntensity(max_restarts=2, within_s=60.0),
                    on_escalate=escalated.append)
    for _ in range(2):
        crash(runtime, "a")
        vclock.run_until_idle(runtime.wait_idle)
    assert escalated == []
    crash(runtime, "a")
    assert not sup.is_alive()
    assert escalated and "2 restarts within 60.0s exceeded" in escalated[0], escalated
    assert "a fault" in escalated[0]
    assert runtime.health.state("sup") == HealthState.DOWN
    with pytest.raises(ActorUnavailable):
        runtime.directory.get("b")  # siblings are stopped with their supervisor


def test_nested_supervisor_escalates_to_its_parent(runtime: Runtime, vclock: VirtualClock) -> None:
    inner = ChildSpec.of(Supervisor, "devices", [ChildSpec.of(Probe, "plc")],
                         intensity=RestartIntensity(max_restarts=0, within_s=60.0),
                         backoff=NO_JITTER)
    root = start_sup(runtime, [ChildSpec.of(Probe, "store"), inner])
    old_store = runtime.directory.get("store")
    crash(runtime, "plc")  # the devices supervisor gives up at once; root restarts it
    assert runtime.health.state("devices") == HealthState.DOWN
    vclock.run_until_idle(runtime.wait_idle)
    assert children(runtime, root)["devices"].restarts == 1
    assert runtime.directory.get("plc").is_alive()
    assert runtime.directory.get("store") is old_store  # one_for_one: store untouched


def test_rest_for_one_restarts_the_failed_child_and_those_after_it(
    runtime: Runtime, vclock: VirtualClock
) -> None:
    start_sup(runtime, [ChildSpec.of(Probe, n) for n in "abc"],
              strategy=Strategy.REST_FOR_ONE)
    refs = {n: runtime.directory.get(n) for n in "abc"}
    crash(runtime, "b")
    assert runtime.health.state("c") == HealthState.RESET
    vclock.run_until_idle(runtime.wait_idle)
    now = {n: runtime.directory.get(n) for n in "abc"}
    assert now["a"] is refs["a"]
    assert now["b"] is not refs["b"] and now["c"] is not refs["c"]


def test_one_for_one_leaves_siblings_alone(runtime: Runtime, vclock: VirtualClock) -> None:
    start_sup(runtime, [ChildSpec.of(Probe, n) for n in "abc"])
    refs = {n: runtime.directory.get(n) for n in "abc"}
    crash(runtime, "a")
    vclock.run_until_idle(runtime.wait_idle)
    assert runtime.directory.get("b") is refs["b"] and runtime.directory.get("c") is refs["c"]


@pytest.mark.parametrize(
    ("restart", "abnormal", "restarted"),
    [
        (Restart.PERMANENT, False, True),
        (Restart.TRANSIENT, False, False),
        (Restart.TRANSIENT, True, True),
        (Restart.TEMPORARY, True, False),
    ],
)
def test_restart_types(runtime: Runtime, vclock: VirtualClock, restart: Restart,
                       abnormal: bool, restarted: bool) -> None:
    sup = start_sup(runtime, [ChildSpec.of(Probe, "a", restart=restart)])
    ref = runtime.directory.get("a")
    if abnormal:
        crash(runtime, "a")
    else:
        ref.stop()
        assert runtime.wait_idle(5)
    vclock.run_until_idle(runtime.wait_idle)
    info = children(runtime, sup).get("a")
    assert bool(info and info.alive) == restarted


def test_a_child_that_cannot_start_is_retried_with_backoff(
    runtime: Runtime, vclock: VirtualClock
) -> None:
    Probe.starts.clear()
    start_sup(runtime, [ChildSpec.of(Probe, "dev", fail_start=True)],
              intensity=RestartIntensity(max_restarts=50, within_s=1.0))
    assert runtime.health.state("dev") == HealthState.DOWN
    vclock.run_until_idle(runtime.wait_idle, until_us=vclock.now_us() + 3_100_000)
    # 0.1 + 0.2 + 0.4 + 0.8 + 1.6 = 3.1 s: the first start and five retries
    assert Probe.starts.count("dev") == 6


def test_stop_stops_children_in_reverse_order(runtime: Runtime) -> None:
    order: list[str] = []
    lock = threading.Lock()

    class Recorder(Probe):
        def stopping(self) -> None:
            with lock:
                order.append(self.name)

    sup = start_sup(runtime, [ChildSpec.of(Recorder, n) for n in "abc"])
    sup.stop()
    assert order == ["c", "b", "a"]


# --- property test: random failure sequences against a simple model ------------------

failures = st.lists(
    st.tuples(st.sampled_from(["a", "b"]), st.floats(min_value=0.0, max_value=3.0)),
    min_size=1, max_size=8,
)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seq=failures, max_restarts=st.integers(min_value=1, max_value=4))
def test_random_failures_match_the_model(seq: list[tuple[str, float]], max_restarts: int) -> None:
    clock = VirtualClock()
    runtime = Runtime(clock=clock)
    within = 5.0
    escalations: list[str] = []
    sup = Supervisor.start(
        runtime, "sup", [ChildSpec.of(Probe, "a"), ChildSpec.of(Probe, "b")],
        intensity=RestartIntensity(max_restarts=max_restarts, within_s=within),
        backoff=NO_JITTER, on_escalate=escalations.append,
    )
    try:
        assert runtime.wait_idle(5)
        restart_times: list[float] = []
        expected = {"a": 0, "b": 0}
        escalated = False
        for child, gap in seq:
            clock.run_until_idle(runtime.wait_idle, until_us=clock.now_us() + int(gap * 1e6))
            try:
                runtime.directory.get(child)
            except ActorUnavailable:
                continue  # still in backoff: nothing to crash
            crash(runtime, child)
            now = clock.monotonic()
            restart_times = [t for t in restart_times if t > now - within] + [now]
            if len(restart_times) > max_restarts:
                escalated = True
                break
            expected[child] += 1
        clock.run_until_idle(runtime.wait_idle)
        assert bool(escalations) == escalated
        assert sup.is_alive() == (not escalated)
        if not escalated:
            got = {c.id: c.restarts for c in call(runtime, sup, WhichChildren())}
            assert got == expected
            assert all(c.alive for c in call(runtime, sup, WhichChildren()))
    finally:
        pykka.ActorRegistry.stop_all(block=True, timeout=10)


def test_set_children_keeps_unchanged_replaces_changed_and_stops_removed(
    runtime: Runtime, vclock: VirtualClock
) -> None:
    sup = start_sup(runtime, [ChildSpec.of(Probe, "dev:a", key=1),
                              ChildSpec.of(Probe, "dev:b", key=1),
                              ChildSpec.of(Probe, "other", key=1)])
    a, b, other = (runtime.directory.get(n) for n in ("dev:a", "dev:b", "other"))
    changed = call(runtime, sup, SetChildren("dev:", (ChildSpec.of(Probe, "dev:a", key=1),
                                                      ChildSpec.of(Probe, "dev:b", key=2),
                                                      ChildSpec.of(Probe, "dev:c", key=1))))
    assert (changed.kept, changed.stopped, changed.started) == (
        ["dev:a"], ["dev:b"], ["dev:b", "dev:c"])
    assert runtime.directory.get("dev:a") is a and runtime.directory.get("other") is other
    new_b = runtime.directory.get("dev:b")
    assert new_b is not b
    # The replaced child's exit must not read as the new one's: no restart comes later.
    vclock.advance(5.0)
    assert runtime.wait_idle(5)
    assert runtime.directory.get("dev:b") is new_b
    assert children(runtime, sup)["dev:b"].restarts == 0
    call(runtime, sup, SetChildren("dev:", ()))
    assert sorted(children(runtime, sup)) == ["other"]
    assert "dev:a" not in runtime.health.snapshot()  # removed, not merely stopped


class UseTag(msgspec.Struct, frozen=True):
    tag: str


class GetTag(msgspec.Struct, frozen=True):
    pass


class Tagged(Probe):
    """A child built from a tag, which it can also take live."""

    def __init__(self, runtime: Any, name: str, *, tag: str, **kw: Any) -> None:
        super().__init__(runtime, name, **kw)
        self.tag = tag

    @handles(UseTag)
    def _use(self, msg: UseTag) -> None:
        self.tag = msg.tag

    @handles(GetTag)
    def _get(self, _: GetTag) -> str:
        return self.tag


def tagged(tag: str) -> ChildSpec:
    return ChildSpec.of(Tagged, "dev:a", tag=tag, key="same", update=UseTag(tag))


def test_a_kept_child_is_told_its_update_and_restarts_from_the_new_spec(
    runtime: Runtime, vclock: VirtualClock
) -> None:
    sup = start_sup(runtime, [tagged("one")])
    a = runtime.directory.get("dev:a")
    changed = call(runtime, sup, SetChildren("dev:", (tagged("two"),)))
    assert (changed.kept, changed.started, changed.stopped) == (["dev:a"], [], [])
    assert runtime.directory.get("dev:a") is a  # kept running: not reopened
    assert call(runtime, a, GetTag()) == "two"
    crash(runtime, "dev:a")
    vclock.run_until_idle(runtime.wait_idle)
    assert runtime.directory.get("dev:a") is not a
    assert call(runtime, runtime.directory.get("dev:a"), GetTag()) == "two"


def test_restart_child_skips_the_rest_of_the_backoff(runtime: Runtime, vclock: VirtualClock
                                                     ) -> None:
    sup = start_sup(runtime, [ChildSpec.of(Probe, "a")],
                    backoff=Backoff(min_s=30.0, max_s=30.0, jitter=0.0, stable_s=60.0))
    crash(runtime, "a")
    assert call(runtime, sup, RestartChild("a")) is True
    assert call(runtime, runtime.directory.get("a"), Echo("now")) == "now"
    assert call(runtime, sup, RestartChild("a")) is False  # already running
