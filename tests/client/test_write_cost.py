"""One online device write costs one request: the push answer settles it, and the realtime echo
of the device's own change brings no pull (docs/protocol.md#push)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.client.conftest import wait_status
from tests.conftest import ServerProcess

pytestmark = pytest.mark.slow


class RecordingTransport(httpx.AsyncBaseTransport):
    """The network transport, remembering each request's method and path."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.requests: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(f"{request.method} {request.url.path}")
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


async def test_an_online_write_costs_one_push_and_no_pull(
    start_server: Callable[..., ServerProcess], make_device: Callable[..., Any]
) -> None:
    """Online over WebSocket, each write is one push; it settles, and nothing else is sent
    (the echo of the change on the stream is behind the device's cursor already)."""
    server = start_server()
    wire = RecordingTransport()
    phone = await make_device(server.url, "phone", transports=("websocket",), http_transport=wire)
    async with asyncio.timeout(30):
        await phone.wait_synced()
    await wait_status(phone, lambda s: s.transport == "websocket", 30)
    await asyncio.sleep(0.5)
    todos = phone.collection("todos")
    for i in range(3):
        wire.requests.clear()
        await todos.set(f"t{i}", {"title": f"task {i}"})
        await wait_status(phone, lambda s: s.pending == 0 and s.state == "online", 30)
        await asyncio.sleep(1.0)  # the echo arrives meanwhile
        assert wire.requests == ["POST /v1/sync/push"]
        document = await todos.get(f"t{i}")
        assert document is not None and not document.pending


async def test_another_devices_write_still_arrives_through_a_pull(
    start_server: Callable[..., ServerProcess], make_device: Callable[..., Any]
) -> None:
    """Realtime still brings other devices' changes (a pull), and both devices converge with
    their outboxes empty (a write acknowledged behind another's change: tests/client/
    test_push_settles.py)."""
    server = start_server()
    wire = RecordingTransport()
    phone = await make_device(server.url, "phone", transports=("websocket",), http_transport=wire)
    tablet = await make_device(server.url, "tablet", transports=("websocket",))
    async with asyncio.timeout(30):
        await phone.wait_synced()
        await tablet.wait_synced()
    await tablet.collection("todos").set("from-tablet", {"title": "tablet"})
    await phone.collection("todos").set("from-phone", {"title": "phone"})
    async with asyncio.timeout(30):
        while True:
            seen = {d.id for d in await phone.collection("todos").query()}
            theirs = {d.id for d in await tablet.collection("todos").query()}
            if seen == theirs == {"from-tablet", "from-phone"} and phone.pending == 0:
                break
            await asyncio.sleep(0.1)
    assert "GET /v1/sync/pull" in wire.requests
