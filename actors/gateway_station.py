"""What Takt's own PLC-facing servers share: one station's state, kept from the bus.

A `StationGateway` follows the station's inspection, coaching and health events into a
`StationState`, ticks its heartbeat, and hands every change to the server its subclass
runs (Modbus TCP, OPC-UA) on a loop thread of its own.
"""

from __future__ import annotations

import socket
from collections.abc import Collection
from typing import Any, ClassVar

import msgspec

from actors.base import TaktActor, handles
from actors.bus import Event
from actors.health import overall_status
from actors.runtime import Runtime
from controller.clock import TimerHandle
from controller.station_state import (
    InvalidStationInput,
    PassRateWindow,
    StationState,
    apply_coaching,
    apply_inspection,
    apply_system_status,
    changed_fields,
    parse_coaching,
    parse_inspection,
    refresh,
    tick_heartbeat,
)
from drivers.loop_thread import LoopThread

__all__ = ["StationGateway", "bind_problem"]


class _Beat(msgspec.Struct, frozen=True):
    pass


class StationGateway(TaktActor):
    """Keeps one station's state from the bus and pushes each change to a server.

    Subclasses run the server on `self._loop`: `_start_server()` starts it (blocking or
    not), `_push(fields)` stores the changed StationState fields once it serves, and
    `_shutdown()` closes it on the loop.
    """

    #: Names the server in log lines ("Modbus", "OPC-UA").
    protocol: ClassVar[str]
    #: How long a call to the server's loop may take.
    io_timeout_s: ClassVar[float]

    def __init__(
        self, runtime: Runtime, name: str, *, station_id: str, host: str, port: int,
        heartbeat_s: float, loop_name: str, **kw: Any,
    ) -> None:
        super().__init__(runtime, name, **kw)
        if heartbeat_s <= 0:
            raise ValueError("heartbeat_s must be > 0")
        self.station_id = station_id
        self.host = host
        self.port = port
        self.heartbeat_s = heartbeat_s
        self.state = StationState()
        self.window = PassRateWindow()
        self.bad_events = 0
        self._inspection_topic = f"inspection.{station_id}.result"
        self._coaching_topic = f"coaching.{station_id}.state"
        self._loop = LoopThread(loop_name)
        self._subscription: Any = None
        self._beat: TimerHandle | None = None

    # --- hooks for subclasses --------------------------------------------------------

    def _start_server(self) -> None:
        """Start the server on `self._loop`; runs once the state is up to date."""
        raise NotImplementedError

    def _push(self, fields: Collection[str]) -> None:
        """Show the current value of the changed fields to clients (if the server serves)."""
        raise NotImplementedError

    async def _shutdown(self) -> None:
        """Close the server and its connections, on its loop."""
        raise NotImplementedError

    # --- lifecycle -------------------------------------------------------------------

    def started(self) -> None:
        self._subscription = self.bus.subscribe_actor(
            [self._inspection_topic, self._coaching_topic, "health.*"], self.actor_ref,
            name=f"{self.name}:station",
        )
        # A restarted gateway picks up the coaching state it missed; counts start at 0.
        for event in self.bus.retained([self._coaching_topic]):
            self.state = self._apply_event(event)
        self.state = apply_system_status(self.state, self._system_status())
        self._start_server()
        self._beat = self.tell_self_later(self.heartbeat_s, _Beat())

    def stopping(self) -> None:
        self._close()

    def failed(self, error: BaseException) -> None:
        self._close()

    def _close(self) -> None:
        if self._beat is not None:
            self._beat.cancel()
        if self._subscription is not None:
            self.bus.unsubscribe(self._subscription)
            self._subscription = None
        self._stop_server()

    def _stop_server(self) -> None:
        if self._loop.running:
            try:
                self._loop.run(self._shutdown(), self.io_timeout_s)
            except Exception:
                self.log.exception("%s gateway did not close cleanly", self.protocol)
            self._loop.stop()

    # --- messages --------------------------------------------------------------------

    @handles(Event)
    def _on_event(self, event: Event) -> None:
        self._update(self._apply_event(event))

    @handles(_Beat)
    def _on_beat(self, _msg: _Beat) -> None:
        state, self.window = refresh(tick_heartbeat(self.state), self.window, self.clock.now_us())
        self._update(state)
        self._beat = self.tell_self_later(self.heartbeat_s, _Beat())

    # --- state -----------------------------------------------------------------------

    def _apply_event(self, event: Event) -> StationState:
        state = self.state
        try:
            if event.topic == self._inspection_topic:
                state, self.window = apply_inspection(state, self.window,
                                                      parse_inspection(event.data))
            elif event.topic == self._coaching_topic:
                state = apply_coaching(state, parse_coaching(event.data))
            elif event.topic.startswith("health."):
                state = apply_system_status(state, self._system_status())
        except InvalidStationInput as exc:
            self.bad_events += 1
            self.log.warning("ignored %s from %s: %s", event.topic, event.source or "?", exc)
        return state

    def _system_status(self) -> Any:
        return overall_status(self.runtime.health.snapshot())

    def _update(self, state: StationState) -> None:
        fields = changed_fields(self.state, state)
        self.state = state
        if fields:
            self._push(fields)


def bind_problem(host: str, port: int) -> str | None:
    """Why host:port cannot be listened on, in the OS's words; None if it can."""
    # The same options asyncio's create_server uses, so the answer matches the real bind.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None
