"""/api/v1 routes of the inspection (filled in by issue 6)."""

from __future__ import annotations

from quart import Blueprint

__all__ = ["blueprint"]

blueprint = Blueprint("inspection", __name__, url_prefix="/api/v1")
