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


async def test_metrics_count_each_request_in_its_own_series(client: httpx.AsyncClient) -> None:
    """Repeated requests add to their (method, route, status) series and only to it; their
    latency is timed once each."""
    route = 'route="/v1/collections/{collection}/docs/{doc_id}"'
    for doc_id in ("a", "b", "c"):
        await client.put(f"/v1/collections/todos/docs/{doc_id}", json={"t": 1})
    await client.put("/v1/collections/todos/docs/a", json={"t": 2})
    await client.get("/v1/collections/todos/docs/missing")
    await client.get("/v1/collections/todos/docs/a")
    text = (await client.get("/metrics")).text
    assert f'breakwater_http_requests_total{{method="PUT",{route},status="201"}} 3.0' in text
    assert f'breakwater_http_requests_total{{method="PUT",{route},status="200"}} 1.0' in text
    assert f'breakwater_http_requests_total{{method="GET",{route},status="404"}} 1.0' in text
    assert f'breakwater_http_requests_total{{method="GET",{route},status="200"}} 1.0' in text
    assert f'breakwater_http_request_duration_seconds_count{{method="PUT",{route}}} 4.0' in text
    assert f'breakwater_http_request_duration_seconds_count{{method="GET",{route}}} 2.0' in text
