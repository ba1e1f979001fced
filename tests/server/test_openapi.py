"""The served OpenAPI document."""

from __future__ import annotations

import httpx


async def test_openapi_lists_every_endpoint(client: httpx.AsyncClient) -> None:
    """/openapi.json describes the document, query, sync and health endpoints."""
    spec = (await client.get("/openapi.json")).json()
    paths = spec["paths"]
    assert set(paths["/v1/collections/{collection}/docs/{doc_id}"]) == {
        "get",
        "put",
        "patch",
        "delete",
    }
    assert "get" in paths["/v1/collections/{collection}/docs"]
    assert "post" in paths["/v1/sync/push"]
    assert "get" in paths["/v1/sync/pull"]
    assert {"/healthz", "/readyz", "/metrics"} <= set(paths)


async def test_openapi_lists_the_status_and_admin_endpoints(client: httpx.AsyncClient) -> None:
    """The public status and every admin endpoint are in the spec, admin ones with 401/403."""
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert "get" in paths["/v1/status"]
    admin = {
        ("/v1/admin/overview", "get"),
        ("/v1/admin/collections/{collection}/rules/test", "post"),
        ("/v1/admin/keys", "get"),
        ("/v1/admin/keys", "post"),
        ("/v1/admin/keys/{key_id}", "delete"),
        ("/v1/admin/accounts", "get"),
        ("/v1/admin/accounts/{uid}/roles", "put"),
        ("/v1/admin/accounts/{uid}", "delete"),
        ("/v1/admin/conflicts", "get"),
    }
    for path, method in admin:
        assert {"401", "403", "404"} <= set(paths[path][method]["responses"]), (path, method)


async def test_push_body_schema_is_documented(client: httpx.AsyncClient) -> None:
    """The push request body schema names its fields, though the route parses raw JSON."""
    spec = (await client.get("/openapi.json")).json()
    body = spec["paths"]["/v1/sync/push"]["post"]["requestBody"]["content"]["application/json"]
    assert set(body["schema"]["properties"]) == {"client_id", "mutations"}


async def test_every_operation_with_a_body_documents_415(client: httpx.AsyncClient) -> None:
    """A compressed body is a 415, so every operation that takes a body lists it."""
    spec = (await client.get("/openapi.json")).json()
    with_body = [
        (path, method, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if "requestBody" in operation
    ]
    assert with_body
    missing = [(p, m) for p, m, op in with_body if "415" not in op["responses"]]
    assert missing == []
