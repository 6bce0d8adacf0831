"""The one error the simulated robot raises for a request it will not carry out."""

from __future__ import annotations

from drivers.robot.messages import Reason

__all__ = ["Refused"]


class Refused(Exception):
    """The robot declines a request; the server turns it into an error reply with reason."""

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
