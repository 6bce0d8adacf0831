"""What the wrench actor is asked, what it answers, and the refusals it raises.

Commands are asked (`ask_actor("wrench:<name>", EnableWrench())`); a refusal the wrench's
state explains raises a `WrenchRefused` (the API answers 409), bad values a ValueError (422),
a lost link DeviceUnavailable (503; the actor fails and its supervisor reconnects).
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from controller.timefmt import rfc3339
from controller.wrench_config import WrenchPset, check_tightening, cnm
from drivers.openprotocol.client import LinkStatistics
from drivers.openprotocol.mids import TighteningResult
from state.tightening import StoredProgram, Tightening

__all__ = [
    "CancelTightening",
    "ClearState",
    "ConfigureProgram",
    "ConnectWrench",
    "ControllerInfo",
    "ControllerRefused",
    "DisableWrench",
    "DisconnectWrench",
    "EnableWrench",
    "GetPrograms",
    "GetWrenchState",
    "GetWrenchStatus",
    "ListTightenings",
    "LockWrench",
    "ProgramView",
    "ReplacePrograms",
    "SelectPset",
    "SequenceView",
    "SetSequence",
    "TaktLimits",
    "TestWrench",
    "TighteningList",
    "TighteningView",
    "UnlockWrench",
    "WrenchDisconnected",
    "WrenchLocked",
    "WrenchRefused",
    "WrenchState",
    "WrenchStatus",
    "WrenchTest",
    "program_view",
    "pset_of",
    "tightening_row",
    "tightening_view",
]


# ---- refusals --------------------------------------------------------------------------------


class WrenchRefused(Exception):
    """A command the wrench's present state does not allow; the link itself is fine."""


class WrenchLocked(WrenchRefused):
    """The tool is locked by Takt: it stays disabled until it is unlocked."""


class WrenchDisconnected(WrenchRefused):
    """The wrench was disconnected on request (or runs without a link, in replay)."""


class ControllerRefused(WrenchRefused):
    """The controller answered the command with MID 0004 (error says why)."""

    def __init__(self, text: str, *, mid: int, error: int) -> None:
        super().__init__(text)
        self.mid = mid
        self.error = error


# ---- commands --------------------------------------------------------------------------------


