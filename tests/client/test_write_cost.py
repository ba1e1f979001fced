"""One online device write costs one request: the push answer settles it, and the realtime echo
of the device's own change brings no pull (docs/protocol.md#push)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from breakwater.core.document import version
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


async def test_an_online_write_costs_no_request_and_no_pull(
    start_server: Callable[..., ServerProcess], make_device: Callable[..., Any]
) -> None:
    """Online over WebSocket, each write is one ``push`` message on the open socket; it
    settles, and no HTTP request is sent (the echo of the change on the stream is behind the
    device's cursor already)."""
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
        assert wire.requests == []
        document = await todos.get(f"t{i}")
        assert document is not None and not document.pending


async def test_a_state_derived_from_the_devices_own_write_is_the_nodes(
    start_server: Callable[..., ServerProcess], make_device: Callable[..., Any]
) -> None:
    """Settled from a compact answer (no state sent for a plain set, patch or delete), the
    device holds the same server state as the node: same versions after each write."""
    server = start_server()
    phone = await make_device(server.url, "phone", transports=("websocket",))
    await wait_status(phone, lambda s: s.transport == "websocket", 30)
    todos = phone.collection("todos")
    await todos.set("t1", {"title": "milk", "n": 1})
    await todos.patch("t1", {"title": "oat milk", "n": None})
    await todos.set("t2", {"title": "bread"})
    await todos.delete("t2")
    await wait_status(phone, lambda s: s.pending == 0 and s.state == "online", 30)
    held = {(d.collection, d.id): d.version for d in await phone.server_documents()}
    async with httpx.AsyncClient(base_url=server.url) as http:
        page = (await http.get("/v1/sync/pull", params={"include_state": "true"})).json()
    nodes = {(c["collection"], c["id"]): version(c["state"]) for c in page["changes"]}
    assert held == nodes
    assert nodes.keys() == {("todos", "t1"), ("todos", "t2")}
