"""Clients the project did not write, following docs/protocol.md as written, against a real
``breakwater serve``: the ``websockets`` library's client, and curl reading the SSE stream."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.conftest import ServerProcess

pytestmark = pytest.mark.slow


async def next_message(ws: Any, seconds: float = 10) -> dict[str, Any]:
    """The next message that is not a server ``ping`` (which the protocol says to answer)."""
    while True:
        message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), seconds))
        if message["type"] != "ping":
            return message
        await ws.send(json.dumps({"type": "pong"}))


async def test_websockets_library_client_subscribes_resumes_and_is_told_to_reconnect(
    start_server: Callable[..., ServerProcess],
) -> None:
    """Subscribe, live change, resume from the cursor, then ``reconnect`` on SIGTERM."""
    server = start_server()
    ws_url = server.url.replace("http://", "ws://") + "/v1/realtime"
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        async with connect(ws_url) as ws:
            assert ws.response is not None
            assert "permessage-deflate" in ws.response.headers["Sec-WebSocket-Extensions"]
            await ws.send(json.dumps({"type": "subscribe", "collections": ["todos"], "cursor": ""}))
            assert await next_message(ws) == {
                "type": "subscribed",
                "collections": ["todos"],
                "cursor": "",
            }
            await http.put("/v1/collections/todos/docs/t1", json={"title": "Buy milk"})
            first = await next_message(ws)
        assert first["type"] == "changes"
        assert [(c["id"], c["data"]) for c in first["changes"]] == [("t1", {"title": "Buy milk"})]
        await http.put("/v1/collections/todos/docs/t2", json={"title": "Walk"})
        async with connect(ws_url) as ws:
            await ws.send(
                json.dumps(
                    {"type": "subscribe", "collections": ["todos"], "cursor": first["cursor"]}
                )
            )
            assert (await next_message(ws))["type"] == "subscribed"
            resumed = await next_message(ws)
            assert [c["id"] for c in resumed["changes"]] == ["t2"]
            server.process.send_signal(15)
            goodbye = await next_message(ws)
            with pytest.raises(ConnectionClosed) as closed:
                await next_message(ws)
    assert goodbye == {"type": "reconnect", "reason": "draining", "cursor": resumed["cursor"]}
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
    assert server.process.wait(timeout=20) == 0


def curl_events(url: str, seconds: float, *headers: str) -> list[dict[str, str]]:
    """Run ``curl -N`` on an SSE URL for ``seconds`` and split what it printed into events."""
    command = ["curl", "-sN", "--max-time", str(seconds), url]
    for header in headers:
        command += ["-H", header]
    output = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 10).stdout
    events = []
    for block in output.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            name, _, value = line.partition(": ")
            fields[name] = value
        if fields:
            events.append(fields)
    return events


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_reads_the_sse_stream_and_resumes_with_last_event_id(
    start_server: Callable[..., ServerProcess],
) -> None:
    """curl sees ``changes`` events with cursor ids; Last-Event-ID resumes after the id."""
    server = start_server()
    with httpx.Client(base_url=server.url, timeout=10) as http:
        for i in range(3):
            http.put(f"/v1/collections/todos/docs/t{i}", json={"i": i})
    url = f"{server.url}/v1/realtime/sse?collections=todos"
    events = curl_events(url, 2)
    assert "retry" in events[0]
    changes = [e for e in events if e.get("event") == "changes"]
    assert len(changes) == 1
    body = json.loads(changes[0]["data"])
    assert [c["id"] for c in body["changes"]] == ["t0", "t1", "t2"]
    assert changes[0]["id"] == body["cursor"]
    with httpx.Client(base_url=server.url, timeout=10) as http:
        http.put("/v1/collections/todos/docs/t3", json={"i": 3})
    resumed = curl_events(url, 2, f"Last-Event-ID: {changes[0]['id']}")
    [again] = [e for e in resumed if e.get("event") == "changes"]
    assert [c["id"] for c in json.loads(again["data"])["changes"]] == ["t3"]
