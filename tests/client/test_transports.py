"""Realtime transports: live queries update through WebSocket, SSE or long-poll, with fallback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from breakwater.client import Client, Document
from tests.client.conftest import wait_status
from tests.conftest import ServerProcess, free_port

pytestmark = pytest.mark.slow


def put(url: str, doc_id: str, data: dict[str, Any]) -> None:
    """Another writer (a REST call) changes the server."""
    httpx.put(f"{url}/v1/collections/chat/docs/{doc_id}", json=data).raise_for_status()


async def next_matching(
    updates: AsyncIterator[list[Document]], wanted: set[str], seconds: float = 15
) -> list[Document]:
    """The first live result holding every id in ``wanted``."""
    async with asyncio.timeout(seconds):
        async for results in updates:
            if wanted <= {d.id for d in results}:
                return results
    raise AssertionError("watch ended")


async def wait_transport(client: Client, name: str, seconds: float = 15) -> None:
    """Wait until the client's status names transport ``name``."""
    await wait_status(client, lambda status: status.transport == name, seconds)


def node_config(tmp_path: Path, transports: str) -> str:
    path = tmp_path / f"node-{transports or 'none'}.toml"
    path.write_text(f'realtime_transports = "{transports}"\n')
    return str(path)


async def test_watch_sees_remote_writes_over_websocket(
    start_server: Callable[..., ServerProcess], make_device: Callable[..., Any]
) -> None:
    """With every transport served, the SDK uses WebSocket and live queries follow the node."""
    server = start_server()
    phone = await make_device(server.url, poll_interval=600)
    await wait_transport(phone, "websocket")
    updates = phone.collection("chat").watch(order_by="at")
    assert await anext(updates) == []
    put(server.url, "m1", {"text": "hi", "at": 1})
    results = await next_matching(updates, {"m1"}, seconds=5)
    assert results[0].data == {"text": "hi", "at": 1}


async def test_fallback_websocket_to_sse_to_long_poll_and_back_delivers_everything(
    tmp_path: Path, start_server: Callable[..., ServerProcess], make_device: Callable[..., Any]
) -> None:
    """WebSocket refused: SSE; SSE refused too: long-poll; served again: back to WebSocket.
    Every remote write reaches the live query on each rung (no periodic poll to hide a gap)."""
    port = free_port()
    data = tmp_path / "node-data"
    server = start_server(data, "--config", node_config(tmp_path, "sse"), port=port)
    phone = await make_device(
        server.url, poll_interval=600, climb_back_after=3.0, long_poll_wait=5.0
    )
    updates = phone.collection("chat").watch()
    await wait_transport(phone, "sse")
    put(server.url, "m1", {"text": "over sse"})
    await next_matching(updates, {"m1"})

    server.terminate()
    server = start_server(data, "--config", node_config(tmp_path, ""), port=port)
    await wait_transport(phone, "long_poll", seconds=30)
    put(server.url, "m2", {"text": "over long-poll"})
    await next_matching(updates, {"m1", "m2"})

    server.terminate()
    server = start_server(data, port=port)
    await wait_transport(phone, "websocket", seconds=30)
    put(server.url, "m3", {"text": "back on websocket"})
    results = await next_matching(updates, {"m1", "m2", "m3"})
    assert [d.data["text"] for d in results] == ["over sse", "over long-poll", "back on websocket"]
