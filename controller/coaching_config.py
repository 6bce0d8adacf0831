"""The coaching part of the station config (seed 000 "Coaching", "Settings"): how the station's
sequencer coaches, and where an OK part is released."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from controller.config_check import Problems, table_rule

__all__ = ["CoachingConfig", "ReleaseOutput"]


class ReleaseOutput(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The PLC output that releases the part to the line (a bool, direction out)."""

    plc: Annotated[str, Meta(pattern=r"^[a-z0-9_-]{1,32}(?!\n)$")]
    signal: Annotated[str, Meta(min_length=1)]


class CoachingConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    enabled: bool = True
    auto_advance: bool = True
    """A complete step hands over to the next at once; off, the operator advances."""
    release_control: bool = False
    """Seed 000 "release_control_enabled": the part is released through `release` only when
    its record completes OK. Taken by each record when it starts."""
    release: ReleaseOutput | None = None
    machine: Annotated[str, Meta(min_length=1, max_length=128)] | None = None
    """The machine name of this station's step events; by default the station's name."""
    ocr_interval_s: Annotated[float, Meta(ge=0.1, le=60)] = 1.0
    """While a step waits for text (OCR_CAPTURE, OCR_CHECK, OCR_VERIFY), the inspector reads
    the camera's newest frame again this long after each read."""


@table_rule(CoachingConfig, "release_control", "release")
def _release_needs_output(key: str, c: CoachingConfig) -> Problems:
    if c.release_control and c.release is None:
        yield (f"{key}.release" if key else "release",
               "release_control needs [coaching.release] (the PLC output that releases)")
