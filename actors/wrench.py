"""Wrench actor: one per torque controller, over Atlas Copco Open Protocol (TCP 4545).

On every (re)connect it starts a session, subscribes to tightening results (MID 0060),
selects its pset, gives the controller the sequence's size as the pset's batch size
(MID 0019) and sets the tool as Takt holds it (enabled, disabled or locked), then
republishes its state. Every result (MID 0061) crosses the input boundary
(`input.wrench.<name>`), is checked against Takt's torque settings of its pset, stored as
evidence in `tightenings` and only then published, durable, as `device.wrench.<name>.result`.

A lost link fails the actor; its supervisor reconnects with backoff. What must outlive that
(the lock, the tool state Takt wants, the selected pset, the sequence count, the torque
settings set at run time) is kept in the station database, so a restart changes none of it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import duckdb
import msgspec

from actors.base import handles
from actors.database import DatabaseActor
from actors.health import HealthState
from actors.runtime import ActorUnavailable, Runtime, tell
from actors.wrench_messages import (
    CancelTightening,
    ClearState,
    ConfigureProgram,
    ConnectWrench,
    ControllerInfo,
    ControllerRefused,
    DisableWrench,
    DisconnectWrench,
    EnableWrench,
    GetPrograms,
    GetWrenchState,
    GetWrenchStatus,
    ListTightenings,
    LockWrench,
    ProgramView,
    ReplacePrograms,
    SelectPset,
    SequenceView,
    SetSequence,
    TestWrench,
    TighteningList,
    UnlockWrench,
    WrenchDisconnected,
    WrenchLocked,
    WrenchState,
    WrenchStatus,
    WrenchTest,
    program_view,
    pset_of,
    tightening_row,
    tightening_view,
)
from controller.config_check import ConfigError, ConfigIssue
from controller.wrench_config import WrenchConfig, WrenchPset, pset_problems
from drivers.errors import DeviceUnavailable, DriverError
from drivers.openprotocol.client import CommandRejected, OpenProtocolLink
from drivers.openprotocol.mids import ErrorCode, TighteningResult
from state.tightening import (
    StoredProgram,
    Tightening,
    WrenchControls,
    last_tightening,
    list_programs,
    list_tightenings,
    load_controls,
    replace_programs,
    save_controls,
    save_program,
    store_result,
    tightening_counts,
)

__all__ = ["ControllerProbe", "LinkFactory", "WrenchActor", "open_protocol_link",
           "probe_controller"]

LinkFactory = Callable[..., OpenProtocolLink]
_PSETS = range(0, 1000)
_BATCH_SIZES = range(0, 10_000)


def open_protocol_link(config: WrenchConfig, **callbacks: Any) -> OpenProtocolLink:
    """The link to a configured wrench; callbacks are OpenProtocolLink's on_* arguments."""
    return OpenProtocolLink(config.host, config.port, name=config.name,
                            timeout_s=config.timeout_ms / 1000,
                            keepalive_s=config.keepalive_ms / 1000,
                            max_revision=config.revision, **callbacks)


class ControllerProbe(msgspec.Struct, frozen=True, kw_only=True):
    """What a short Open Protocol session found at an address."""

    reachable: bool  # something answered MID 0001 (a refusal counts: the controller is there)
    controller_name: str | None
    detail: str | None


def probe_controller(host: str, port: int, timeout_s: float) -> ControllerProbe:
    """Blocking: open a session (MID 0001), read the controller's name, end it (MID 0003).

    For discovery, on a thread of its own; a controller that already serves its one client
    answers error 96, which still shows it is there.
    """
    link = OpenProtocolLink(host, port, name="discover", timeout_s=timeout_s)
    try:
        ack = link.connect()
    except CommandRejected as exc:
        link.close()
        return ControllerProbe(reachable=True, controller_name=None,
                     detail=f"answered error {exc.error:02d} ({exc.error_name})")
    except DriverError as exc:
        link.close()
        return ControllerProbe(reachable=False, controller_name=None, detail=str(exc))
    try:
        link.stop()
    except DriverError:
        link.close()
    return ControllerProbe(reachable=True, controller_name=ack.controller_name, detail=None)


