"""Mains power as the station's UPS reports it, and what the station does when it changes.

Pure: the UPS actor reads `ups.status` flags and the battery charge over NUT, calls
`power_state`, and performs what `power_change` returns. Flags are NUT's words (OL, OB, LB,
...); nothing here knows the protocol.
"""

from __future__ import annotations

from collections.abc import Collection
from enum import StrEnum

import msgspec

__all__ = ["PowerAction", "PowerChange", "PowerState", "power_change", "power_state"]


class PowerState(StrEnum):
    ONLINE = "online"  # on mains (also on bypass, trimming or boosting)
    ON_BATTERY = "on_battery"
    LOW_BATTERY = "low_battery"  # on battery and about to run out: act now
    UNKNOWN = "unknown"  # no answer, stale data, or a status Takt cannot read


class PowerAction(StrEnum):
    ALERT = "alert"  # an operator must know (journal entry, HMI)
    PAUSE_COACHING = "pause_coaching"  # stop at the next safe point: no new step begins
    FLUSH_STORE = "flush_store"  # commit and checkpoint, so a power cut loses nothing
    RESUME = "resume"  # power is back: coaching may go on


class PowerChange(msgspec.Struct, frozen=True, kw_only=True):
    state: PowerState
    previous: PowerState
    actions: tuple[PowerAction, ...]


def power_state(flags: Collection[str], charge: float | None, low_percent: float) -> PowerState:
    """The power state of a UPS reporting flags (`ups.status` words) and charge (percent).

    Low battery is the UPS's own LB flag, a forced shutdown (FSD), or, on battery, a charge at
    or below low_percent: UPSes set LB late (often at 10 %), later than a station needs to
    finish a step and write everything down.
    """
    words = {f.upper() for f in flags}
    if "FSD" in words:
        return PowerState.LOW_BATTERY
    if "OB" in words:
        low = "LB" in words or (charge is not None and charge <= low_percent)
        return PowerState.LOW_BATTERY if low else PowerState.ON_BATTERY
    if "OL" in words:
        return PowerState.ONLINE
    return PowerState.UNKNOWN


_ON_ENTRY: dict[PowerState, tuple[PowerAction, ...]] = {
    PowerState.ON_BATTERY: (PowerAction.ALERT,),
    PowerState.LOW_BATTERY: (PowerAction.ALERT, PowerAction.PAUSE_COACHING,
                             PowerAction.FLUSH_STORE),
    PowerState.UNKNOWN: (PowerAction.ALERT,),
    PowerState.ONLINE: (),
}


def power_change(previous: PowerState, state: PowerState) -> PowerChange | None:
    """What to do when the power state moves from previous to state (None: it did not).

    Power coming back after a low battery resumes coaching; the first reading after start-up
    (previous UNKNOWN) alerts only when the power is not fine.
    """
    if state == previous:
        return None
    actions = _ON_ENTRY[state]
    if state is PowerState.ONLINE and previous is PowerState.LOW_BATTERY:
        actions = (PowerAction.ALERT, PowerAction.RESUME)
    elif state is PowerState.ONLINE and previous is PowerState.ON_BATTERY:
        actions = (PowerAction.ALERT,)
    return PowerChange(state=state, previous=previous, actions=actions)
