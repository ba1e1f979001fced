"""The node's own WebSocket protocol for ``/v1/realtime``: the WebSocket rules it keeps."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from breakwater.server.realtime.protocol import RealtimeSocket
from breakwater.server.runner import CLIENT_MESSAGE_BYTES
from tests.realtime.clients import put, recv, subscribe
from tests.realtime.conftest import LiveNode


async def test_realtime_upgrades_are_served_by_the_nodes_own_protocol(live: LiveNode) -> None:
    """A subscriber's socket is a :class:`RealtimeSocket` in the server's open connections."""
    async with connect(f"{live.ws_url}/v1/realtime") as ws:
        await subscribe(ws, ["todos"])
        sockets = [c for c in live.server.server_state.connections if isinstance(c, RealtimeSocket)]
        assert len(sockets) == 1
    for _ in range(100):
        if not any(isinstance(c, RealtimeSocket) for c in live.server.server_state.connections):
            break
        await asyncio.sleep(0.01)
    assert not any(isinstance(c, RealtimeSocket) for c in live.server.server_state.connections)


async def test_a_fragmented_message_is_read_whole(live: LiveNode) -> None:
    """A ``subscribe`` sent in three frames is one message."""
    text = json.dumps({"type": "subscribe", "collections": ["todos"], "cursor": ""})
    async with connect(f"{live.ws_url}/v1/realtime") as ws:
        await ws.send([text[:5], text[5:20], text[20:]])
        assert await recv(ws) == {"type": "subscribed", "collections": ["todos"], "cursor": ""}


async def test_a_protocol_ping_gets_a_pong(live: LiveNode) -> None:
    """WebSocket ping frames are answered (as well as the JSON ``ping`` messages)."""
    async with connect(f"{live.ws_url}/v1/realtime") as ws:
        pong = await ws.ping(b"are you there")
        await asyncio.wait_for(pong, 5)


async def test_a_message_over_the_size_limit_closes_with_1009(live: LiveNode) -> None:
    """A client message larger than the node reads closes the connection with 1009."""
    async with connect(f"{live.ws_url}/v1/realtime", max_size=None) as ws:
        await ws.send("x" * (CLIENT_MESSAGE_BYTES + 1))
        with pytest.raises(ConnectionClosed) as closed:
            await recv(ws)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


async def test_a_compressed_connection_gets_its_changes(live: LiveNode) -> None:
    """permessage-deflate is negotiated when offered, and changes arrive through it."""
    async with connect(f"{live.ws_url}/v1/realtime", compression="deflate") as ws:
        assert ws.response is not None
        assert "permessage-deflate" in ws.response.headers["Sec-WebSocket-Extensions"]
        await subscribe(ws, ["todos"])
        await put(live.url, "todos", "t1", {"title": "milk" * 100})
        message = await recv(ws)
    assert message["type"] == "changes"
    assert message["changes"][0]["data"] == {"title": "milk" * 100}


async def test_other_websocket_paths_still_reach_the_app(live: LiveNode) -> None:
    """Only ``/v1/realtime`` is taken over: an unknown WebSocket path is refused by the app."""
    with pytest.raises(InvalidStatus) as refused:
        await connect(f"{live.ws_url}/v1/elsewhere")
    assert refused.value.response.status_code == 403


async def test_a_bad_handshake_gets_400(live: LiveNode) -> None:
    """An upgrade without ``Sec-WebSocket-Key`` is answered 400 and closed."""
    port = int(live.url.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"GET /v1/realtime HTTP/1.1\r\nHost: node\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b"Sec-WebSocket-Key" in answer
