"""Config actor: the station's effective config, and run-time overrides applied in place.

An override replaces one section (`plcs`, `gpio`, `gateways`); it is checked with every
rule of the config file, stored before it is applied (so it survives a restart), and
applied by asking the section's supervisor to replace only the children whose config
changed. The file itself is never written: dropping the overrides brings it back.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import duckdb
import msgspec

from actors.base import handles
from actors.database import DatabaseActor
from actors.devices import SECTION_CHILDREN, section_specs
from actors.runtime import ActorUnavailable, Request, Runtime, tell
from actors.supervisor import ChildrenChanged, SetChildren
from controller.config import ConfigError, ConfigIssue, Protocol, StationConfig
from controller.overrides import OVERRIDABLE, effective_config
from state.settings import delete_overrides, load_overrides, save_override

__all__ = [
    "ChangeConfig",
    "ConfigActor",
    "ConfigApplied",
    "ConfigChanged",
    "GetOverrides",
    "GetStationConfig",
    "OverridesView",
    "ReloadConfig",
    "ReplaceSection",
    "StationView",
]

Reply = Callable[[Any, BaseException | None], None]


class GetStationConfig(msgspec.Struct, frozen=True, tag=True):
    pass


class StationView(msgspec.Struct, frozen=True, kw_only=True):
    config: StationConfig
    overridden: list[str]


class GetOverrides(msgspec.Struct, frozen=True, tag=True):
    pass


class OverridesView(msgspec.Struct, frozen=True, kw_only=True):
    overrides: dict[str, Any]  # section -> the stored value
    overridable: list[str]


class ReplaceSection(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    section: str
    value: Any  # plain JSON data in the shape of the config section
    by: str


class ChangeConfig(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Set some overrides and drop others in one checked step (`unset_all`: drop every one)."""

    set: dict[str, Any] = {}
    unset: list[str] = []
    unset_all: bool = False
    by: str


