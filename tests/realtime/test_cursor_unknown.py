"""Realtime streams refuse a cursor the node cannot honour with ``410 cursor_unknown`` (ADR 0018):
one ahead of its head (a device that synced with the node before a restore) or one naming an
origin it never had (another deployment's cursor)."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from websockets.asyncio.client import connect

from breakwater.core import cursor as cursor_mod
from tests.realtime.clients import put, recv, subscribe
from tests.realtime.conftest import LiveNode

Vector = Callable[[str], dict[str, int]]
"""A cursor's vector made from the node's own origin."""

UNHONOURABLE = [
    pytest.param(lambda origin: {origin: 9}, "ahead", id="ahead"),
    pytest.param(lambda origin: {"local~0123456789ab": 1}, "unknown_origin", id="unknown-origin"),
]


async def unhonourable(live: LiveNode, vector_of: Vector) -> str:
    """Two writes on ``live``, and a cursor from ``vector_of`` its store's origin."""
    for doc_id in ("a", "b"):
        await put(live.url, "todos", doc_id, {"v": 1})
    return cursor_mod.encode(vector_of(live.node.store.origin))


@pytest.mark.parametrize(("vector_of", "reason"), UNHONOURABLE)
async def test_websocket_subscribe_gets_an_error_and_no_subscription(
    live: LiveNode, vector_of: Vector, reason: str
) -> None:
    """The subscribe is answered with a 410 ``error`` message; later writes are not sent."""
    cursor = await unhonourable(live, vector_of)
    async with connect(f"{live.ws_url}/v1/realtime") as ws:
        await subscribe(ws, None, cursor)
        message = await recv(ws)
        await put(live.url, "todos", "c", {"v": 1})
        with pytest.raises(TimeoutError):
            await recv(ws, 0.3)
    assert message["type"] == "error"
    error = message["error"]
    assert (error["status"], error["type"], error["reason"]) == (410, "cursor_unknown", reason)


@pytest.mark.parametrize(("vector_of", "reason"), UNHONOURABLE)
@pytest.mark.parametrize("where", ["cursor", "last-event-id"])
async def test_sse_answers_410_instead_of_a_stream(
    live: LiveNode, vector_of: Vector, reason: str, where: str
) -> None:
    """From the ``cursor`` parameter or a reconnecting EventSource's ``Last-Event-ID``."""
    cursor = await unhonourable(live, vector_of)
    params = {"cursor": cursor} if where == "cursor" else {}
    headers = {"Last-Event-ID": cursor} if where == "last-event-id" else {}
    async with httpx.AsyncClient(base_url=live.url, timeout=10) as http:
        response = await http.get("/v1/realtime/sse", params=params, headers=headers)
    assert response.status_code == 410
    assert response.headers["content-type"] == "application/problem+json"
    assert (response.json()["type"], response.json()["reason"]) == ("cursor_unknown", reason)
