"""The public status page: ``GET /v1/status`` (JSON) and ``GET /status`` (HTML), for anyone.

Each request runs the readiness checks once (so the page is current even where no probe
calls ``/readyz``) and answers from :class:`~breakwater.obs.status.HealthHistory`, which keeps
public states only: no check's error text, host, URL or version reaches this page.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, Response

from breakwater.server.readiness import check
from breakwater.server.responses import json_response, node_of

router = APIRouter(tags=["status"])


@cache
def _page() -> str:
    return resources.files("breakwater.server").joinpath("static/status.html").read_text("utf-8")


@router.get("/v1/status", summary="Public status of this region")
async def status(request: Request) -> Response:
    """The region's and each component's state, and recent incidents, newest first."""
    node = node_of(request)
    await check(node)
    history = node.health_history
    body = {
        "region": {"name": node.config.region, "state": history.overall.label},
        "components": [
            {"name": name, "state": state.label} for name, state in history.states.items()
        ],
        "incidents": [incident.public() for incident in history.incidents],
    }
    return json_response(body, headers={"Cache-Control": "no-store"})


@router.get("/status", summary="Public status page", response_class=HTMLResponse)
async def status_page() -> Response:
    """A page that shows ``/v1/status`` and refreshes it every few seconds."""
    return HTMLResponse(_page(), headers={"Cache-Control": "no-cache"})