class ReloadConfig(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Re-read the stored overrides and re-apply what differs from what runs."""

    by: str


class ProbeWrenches(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Which of these configured wrench controllers answer a short session of their own
    (discovery): name -> (host, port). Answered with {name: ControllerProbe}."""

    targets: dict[str, tuple[str, int]]
    timeout_s: float


class ConfigApplied(msgspec.Struct, frozen=True, kw_only=True):
    section: str
    started: list[str]
    stopped: list[str]
    kept: list[str]
    # PLCs whose bindings could not be checked against the device (it was unreachable).
    unverified: list[str] = []


class ConfigChanged(msgspec.Struct, frozen=True, kw_only=True):
    sections: list[str]  # the sections whose effective config changed
    applied: list[ConfigApplied]
    overridden: list[str]


class ConfigActor(DatabaseActor):
    critical = True

    def __init__(self, runtime: Runtime, name: str, database: duckdb.DuckDBPyConnection,
                 base: StationConfig, config: StationConfig, overridden: list[str],
                 **kw: Any) -> None:
        super().__init__(runtime, name, database, **kw)
        self.base = base  # the file
        self.config = config  # the file with the overrides, as it runs
        self.overridden = sorted(overridden)

    @handles(GetStationConfig)
    def _view(self, _: GetStationConfig) -> StationView:
        return StationView(config=self.config, overridden=self.overridden)

    @handles(GetOverrides)
    def _overrides(self, _: GetOverrides) -> OverridesView:
        return OverridesView(overrides=load_overrides(self.con), overridable=sorted(OVERRIDABLE))

    @handles(ReplaceSection, deferred=True)
    def _replace(self, msg: ReplaceSection, reply: Reply) -> None:
        def one(result: ConfigChanged | None, error: BaseException | None) -> None:
            if result is None:
                reply(None, error)
                return
            applied = next((a for a in result.applied if a.section == msg.section), None)
            reply(applied or ConfigApplied(section=msg.section, started=[], stopped=[],
                                           kept=[]), None)

        self._change(ChangeConfig(set={msg.section: msg.value}, by=msg.by), one)

    @handles(ChangeConfig, deferred=True)
    def _change(self, msg: ChangeConfig, reply: Reply) -> None:
        unknown = sorted((set(msg.set) | set(msg.unset)) - OVERRIDABLE)
        if unknown:
            allowed = ", ".join(sorted(OVERRIDABLE))
            raise ConfigError([ConfigIssue(
                file="override", line=0, key=s,
                message=f"{s} cannot be overridden at run time (overridable: {allowed})")
                for s in unknown])
        stored = {} if msg.unset_all else load_overrides(self.con)
        wanted = {s: v for s, v in stored.items() if s not in msg.unset}
        wanted.update(msg.set)
        new = effective_config(self.base, wanted)  # ConfigError -> the caller, nothing stored
        unverified = self._verify_devices(new)
        # Stored first: an override that is acknowledged survives a crash while applying.
        now = self.clock.now_us()
        if msg.unset_all:
            delete_overrides(self.con)
        else:
            delete_overrides(self.con, [s for s in msg.unset if s in stored])
        for section in msg.set:
            save_override(self.con, section, msgspec.to_builtins(getattr(new, section)), now)
        self._apply(new, sorted(wanted), msg.by, unverified, reply)

    @handles(ProbeWrenches, deferred=True)
    def _probe_wrenches(self, msg: ProbeWrenches, reply: Reply) -> None:
        """Probe every target at once on threads of their own, answering when all are done:
        blocking socket work never holds this actor's mailbox (nor the facade)."""
        from actors.wrench import probe_controller

        found: dict[str, Any] = {}
        lock = threading.Lock()
        gather = _Gather(len(msg.targets), lambda _, error: reply(dict(found), error))

        def probe(name: str, host: str, port: int) -> None:
            try:
                result = probe_controller(host, port, msg.timeout_s)
            except Exception as exc:  # a bug in the probe must still answer the caller
                gather.done(None, exc)
                return
            with lock:
                found[name] = result
            gather.done(None, None)

        for name, (host, port) in msg.targets.items():
            threading.Thread(target=probe, args=(name, host, port), name=f"probe-{name}",
                             daemon=True).start()

    @handles(ReloadConfig, deferred=True)
    def _reload(self, msg: ReloadConfig, reply: Reply) -> None:
        overrides = load_overrides(self.con)
        self._apply(effective_config(self.base, overrides), sorted(overrides), msg.by, [],
                    reply)

    def _apply(self, new: StationConfig, overridden: list[str], by: str,
               unverified: list[str], reply: Reply) -> None:
        changed = [s for s in sorted(OVERRIDABLE) if getattr(new, s) != getattr(self.config, s)]
        self.config = new
        self.overridden = overridden
        if changed:
            self.log.info("%s changed %s", by, ", ".join(changed))
            self.publish("config.changed", {"sections": changed, "by": by}, durable=True)
        to_apply = [s for s in changed if s in SECTION_CHILDREN]
        gather = _Gather(len(to_apply), lambda applied, error: reply(
            None if error else ConfigChanged(sections=changed, applied=applied,
                                             overridden=overridden), error))
        for section in to_apply:
            supervisor, prefix = SECTION_CHILDREN[section]
            notes = unverified if section == "plcs" else []

            def applied(result: ChildrenChanged | None, error: BaseException | None,
                        section: str = section, notes: list[str] = notes) -> None:
                gather.done(None if result is None else ConfigApplied(
                    section=section, started=result.started, stopped=result.stopped,
                    kept=result.kept, unverified=notes), error)

            specs = tuple(section_specs(new, section, self.database))
            try:
                ref = self.runtime.directory.get(supervisor)
                # Answered by the supervisor's callback: this actor never waits on another.
                tell(self.runtime, ref, Request(SetChildren(prefix, specs), applied))
            except ActorUnavailable as exc:
                gather.done(None, exc)

    def _verify_devices(self, new: StationConfig) -> list[str]:
        """Check changed OPC-UA bindings against their live server: unknown nodes and wrong
        types are config errors like any other; an unreachable server is reported back."""
        issues: list[ConfigIssue] = []
        unverified: list[str] = []
        for i, plc in enumerate(new.plcs):
            if (plc.protocol is not Protocol.OPC_UA or not plc.enabled
                    or plc == self.config.plc(plc.name)):
                continue
            from actors.plc_opcua import verify_nodes  # asyncua only where OPC-UA is used

            problems, unreachable = verify_nodes(plc)
            if unreachable is not None:
                unverified.append(f"{plc.name}: {unreachable}")
            issues += [ConfigIssue(file="override of plcs", line=0,
                                   key=f"plcs[{i}].bindings[{j}].{field}", message=text)
                       for j, field, text in problems]
        if issues:
            raise ConfigError(issues)
        return unverified


class _Gather:
    """Collects the answers of several supervisors (on their threads); replies once."""

    def __init__(self, expected: int,
                 reply: Callable[[list[ConfigApplied], BaseException | None], None]) -> None:
        self.lock = threading.Lock()
        self.left = expected
        self.results: list[ConfigApplied] = []
        self.error: BaseException | None = None
        self.reply = reply
        if expected == 0:
            reply([], None)

    def done(self, result: ConfigApplied | None, error: BaseException | None) -> None:
        with self.lock:
            if result is not None:
                self.results.append(result)
            self.error = self.error or error
            self.left -= 1
            finished = self.left == 0
        if finished:
            self.reply(sorted(self.results, key=lambda a: a.section), self.error)


