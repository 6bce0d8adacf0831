"""Bus: ordering, patterns, drop accounting, retained snapshots."""

from __future__ import annotations

import threading

import pytest
import trio
import trio.testing

from actors.runtime import Runtime, tell
from tests.actors.probe import Hold, Probe


def test_events_carry_increasing_seq_and_clock_time(runtime: Runtime) -> None:
    a = runtime.bus.publish("device.plc.line1.signal", {"v": 1}, source="plc:line1")
    runtime.clock.advance(0.25)  # type: ignore[attr-defined]
    b = runtime.bus.publish("device.plc.line1.signal", {"v": 2})
    assert (a.seq, b.seq) == (1, 2)
    assert b.ts_us - a.ts_us == 250_000
    assert a.source == "plc:line1"


def test_actor_subscriber_sees_every_thread_in_seq_order(runtime: Runtime) -> None:
    ref = Probe.start(runtime, "sub")
    runtime.bus.subscribe_actor(["device.*"], ref, name="sub")

    def burst(k: int) -> None:
        for i in range(500):
            runtime.bus.publish(f"device.t{k}", i)

    threads = [threading.Thread(target=burst, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    runtime.bus.publish("other.topic", "not for sub")
    assert runtime.wait_idle(10)
    events = ref.proxy().events.get()
    seqs = [e.seq for e in events]
    assert len(seqs) == 2000
    assert seqs == sorted(seqs)
    per_thread = [[e.data for e in events if e.topic == f"device.t{k}"] for k in range(4)]
    assert all(p == list(range(500)) for p in per_thread)


@pytest.mark.parametrize(
    ("pattern", "topic", "hit"),
    [
        ("device.plc.*", "device.plc.line1.signal", True),
        ("device.plc.*", "device.plcx.line1", False),
        ("*.signal", "device.plc.line1.signal", True),
        ("input.plc.line1", "input.plc.line1", True),
        ("input.plc.line1", "input.plc.line10", False),
    ],
)
def test_patterns(runtime: Runtime, pattern: str, topic: str, hit: bool) -> None:
    ref = Probe.start(runtime, "sub")
    runtime.bus.subscribe_actor([pattern], ref)
    runtime.bus.publish(topic, 1)
    assert runtime.wait_idle(5)
    assert len(ref.proxy().events.get()) == (1 if hit else 0)


@pytest.mark.parametrize("bad", ["", "a b", ".x", "x.", "a[0]", "a?"])
def test_bad_patterns_are_refused(runtime: Runtime, bad: str) -> None:
    ref = Probe.start(runtime, "sub")
    with pytest.raises(ValueError, match="topic pattern"):
        runtime.bus.subscribe_actor([bad], ref)


async def test_trio_subscriber_that_falls_behind_loses_the_oldest(runtime: Runtime) -> None:
    sub = runtime.bus.subscribe_trio(["x.*"], maxsize=10, name="slow")
    for i in range(25):
        runtime.bus.publish("x.y", i)
    await trio.testing.wait_all_tasks_blocked()
    got = [sub.receive_nowait().data for _ in range(10)]
    assert got == list(range(15, 25))
    stats = {s.name: s for s in runtime.bus.statistics().subscribers}
    assert stats["slow"].dropped == 15
    assert stats["slow"].delivered == 25


async def test_trio_subscriber_fed_from_other_threads(runtime: Runtime) -> None:
    sub = runtime.bus.subscribe_trio(["t.*"], maxsize=5000)
    await trio.to_thread.run_sync(lambda: [runtime.bus.publish("t.a", i) for i in range(1000)])
    got = [(await sub.receive()).data for _ in range(1000)]
    assert got == list(range(1000))


def test_actor_subscriber_over_its_bound_drops_and_counts(runtime: Runtime) -> None:
    gate = Probe.gates["bus"] = threading.Event()
    ref = Probe.start(runtime, "busy")
    tell(runtime, ref, Hold("bus"))
    runtime.bus.subscribe_actor(["e.*"], ref, name="busy", maxsize=3)
    Probe.entered.setdefault("bus", threading.Event()).wait(5)
    for i in range(10):
        runtime.bus.publish("e.x", i)
    gate.set()
    stats = {s.name: s for s in runtime.bus.statistics().subscribers}
    assert (stats["busy"].delivered, stats["busy"].dropped) == (3, 7)


def test_retained_gives_the_last_event_per_topic(runtime: Runtime) -> None:
    for i in range(3):
        runtime.bus.publish("device.plc.a.signal", i)
    runtime.bus.publish("device.plc.b.signal", "b")
    runtime.bus.publish("health.store", "up")
    snap = runtime.bus.retained(["device.plc.*"])
    assert [(e.topic, e.data) for e in snap] == [
        ("device.plc.a.signal", 2), ("device.plc.b.signal", "b")]


def test_durable_events_nobody_journals_are_counted(runtime: Runtime) -> None:
    runtime.bus.publish("command.api", {"n": 1}, durable=True)
    ref = Probe.start(runtime, "journal")
    sub = runtime.bus.subscribe_actor(["*"], ref, durable_only=True, name="journal")
    runtime.bus.publish("command.api", {"n": 2}, durable=True)
    runtime.bus.publish("device.x", {"n": 3})  # not durable: not the journal's business
    assert runtime.wait_idle(5)
    assert [e.data["n"] for e in ref.proxy().events.get()] == [2]
    ref.stop()
    runtime.bus.publish("command.api", {"n": 4}, durable=True)  # the writer died
    runtime.bus.publish("command.api", {"n": 5}, durable=True)  # and nobody replaced it
    stats = runtime.bus.statistics()
    assert stats.unjournaled == 2  # n=1 and n=5; n=4 is the dead subscriber's counted drop
    assert stats.dropped_closed == 1
    assert sub.closed
