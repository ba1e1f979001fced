"""Issue 16 item 8: nosniff on every answer, no-store on every API answer (data and tokens)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from breakwater.core import codec

DOCS = "/v1/collections/todos/docs"
PUSH_BODY = {
    "mutations": [{"mutation_id": "s-1", "collection": "todos", "id": "t1", "op": "delete"}]
}
SIGNUP = {"email": "h@example.com", "password": "p" * 12}

# (name, method, path, body, expected status)
API_ANSWERS: list[tuple[str, str, str, Any, int]] = [
    ("document read", "GET", f"{DOCS}/t1", None, 200),
    ("query", "GET", DOCS, None, 200),
    ("pull", "GET", "/v1/sync/pull", None, 200),
    ("push (direct route)", "POST", "/v1/sync/push", PUSH_BODY, 200),
    ("push problem (direct route)", "POST", "/v1/sync/push", {"mutations": []}, 400),
    ("document write", "PUT", f"{DOCS}/t2", {"a": 1}, 201),
    ("missing document", "GET", f"{DOCS}/nope", None, 404),
    ("bad collection", "GET", "/v1/collections/a-b/docs", None, 400),
    ("query-string problem", "GET", "/v1/sync/pull?limit=x", None, 400),
    ("method not allowed", "DELETE", DOCS, None, 405),
    ("unknown API path", "GET", "/v1/nothing", None, 404),
    ("sign-up with tokens", "POST", "/v1/auth/signup", SIGNUP, 201),
    ("anonymous sign-in with tokens", "POST", "/v1/auth/anonymous", {}, 201),
]
OTHER_ANSWERS: list[tuple[str, str, str, Any, int]] = [
    ("liveness", "GET", "/healthz", None, 200),
    ("readiness", "GET", "/readyz", None, 200),
    ("metrics", "GET", "/metrics", None, 200),
    ("OpenAPI document", "GET", "/openapi.json", None, 200),
    ("unknown path", "GET", "/nothing", None, 404),
]


async def _send(client: httpx.AsyncClient, method: str, path: str, body: Any) -> httpx.Response:
    content = None if body is None else codec.dumps(body)
    return await client.request(method, path, content=content)


@pytest.fixture
async def node(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """A node holding todos/t1."""
    assert (await client.put(f"{DOCS}/t1", json={"title": "one"})).status_code == 201
    return client


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [pytest.param(*case[1:], id=case[0]) for case in API_ANSWERS],
)
async def test_every_api_answer_is_nosniff_and_no_store(
    node: httpx.AsyncClient, method: str, path: str, body: Any, status: int
) -> None:
    """Data, problems and tokens: never sniffed, never kept by any cache."""
    response = await _send(node, method, path, body)
    assert response.status_code == status, response.text
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers.get_list("cache-control") == ["private, no-store"]


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [pytest.param(*case[1:], id=case[0]) for case in OTHER_ANSWERS],
)
async def test_every_other_answer_is_nosniff(
    node: httpx.AsyncClient, method: str, path: str, body: Any, status: int
) -> None:
    """Health, metrics and unknown paths carry nosniff too."""
    response = await _send(node, method, path, body)
    assert response.status_code == status
    assert response.headers.get_list("x-content-type-options") == ["nosniff"]


async def test_an_unexpected_error_is_nosniff_and_no_store(
    make_client: Callable[..., Any],
) -> None:
    """The bare 500 of a bug, answered outside every other middleware, carries both."""
    client: httpx.AsyncClient = await make_client()
    app = client.app  # type: ignore[attr-defined]

    async def boom() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/v1/boom", boom)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as raw:
        response = await raw.get("/v1/boom")
    assert response.status_code == 500
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "private, no-store"
