"""The region directory: ``GET /v1/regions``, public, so that an app configured with one URL
learns every region's device endpoints and state without a release (docs/protocol.md#regions).

Only public facts: region names, their ``public_urls`` and a state. A peer's state is what its
last replication page said (``active``/``standby``), ``unreachable`` when this region has not
heard from it lately, ``unknown`` before the first page. This node's own region says
``draining`` while this node drains, so an SDK moves on before the node goes away.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from breakwater.server.node import Node
from breakwater.server.responses import json_response, node_of

router = APIRouter(tags=["regions"])

STALE_AFTER_PULL_WAITS = 2.0
"""A peer is ``unreachable`` after this many long-poll waits (plus slack) without a page."""
STALE_SLACK = 5.0
DIRECTORY_TTL = 30
"""Seconds an SDK keeps the directory before asking again (``ttl`` in the answer)."""


def peer_state(row: dict[str, Any], now_ms: float, stale_ms: float) -> str:
    """A peer's public state from this region's replication row of it."""
    updated = row.get("updated_ms")
    if not isinstance(updated, int | float):
        return "unknown"
    if now_ms - updated > stale_ms:
        return "unreachable"
    state = row.get("state")
    return state if state in ("active", "standby") else "unknown"


def directory(node: Node, now_ms: float) -> dict[str, Any]:
    """The body of ``GET /v1/regions`` as ``node`` sees its deployment at ``now_ms``."""
    topology = node.config.topology
    own_state = "draining" if node.draining else node.region.state
    regions = [
        {
            "name": node.config.region,
            "state": own_state,
            "endpoints": list(topology.public_urls),
            "this": True,
        }
    ]
    stale_ms = (STALE_AFTER_PULL_WAITS * topology.pull_wait + STALE_SLACK) * 1000
    for name in sorted(topology.peers):
        peer = topology.peers[name]
        row = node.region.peer_rows.get(name, {})
        regions.append(
            {
                "name": name,
                "state": peer_state(row, now_ms, stale_ms),
                "endpoints": list(peer.public_urls),
                "this": False,
            }
        )
    return {"region": node.config.region, "regions": regions, "ttl": DIRECTORY_TTL}


@router.get("/v1/regions", summary="The deployment's regions, endpoints and states")
async def regions(request: Request) -> Response:
    """Every region with its public endpoints and its state as seen from this region."""
    body = directory(node_of(request), time.time() * 1000)
    return json_response(body)
