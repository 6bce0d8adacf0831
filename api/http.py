"""Request/response plumbing shared by every blueprint: the runtime, asks, JSON in and out.

Bodies and query strings are decoded by msgspec into the same Structs the actors use;
quart-schema only documents them (OpenAPI), so the error semantics stay ours:
malformed JSON -> 400, wrong media type -> 415, well-formed but invalid -> 422.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec
from quart import Response, current_app, request
from quart_schema import document_querystring, document_request

from actors.bridge import ask
from actors.runtime import Runtime
from api.problems import FieldError, Problem
from api.relay import RelayHub
from api.tokens import TokenIssuer
from controller.config import StationConfig
from controller.ratelimit import SlidingWindowLimiter

__all__ = ["Facade", "ask_actor", "body", "facade", "field_errors", "json_response", "query"]

T = TypeVar("T")
Handler = Callable[..., Awaitable[Any]]

_ENCODER = msgspec.json.Encoder()
_PATH = re.compile(r"at `\$(.*)`$")


@dataclass
class Facade:
    """What the facade holds: the runtime to message, and its own small state."""

    runtime: Runtime
    station: StationConfig
    tokens: TokenIssuer
    login_limiter: SlidingWindowLimiter
    ask_timeout_s: float = 5.0
    robot_relay: RelayHub = field(default_factory=RelayHub)  # /ws/robots/<robot> rooms


def facade() -> Facade:
    return current_app.extensions["takt"]  # type: ignore[no-any-return]


async def ask_actor(name: str, message: Any, timeout: float | None = None) -> Any:
    """Ask the named actor; ActorUnavailable / AskTimeout become 503 in the error handlers."""
    f = facade()
    ref = f.runtime.directory.get(name)
    return await ask(f.runtime, ref, message, timeout or f.ask_timeout_s)


def json_response(value: Any, status: int = 200, headers: dict[str, str] | None = None
                  ) -> Response:
    return Response(_ENCODER.encode(value), status=status, content_type="application/json",
                    headers=headers)


def field_errors(exc: msgspec.ValidationError) -> list[FieldError]:
    text = str(exc)
    match = _PATH.search(text)
    path = match.group(1).lstrip(".") if match else ""
    message = _PATH.sub("", text).rstrip(" -")
    return [FieldError(field=path or "body", message=message)]


def body(model: type[T], *, raw: bool = False) -> Callable[[Handler], Handler]:
    """Decode the JSON body into `model` and pass it as `data=`.

    With `raw`, the body is passed as plain JSON data and `model` only documents it: for
    config sections, which the config checker validates so that every problem is reported
    at once with its field path, not just the first one msgspec meets.
    """
    decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(Any if raw else model)

    def wrap(fn: Handler) -> Handler:
        @functools.wraps(fn)
        async def handler(*args: Any, **kwargs: Any) -> Any:
            if request.mimetype != "application/json":
                raise Problem(415, "send the body as application/json")
            raw = await request.get_data(cache=False)
            try:
                data = decoder.decode(raw)
            except msgspec.ValidationError as exc:
                raise Problem(422, "the body does not match the schema",
                              errors=field_errors(exc)) from None
            except msgspec.DecodeError as exc:
                raise Problem(400, f"the body is not valid JSON: {exc}") from None
            return await fn(*args, data=data, **kwargs)

        return document_request(model)(handler)  # type: ignore[no-any-return]

    return wrap


def query(model: type[T]) -> Callable[[Handler], Handler]:
    """Convert the query string into `model` (strings coerced) and pass it as `q=`."""

    def wrap(fn: Handler) -> Handler:
        @functools.wraps(fn)
        async def handler(*args: Any, **kwargs: Any) -> Any:
            try:
                q = msgspec.convert(dict(request.args), model, strict=False)
            except msgspec.ValidationError as exc:
                raise Problem(400, "invalid query parameters", errors=field_errors(exc)) from None
            return await fn(*args, q=q, **kwargs)

        return document_querystring(model)(handler)  # type: ignore[no-any-return]

    return wrap
