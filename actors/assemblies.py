"""Assemblies actor: every change of assembly revisions, assemblies, steps and step data, and
the reads of assemblies and assembly records, on a cursor of its own.

One actor owns the writes so that two engineers editing the same assembly are serialised and
each change is checked against the dependency rules in its own transaction
(state/assemblies.py). The API calls it with AssemblyCall naming one function of
state.assemblies or state.records; the clock's now_us is filled in here.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import msgspec

from actors.base import handles
from actors.database import DatabaseActor
from state import assemblies, records

__all__ = ["READS", "WRITES", "AssembliesActor", "AssemblyCall"]

WRITES = frozenset({
    "create_revision", "set_active_assembly", "create_assembly", "update_assembly",
    "touch_assembly", "publish_assembly", "copy_assembly", "add_step", "update_step",
    "delete_step", "delete_perspective", "move_step", "copy_step", "add_step_data",
    "delete_step_data", "set_step_data_info", "delete_step_data_info",
})
READS = frozenset({
    "get_revision", "list_revisions", "coachable", "get_assembly", "list_assemblies",
    "list_steps", "get_step", "step_moves", "load_assembly",
    "get_record", "list_records", "step_records", "record_metrics", "step_performance",
})
_RECORD_READS = frozenset({"get_record", "list_records", "step_records", "record_metrics",
                           "step_performance"})


def _function(name: str) -> Callable[..., Any]:
    return getattr(records if name in _RECORD_READS else assemblies, name)  # type: ignore[no-any-return]


class AssemblyCall(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    """Call `function` of state.assemblies / state.records with `args` (a cursor and, for
    writes, now_us are added); answers what it returns."""

    function: str
    args: dict[str, Any] = {}


class AssembliesActor(DatabaseActor):
    @handles(AssemblyCall)
    def _call(self, msg: AssemblyCall) -> Any:
        if msg.function not in WRITES | READS:
            raise ValueError(f"no assembly function {msg.function!r}")
        fn = _function(msg.function)
        args = dict(msg.args)
        if "now_us" in inspect.signature(fn).parameters:
            args["now_us"] = self.clock.now_us()
        return fn(self.con, **args)
