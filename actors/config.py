"""Config actor: the station's effective config, and run-time overrides applied in place.

An override replaces one section (`plcs`, `gpio`); it is checked with every rule of the
config file, stored before it is applied (so it survives a restart), and applied by
asking the section's supervisor to replace only the children whose config changed.
"""

from __future__ import annotations

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
from controller.overrides import replace_section
from state.settings import save_override

__all__ = ["ConfigActor", "ConfigApplied", "GetStationConfig", "ReplaceSection", "StationView"]

Reply = Callable[[Any, BaseException | None], None]


class GetStationConfig(msgspec.Struct, frozen=True, tag=True):
    pass


class StationView(msgspec.Struct, frozen=True, kw_only=True):
    config: StationConfig
    overridden: list[str]


class ReplaceSection(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    section: str
    value: Any  # plain JSON data in the shape of the config section
    by: str


class ConfigApplied(msgspec.Struct, frozen=True, kw_only=True):
    section: str
    started: list[str]
    stopped: list[str]
    kept: list[str]
    # PLCs whose bindings could not be checked against the device (it was unreachable).
    unverified: list[str] = []


class ConfigActor(DatabaseActor):
    critical = True

    def __init__(self, runtime: Runtime, name: str, database: duckdb.DuckDBPyConnection,
                 config: StationConfig, overridden: list[str], **kw: Any) -> None:
        super().__init__(runtime, name, database, **kw)
        self.config = config
        self.overridden = sorted(overridden)

    @handles(GetStationConfig)
    def _view(self, _: GetStationConfig) -> StationView:
        return StationView(config=self.config, overridden=self.overridden)

    @handles(ReplaceSection, deferred=True)
    def _replace(self, msg: ReplaceSection, reply: Reply) -> None:
        new = replace_section(self.config, msg.section, msg.value)  # ConfigError -> caller
        unverified = self._verify_devices(new) if msg.section == "plcs" else []
        section = msgspec.to_builtins(getattr(new, msg.section))
        # Stored first: an override that is acknowledged survives a crash while applying.
        save_override(self.con, msg.section, section, self.clock.now_us())
        self.config = new
        self.overridden = sorted({*self.overridden, msg.section})
        self.log.info("%s replaced %s", msg.by, msg.section)
        self.publish("config.changed", {"section": msg.section, "by": msg.by},
                     durable=True)
        if msg.section not in SECTION_CHILDREN:
            reply(ConfigApplied(section=msg.section, started=[], stopped=[], kept=[],
                                unverified=unverified), None)
            return
        supervisor, prefix = SECTION_CHILDREN[msg.section]

        def applied(result: ChildrenChanged | None, error: BaseException | None) -> None:
            if error is not None or result is None:
                reply(None, error)
                return
            reply(ConfigApplied(section=msg.section, started=result.started,
                                stopped=result.stopped, kept=result.kept,
                                unverified=unverified), None)

        specs = tuple(section_specs(new, msg.section))
        try:
            ref = self.runtime.directory.get(supervisor)
            # Answered by the supervisor's callback: this actor never waits on another.
            tell(self.runtime, ref, Request(SetChildren(prefix, specs), applied))
        except ActorUnavailable as exc:
            reply(None, exc)


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
