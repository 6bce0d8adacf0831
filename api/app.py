"""The Quart-Trio application: blueprints, OpenAPI, problem-details errors, request metrics."""

from __future__ import annotations

import logging
import time
import uuid

from quart import Response, g, request
from quart_schema import QuartSchema
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from actors.runtime import ActorUnavailable, AskTimeout, Runtime
from api import (
    assemblies,
    auth,
    cameras,
    coaching,
    config,
    events,
    gateways,
    gpio,
    inspection,
    journal,
    operators,
    plcs,
    printers,
    robot_ws,
    robots,
    scanners,
    step_events,
    system,
    traceability,
    ups,
    users,
    wrenches,
    ws,
)
from api.http import Facade
from api.openapi import TaktOpenAPIProvider
from api.problems import Problem, problem_response
from api.tokens import TokenIssuer
from controller.config import StationConfig
from controller.ratelimit import SlidingWindowLimiter
from controller.version import __version__

__all__ = ["create_app"]

log = logging.getLogger("takt.api")

MAX_BODY_BYTES = 1 << 20


def create_app(runtime: Runtime, station: StationConfig, token_secret: bytes) -> QuartTrio:
    app = QuartTrio("takt")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.config["QUART_SCHEMA_CONVERSION_PREFERENCE"] = "msgspec"
    QuartSchema(
        app,
        info={"title": f"Takt station {station.station.id}", "version": __version__},
        security_schemes={"bearer": {"type": "http", "scheme": "bearer",
                                     "bearer_format": "JWT or takt_ API key"}},
        conversion_preference="msgspec",
        redoc_ui_path=None, scalar_ui_path=None,
        openapi_provider_class=TaktOpenAPIProvider,
    )
    app.extensions["takt"] = Facade(
        runtime=runtime,
        station=station,
        tokens=TokenIssuer(token_secret, issuer=f"takt:{station.station.id}"),
        login_limiter=SlidingWindowLimiter(limit=10, window_s=60.0),
    )
    for bp in (system.blueprint, auth.blueprint, users.blueprint, plcs.blueprint,
               plcs.bindings_blueprint, scanners.blueprint, printers.blueprint, gpio.blueprint,
               gateways.blueprint, traceability.scanner_blueprint,
               traceability.codes_blueprint, traceability.batches_blueprint,
               traceability.accounting_blueprint, journal.blueprint, events.blueprint,
               config.blueprint,
               config.catalog_blueprint, wrenches.blueprint, wrenches.torque_blueprint,
               wrenches.catalog_blueprint, ups.blueprint, robots.blueprint,
               robot_ws.blueprint, assemblies.blueprint, coaching.blueprint,
               operators.blueprint, step_events.blueprint, cameras.blueprint,
               inspection.blueprint, ws.blueprint):
        app.register_blueprint(bp)
    _install_errors(app)
    _install_metrics(app, runtime)
    return app


def _install_errors(app: QuartTrio) -> None:
    @app.errorhandler(Problem)
    async def on_problem(exc: Problem) -> Response:
        return problem_response(exc, request.path)

    @app.errorhandler(HTTPException)
    async def on_http(exc: HTTPException) -> Response:
        status = exc.code or 500
        detail = exc.description or exc.name
        if status == 413:
            detail = f"the body is larger than {MAX_BODY_BYTES} bytes"
        elif status == 404:
            detail = f"no resource at {request.path}"
        elif status == 405:
            detail = f"{request.method} is not allowed on {request.path}"
        return problem_response(Problem(status, detail), request.path)

    @app.errorhandler(ActorUnavailable)
    async def on_unavailable(exc: ActorUnavailable) -> Response:
        return problem_response(
            Problem(503, str(exc), headers={"Retry-After": "5"}), request.path
        )

    @app.errorhandler(AskTimeout)
    async def on_timeout(exc: AskTimeout) -> Response:
        return problem_response(
            Problem(503, str(exc), headers={"Retry-After": "5"}), request.path
        )

    @app.errorhandler(Exception)
    async def on_bug(exc: Exception) -> Response:
        # A bug, not bad input: log it in full here, tell the client only a reference.
        ref = uuid.uuid4().hex[:12]
        log.error("unhandled error %s on %s %s", ref, request.method, request.path,
                  exc_info=exc)
        return problem_response(
            Problem(500, f"internal error; the station log has the details (ref {ref})"),
            request.path,
        )


def _install_metrics(app: QuartTrio, runtime: Runtime) -> None:
    histogram = runtime.metrics.http_request_seconds

    @app.before_request
    async def start_timer() -> None:
        g.t0 = time.perf_counter()

    @app.after_request
    async def observe(response: Response) -> Response:
        t0 = getattr(g, "t0", None)
        if t0 is not None:
            route = request.url_rule.rule if request.url_rule else "unmatched"
            histogram.labels(request.method, route, str(response.status_code)).observe(
                time.perf_counter() - t0
            )
        return response
