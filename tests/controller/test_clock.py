"""The clock: virtual time fires timers in order and only when told; real time fires them."""

from __future__ import annotations

import threading

from hypothesis import given
from hypothesis import strategies as st

from controller.clock import RealClock, VirtualClock


@given(delays=st.lists(st.floats(min_value=0, max_value=100), max_size=30))
def test_virtual_timers_fire_in_due_order_ties_in_scheduling_order(delays: list[float]) -> None:
    clock = VirtualClock()
    start = clock.now_us()
    fired: list[tuple[int, int]] = []
    for i, d in enumerate(delays):
        clock.call_later(d, lambda i=i: fired.append((clock.now_us(), i)))
    clock.advance(101)
    due = sorted(((start + int(d * 1e6), i) for i, d in enumerate(delays)))
    assert fired == due
    assert clock.now_us() == start + 101_000_000


def test_cancelled_timers_do_not_fire_and_time_does_not_move_by_itself() -> None:
    clock = VirtualClock()
    fired: list[str] = []
    keep = clock.call_later(1.0, lambda: fired.append("keep"))
    drop = clock.call_later(0.5, lambda: fired.append("drop"))
    drop.cancel()
    assert clock.pending_timers() == 1
    assert fired == []
    assert clock.advance_to_next()
    assert fired == ["keep"] and not keep.cancelled
    assert not clock.advance_to_next()


def test_timer_scheduled_by_a_timer_fires_within_the_same_advance() -> None:
    clock = VirtualClock()
    fired: list[float] = []

    def tick() -> None:
        fired.append(clock.monotonic())
        if len(fired) < 5:
            clock.call_later(0.2, tick)

    clock.call_later(0.2, tick)
    clock.advance(0.9)
    assert len(fired) == 4  # 0.2, 0.4, 0.6, 0.8; the fifth is due at 1.0


def test_sleep_until_wakes_when_virtual_time_reaches_it() -> None:
    clock = VirtualClock()
    woke = threading.Event()
    target = clock.now_us() + 5_000_000

    def sleeper() -> None:
        clock.sleep_until(target)
        woke.set()

    t = threading.Thread(target=sleeper)
    t.start()
    clock.advance(4.999)
    assert not woke.wait(0.05)
    clock.advance(0.001)
    assert woke.wait(5)
    t.join()


def test_run_until_idle_stops_at_the_horizon() -> None:
    clock = VirtualClock()
    fired: list[int] = []
    for s in (1, 2, 3):
        clock.call_later(s, lambda s=s: fired.append(s))
    start = clock.now_us()
    clock.run_until_idle(lambda: True, until_us=start + 2_500_000)
    assert fired == [1, 2]
    assert clock.now_us() == start + 2_500_000


def test_a_failing_timer_callback_does_not_stop_the_others() -> None:
    clock = VirtualClock()
    fired: list[str] = []
    clock.call_later(1, lambda: 1 / 0)
    clock.call_later(1, lambda: fired.append("after"))
    clock.advance(1)
    assert fired == ["after"]


def test_real_clock_fires_timers_on_its_own_thread() -> None:
    clock = RealClock()
    try:
        done = threading.Event()
        names: list[str] = []
        clock.call_later(0.01, lambda: (names.append(threading.current_thread().name),
                                        done.set()))
        assert done.wait(5)
        assert names == ["takt-clock"]
    finally:
        clock.close()
