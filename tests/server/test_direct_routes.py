"""``POST /v1/sync/push`` skips the routing layers but answers exactly as a routed endpoint."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from breakwater.server.direct_routes import DirectRoutes

PUSH = {"mutations": [{"mutation_id": "m1", "collection": "t", "id": "a", "op": "set", "data": {}}]}


async def test_a_push_is_counted_and_logged_under_its_route(client: httpx.AsyncClient) -> None:
    """Metrics carry the route template for pushes as for any routed request."""
    assert (await client.post("/v1/sync/push", json=PUSH)).status_code == 200
    assert (await client.post("/v1/sync/push", content=b"{")).status_code == 400
    metrics = (await client.get("/metrics")).text
    assert (
        'breakwater_http_requests_total{method="POST",route="/v1/sync/push",status="200"} 1.0'
        in metrics
    )
    assert (
        'breakwater_http_requests_total{method="POST",route="/v1/sync/push",status="400"} 1.0'
        in metrics
    )


async def test_other_methods_on_the_push_path_still_get_405(client: httpx.AsyncClient) -> None:
    """Only POST is answered directly; GET falls through to the router's 405 with Allow."""
    response = await client.get("/v1/sync/push")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.headers["content-type"] == "application/problem+json"


async def test_an_unexpected_failure_in_a_push_is_a_500_problem(
    make_client: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug below the endpoint is answered with the generic 500 problem, not a stack trace."""
    client: httpx.AsyncClient = await make_client()
    node = client.app.state.node  # type: ignore[attr-defined]

    async def broken(mutations: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(node.store, "apply", broken)
    transport = httpx.ASGITransport(app=client.app, raise_app_exceptions=False)  # type: ignore[attr-defined]
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as http:
        response = await http.post("/v1/sync/push", json=PUSH)
    assert response.status_code == 500
    assert response.json()["type"].endswith("internal_error")
    assert "boom" not in response.text


DOC = "/v1/collections/t/docs"
ODD_REQUESTS: list[tuple[str, str, bytes | None, dict[str, str]]] = [
    ("PUT", f"{DOC}/a", b'{"n": 1}', {}),
    ("PUT", f"{DOC}/a", b'{"n": 2}', {"If-Match": '"nope"'}),
    ("PUT", f"{DOC}/a", b"{", {}),
    ("PUT", f"{DOC}/a", b"", {}),
    ("PUT", f"{DOC}/a/", b'{"n": 1}', {}),
    ("PUT", "/v1/collections//docs/a", b'{"n": 1}', {}),
    ("PUT", f"{DOC}/a%2Fb", b'{"n": 1}', {}),
    ("PUT", f"{DOC}/%C3%A9t%C3%A9", b'{"n": 1}', {}),
    ("PUT", "/v1/collections/bad name/docs/a", b'{"n": 1}', {}),
    ("PUT", f"{DOC}/b", b'{"n": 1}', {"Idempotency-Key": "k1"}),
    ("PUT", f"{DOC}/b", b'{"n": 1}', {"Idempotency-Key": "k1"}),
    ("PATCH", f"{DOC}/a", b'{"m": 3}', {}),
    ("PATCH", f"{DOC}/missing", b'{"m": 3}', {}),
    ("GET", f"{DOC}/a", None, {}),
    ("GET", f"{DOC}/missing", None, {}),
    ("HEAD", f"{DOC}/a", None, {}),
    ("POST", f"{DOC}/a", b"{}", {}),
    ("DELETE", f"{DOC}/a", None, {}),
    ("DELETE", f"{DOC}/a", None, {}),
    ("GET", f"{DOC}/a", None, {}),
]


def _shape(response: httpx.Response) -> tuple[Any, ...]:
    """What must not depend on the routing: status, media type, problem type, body fields."""
    body: Any = None
    if response.content and response.headers.get("content-type", "").endswith("json"):
        parsed = response.json()
        body = parsed.get("type") or sorted(parsed) if isinstance(parsed, dict) else parsed
    headers = {name: response.headers.get(name) for name in ("allow", "idempotent-replayed")}
    return response.status_code, response.headers.get("content-type"), body, headers


async def test_document_routes_answer_as_the_router_does(
    make_client: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Each request, odd paths included, gets the same answer with and without the direct
    dispatch of the single-document routes."""
    direct: httpx.AsyncClient = await make_client()
    direct_shapes = [
        _shape(await direct.request(method, path, content=body, headers=headers))
        for method, path, body, headers in ODD_REQUESTS
    ]
    routed: httpx.AsyncClient = await make_client(data=tmp_path / "routed")
    monkeypatch.setattr(DirectRoutes, "_find", lambda self, method, path: None)
    routed_shapes = [
        _shape(await routed.request(method, path, content=body, headers=headers))
        for method, path, body, headers in ODD_REQUESTS
    ]
    assert direct_shapes == routed_shapes
    # The list covers writes, replays, refusals, fall-throughs to 404 and the router's 405.
    assert {201, 200, 400, 404, 405} <= {shape[0] for shape in direct_shapes}


async def test_document_writes_skip_the_router(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A document's read and writes never reach FastAPI's route handling (the cost this
    layer removes), and are counted under their route template."""

    async def refuse(*_: object) -> None:
        raise AssertionError("routed")

    monkeypatch.setattr(APIRoute, "handle", refuse)
    assert (await client.put(f"{DOC}/a", json={"n": 1})).status_code == 201
    assert (await client.patch(f"{DOC}/a", json={"n": 2})).status_code == 200
    assert (await client.get(f"{DOC}/a")).json()["data"]["n"] == 2
    assert (await client.delete(f"{DOC}/a")).status_code == 200
    monkeypatch.undo()  # /metrics is routed
    metrics = (await client.get("/metrics")).text
    template = "/v1/collections/{collection}/docs/{doc_id}"
    for method, status in (("PUT", 201), ("PATCH", 200), ("GET", 200), ("DELETE", 200)):
        labels = f'method="{method}",route="{template}",status="{status}"'
        assert f"breakwater_http_requests_total{{{labels}}} 1.0" in metrics
