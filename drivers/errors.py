"""Takt's own driver error types; library errors are translated into these at the boundary."""

from __future__ import annotations

__all__ = ["DeviceUnavailable", "DriverError", "ExceptionResponse", "FrameError"]


class DriverError(Exception):
    """Base class of every error a driver raises."""


class DeviceUnavailable(DriverError):
    """The device cannot be reached (refused, timed out, link lost)."""


class FrameError(DriverError):
    """The device answered with bytes that do not decode; the caller counts and logs it."""


class ExceptionResponse(FrameError):
    """The device understood the request and refused it (a Modbus exception, a Bad status).

    Counted apart from malformed frames: it points at the configuration (a wrong address),
    not at the line.
    """