class EnableWrench(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Let the tool run (MID 0043), selecting program_nr first if given; refused while locked."""

    program_nr: int | None = None


class DisableWrench(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Stop the tool from running (MID 0042)."""

    program_nr: int | None = None


class LockWrench(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Disable the tool and refuse to enable it until unlocked (Takt's interlock)."""

    program_nr: int | None = None


class UnlockWrench(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Lift Takt's interlock; the tool stays disabled until it is enabled."""

    program_nr: int | None = None


class SelectPset(msgspec.Struct, frozen=True, tag=True):
    """Select a pset on the controller (MID 0018); the sequence restarts for it, sized by
    Takt's settings of the pset, and that size goes to the controller as its batch size."""

    pset: int


class SetSequence(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Select pset (MID 0018) and expect `size` OK tightenings of it (0: no sequence).

    The size also goes to the controller as the pset's batch size (MID 0019), so the batch
    fields of its results follow the sequence; a controller that refuses it is noted in the
    wrench's `error` and the sequence is still counted by Takt.
    """

    pset: int
    size: int


class ConfigureProgram(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Store Takt's torque settings of one pset (kept across restarts)."""

    program: WrenchPset
    by: str | None = None


class ReplacePrograms(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Make the stored torque settings of this wrench exactly `programs`."""

    programs: tuple[WrenchPset, ...]
    by: str | None = None


class GetPrograms(msgspec.Struct, frozen=True, tag=True):
    pass


class ClearState(msgspec.Struct, frozen=True, tag=True):
    """Forget the last result and error, and restart the sequence count."""


class CancelTightening(msgspec.Struct, frozen=True, tag=True):
    """Disable the tool at once; the next enable resumes."""


class ConnectWrench(msgspec.Struct, frozen=True, tag=True):
    """Connect a wrench that was disconnected on request (a no-op when connected)."""


class DisconnectWrench(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """End the session (MID 0003) and stay disconnected until ConnectWrench."""

    by: str | None = None


class GetWrenchStatus(msgspec.Struct, frozen=True, tag=True):
    pass


class GetWrenchState(msgspec.Struct, frozen=True, tag=True):
    pass


class TestWrench(msgspec.Struct, frozen=True, tag=True):
    """Check the controller answers (a result subscription round trip; changes nothing)."""


class ListTightenings(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    ok: bool | None = None
    cursor: int | None = None
    limit: int = 100


# ---- answers ---------------------------------------------------------------------------------


class ControllerInfo(msgspec.Struct, frozen=True, kw_only=True):
    """The controller's MID 0002 of the current session."""

    controller_name: str
    cell_id: int
    channel_id: int
    revision: int
    supplier_code: str
    open_protocol_version: str
    controller_software_version: str
    tool_software_version: str


class TaktLimits(msgspec.Struct, frozen=True, kw_only=True):
    """Takt's own limits the result was checked against (N·m, degrees)."""

    torque_min_nm: float | None
    torque_max_nm: float | None
    angle_min: int | None
    angle_max: int | None


class TighteningView(msgspec.Struct, frozen=True, kw_only=True):
    """A stored result; torques in N·m. `ok` counts: the controller's verdict and Takt's."""

    id: int
    wrench: str
    tightening_id: int
    pset: int
    ok: bool
    controller_ok: bool
    takt_ok: bool | None  # None: Takt has no torque settings for the pset
    flag: str | None  # why Takt judged NOK what the controller called OK
    torque_nm: float
    torque_min_nm: float
    torque_max_nm: float
    torque_target_nm: float
    torque_status: str
    angle: int
    angle_min: int
    angle_max: int
    angle_target: int
    angle_status: str
    takt_limits: TaktLimits | None
    vin: str
    job_id: int
    batch_size: int
    batch_counter: int
    batch_status: str
    controller_name: str
    controller_time: str  # the controller's local time, YYYY-MM-DDTHH:MM:SS (no zone)
    received_at: str
    received_us: int


class TighteningList(msgspec.Struct, frozen=True, kw_only=True):
    items: list[TighteningView]
    next_cursor: int | None


class SequenceView(msgspec.Struct, frozen=True, kw_only=True):
    """Takt's expected batch: `size` OK tightenings of `pset` (size 0: none expected)."""

    pset: int | None
    size: int
    counter: int
    complete: bool


class WrenchState(msgspec.Struct, frozen=True, kw_only=True):
    """The wrench as Takt holds it: tool, pset, sequence, last result and counters."""

    connection: str  # connected | disconnected | replay
    tool_enabled: bool
    locked: bool
    selected_pset: int | None  # as Takt last selected it (None: the controller's own)
    sequence: SequenceView
    last_result: TighteningView | None
    error: str | None  # the last refusal or bad frame, until ClearState
    results: int
    ok: int
    nok: int
    flagged: int
    malformed: int


class WrenchStatus(WrenchState, frozen=True, kw_only=True):
    """WrenchState with who the wrench is, its health and its link."""

    name: str
    state: str  # health: UP | DOWN | ...
    last_error: str | None
    address: str
    protocol: str
    manufacturer: str
    model: str
    controller: ControllerInfo | None
    link: LinkStatistics | None  # counters of the current (or last) session


class WrenchTest(msgspec.Struct, frozen=True, kw_only=True):
    ok: bool
    connected: bool
    controller: ControllerInfo | None
    error: str | None
    latency_ms: float


class ProgramView(msgspec.Struct, frozen=True, kw_only=True):
    """A pset Takt knows for a wrench, and where its settings come from."""

    number: int
    name: str
    torque_min_nm: float
    torque_max_nm: float
    torque_target_nm: float
    angle_min: int | None
    angle_max: int | None
    batch_size: int
    source: str  # config | stored
    updated_at: str | None = None
    updated_by: str | None = None


def program_view(pset: WrenchPset, stored: StoredProgram | None = None) -> ProgramView:
    return ProgramView(
        number=pset.number, name=pset.name, torque_min_nm=pset.torque_min_nm,
        torque_max_nm=pset.torque_max_nm, torque_target_nm=pset.torque_target_nm,
        angle_min=pset.angle_min, angle_max=pset.angle_max, batch_size=pset.batch_size,
        source="config" if stored is None else "stored",
        updated_at=None if stored is None else rfc3339(stored.updated_us),
        updated_by=None if stored is None else stored.updated_by)


def _nm(cnm: int | None) -> float | None:
    return None if cnm is None else cnm / 100


def _local(stamp: datetime) -> str:
    return stamp.isoformat(timespec="seconds")


def tightening_view(t: Tightening) -> TighteningView:
    known = t.takt_ok is not None
    return TighteningView(
        id=t.id, wrench=t.wrench, tightening_id=t.tightening_id, pset=t.pset, ok=t.ok,
        controller_ok=t.controller_ok, takt_ok=t.takt_ok, flag=t.flag,
        torque_nm=t.torque_cnm / 100, torque_min_nm=t.torque_min_cnm / 100,
        torque_max_nm=t.torque_max_cnm / 100, torque_target_nm=t.torque_target_cnm / 100,
        torque_status=t.torque_status, angle=t.angle, angle_min=t.angle_min,
        angle_max=t.angle_max, angle_target=t.angle_target, angle_status=t.angle_status,
        takt_limits=TaktLimits(torque_min_nm=_nm(t.takt_torque_min_cnm),
                               torque_max_nm=_nm(t.takt_torque_max_cnm),
                               angle_min=t.takt_angle_min, angle_max=t.takt_angle_max)
        if known else None,
        vin=t.vin, job_id=t.job_id, batch_size=t.batch_size, batch_counter=t.batch_counter,
        batch_status=t.batch_status, controller_name=t.controller_name,
        controller_time=_local(t.controller_time), received_at=rfc3339(t.received_us),
        received_us=t.received_us)


def pset_of(p: StoredProgram) -> WrenchPset:
    """The torque settings a stored program holds."""
    return WrenchPset(number=p.pset, name=p.name, torque_min_nm=p.torque_min_nm,
                      torque_max_nm=p.torque_max_nm, torque_target_nm=p.torque_target_nm,
                      angle_min=p.angle_min, angle_max=p.angle_max, batch_size=p.batch_size)


def tightening_row(wrench: str, r: TighteningResult, pset: WrenchPset | None, *,
                   received_us: int) -> Tightening:
    """The evidence row of a result, judged against Takt's settings of its pset (if known).

    The controller's NOK stands; its OK stands only within Takt's limits (else it is flagged).
    """
    reason = None if pset is None else check_tightening(pset, r.torque_cnm, r.angle)
    takt_ok = None if pset is None else reason is None
    flag = None
    if r.tightening_ok and reason is not None:
        flag = f"the controller said OK, but {reason} (Takt's limits of pset {r.pset})"
    return Tightening(
        wrench=wrench, tightening_id=r.tightening_id, controller_name=r.controller_name,
        cell_id=r.cell_id, channel_id=r.channel_id, job_id=r.job_id, pset=r.pset, vin=r.vin,
        batch_size=r.batch_size, batch_counter=r.batch_counter,
        batch_status=r.batch_status.name.lower(), controller_ok=r.tightening_ok,
        torque_status=r.torque_status.name.lower(), angle_status=r.angle_status.name.lower(),
        torque_cnm=r.torque_cnm, torque_min_cnm=r.torque_min_cnm,
        torque_max_cnm=r.torque_max_cnm, torque_target_cnm=r.torque_target_cnm, angle=r.angle,
        angle_min=r.angle_min, angle_max=r.angle_max, angle_target=r.angle_target,
        takt_torque_min_cnm=None if pset is None else cnm(pset.torque_min_nm),
        takt_torque_max_cnm=None if pset is None else cnm(pset.torque_max_nm),
        takt_angle_min=None if pset is None else pset.angle_min,
        takt_angle_max=None if pset is None else pset.angle_max,
        takt_ok=takt_ok, flag=flag, ok=r.tightening_ok and takt_ok is not False,
        controller_time=r.timestamp, received_us=received_us)
