"""The traceability part of the station config: which industry's codes the line marks, which
line and party new codes belong to, where the reject signal goes and which labels are printed
when a package, box or batch is complete."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from controller.codes import industry_profile
from controller.config_check import Problems, table_rule
from controller.config_lines import join_key

__all__ = ["EjectConfig", "LabelRule", "LabelsConfig", "TraceabilityConfig"]

_Name = Annotated[str, Meta(pattern=r"^[a-z0-9_-]{1,32}(?!\n)$")]


class _Table(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class LabelRule(_Table):
    """Print a label on `printer` with `template` (the built-in `batch` label by default).

    The template may use the batch identifier as its code and the fields identifier, name,
    kind, count and gtin.
    """

    printer: _Name
    template: Annotated[str, Meta(min_length=1, max_length=64)] = "batch"


class LabelsConfig(_Table):
    """The label printed when a batch of each kind becomes complete (none when left out)."""

    batch: LabelRule | None = None
    package: LabelRule | None = None
    box: LabelRule | None = None

    def for_kind(self, kind: str) -> LabelRule | None:
        return getattr(self, kind, None)


class EjectConfig(_Table):
    """The PLC output that pushes a refused item off the line: Takt writes it true; the PLC
    resets it once the pusher has fired."""

    plc: _Name
    signal: Annotated[str, Meta(min_length=1)]


class TraceabilityConfig(_Table):
    industry: str = "generic"
    line_id: Annotated[str, Meta(max_length=64)] | None = None
    party: Annotated[str, Meta(max_length=64)] | None = None
    eject: EjectConfig | None = None
    labels: LabelsConfig = LabelsConfig()
    # When set, an ADD scan with no open batch on the line opens one of this capacity: a line
    # that closes a batch every N items without an operator opening each.
    auto_batch: Annotated[int, Meta(ge=1, le=1_000_000)] | None = None
    recent: Annotated[int, Meta(ge=1, le=10_000)] = 500  # scans kept for /scanner/recent


@table_rule(TraceabilityConfig, "industry")
def _known_industry(key: str, t: TraceabilityConfig) -> Problems:
    try:
        industry_profile(t.industry)
    except ValueError as exc:
        yield join_key(key, "industry"), str(exc)
