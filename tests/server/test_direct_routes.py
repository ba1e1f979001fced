"""``POST /v1/sync/push`` skips the routing layers but answers exactly as a routed endpoint."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

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
