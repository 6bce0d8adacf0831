"""trio -> actor asks: answers, errors, timeouts, cancellation, dead actors."""

from __future__ import annotations

import threading

import pytest
import trio
import trio.testing

from actors.bridge import ask
from actors.runtime import ActorUnavailable, AskTimeout, Runtime, call
from tests.actors.probe import Boom, Echo, Hold, Probe


async def test_ask_returns_the_answer(runtime: Runtime) -> None:
    ref = Probe.start(runtime, "p")
    assert await ask(runtime, ref, Echo({"a": 1})) == {"a": 1}


async def test_handler_error_is_raised_in_the_trio_task_and_actor_lives_on(
    runtime: Runtime,
) -> None:
    ref = Probe.start(runtime, "p")
    with pytest.raises(RuntimeError, match="bad input"):
        await ask(runtime, ref, Boom("bad input"))
    assert await ask(runtime, ref, Echo(2)) == 2


async def test_unknown_message_is_a_clear_error(runtime: Runtime) -> None:
    ref = Probe.start(runtime, "p")
    with pytest.raises(TypeError, match="p has no handler for int"):
        await ask(runtime, ref, 42)


async def test_timeout_then_actor_still_serves(runtime: Runtime, mock_clock: trio.testing.MockClock
                                               ) -> None:
    ref = Probe.start(runtime, "p")
    gate = Probe.gates["t"] = threading.Event()

    async def jump_when_waiting() -> None:
        await trio.testing.wait_all_tasks_blocked()
        mock_clock.jump(0.6)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(jump_when_waiting)
        with pytest.raises(AskTimeout, match="did not answer Hold"):
            await ask(runtime, ref, Hold("t"), timeout=0.5)
    gate.set()  # the late answer lands in an abandoned slot
    assert await ask(runtime, ref, Echo("after")) == "after"


async def test_cancelled_ask_leaves_no_trace(runtime: Runtime) -> None:
    ref = Probe.start(runtime, "p")
    gate = Probe.gates["c"] = threading.Event()
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask, runtime, ref, Hold("c"))
            await trio.sleep(0)
            scope.cancel()
    assert scope.cancelled_caught
    gate.set()
    assert await ask(runtime, ref, Echo(1)) == 1
    assert runtime.wait_idle(5)


async def test_ask_to_a_stopped_actor_fails_at_once(runtime: Runtime) -> None:
    ref = Probe.start(runtime, "p")
    ref.stop()
    with pytest.raises(ActorUnavailable, match="p is not running"):
        await ask(runtime, ref, Echo(1), timeout=60)


async def test_pending_ask_fails_when_the_actor_dies(runtime: Runtime) -> None:
    ref = Probe.start(runtime, "p")
    gate = Probe.gates["d"] = threading.Event()
    entered = Probe.entered["d"] = threading.Event()
    results: list[BaseException] = []

    async def waiting_ask() -> None:
        try:
            await ask(runtime, ref, Echo("never"), timeout=60)
        except ActorUnavailable as exc:
            results.append(exc)

    def held_call() -> None:
        with pytest.raises(ConnectionError):  # the caller of the failing request hears why
            call(runtime, ref, Hold("d", then_fail=True), 10)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.to_thread.run_sync, held_call)
        await trio.to_thread.run_sync(entered.wait, 10)  # the held message is being handled
        nursery.start_soon(waiting_ask)
        while not ref.actor_inbox.qsize():  # our ask is queued behind it
            await trio.sleep(0.001)
        gate.set()  # the held handler now loses its device and the actor fails
    assert len(results) == 1
    assert "stopped before answering" in str(results[0])


async def test_a_thousand_concurrent_asks_hold_no_threads(runtime: Runtime) -> None:
    ref = Probe.start(runtime, "p")
    threads_before = threading.active_count()
    seen: list[int] = []

    async def one(i: int) -> None:
        seen.append(await ask(runtime, ref, Echo(i)))
        assert threading.active_count() == threads_before

    async with trio.open_nursery() as nursery:
        for i in range(1000):
            nursery.start_soon(one, i)
    assert sorted(seen) == list(range(1000))
