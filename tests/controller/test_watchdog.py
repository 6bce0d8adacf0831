"""Heartbeat counters: when a peer is stale, and how the counter wraps."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.watchdog import HeartbeatWatch, next_beat

PERIOD_US = 100_000


def test_stale_exactly_at_stale_periods_after_the_last_change() -> None:
    watch = HeartbeatWatch(period_us=PERIOD_US, stale_periods=3)
    watch.start(1_000_000)
    watch.observe(7, 1_050_000)
    watch.observe(8, 1_100_000)

    assert not watch.stale(1_100_000 + 3 * PERIOD_US - 1)
    assert watch.stale(1_100_000 + 3 * PERIOD_US)
    assert watch.stale(1_100_000 + 30 * PERIOD_US)


def test_repeated_value_does_not_keep_the_peer_fresh() -> None:
    watch = HeartbeatWatch(period_us=PERIOD_US, stale_periods=3)
    watch.start(0)
    watch.observe(5, 10)
    for t in range(20, 400_000, 50_000):
        watch.observe(5, t)  # read every poll, but the PLC stopped counting

    assert watch.stale(10 + 3 * PERIOD_US)
    assert watch.changes == 0


def test_changes_keep_the_peer_fresh() -> None:
    watch = HeartbeatWatch(period_us=PERIOD_US, stale_periods=2)
    watch.start(0)
    value = 0
    for t in range(0, 10 * PERIOD_US, PERIOD_US):
        value = next_beat(value)
        watch.observe(value, t)
        assert not watch.stale(t + 2 * PERIOD_US - 1)

    assert watch.changes == 9  # the first observation is not a change


def test_start_gives_a_silent_peer_the_full_grace() -> None:
    watch = HeartbeatWatch(period_us=PERIOD_US, stale_periods=3)

    watch.start(5_000_000)

    assert not watch.stale(5_000_000 + 3 * PERIOD_US - 1)
    assert watch.stale(5_000_000 + 3 * PERIOD_US)


def test_start_at_reconnect_forgets_the_old_counter() -> None:
    watch = HeartbeatWatch(period_us=PERIOD_US, stale_periods=3)
    watch.start(0)
    watch.observe(41, 0)
    assert watch.stale(10 * PERIOD_US)

    watch.start(10 * PERIOD_US)

    assert not watch.stale(12 * PERIOD_US)
    assert watch.last_value is None


def test_counter_wrapping_to_zero_is_a_change() -> None:
    watch = HeartbeatWatch(period_us=PERIOD_US, stale_periods=3)
    watch.start(0)
    watch.observe(65535, 0)

    watch.observe(0, 2 * PERIOD_US)

    assert watch.changes == 1
    assert not watch.stale(2 * PERIOD_US + 3 * PERIOD_US - 1)


def test_describe_says_how_long_it_has_been_quiet() -> None:
    watch = HeartbeatWatch(period_us=500_000, stale_periods=4)
    watch.start(0)

    assert watch.describe(2_500_000) == (
        "heartbeat counter stale: no change for 2.5 s (4 periods of 0.5 s)"
    )


@pytest.mark.parametrize(("period_us", "stale_periods"), [(0, 3), (-1, 3), (100, 0)])
def test_nonsense_settings_are_refused(period_us: int, stale_periods: int) -> None:
    with pytest.raises(ValueError):
        HeartbeatWatch(period_us=period_us, stale_periods=stale_periods)


def test_next_beat_counts_up_and_wraps_at_16_bits() -> None:
    assert next_beat(0) == 1
    assert next_beat(41) == 42
    assert next_beat(65534) == 65535
    assert next_beat(65535) == 0


@given(st.integers(0, 65535))
def test_next_beat_always_changes_the_value_and_stays_in_range(value: int) -> None:
    beat = next_beat(value)

    assert beat != value
    assert 0 <= beat <= 65535


@given(
    stale_periods=st.integers(1, 5),
    reads=st.lists(st.tuples(st.integers(0, 4 * PERIOD_US), st.integers(0, 3)), max_size=30),
    probe_after=st.integers(0, 8 * PERIOD_US),
)
def test_stale_matches_time_since_the_last_change(
    stale_periods: int, reads: list[tuple[int, int]], probe_after: int
) -> None:
    watch = HeartbeatWatch(period_us=PERIOD_US, stale_periods=stale_periods)
    now = 1_000
    watch.start(now)
    last_value: int | None = None
    changed_at = now
    for gap, value in reads:
        now += gap
        watch.observe(value, now)
        if value != last_value:
            last_value, changed_at = value, now

    probe = now + probe_after
    assert watch.stale(probe) is (probe - changed_at >= stale_periods * PERIOD_US)
