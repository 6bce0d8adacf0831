"""RFC 9457 problem details: every error the facade returns has this shape."""

from __future__ import annotations

from typing import Any

import msgspec
from quart import Response

from controller.config_check import ConfigError

__all__ = ["FieldError", "Problem", "config_problem", "problem_response"]

_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}

_ENCODER = msgspec.json.Encoder()


class FieldError(msgspec.Struct, frozen=True, kw_only=True):
    field: str
    message: str


class Problem(Exception):
    """Raise anywhere in a handler to answer with a problem document."""

    def __init__(self, status: int, detail: str, *, title: str | None = None,
                 type_: str | None = None, errors: list[FieldError] | None = None,
                 headers: dict[str, str] | None = None,
                 extensions: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.title = title or _TITLES.get(status, "Error")
        self.type = type_ or f"https://takt.dev/problems/{self.title.lower().replace(' ', '-')}"
        self.errors = errors or []
        self.headers = headers or {}
        self.extensions = extensions or {}  # RFC 9457 extension members, e.g. a device's reason

    def document(self, instance: str | None = None) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "type": self.type, "title": self.title, "status": self.status, "detail": self.detail,
        }
        if instance:
            doc["instance"] = instance
        if self.errors:
            doc["errors"] = [msgspec.structs.asdict(e) for e in self.errors]
        return {**self.extensions, **doc}


def problem_response(problem: Problem, instance: str | None = None) -> Response:
    body = _ENCODER.encode(problem.document(instance))
    response = Response(body, status=problem.status, content_type="application/problem+json")
    for key, value in problem.headers.items():
        response.headers[key] = value
    return response


def config_problem(exc: ConfigError, rename: dict[str, str] | None = None) -> Problem:
    """422 with one field error per config issue, keyed as the request body was."""
    errors = []
    for issue in exc.issues:
        key = issue.key
        for prefix, replacement in (rename or {}).items():
            if key == prefix or key.startswith((prefix + ".", prefix + "[")):
                key = replacement + key[len(prefix):]
                break
        errors.append(FieldError(field=key.lstrip(".") or "body", message=issue.message))
    return Problem(422, f"the configuration is invalid ({len(errors)} problem(s))",
                   errors=errors)
