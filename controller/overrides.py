"""Config overrides: sections of the station config replaced at run time (pure).

The file stays the engineer's; an override replaces one whole top-level section (the
shape the matching PUT endpoint accepts), is checked with every rule of the file, and is
stored so it survives a restart.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from controller.config import ConfigError, ConfigIssue, StationConfig, check_station

__all__ = ["OVERRIDABLE", "effective_config", "replace_section"]

# Sections an API may replace; the station identity, server and store are file-only,
# because changing them means a restart anyway.
OVERRIDABLE = frozenset({"plcs", "scanners", "printers", "wrenches", "robots", "cameras", "gpio",
                         "gateways", "traceability", "ups", "coaching", "inspector"})


def replace_section(config: StationConfig, section: str, value: Any) -> StationConfig:
    """`config` with `section` replaced by `value` (plain JSON data), fully checked."""
    if section not in OVERRIDABLE:
        raise ConfigError([ConfigIssue(file="override", line=0, key=section,
                                       message=f"{section} cannot be overridden at run time")])
    raw = msgspec.to_builtins(config)
    raw[section] = value
    return check_station(raw, f"override of {section}")


def effective_config(base: StationConfig, overrides: Mapping[str, Any]) -> StationConfig:
    """The file config with every stored override applied (checked together)."""
    raw = msgspec.to_builtins(base)
    for section, value in overrides.items():
        if section not in OVERRIDABLE:
            raise ConfigError([ConfigIssue(file="override", line=0, key=section,
                                           message="not an overridable section")])
        raw[section] = value
    return check_station(raw, "stored overrides")
