"""Small helpers for tests that talk to a node as realtime clients."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection


async def recv(ws: ClientConnection, seconds: float = 5.0, *, skip_pings: bool = True) -> Any:
    """The next message as JSON, answering and skipping the server's pings."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        raw = await asyncio.wait_for(ws.recv(), max(0.01, deadline - loop.time()))
        message = json.loads(raw)
        if skip_pings and message["type"] == "ping":
            await ws.send('{"type":"pong"}')
            continue
        return message


async def subscribe(
    ws: ClientConnection, collections: list[str] | None = None, cursor: str = ""
) -> dict[str, Any]:
    """Send ``subscribe`` and return the ``subscribed`` acknowledgement."""
    await ws.send(json.dumps({"type": "subscribe", "collections": collections, "cursor": cursor}))
    ack: dict[str, Any] = await recv(ws)
    assert ack["type"] == "subscribed", ack
    return ack


async def put(url: str, collection: str, doc_id: str, data: dict[str, Any]) -> None:
    """Write one document through the REST API."""
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        response = await http.put(f"/v1/collections/{collection}/docs/{doc_id}", json=data)
        assert response.status_code in (200, 201), response.text


@dataclass
class SseEvent:
    """One Server-Sent Event as a browser's EventSource would dispatch it (or a comment)."""

    event: str = "message"
    id: str | None = None
    data: str = ""
    comment: str | None = None
    retry: int | None = None
    fields: list[str] = field(default_factory=list)

    def json(self) -> Any:
        """The data as JSON."""
        return json.loads(self.data)


async def sse_events(response: httpx.Response) -> AsyncIterator[SseEvent]:
    """Parse an event stream line by line, following the HTML standard's rules."""
    event = SseEvent()
    data: list[str] = []
    async for line in response.aiter_lines():
        if line == "":
            if data or event.fields:
                event.data = "\n".join(data)
                yield event
            event, data = SseEvent(), []
            continue
        if line.startswith(":"):
            yield SseEvent(comment=line[1:].strip())
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        event.fields.append(name)
        if name == "event":
            event.event = value
        elif name == "data":
            data.append(value)
        elif name == "id":
            event.id = value
        elif name == "retry":
            event.retry = int(value)
