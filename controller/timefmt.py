"""RFC 3339 UTC timestamps for the API (the store and the bus keep integer microseconds)."""

from __future__ import annotations

import datetime as dt

__all__ = ["rfc3339"]


def rfc3339(us: int) -> str:
    stamp = dt.datetime.fromtimestamp(us / 1_000_000, tz=dt.UTC)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")
