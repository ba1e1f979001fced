"""A device keeps seeing its own unsent edit while other devices' changes arrive, and everyone
converges once it is delivered (pushes held back by a transport that answers 503)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from breakwater.client import Client, SyncProgress
from tests.client.conftest import record_events, server_doc
from tests.conftest import ServerProcess

pytestmark = pytest.mark.slow


class HoldPushes(httpx.AsyncBaseTransport):
    """The network, except that pushes get 503 while :attr:`holding` (pulls go through)."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.holding = True

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.holding and request.url.path == "/v1/sync/push":
            problem = {"type": "unavailable", "title": "Service unavailable", "status": 503}
            return httpx.Response(503, json=problem, headers={"retry-after": "1"})
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_unsent_edit_stays_visible_until_delivered_then_all_converge(
    tmp_path: Path, start_server: Callable[..., ServerProcess], make_device: Callable[..., Any]
) -> None:
    """The phone's newer edit is pending; the tablet's older edit reaches the phone; the phone
    still shows its own; once its push goes through, phone, tablet and node agree on it."""
    server = start_server()
    network = HoldPushes()
    # Realtime over SSE: over a WebSocket the phone would push on the socket, past the hold.
    phone = await make_device(server.url, "phone", http_transport=network, transports=("sse",))
    async with Client([server.url], tmp_path / "tablet.db", sync=False) as offline_tablet:
        await offline_tablet.collection("todos").set("t1", {"title": "tablet", "size": 1})
    await phone.collection("todos").set("t1", {"title": "phone"})  # later stamp, push held
    events = record_events(phone)
    tablet = await make_device(server.url, "tablet")
    async with asyncio.timeout(30):
        await tablet.wait_synced()
    assert server_doc(server.url, "todos", "t1")["data"]["title"] == "tablet"  # type: ignore[index]
    # Wait until the phone has pulled the tablet's write.
    async with asyncio.timeout(30):
        while not any(isinstance(e, SyncProgress) for e in events):
            phone.sync_now()
            await asyncio.sleep(0.1)
    seen = await phone.collection("todos").get("t1")
    assert seen is not None and seen.data == {"title": "phone"} and seen.pending

    network.holding = False
    phone.sync_now()
    async with asyncio.timeout(30):
        await phone.wait_synced()
        # wait_synced says the tablet has nothing to send, not that it has pulled the phone's
        # write: pull until it arrives (or the timeout fails the test).
        while (await tablet.collection("todos").get("t1")).data != {"title": "phone"}:
            tablet.sync_now()
            await asyncio.sleep(0.1)
    on_server = server_doc(server.url, "todos", "t1")
    on_phone = await phone.collection("todos").get("t1")
    on_tablet = await tablet.collection("todos").get("t1")
    assert on_server is not None and on_phone is not None and on_tablet is not None
    assert on_server["data"] == on_phone.data == on_tablet.data == {"title": "phone"}
    assert not on_phone.pending
