"""Liveness, readiness and metrics."""

from __future__ import annotations

import httpx


async def test_healthz_answers_ok(client: httpx.AsyncClient) -> None:
    """/healthz is 200 while the process runs."""
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_names_every_dependency_check(client: httpx.AsyncClient) -> None:
    """/readyz is 200 with the store, bus and cache checks passing."""
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["status"] == "ready"
    assert response.json()["checks"] == {"store": "ok", "bus": "ok", "cache": "ok"}


async def test_readyz_is_503_while_draining(client: httpx.AsyncClient) -> None:
    """Once draining starts /readyz answers 503 so balancers stop sending work."""
    client.app.state.node.start_draining()  # type: ignore[attr-defined]
    response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["status"] == "draining"
    assert response.headers["retry-after"] == "1"


async def test_metrics_count_requests_by_route_template(client: httpx.AsyncClient) -> None:
    """/metrics exports request counts labelled with the route template, not the raw path."""
    await client.put("/v1/collections/todos/docs/a1", json={"t": 1})
    text = (await client.get("/metrics")).text
    assert (
        'breakwater_http_requests_total{method="PUT",'
        'route="/v1/collections/{collection}/docs/{doc_id}",status="201"} 1.0' in text
    )
    assert "breakwater_group_commit_mutations_count 1.0" in text
