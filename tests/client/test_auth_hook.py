"""The access-token hook: its headers go with every request; refusals before a token exists
are reported and retried, never fatal (a fake node behind httpx.MockTransport)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from breakwater.client import Client
from breakwater.client.outbox import OutboxEntry
from breakwater.core import codec
from tests.client.conftest import wait_status
from tests.client.fake_node import FakeNode

TOKEN = "Bearer device-token"


class GuardedNode:
    """Answers like a node, but 401 to any /v1 request without the right Authorization."""

    def __init__(self) -> None:
        self.node = FakeNode("local")
        self.refused = 0

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/readyz":  # health checks need no token
            return httpx.Response(200, json={"status": "ready"})
        if request.headers.get("authorization") != TOKEN:
            self.refused += 1
            problem = {"type": "unauthorized", "title": "Unauthorized", "status": 401}
            return httpx.Response(401, json=problem)
        if request.url.path == "/v1/sync/push":
            body = codec.loads(request.content)
            entries = [
                OutboxEntry(
                    0, m["mutation_id"], m["collection"], m["id"], m["op"], m.get("data"), m["hlc"]
                )
                for m in body["mutations"]
            ]
            results = [
                {"mutation_id": mid, "status": "applied", "origin": origin, "seq": seq}
                for mid, origin, seq in self.node.push(entries)
            ]
            return httpx.Response(200, json={"results": results})
        if request.url.path == "/v1/sync/pull":
            if request.url.params.get("wait"):
                await asyncio.sleep(0.2)
            page = self.node.pull(request.url.params.get("cursor", ""))
            return httpx.Response(200, json=page)
        return httpx.Response(404, json={"type": "not_found", "status": 404})


async def test_token_hook_headers_are_sent_and_missing_token_is_retried(tmp_path: Path) -> None:
    """Without a token the push is refused (last_error set, write kept); once the hook has a
    token the same write is delivered."""
    server = GuardedNode()
    token: dict[str, str] = {}

    async def headers() -> dict[str, str]:
        return dict(token)

    client = Client(
        ["http://node"],
        tmp_path / "d.db",
        headers=headers,
        http_transport=httpx.MockTransport(server),
        transports=("long_poll",),
        backoff_cap=0.2,
    )
    async with client:
        await client.collection("todos").set("t1", {"a": 1})
        await wait_status(client, lambda s: s.last_error is not None, 5)
        assert "Unauthorized" in str(client.status.last_error)
        assert await client.rejections() == []  # a refused request is not a refused write
        assert client.pending == 1
        token["authorization"] = TOKEN
        async with asyncio.timeout(10):
            await client.wait_synced()
    assert server.node.visible("todos", "t1") == {"a": 1}
    assert server.refused >= 1
