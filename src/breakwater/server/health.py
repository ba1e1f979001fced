"""Liveness, readiness and metrics endpoints."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from breakwater.obs.metrics import CONTENT_TYPE
from breakwater.server.readiness import check
from breakwater.server.responses import json_response, node_of

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness")
async def healthz() -> Response:
    """200 while the process answers at all."""
    return json_response({"status": "ok"})


@router.get("/readyz", summary="Readiness", responses={503: {"description": "not ready"}})
async def readyz(request: Request) -> Response:
    """200 when the store answers (``degraded`` names a missing bus, cache or shared rate-limit
    buckets); 503 naming the failing ones, or while draining."""
    node = node_of(request)
    readiness = await check(node)
    checks, failing, degraded = readiness.checks, readiness.failing, readiness.degraded
    if node.draining:
        body = {"status": "draining", "checks": checks, "failing": failing}
        return json_response(body, 503, {"Retry-After": "1"})
    if failing:
        body = {"status": "unavailable", "checks": checks, "failing": failing}
        return json_response(body, 503, {"Retry-After": "1"})
    ready: dict[str, object] = {"status": "degraded" if degraded else "ready", "checks": checks}
    if degraded:
        ready["degraded"] = degraded
    if node.config.topology.peers:
        ready["replication"] = node.replication.summary()
    return json_response(ready | {"region": node.config.region, "node": node.clock.node})


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text exposition format",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
)
async def metrics(request: Request) -> Response:
    """Every metric in the Prometheus text format."""
    node = node_of(request)
    if node.worker_metrics is not None:
        return Response(node.worker_metrics.render(), media_type=CONTENT_TYPE)
    return Response(node.metrics.render(), media_type=CONTENT_TYPE)
