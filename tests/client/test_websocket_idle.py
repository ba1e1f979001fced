"""The WebSocket transport gives up on a silent stream, and not on one whose node speaks."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import httpx
import pytest
from websockets.asyncio.server import ServerConnection, serve

from breakwater.client.errors import EndpointUnavailable
from breakwater.client.transports import StreamContext, WebSocketTransport

IDLE = 0.5


async def _nothing(_cursor: str) -> None:
    return None


async def _listen(handler: Callable[[ServerConnection], Awaitable[None]]) -> None:
    async with serve(handler, "127.0.0.1", 0, max_queue=None) as server:  # pongs unread
        port = server.sockets[0].getsockname()[1]
        async with httpx.AsyncClient() as http:
            context = StreamContext(
                f"http://127.0.0.1:{port}", http, None, lambda: "", _nothing, idle_timeout=IDLE
            )
            await WebSocketTransport().listen(context)


async def test_a_silent_stream_ends_as_unavailable() -> None:
    """Nothing after the subscription for ``idle_timeout`` (and a quarter): the node counts as
    unavailable."""

    async def silent(ws: ServerConnection) -> None:
        await ws.recv()  # the subscription
        await ws.wait_closed()

    with pytest.raises(EndpointUnavailable):
        async with asyncio.timeout(IDLE * 20):
            await _listen(silent)


async def test_a_stream_that_speaks_more_often_than_the_bound_lives_past_it() -> None:
    """Pings every fifth of the bound keep the stream for eight times the bound, until the node
    asks the device to reconnect (the stream then ends normally)."""

    async def pinging(ws: ServerConnection) -> None:
        await ws.recv()
        for _ in range(40):
            await ws.send('{"type":"ping"}')
            await asyncio.sleep(IDLE / 5)
        await ws.send('{"type":"reconnect"}')
        await ws.wait_closed()

    async with asyncio.timeout(IDLE * 40):
        await _listen(pinging)