class _Tightened(msgspec.Struct, frozen=True):
    result: TighteningResult


class _Trouble(msgspec.Struct, frozen=True):
    link: int  # which link of this actor reported it: a closed one's reports are stale
    kind: str  # malformed | lost
    reason: str


class WrenchActor(DatabaseActor):
    fatal = (DeviceUnavailable,)

    def __init__(self, runtime: Runtime, name: str, config: WrenchConfig,
                 database: duckdb.DuckDBPyConnection, *, live: bool = True,
                 link_factory: LinkFactory = open_protocol_link, **kw: Any) -> None:
        super().__init__(runtime, name, database, **kw)
        self.config = config
        self.live = live  # replay drives the actor with TighteningResult instead of a link
        self.source = f"wrench.{config.name}"
        self.topic = f"device.wrench.{config.name}"
        self._link_factory = link_factory
        self.link: OpenProtocolLink | None = None
        self._links = 0
        self.disconnected: str | None = None  # why, while disconnected on request
        self.info: ControllerInfo | None = None
        self.selected: int | None = None  # the pset Takt last selected on the controller
        self.controls = WrenchControls(wrench=config.name)
        self.programs: dict[int, StoredProgram] = {}
        self.results = self.ok = self.flagged = 0
        self.last: Tightening | None = None
        self.error: str | None = None

    # --- lifecycle ------------------------------------------------------------------------

    def started(self) -> None:
        # The cursor is opened here rather than by DatabaseActor.started, which would report
        # UP before the controller was even tried.
        self._con = self.database.cursor()
        name = self.config.name
        self.controls = load_controls(self.con, name) or WrenchControls(wrench=name)
        self.programs = {p.pset: p for p in list_programs(self.con, name)}
        counts = tightening_counts(self.con, name)
        self.results, self.ok, self.flagged = counts.results, counts.ok, counts.flagged
        self.last = last_tightening(self.con, name, self.controls.cleared_through)
        if self.live:
            self._connect()
        self.set_health(HealthState.UP)
        self._publish_state()

    def stopping(self) -> None:
        self._close_link()
        super().stopping()

    def failed(self, error: BaseException) -> None:
        self._close_link()
        super().failed(error)

    def _close_link(self) -> None:
        link, self.link = self.link, None
        if link is not None:
            link.close()

    def _connect(self) -> None:
        """Session, subscription, pset and tool state; DeviceUnavailable if any of it fails."""
        self._links += 1
        link = self._link_factory(self.config, **self._callbacks(self._links))
        self.link = link
        try:
            ack = link.connect()
            try:
                link.subscribe_results()
            except CommandRejected as exc:
                if exc.error != ErrorCode.RESULT_SUBSCRIPTION_EXISTS:
                    raise DeviceUnavailable(f"{self.config.name}: results refused: {exc}") from exc
            c = self.controls
            pset = c.selected_pset if c.selected_pset is not None else self.config.default_pset
            if pset is not None and self._setup(lambda: link.select_pset(pset), f"pset {pset}"):
                self.selected = pset
                known = self._pset(pset)
                if c.sequence_pset is None and known is not None and known.batch_size:
                    # The default pset's first selection sizes the sequence, as a select does.
                    self._store_controls(sequence_pset=pset, sequence_size=known.batch_size,
                                         sequence_counter=0)
                # A controller that restarted has forgotten the batch size Takt gave it.
                self._send_batch_size(link, pset, " on connect")
            if self.controls.tool_enabled and not self.controls.locked:
                self._setup(link.enable_tool, "enable")
            else:
                self._setup(link.disable_tool, "disable")
        except DriverError as exc:
            self._close_link()
            if isinstance(exc, DeviceUnavailable):
                raise
            raise DeviceUnavailable(str(exc)) from exc
        except BaseException:
            self._close_link()
            raise
        self.info = ControllerInfo(
            controller_name=ack.controller_name, cell_id=ack.cell_id, channel_id=ack.channel_id,
            revision=ack.revision, supplier_code=ack.supplier_code,
            open_protocol_version=ack.open_protocol_version,
            controller_software_version=ack.controller_software_version,
            tool_software_version=ack.tool_software_version)
        self.disconnected = None

    def _setup(self, command: Callable[[], None], what: str) -> bool:
        # A refusal while setting up is the config's or the controller's business, not the
        # link's: keep the session and report it.
        try:
            command()
        except CommandRejected as exc:
            self._note(f"{what} refused on connect: {exc}")
            return False
        return True

    def _callbacks(self, link: int) -> dict[str, Callable[..., None]]:
        ref, runtime = self.actor_ref, self.runtime

        def send(message: Any) -> None:
            try:
                tell(runtime, ref, message)
            except ActorUnavailable:
                pass  # gone; its replacement reconnects

        return {
            "on_result": lambda result: send(_Tightened(result)),
            "on_malformed": lambda reason: send(_Trouble(link, "malformed", reason)),
            "on_lost": lambda reason: send(_Trouble(link, "lost", reason)),
        }

    # --- from the link --------------------------------------------------------------------

    @handles(_Tightened)
    def _on_tightened(self, msg: _Tightened) -> None:
        self.runtime.ingest.input(self.source, msg.result)
        self._apply(msg.result)

    @handles(TighteningResult)
    def _on_input(self, msg: TighteningResult) -> None:
        self._apply(msg)

    @handles(_Trouble)
    def _on_trouble(self, msg: _Trouble) -> None:
        if msg.link != self._links:
            return  # a link closed since; its news no longer matters
        if msg.kind == "lost":
            raise DeviceUnavailable(f"{self.config.name}: {msg.reason}")
        self._set_controls(malformed=self.controls.malformed + 1)
        self.errors += 1
        self._note(msg.reason)

    def _apply(self, result: TighteningResult) -> None:
        row = tightening_row(self.config.name, result, self._pset(result.pset),
                             received_us=self.clock.now_us())
        changes: dict[str, Any] = {}
        complete = False
        c = self.controls
        if row.ok and c.sequence_size > 0 and c.sequence_pset in (None, row.pset):
            counter = 1 if c.sequence_counter >= c.sequence_size else c.sequence_counter + 1
            changes["sequence_counter"] = counter
            complete = counter == c.sequence_size
        controls = self._changed(**changes) if changes else None
        stored = store_result(self.con, row, controls)  # the evidence first, then the news
        if controls is not None:
            self.controls = controls
        self.last = stored
        self.results += 1
        self.ok += int(stored.ok)
        self.flagged += int(stored.flag is not None)
        self.publish(f"{self.topic}.result", msgspec.to_builtins(tightening_view(stored)),
                     durable=True)
        if complete:
            self.publish(f"{self.topic}.batch", {
                "wrench": self.config.name, "pset": stored.pset, "size": c.sequence_size,
                "counter": self.controls.sequence_counter, "complete": True,
                "last_result": stored.id}, durable=True)

    # --- commands -------------------------------------------------------------------------

    @handles(EnableWrench)
    def _enable(self, msg: EnableWrench) -> WrenchState:
        if self.controls.locked:
            raise WrenchLocked(f"wrench {self.config.name} is locked: unlock it first")
        link = self._live()
        self._select(link, msg.program_nr)
        self._command(link.enable_tool)
        return self._set_controls(tool_enabled=True)

    # Stopping the tool is recorded before it is sent: should the controller refuse or the
    # link drop, the tool is still off as far as Takt is concerned, and every reconnect
    # disables it again.

    @handles(DisableWrench)
    def _disable(self, msg: DisableWrench) -> WrenchState:
        link = self._live()
        self._store_controls(tool_enabled=False)
        self._select(link, msg.program_nr)
        self._command(link.disable_tool)
        return self._publish_state()

    @handles(LockWrench)
    def _lock(self, msg: LockWrench) -> WrenchState:
        link = self._live()
        self._store_controls(tool_enabled=False, locked=True)
        self._select(link, msg.program_nr)
        self._command(link.disable_tool)
        return self._publish_state()

    @handles(UnlockWrench)
    def _unlock(self, msg: UnlockWrench) -> WrenchState:
        link = self._live()
        self._select(link, msg.program_nr)
        return self._set_controls(locked=False)

    @handles(CancelTightening)
    def _cancel(self, _: CancelTightening) -> WrenchState:
        link = self._live()
        self._store_controls(tool_enabled=False)
        self._command(link.disable_tool)
        return self._publish_state()

    @handles(SelectPset)
    def _select_pset(self, msg: SelectPset) -> WrenchState:
        self._select(self._live(), msg.pset)
        return self._state()

    @handles(SetSequence)
    def _set_sequence(self, msg: SetSequence) -> WrenchState:
        if msg.size not in _BATCH_SIZES:
            raise ValueError(f"a sequence of {msg.size} is outside 0..9999")
        link = self._live()
        self._check_pset(msg.pset)
        self._command(lambda: link.select_pset(msg.pset))
        self.selected = msg.pset
        # Stored before MID 0019 goes out: should the link drop now, the reconnect sends it.
        self._store_controls(selected_pset=msg.pset, sequence_pset=msg.pset,
                             sequence_size=msg.size, sequence_counter=0)
        self._send_batch_size(link, msg.pset)
        return self._publish_state()

    @handles(ConfigureProgram)
    def _configure(self, msg: ConfigureProgram) -> ProgramView:
        self._check_programs((msg.program,))
        stored = save_program(self.con, self._stored(msg.program, msg.by))
        self.programs[stored.pset] = stored
        self._publish_state()
        return program_view(msg.program, stored)

    @handles(ReplacePrograms)
    def _replace(self, msg: ReplacePrograms) -> list[ProgramView]:
        self._check_programs(msg.programs)
        stored = replace_programs(self.con, self.config.name,
                                  [self._stored(p, msg.by) for p in msg.programs])
        self.programs = {p.pset: p for p in stored}
        self._publish_state()
        return self._program_views()

    @handles(GetPrograms)
    def _get_programs(self, _: GetPrograms) -> list[ProgramView]:
        return self._program_views()

    @handles(ClearState)
    def _clear(self, _: ClearState) -> WrenchState:
        cleared = self.last.id if self.last is not None else self.controls.cleared_through
        self.last, self.error = None, None
        return self._set_controls(cleared_through=cleared, sequence_counter=0)

    @handles(DisconnectWrench)
    def _disconnect(self, msg: DisconnectWrench) -> WrenchState:
        if not self.live:
            raise WrenchDisconnected(f"wrench {self.config.name} has no link (replay)")
        link, self.link = self.link, None
        self._links += 1  # whatever the old link still reports is stale
        if link is not None:
            try:
                link.stop()  # MID 0003, then close
            except DriverError:
                link.close()  # the controller did not answer: closing is all that is left
        self.disconnected = f"disconnected on request{f' by {msg.by}' if msg.by else ''}"
        # DOWN, as it cannot tighten under Takt; logged as a stop, not as a fault.
        self.runtime.health.set_state(self.name, HealthState.DOWN, self.disconnected,
                                      stopped=True)
        return self._publish_state()

    @handles(ConnectWrench)
    def _connect_now(self, _: ConnectWrench) -> WrenchState:
        if not self.live:
            raise WrenchDisconnected(f"wrench {self.config.name} has no link (replay)")
        if self.link is None:
            self._connect()  # DeviceUnavailable fails the actor: the supervisor keeps trying
            self.set_health(HealthState.UP)
        return self._publish_state()

    @handles(GetWrenchState)
    def _get_state(self, _: GetWrenchState) -> WrenchState:
        return self._state()

    @handles(GetWrenchStatus)
    def _status(self, _: GetWrenchStatus) -> WrenchStatus:
        c = self.config
        health = self.runtime.health.component(self.name)
        state = msgspec.structs.asdict(self._state())
        return WrenchStatus(
            **state, name=c.name, state=health.state.value, last_error=health.last_error,
            address=f"{c.host}:{c.port}", protocol=c.protocol.value,
            manufacturer=c.manufacturer.value, model=c.model,
            controller=self.info if self.link is not None else None,
            link=None if self.link is None else self.link.statistics())

    @handles(TestWrench)
    def _test(self, _: TestWrench) -> WrenchTest:
        """A round trip that changes nothing: ask for results again. The controller answers
        05 (the subscription was missing: now it is back) or 04 with error 09 (in place)."""
        link = self._live()
        started = time.perf_counter()
        error = None
        try:
            link.subscribe_results()
        except CommandRejected as exc:
            if exc.error != ErrorCode.RESULT_SUBSCRIPTION_EXISTS:
                error = str(exc)
        return WrenchTest(ok=error is None, connected=link.connected, controller=self.info,
                          error=error, latency_ms=round((time.perf_counter() - started) * 1000, 3))

    @handles(ListTightenings)
    def _list(self, msg: ListTightenings) -> TighteningList:
        page = list_tightenings(self.con, self.config.name, ok=msg.ok, cursor=msg.cursor,
                                limit=msg.limit)
        return TighteningList(items=[tightening_view(t) for t in page.items],
                              next_cursor=page.next_cursor)

    # --- helpers --------------------------------------------------------------------------

    def _live(self) -> OpenProtocolLink:
        if not self.live:
            raise WrenchDisconnected(f"wrench {self.config.name} has no link (replay)")
        if self.link is None:
            raise WrenchDisconnected(f"wrench {self.config.name} is "
                                     f"{self.disconnected or 'not connected'}; connect it first")
        return self.link

    def _command(self, command: Callable[[], None]) -> None:
        """Run a link command; a refusal (MID 0004) becomes ControllerRefused, the link stays."""
        try:
            command()
        except CommandRejected as exc:
            self._note(str(exc))
            raise ControllerRefused(str(exc), mid=exc.mid, error=exc.error) from None

    def _check_pset(self, pset: int) -> None:
        if pset not in _PSETS:
            raise ValueError(f"pset {pset} is outside 0..999")

    def _select(self, link: OpenProtocolLink, pset: int | None) -> None:
        """Select pset on the controller; the sequence restarts, sized by Takt's settings."""
        if pset is None:
            return
        self._check_pset(pset)
        self._command(lambda: link.select_pset(pset))
        self.selected = pset
        known = self._pset(pset)
        self._store_controls(selected_pset=pset, sequence_pset=pset,
                             sequence_size=known.batch_size if known is not None else 0,
                             sequence_counter=0)
        self._send_batch_size(link, pset)
        self._publish_state()

    def _send_batch_size(self, link: OpenProtocolLink, pset: int, when: str = "") -> None:
        """Give the controller the sequence's size as pset's batch size (MID 0019), so the
        batch counter and status in its results follow Takt's sequence.

        Takt counts the sequence itself either way, so a refusal is noted as the wrench's
        error and fails nothing: a controller without batch support (error 99), or without
        revision 2 for sizes above 99 (error 97), still runs Takt's sequences; only its own
        batch fields do not follow them. A lost link still fails, as every command does.
        """
        c = self.controls
        if c.sequence_pset != pset or c.sequence_size == 0:
            return  # no sequence of pset, or size 0 (none expected): no batch to size
        what = f"batch size {c.sequence_size} of pset {pset}"
        try:
            link.set_batch_size(pset, c.sequence_size)
        except CommandRejected as exc:
            self._note(f"{what} refused{when}: {exc}; Takt counts the sequence itself")
        except ValueError as exc:
            # More digits than MID 0019 carries: nothing was sent.
            self._note(f"{what} not sent{when}: {exc}; Takt counts the sequence itself")

    def _pset(self, number: int) -> WrenchPset | None:
        """Takt's torque settings of a pset: stored ones first, then the config's."""
        stored = self.programs.get(number)
        if stored is not None:
            return pset_of(stored)
        return self.config.pset(number)

    def _check_programs(self, programs: tuple[WrenchPset, ...]) -> None:
        issues = [ConfigIssue(file="torque settings", line=0, key=key, message=text)
                  for i, p in enumerate(programs) for key, text in pset_problems(f"[{i}]", p)]
        numbers = [p.number for p in programs]
        issues += [ConfigIssue(file="torque settings", line=0, key=f"[{i}].number",
                               message=f"duplicate pset number {n}")
                   for i, n in enumerate(numbers) if n in numbers[:i]]
        issues += [ConfigIssue(file="torque settings", line=0, key=f"[{i}].number",
                               message=f"pset {p.number} is outside 0..999")
                   for i, p in enumerate(programs) if p.number not in _PSETS]
        if issues:
            raise ConfigError(issues)

    def _stored(self, p: WrenchPset, by: str | None) -> StoredProgram:
        return StoredProgram(
            wrench=self.config.name, pset=p.number, name=p.name, torque_min_nm=p.torque_min_nm,
            torque_max_nm=p.torque_max_nm, torque_target_nm=p.torque_target_nm,
            angle_min=p.angle_min, angle_max=p.angle_max, batch_size=p.batch_size,
            updated_us=self.clock.now_us(), updated_by=by)

    def _program_views(self) -> list[ProgramView]:
        numbers = sorted({*self.programs, *(p.number for p in self.config.psets)})
        views = []
        for number in numbers:
            stored = self.programs.get(number)
            pset = self._pset(number)
            assert pset is not None  # in one of the two by construction
            views.append(program_view(pset, stored))
        return views

    def _changed(self, **changes: Any) -> WrenchControls:
        return msgspec.structs.replace(self.controls, updated_us=self.clock.now_us(), **changes)

    def _store_controls(self, **changes: Any) -> None:
        """Store a change of the controls: the row first, then the actor's copy."""
        if any(getattr(self.controls, k) != v for k, v in changes.items()):
            controls = self._changed(**changes)
            save_controls(self.con, controls)
            self.controls = controls

    def _set_controls(self, **changes: Any) -> WrenchState:
        """Store a change of the controls, then publish the new state."""
        self._store_controls(**changes)
        return self._publish_state()

    def _note(self, text: str) -> None:
        self.error = text
        self.log.warning("wrench %s: %s", self.config.name, text)

    def _state(self) -> WrenchState:
        c = self.controls
        connection = ("replay" if not self.live else "connected" if self.link is not None
                      else "disconnected")
        return WrenchState(
            connection=connection, tool_enabled=c.tool_enabled, locked=c.locked,
            selected_pset=self.selected,
            sequence=SequenceView(pset=c.sequence_pset, size=c.sequence_size,
                                  counter=c.sequence_counter,
                                  complete=0 < c.sequence_size <= c.sequence_counter),
            last_result=None if self.last is None else tightening_view(self.last),
            error=self.error, results=self.results, ok=self.ok, nok=self.results - self.ok,
            flagged=self.flagged, malformed=c.malformed)

    def _publish_state(self) -> WrenchState:
        state = self._state()
        self.publish(f"{self.topic}.state", {"wrench": self.config.name,
                                             **msgspec.to_builtins(state)})
        return state

