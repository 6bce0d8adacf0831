"""The input boundary: everything that enters Takt from outside passes here.

Device actors hand every decoded input to `Ingest.input`, the facade every API
command to `Ingest.command`. Both publish on `input.<source>` / `command.<source>`,
which is all the recorder subscribes to and all replay injects, so a recording holds
exactly what crossed into the station and nothing derived from it.
"""

from __future__ import annotations

import re
from typing import Any

from actors.bus import Bus, Event

__all__ = ["Ingest", "InvalidSource"]

_SOURCE = re.compile(r"^[a-z0-9_-]+(\.[a-z0-9_:-]+)*$")


class InvalidSource(ValueError):
    """A source name that would make an ambiguous or unsubscribable topic."""


class Ingest:
    def __init__(self, bus: Bus) -> None:
        self._bus = bus

    def input(self, source: str, data: Any, *, durable: bool = False) -> Event:
        """A decoded input from a device, e.g. source `plc.line1`."""
        return self._bus.publish(f"input.{_check(source)}", data, source=source, durable=durable)

    def command(self, source: str, data: Any, *, durable: bool = True) -> Event:
        """A command from outside (API, HMI, operator); commands are journaled by default."""
        return self._bus.publish(
            f"command.{_check(source)}", data, source=source, durable=durable
        )


def _check(source: str) -> str:
    if not _SOURCE.match(source):
        raise InvalidSource(f"invalid input source {source!r}: use dotted lower-case names")
    return source
