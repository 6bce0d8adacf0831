"""The UPS part of the station config (seed 002 "UPS"): the one UPS that keeps the station up,
read over Network UPS Tools from its upsd."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from controller.config_check import Problems, table_rule
from controller.config_lines import join_key

__all__ = ["UpsConfig"]


class UpsConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    enabled: bool = True
    name: Annotated[str, Meta(pattern=r"^[a-z0-9_-]{1,32}(?!\n)$")] = "ups"  # Takt's name for it
    ups: Annotated[str, Meta(pattern=r"^[A-Za-z0-9_.-]{1,64}(?!\n)$")] = "ups"  # the name in upsd
    host: Annotated[str, Meta(min_length=1)] = "127.0.0.1"
    port: Annotated[int, Meta(ge=1, le=65535)] = 3493
    username: Annotated[str, Meta(min_length=1, max_length=64)] | None = None
    password: Annotated[str, Meta(min_length=1, max_length=256)] | None = None
    timeout_ms: Annotated[int, Meta(ge=50, le=30_000)] = 2000
    poll_interval_ms: Annotated[int, Meta(ge=100, le=60_000)] = 2000
    low_battery_percent: Annotated[float, Meta(ge=0, le=100)] = 30.0
    """On battery at or below this charge, the station acts as on the UPS's own LB flag."""
    simulated: bool = False
    """Takt runs a NUT server with a simulated UPS in-process and reads it over NUT like a
    real one; only then may POST /api/v1/ups/simulate change its power."""


@table_rule(UpsConfig, "username", "password", "simulated")
def _credentials(key: str, u: UpsConfig) -> Problems:
    if (u.username is None) != (u.password is None):
        yield join_key(key, "username"), "give both username and password, or neither"
    if u.simulated and u.host not in ("127.0.0.1", "localhost"):
        yield join_key(key, "host"), "a simulated UPS is served on 127.0.0.1; leave host out"
