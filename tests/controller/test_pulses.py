"""Pulses shorter than a poll: the PLC's counter shows them, and each is reported once."""

from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass

from hypothesis import given, note, settings
from hypothesis import strategies as st

from controller.pulses import PulseTracker

WRAP_16 = 0x10000


def _cycle(tracker: PulseTracker, *, level: bool | None = None, count: int | None = None,
           count_first: bool = False) -> int:
    """One read cycle: the changes seen (in the given order), then settle."""
    steps = [("count", count), ("level", level)]
    for what, value in steps if count_first else reversed(steps):
        if what == "count" and value is not None:
            tracker.count_changed(value)
        elif what == "level" and value is not None:
            tracker.level_changed(bool(value))
    return tracker.settle()


def test_pulses_seen_as_edges_report_nothing() -> None:
    tracker = PulseTracker()
    _cycle(tracker, level=False, count=10)

    reports = [
        _cycle(tracker, level=True, count=11),
        _cycle(tracker, level=False),
        _cycle(tracker, level=True, count=12),
        _cycle(tracker, level=False),
        _cycle(tracker),
        _cycle(tracker),
    ]

    assert reports == [0] * 6
    assert (tracker.missed_total, tracker.uncounted_total) == (0, 0)


def test_a_pulse_between_two_reads_is_reported_one_cycle_later() -> None:
    tracker = PulseTracker()
    _cycle(tracker, level=False, count=10)

    # The counter moved but the bool was low at both reads.
    assert _cycle(tracker, count=11) == 0  # its edge may still show up next cycle
    assert _cycle(tracker) == 1
    assert _cycle(tracker) == 0
    assert tracker.missed_total == 1


def test_edge_and_count_seen_in_different_cycles_match() -> None:
    tracker = PulseTracker()
    _cycle(tracker, level=False, count=0)

    # The pulse began between the count read and the level read of this cycle.
    assert _cycle(tracker, level=True) == 0
    assert _cycle(tracker, count=1) == 0
    # ... and the other way round.
    assert _cycle(tracker, level=False, count=2) == 0
    assert _cycle(tracker, level=True) == 0
    assert [_cycle(tracker), _cycle(tracker)] == [0, 0]
    assert (tracker.missed_total, tracker.uncounted_total) == (0, 0)


def test_16_bit_counter_wrapping_counts_the_pulses_across_the_wrap() -> None:
    tracker = PulseTracker(modulus=WRAP_16)
    _cycle(tracker, level=False, count=65534)

    missed = _cycle(tracker, count=1) + _cycle(tracker) + _cycle(tracker)

    assert missed == 3  # 65535, 0 and 1


def test_32_bit_counter_wraps_at_its_own_modulus() -> None:
    tracker = PulseTracker(modulus=1 << 32)
    _cycle(tracker, level=False, count=(1 << 32) - 1)

    missed = _cycle(tracker, count=1) + _cycle(tracker) + _cycle(tracker)

    assert missed == 2


def test_first_values_after_connect_are_not_pulses() -> None:
    tracker = PulseTracker()

    # Connecting in the middle of a pulse, with a counter already at 500.
    assert _cycle(tracker, level=True, count=500) == 0
    assert [_cycle(tracker), _cycle(tracker)] == [0, 0]
    assert tracker.missed_total == 0


def test_an_edge_the_counter_never_confirms_is_counted_apart() -> None:
    tracker = PulseTracker()
    _cycle(tracker, level=False, count=3)

    reports = [_cycle(tracker, level=True), _cycle(tracker, level=False), _cycle(tracker)]

    assert reports == [0, 0, 0]
    assert (tracker.missed_total, tracker.uncounted_total) == (0, 1)


# ---- a PLC pulsing a bool and counting the pulses, polled at random times ------------------


@dataclass(frozen=True)
class _Plc:
    rises: list[int]
    falls: list[int]
    counter_at_start: int

    def level(self, t: int) -> bool:
        i = bisect.bisect_right(self.rises, t) - 1
        return i >= 0 and t < self.falls[i]

    def counter(self, t: int) -> int:
        return (self.counter_at_start + bisect.bisect_right(self.rises, t)) % WRAP_16


_FIRST_PULSE_AT = 100


@st.composite
def _plcs(draw: st.DrawFn) -> _Plc:
    rises, falls = [], []
    t = _FIRST_PULSE_AT
    for gap, width in draw(st.lists(st.tuples(st.integers(1, 60), st.integers(1, 60)),
                                    max_size=40)):
        t += gap
        rises.append(t)
        t += width
        falls.append(t)
    return _Plc(rises, falls, draw(st.integers(0, WRAP_16 - 1)))


# One read cycle: gap since the previous cycle, time between its two reads, read order.
_polls = st.lists(st.tuples(st.integers(1, 120), st.integers(0, 20), st.booleans()),
                  min_size=1, max_size=20)


@settings(max_examples=300, deadline=None)
@given(plc=_plcs(), polls=_polls)
def test_every_pulse_the_poll_missed_is_reported_exactly_once(
    plc: _Plc, polls: list[tuple[int, int, bool]]
) -> None:
    note(f"{plc=} {polls=}")
    tracker = PulseTracker(modulus=WRAP_16)
    end = (plc.falls[-1] if plc.falls else 0) + 1
    level_reads: list[tuple[int, bool]] = []  # every sample of the bool, in time order
    reported: list[tuple[int, int]] = []  # (time of the cycle's last read, settle())
    last_level: bool | None = None
    last_count: int | None = None
    t, cycle, cycle_start = 0, 0, 0
    # Poll (with the drawn gaps, repeated) until one complete cycle has run after the end.
    while cycle_start <= end or cycle < 2:
        gap, spread, count_first = polls[cycle % len(polls)]
        if cycle == 0:
            gap, spread = 0, min(spread, _FIRST_PULSE_AT - 1)
        t += gap
        cycle_start = t
        reads = [("count", t), ("level", t + spread)] if count_first else [
            ("level", t), ("count", t + spread)]
        for what, at in reads:
            if what == "level":
                level = plc.level(at)
                level_reads.append((at, level))
                if level != last_level:
                    tracker.level_changed(level)
                    last_level = level
            else:
                count = plc.counter(at)
                if count != last_count:
                    tracker.count_changed(count)
                    last_count = count
        t += spread
        reported.append((t, tracker.settle()))
        cycle += 1
    trailing = [tracker.settle() for _ in range(3)]

    missed_rises = _rises_not_seen_as_edges(plc, level_reads)
    assert all(n >= 0 for _, n in reported)
    assert sum(n for _, n in reported) + sum(trailing) == len(missed_rises)
    assert tracker.missed_total == len(missed_rises)
    assert tracker.uncounted_total == 0  # the counter is right, so every edge is counted
    # Never ahead of the truth: at no point more reported than had been missed by then.
    total = 0
    for at, n in reported:
        total += n
        assert total <= sum(1 for rise in missed_rises if rise <= at)


def _rises_not_seen_as_edges(plc: _Plc, level_reads: list[tuple[int, bool]]) -> list[int]:
    """Rise times of the pulses no read caught as a low-to-high change."""
    seen = set()
    for (_, before), (at, now) in itertools.pairwise(level_reads):
        if now and not before:
            seen.add(bisect.bisect_right(plc.rises, at) - 1)
    return [rise for i, rise in enumerate(plc.rises) if i not in seen]
