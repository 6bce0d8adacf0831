"""The power state of a UPS, and what the station does when it changes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.power import PowerAction, PowerState, power_change, power_state

A = PowerAction
S = PowerState


@pytest.mark.parametrize(("flags", "charge", "state"), [
    (["OL"], 100.0, S.ONLINE),
    (["OL", "CHRG"], 40.0, S.ONLINE),
    (["OL", "BYPASS"], None, S.ONLINE),
    (["OB", "DISCHRG"], 80.0, S.ON_BATTERY),
    (["OB", "DISCHRG"], None, S.ON_BATTERY),
    (["OB", "DISCHRG"], 30.0, S.LOW_BATTERY),  # Takt's own mark, before the UPS says LB
    (["OB", "DISCHRG", "LB"], 60.0, S.LOW_BATTERY),  # the UPS knows its battery best
    (["OL", "FSD"], 90.0, S.LOW_BATTERY),  # upsmon ordered the shutdown
    (["ob", "lb"], 5.0, S.LOW_BATTERY),
    ([], 100.0, S.UNKNOWN),
    (["OFF"], 100.0, S.UNKNOWN),
])
def test_power_state(flags: list[str], charge: float | None, state: PowerState) -> None:
    assert power_state(flags, charge, low_percent=30.0) is state


def test_changes_and_their_actions() -> None:
    assert power_change(S.ONLINE, S.ONLINE) is None
    assert power_change(S.UNKNOWN, S.ONLINE).actions == ()  # a normal start says nothing
    assert power_change(S.ONLINE, S.ON_BATTERY).actions == (A.ALERT,)
    low = power_change(S.ON_BATTERY, S.LOW_BATTERY)
    assert low is not None and set(low.actions) == {A.ALERT, A.PAUSE_COACHING, A.FLUSH_STORE}
    assert power_change(S.ONLINE, S.LOW_BATTERY).actions == low.actions  # a sudden drop
    assert power_change(S.LOW_BATTERY, S.ONLINE).actions == (A.ALERT, A.RESUME)
    assert power_change(S.ON_BATTERY, S.ONLINE).actions == (A.ALERT,)
    assert power_change(S.ONLINE, S.UNKNOWN).actions == (A.ALERT,)


@given(flags=st.lists(st.text(max_size=8), max_size=6),
       charge=st.one_of(st.none(), st.floats(allow_nan=True)),
       low=st.floats(0, 100))
def test_any_reading_has_a_state(flags: list[str], charge: float | None, low: float) -> None:
    state = power_state(flags, charge, low)
    assert state in set(S)
    if not any(f.upper() in ("OL", "OB", "FSD") for f in flags):
        assert state is S.UNKNOWN


def test_power_changes_are_journal_entries() -> None:
    from controller.events import Category, Severity, classify

    def entry(state: str, alert: bool = True, **extra: object) -> object:
        return classify("device.ups.wet.power", "ups", {
            "state": state, "alert": alert, "battery_charge": 9.0, "battery_runtime_s": 300,
            **extra})

    low = entry("low_battery")
    assert low is not None and (low.severity, low.category) == (Severity.CRITICAL,
                                                                 Category.POWER)
    assert low.message == ("UPS wet: battery low: coaching pauses, the store is flushed "
                           "(9%, 5 min left)")
    on_battery = entry("on_battery")
    assert on_battery is not None and on_battery.severity is Severity.WARNING
    assert entry("online", alert=False) is None  # the first reading of a fine UPS is no news
