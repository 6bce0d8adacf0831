"""Health (open, no auth) and Prometheus metrics."""

from __future__ import annotations

from pathlib import Path

from quart import Blueprint, Response, send_from_directory
from quart_schema import document_response, hide, tag

from actors.monitor import GetHealth, GetMetrics, HealthReport
from actors.runtime import ActorUnavailable, AskTimeout
from api.http import ask_actor, json_response

__all__ = ["blueprint"]

blueprint = Blueprint("system", __name__)

STATIC = Path(__file__).parent / "static"


@blueprint.get("/")
@hide
async def index() -> object:
    """The station's built-in live view (health, signals, events); it signs in like any client."""
    return await send_from_directory(STATIC, "index.html")


@blueprint.get("/api/v1/health")
@tag(["system"])
@document_response(HealthReport)
async def health() -> object:
    """Overall status and every component's state; 503 when the station is unhealthy."""
    try:
        report = await ask_actor("monitor", GetHealth(), timeout=2.0)
    except (ActorUnavailable, AskTimeout) as exc:
        return json_response({"status": "unhealthy", "version": None, "components": {},
                              "detail": str(exc)}, 503)
    return json_response(report, 503 if report.status == "unhealthy" else 200)


@blueprint.get("/metrics")
@tag(["system"])
async def metrics() -> object:
    """Prometheus text exposition: actors, bus, store commits, HTTP requests."""
    text = await ask_actor("monitor", GetMetrics(), timeout=2.0)
    return Response(text, content_type="text/plain; version=0.0.4; charset=utf-8")
