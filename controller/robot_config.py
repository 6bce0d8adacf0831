"""The robot part of the station config (seed 003): mobile robots serving the station, each
driven over its controller's HTTP API and followed on its WebSocket stream
(docs/robot-protocol.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import msgspec
from msgspec import Meta

from controller.config_check import Problems, array_rule, duplicate_names

__all__ = ["MAX_ROBOTS", "RobotConfig"]

MAX_ROBOTS = 10

BaseUrl = Annotated[str, Meta(max_length=512,
                              pattern=r"^https?://[A-Za-z0-9.\-\[\]:]+(?::\d{1,5})?/?(?!\n)$")]


class RobotConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, Meta(pattern=r"^[a-z0-9_-]{1,32}(?!\n)$")]
    """Takt's name for the robot; `/api/v1/robots/{name}/...` addresses it (its device_id
    answers too)."""
    enabled: bool = True
    url: BaseUrl
    """The controller's base URL, e.g. `http://10.0.4.20:8765`; its stream is `<url>/ws`."""
    description: Annotated[str, Meta(max_length=256)] = ""
    timeout_ms: Annotated[int, Meta(ge=50, le=30_000)] = 2000
    """How long one request may take; an offline robot fails a command within it."""
    silence_timeout_s: Annotated[float, Meta(ge=1.0, le=60.0)] = 5.0
    """A stream quiet this long (the robot pings every second) is a lost link."""
    telemetry_interval_s: Annotated[float, Meta(ge=1.0, le=3600.0)] = 10.0
    """How often the robot's telemetry logs are copied into the station store."""
    telemetry_batch: Annotated[int, Meta(ge=1, le=500)] = 200
    """Entries asked per log kind and copy; the robot keeps its newest 500."""
    alert_webhook: bool = True
    """Point the robot's alert webhook at Takt on connect (alerts also arrive on the stream;
    the webhook carries them while the stream is down)."""
    webhook_base_url: BaseUrl | None = None
    """How the robot reaches Takt's API; by default `http://<server.host>:<server.port>` (with
    127.0.0.1 for a server on 0.0.0.0, which suits a robot simulated on this machine only)."""


@array_rule(RobotConfig, "name", "url")
def _distinct_robots(items: Sequence[tuple[str, RobotConfig]]) -> Problems:
    items = [(key, r) for key, r in items if r is not None]
    yield from duplicate_names(items, "robot")
    first: dict[str, str] = {}
    for key, r in items:
        url = r.url.rstrip("/").lower()
        if url in first:
            yield f"{key}.url", f"{r.url} is already the robot at {first[url]}"
        else:
            first[url] = key
    if len(items) > MAX_ROBOTS:
        yield items[MAX_ROBOTS][0], f"at most {MAX_ROBOTS} robots per station"
