"""OpenAPI from the same msgspec Structs the actors use.

quart-schema 0.25 keeps only the first component msgspec reports for a model, so nested
Structs were dangling `$ref`s and `list[X]` came out as `X`. This provider asks msgspec
for the model's own schema plus every component it refers to.
"""

from __future__ import annotations

import inspect
from typing import Any

import msgspec
from quart_schema.openapi import OpenAPIProvider
from quart_schema.validation import DataSource

__all__ = ["TaktOpenAPIProvider"]

_REF = "#/components/schemas/{name}"


def _schema(model: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    (schema,), components = msgspec.json.schema_components([model], ref_template=_REF)
    return schema, components


def _resolve(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    return components[ref.rsplit("/", 1)[1]] if ref else schema


class TaktOpenAPIProvider(OpenAPIProvider):
    def build_request_body(self, model: Any, source: DataSource
                           ) -> tuple[dict[str, Any], dict[str, Any]]:
        schema, components = _schema(model)
        return {"content": {"application/json": {"schema": schema}}, "required": True}, components

    def build_response_object(self, model: Any, headers_model: Any
                              ) -> tuple[dict[str, Any], dict[str, Any]]:
        schema, components = _schema(model)
        doc = inspect.getdoc(model) if isinstance(model, type) and model.__doc__ else ""
        return {"content": {"application/json": {"schema": schema}},
                "description": doc or ""}, components

    def build_querystring_parameters(self, model: Any
                                     ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        schema, components = _schema(model)
        body = _resolve(schema, components)
        required = set(body.get("required", ()))
        params = [
            {"name": name, "in": "query", "schema": prop, "required": name in required}
            for name, prop in body.get("properties", {}).items()
        ]
        return params, components
