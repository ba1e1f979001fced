"""The realtime endpoints from a web page: the WebSocket Origin check and SSE over CORS."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.realtime.clients import subscribe
from tests.realtime.conftest import LiveNode

APP = "https://app.example"


async def test_a_websocket_from_another_page_is_refused(
    make_node: Callable[..., Awaitable[LiveNode]],
) -> None:
    """A handshake whose Origin is not allowed gets a 403 problem; no connection opens."""
    node = await make_node(cors_origins=(APP,))
    with pytest.raises(InvalidStatus) as refused:
        await connect(f"{node.ws_url}/v1/realtime", origin="https://evil.example")  # type: ignore[arg-type]
    response = refused.value.response
    assert response.status_code == 403
    assert response.headers["Content-Type"] == "application/problem+json"
    assert json.loads(response.body)["type"] == "forbidden"


async def test_a_websocket_from_an_allowed_page_or_an_app_subscribes(
    make_node: Callable[..., Awaitable[LiveNode]],
) -> None:
    """An allowed Origin, and no Origin at all (apps, SDKs), both get their subscription."""
    node = await make_node(cors_origins=(APP,))
    async with connect(f"{node.ws_url}/v1/realtime", origin=APP) as ws:  # type: ignore[arg-type]
        assert (await subscribe(ws, ["todos"]))["type"] == "subscribed"
    async with connect(f"{node.ws_url}/v1/realtime") as ws:
        assert (await subscribe(ws, ["todos"]))["type"] == "subscribed"


async def test_sse_is_readable_by_an_allowed_page(
    make_node: Callable[..., Awaitable[LiveNode]],
) -> None:
    """The SDK's fetch-based SSE: the preflight passes and the stream carries CORS headers."""
    node = await make_node(cors_origins=(APP,))
    async with httpx.AsyncClient(base_url=node.url, timeout=10) as http:
        check = await http.options(
            "/v1/realtime/sse",
            headers={
                "Origin": APP,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization, last-event-id",
            },
        )
        headers = {"Origin": APP, "Accept": "text/event-stream"}
        async with http.stream("GET", "/v1/realtime/sse", headers=headers) as stream:
            status, allowed = stream.status_code, stream.headers["access-control-allow-origin"]
    assert check.status_code == 204
    assert "last-event-id" in check.headers["access-control-allow-headers"].lower()
    assert (status, allowed) == (200, APP)
