"""The inspector part of the station config: which models run on which camera's frames, and
how a prediction becomes pass, fail or uncertain."""

from __future__ import annotations

import msgspec

__all__ = ["InspectorConfig"]


class InspectorConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    enabled: bool = True
