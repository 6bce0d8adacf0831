"""Answers health and metrics questions, so the facade never reads runtime internals."""

from __future__ import annotations

from typing import Any

import msgspec

from actors.base import TaktActor, handles
from actors.health import overall_status
from controller.timefmt import rfc3339
from controller.version import __version__

__all__ = ["ComponentReport", "GetHealth", "GetMetrics", "HealthReport", "Monitor"]


class GetHealth(msgspec.Struct, frozen=True, tag=True):
    """The station's health; `components` limits the report to those names."""

    components: tuple[str, ...] | None = None


class GetMetrics(msgspec.Struct, frozen=True, tag=True):
    pass


class ComponentReport(msgspec.Struct, frozen=True, kw_only=True):
    state: str
    since: str
    restarts: int
    last_error: str | None
    mailbox: int


class HealthReport(msgspec.Struct, frozen=True, kw_only=True):
    status: str
    version: str
    components: dict[str, ComponentReport]


class Monitor(TaktActor):
    critical = True

    @handles(GetHealth)
    def _health(self, msg: GetHealth) -> HealthReport:
        snap = self.runtime.health.snapshot()
        status = overall_status(snap)
        if msg.components is not None:
            snap = {n: c for n, c in snap.items() if n in msg.components}
        return HealthReport(
            status=status,
            version=__version__,
            components={
                name: ComponentReport(
                    state=c.state.value, since=rfc3339(c.since_us), restarts=c.restarts,
                    last_error=c.last_error, mailbox=c.mailbox,
                )
                for name, c in sorted(snap.items())
            },
        )

    @handles(GetMetrics)
    def _metrics(self, _: GetMetrics) -> Any:
        return self.runtime.metrics.render()
