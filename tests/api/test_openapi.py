"""The OpenAPI document describes every route, and every reference in it resolves."""

from __future__ import annotations

from typing import Any


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if "$ref" in node else []
        return found + [r for v in node.values() for r in refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in refs(v)]
    return []


async def test_openapi_is_complete_and_self_contained(client: Any) -> None:
    r = await client.get("/openapi.json")
    assert r.status_code == 200
    doc = await r.get_json()
    assert doc["openapi"].startswith("3.")
    for path in ("/api/v1/health", "/api/v1/auth/login", "/api/v1/plcs",
                 "/api/v1/plcs/{name}/signals/{signal}", "/api/v1/users", "/api/v1/api-keys"):
        assert path in doc["paths"], path
    components = doc["components"]["schemas"]
    for ref in refs(doc):
        assert ref.startswith("#/components/schemas/")
        assert ref.rsplit("/", 1)[1] in components, ref
    plcs = doc["paths"]["/api/v1/plcs"]["get"]["responses"]["200"]["content"]
    assert plcs["application/json"]["schema"]["type"] == "array"
    assert (await client.get("/docs")).status_code == 200
