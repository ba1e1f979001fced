"""Issue 16 item 8: nosniff on every answer, no-store on every API answer (data and tokens)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from breakwater.core import codec
from tests.conftest import ServerProcess

DOCS = "/v1/collections/todos/docs"
PUSH_BODY = {
    "mutations": [{"mutation_id": "s-1", "collection": "todos", "id": "t1", "op": "delete"}]
}
SIGNUP = {"email": "h@example.com", "password": "p" * 12}

NO_STORE = ["private, no-store"]
# (name, method, path, body, expected status, expected Cache-Control values)
ANSWERS: list[tuple[str, str, str, Any, int, list[str]]] = [
    ("document read", "GET", f"{DOCS}/t1", None, 200, NO_STORE),
    ("query", "GET", DOCS, None, 200, NO_STORE),
    ("pull", "GET", "/v1/sync/pull", None, 200, NO_STORE),
    ("push (direct route)", "POST", "/v1/sync/push", PUSH_BODY, 200, NO_STORE),
    ("push problem (direct route)", "POST", "/v1/sync/push", {"mutations": []}, 400, NO_STORE),
    ("document write", "PUT", f"{DOCS}/t2", {"a": 1}, 201, NO_STORE),
    ("missing document", "GET", f"{DOCS}/nope", None, 404, NO_STORE),
    ("bad collection", "GET", "/v1/collections/a-b/docs", None, 400, NO_STORE),
    ("query-string problem", "GET", "/v1/sync/pull?limit=x", None, 400, NO_STORE),
    ("method not allowed", "DELETE", DOCS, None, 405, NO_STORE),
    ("unknown API path", "GET", "/v1/nothing", None, 404, NO_STORE),
    ("sign-up with tokens", "POST", "/v1/auth/signup", SIGNUP, 201, NO_STORE),
    ("anonymous sign-in with tokens", "POST", "/v1/auth/anonymous", {}, 201, NO_STORE),
    ("liveness", "GET", "/healthz", None, 200, []),
    ("readiness", "GET", "/readyz", None, 200, []),
    ("metrics", "GET", "/metrics", None, 200, []),
    ("OpenAPI document", "GET", "/openapi.json", None, 200, []),
    ("unknown path", "GET", "/nothing", None, 404, []),
]


@pytest.fixture
async def node(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """A node holding todos/t1."""
    assert (await client.put(f"{DOCS}/t1", json={"title": "one"})).status_code == 201
    return client


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "cache_control"),
    [pytest.param(*case[1:], id=case[0]) for case in ANSWERS],
)
async def test_every_answer_is_nosniff_and_every_api_answer_no_store(
    node: httpx.AsyncClient, method: str, path: str, body: Any, status: int, cache_control: Any
) -> None:
    """Data, problems, tokens, health and metrics: never sniffed; API answers never cached."""
    content = None if body is None else codec.dumps(body)
    response = await node.request(method, path, content=content)
    assert response.status_code == status, response.text
    assert response.headers.get_list("x-content-type-options") == ["nosniff"]
    assert response.headers.get_list("cache-control") == cache_control


async def test_a_real_server_adds_both_on_the_coalescing_transport(
    start_server: Callable[..., ServerProcess],
) -> None:
    """Through uvicorn and the coalescing transport of ``serve``, as a device sees them."""
    server = start_server()
    async with httpx.AsyncClient(base_url=server.url) as http:
        pushed = await http.post("/v1/sync/push", json=PUSH_BODY)
        health = await http.get("/healthz")
    assert pushed.headers["cache-control"] == "private, no-store"
    assert pushed.headers["x-content-type-options"] == "nosniff"
    assert health.headers["x-content-type-options"] == "nosniff"


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
