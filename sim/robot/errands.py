"""The demo's robot errands: a line runner that takes the robot from waypoint to waypoint and
back to its dock, as a supervisor's tablet or an MES would, over the robot's own HTTP API."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence

from drivers.errors import DriverError
from drivers.robot.client import RobotClient
from drivers.robot.messages import MotionState

__all__ = ["Errands"]

_DONE = frozenset({MotionState.ARRIVED, MotionState.DOCKED, MotionState.CANCELED,
                   MotionState.FAILED, MotionState.IDLE})
_JOIN_TIMEOUT_S = 5.0


class Errands:
    """Sends the robot to each stop in turn ("dock" docks it), pausing pause_s at each."""

    def __init__(self, base_url: str, stops: Sequence[str] = ("pick", "place", "inspect", "dock"),
                 *, pause_s: float = 8.0, poll_s: float = 0.5) -> None:
        if pause_s <= 0 or poll_s <= 0:
            raise ValueError("pause_s and poll_s must be > 0")
        self._url = base_url
        self._stops = tuple(stops)
        self._pause_s = pause_s
        self._poll_s = poll_s
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.errands = 0  # stops reached or given up on

    def start(self) -> Errands:
        if self._thread is not None:
            raise RuntimeError("errands already running")
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="robot-errands", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stopping.set()
            thread.join(_JOIN_TIMEOUT_S)

    def _run(self) -> None:
        with RobotClient(self._url, name="line-runner") as robot:
            for stop in itertools.cycle(self._stops):
                if self._stopping.wait(self._pause_s):
                    return
                try:
                    if stop == "dock":
                        robot.dock()
                    else:
                        robot.go_to_waypoint(stop)
                    # Wait for the outcome; a stalled robot is given up on after a minute.
                    for _ in range(int(60 / self._poll_s)):
                        if self._stopping.wait(self._poll_s):
                            return
                        if robot.state().motion in _DONE:
                            break
                except DriverError:
                    pass  # refused (battery low) or away: the next errand tries again
                self.errands += 1
