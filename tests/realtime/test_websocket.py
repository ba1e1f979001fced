"""``GET /v1/realtime``: the WebSocket protocol as docs/protocol.md states it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from breakwater.core import cursor as cursor_mod
from breakwater.server.app import compact
from tests.realtime.clients import put, recv, subscribe
from tests.realtime.conftest import LiveNode


async def test_subscribe_is_acknowledged_then_changes_arrive(live: LiveNode) -> None:
    """``subscribed`` echoes the request; a later write arrives as the pull would show it."""
    async with connect(f"{live.ws_url}/v1/realtime") as ws:
        ack = await subscribe(ws, ["todos"])
        assert ack == {"type": "subscribed", "collections": ["todos"], "cursor": ""}
        await put(live.url, "todos", "t1", {"title": "milk"})
        message = await recv(ws)
    async with httpx.AsyncClient(base_url=live.url) as http:
        pulled = (await http.get("/v1/sync/pull")).json()
    assert message["type"] == "changes"
    assert message["changes"] == pulled["changes"]
    assert message["cursor"] == pulled["cursor"]
    assert message["stable"] == pulled["stable"] == {live.node.store.origin: 1}


async def test_the_history_is_replayed_from_the_cursor(live: LiveNode) -> None:
    """A subscriber from a cursor gets exactly the changes after it, then live ones."""
    for i in range(5):
        await put(live.url, "todos", f"t{i}", {"i": i})
    async with connect(f"{live.ws_url}/v1/realtime") as ws:
        await subscribe(ws, None, cursor_mod.encode({live.node.store.origin: 2}))
        # The history may come in more than one message (replay, then the live page).
        replayed = await changes_until(ws, 5)
        await put(live.url, "todos", "t9", {"i": 9})
        fresh = await changes_until(ws, 6)
    assert replayed == [3, 4, 5]
    assert fresh == [6]


async def changes_until(ws: ClientConnection, last_seq: int, messages: int = 10) -> list[int]:
    """The seqs of ``changes`` messages received until ``last_seq`` (at most ``messages``)."""
    seqs: list[int] = []
    for _ in range(messages):
        message = await recv(ws)
        assert message["type"] == "changes", message
        seqs += [change["seq"] for change in message["changes"]]
        if seqs and seqs[-1] >= last_seq:
            return seqs
    raise AssertionError(f"seq {last_seq} did not arrive in {messages} messages: {seqs}")


async def test_permessage_deflate_is_negotiated_when_the_client_offers_it(live: LiveNode) -> None:
    """A client offering permessage-deflate gets it; one that does not, does not."""
    async with connect(f"{live.ws_url}/v1/realtime", compression="deflate") as ws:
        assert ws.response is not None
        offered = ws.response.headers.get("Sec-WebSocket-Extensions", "")
        await subscribe(ws)  # compressed frames both ways work
    async with connect(f"{live.ws_url}/v1/realtime", compression=None) as ws:
        assert ws.response is not None
        plain = ws.response.headers.get("Sec-WebSocket-Extensions")
    assert offered.startswith("permessage-deflate")
    assert plain is None


async def test_ping_gets_pong(live: LiveNode) -> None:
    """A client ``ping`` is answered with ``pong``."""
    async with connect(f"{live.ws_url}/v1/realtime") as ws:
        await ws.send('{"type":"ping"}')
        assert await recv(ws) == {"type": "pong"}


@pytest.mark.parametrize(
    ("frame", "field", "detail"),
    [
        ("not json", None, "message is not valid JSON"),
        ("[1, 2]", None, "a message must be a JSON object"),
        ('{"type":"shout"}', "type", "unknown message type 'shout'"),
        ('{"type":"subscribe","cursor":"nope"}', "cursor", "cursor is not a Breakwater cursor"),
        ('{"type":"subscribe","collections":[]}', "collections", "non-empty list"),
        ('{"type":"subscribe","collections":["9x"]}', "collection", "must match"),
        ('{"type":"subscribe","since":1}', None, "unknown message fields: ['since']"),
        (b"\x00\x01", None, "JSON text frames, not binary"),
    ],
)
async def test_a_bad_message_gets_an_error_and_the_connection_stays(
    live: LiveNode, frame: str | bytes, field: str | None, detail: str
) -> None:
    """Each bad message gets an ``error`` with a nested problem; the connection still works."""
    async with connect(f"{live.ws_url}/v1/realtime") as ws:
        await ws.send(frame)
        message = await recv(ws)
        await ws.send('{"type":"ping"}')
        assert await recv(ws) == {"type": "pong"}
    assert message["type"] == "error"
    problem = message["error"]
    assert (problem["type"], problem["status"]) == ("validation_error", 400)
    assert detail in problem["detail"]
    assert problem.get("field") == field


async def test_repeated_bad_messages_close_with_1008(live: LiveNode) -> None:
    """The tenth bad message in a connection closes it with 1008 (policy violation)."""
    async with connect(f"{live.ws_url}/v1/realtime") as ws:
        for _ in range(10):
            await ws.send("junk")
        errors = 0
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                assert (await recv(ws))["type"] == "error"
                errors += 1
    assert errors == 10
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


async def test_unsubscribe_stops_the_stream(live: LiveNode) -> None:
    """After ``unsubscribed`` nothing of the old subscription arrives."""
    async with connect(f"{live.ws_url}/v1/realtime") as ws:
        await subscribe(ws)
        await ws.send('{"type":"unsubscribe"}')
        assert await recv(ws) == {"type": "unsubscribed"}
        await put(live.url, "todos", "t1", {"a": 1})
        with pytest.raises(TimeoutError):
            await recv(ws, 0.3)


async def test_a_new_subscribe_replaces_the_old_one(live: LiveNode) -> None:
    """A second ``subscribe`` switches the filter; its changes follow its acknowledgement."""
    async with connect(f"{live.ws_url}/v1/realtime") as ws:
        await subscribe(ws, ["todos"])
        await subscribe(ws, ["notes"])
        await put(live.url, "todos", "t1", {"a": 1})
        await put(live.url, "notes", "n1", {"a": 1})
        message = await recv(ws)
    assert [c["collection"] for c in message["changes"]] == ["notes"]


async def test_the_server_pings_and_closes_a_silent_client(
    make_node: Callable[..., Awaitable[LiveNode]],
) -> None:
    """A client that never answers gets pings, then ``reconnect`` (timeout) and close 4408."""
    node = await make_node(realtime_heartbeat=0.2, realtime_timeout=0.5)
    received = []
    async with connect(f"{node.ws_url}/v1/realtime", ping_interval=None) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            for _ in range(50):
                received.append(json.loads(await asyncio.wait_for(ws.recv(), 3)))
    assert received[0] == {"type": "ping"}
    assert received[-1] == {"type": "reconnect", "reason": "timeout", "cursor": ""}
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4408


async def test_a_client_that_answers_pings_stays_connected(
    make_node: Callable[..., Awaitable[LiveNode]],
) -> None:
    """Answering ``ping`` with ``pong`` keeps a connection open past the timeout."""
    node = await make_node(realtime_heartbeat=0.2, realtime_timeout=0.5)
    async with connect(f"{node.ws_url}/v1/realtime") as ws:
        await subscribe(ws)
        with pytest.raises(TimeoutError):
            await recv(ws, 1.5)  # answers pings while waiting
        await put(node.url, "todos", "t1", {"a": 1})
        assert (await recv(ws))["type"] == "changes"


async def test_a_quiet_filter_still_gets_its_cursor_moved(
    make_node: Callable[..., Awaitable[LiveNode]],
) -> None:
    """Changes a filter skips move the cursor, handed over in an empty ``changes`` message."""
    node = await make_node(realtime_heartbeat=0.2, realtime_timeout=2.0)
    async with connect(f"{node.ws_url}/v1/realtime") as ws:
        await subscribe(ws, ["quiet"])
        await put(node.url, "busy", "b1", {"a": 1})
        message = await recv(ws, 2)
    assert message["changes"] == []
    assert cursor_mod.decode(message["cursor"]) == {node.node.store.origin: 1}


async def test_the_connection_limit_refuses_with_503_before_the_upgrade(
    make_node: Callable[..., Awaitable[LiveNode]],
) -> None:
    """Over ``max_realtime_connections`` the handshake gets a 503 problem with Retry-After."""
    node = await make_node(max_realtime_connections=2)
    async with connect(f"{node.ws_url}/v1/realtime"), connect(f"{node.ws_url}/v1/realtime"):
        with pytest.raises(InvalidStatus) as refused:
            await connect(f"{node.ws_url}/v1/realtime")
    response = refused.value.response
    assert response.status_code == 503
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert int(response.headers["Retry-After"]) >= 1
    body = json.loads(response.body)
    assert (body["type"], body["reason"]) == ("unavailable", "limit")


async def test_an_expired_cursor_gets_cursor_expired(live: LiveNode) -> None:
    """A cursor behind the retention horizon gets an ``error`` (410) and no subscription."""
    for _ in range(3):
        await put(live.url, "todos", "same", {"v": 1})
    await compact(live.node, horizon_ms=0, now_ms=2**62)
    async with connect(f"{live.ws_url}/v1/realtime") as ws:
        await subscribe(ws, None, cursor_mod.encode({live.node.store.origin: 1}))
        message = await recv(ws)
        await put(live.url, "todos", "other", {"v": 1})
        with pytest.raises(TimeoutError):
            await recv(ws, 0.3)
    assert message["type"] == "error"
    assert (message["error"]["type"], message["error"]["status"]) == ("cursor_expired", 410)


async def test_draining_sends_reconnect_then_closes_1012(live: LiveNode) -> None:
    """When the node drains, a subscriber gets ``reconnect`` with its cursor, then 1012."""
    async with connect(f"{live.ws_url}/v1/realtime") as ws:
        await subscribe(ws)
        await put(live.url, "todos", "t1", {"a": 1})
        changes = await recv(ws)
        live.node.start_draining()
        goodbye = await recv(ws)
        with pytest.raises(ConnectionClosed) as closed:
            await recv(ws)
    assert goodbye == {"type": "reconnect", "reason": "draining", "cursor": changes["cursor"]}
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
    with pytest.raises(InvalidStatus) as refused:
        await connect(f"{live.ws_url}/v1/realtime")
    assert refused.value.response.status_code == 503


async def test_metrics_count_connections_messages_and_latency(live: LiveNode) -> None:
    """The realtime gauge, counters and notify histogram move with a delivery."""
    async with connect(f"{live.ws_url}/v1/realtime") as ws:
        await subscribe(ws)
        await put(live.url, "todos", "t1", {"a": 1})
        await recv(ws)
        async with httpx.AsyncClient(base_url=live.url) as http:
            text = (await http.get("/metrics")).text
    assert 'breakwater_realtime_connections{transport="websocket"} 1.0' in text
    assert 'breakwater_realtime_messages_total{transport="websocket"} 2.0' in text
    assert 'breakwater_realtime_bytes_total{transport="websocket"}' in text
    assert "breakwater_realtime_notify_seconds_count 1.0" in text
    assert "breakwater_realtime_overflows_total 0.0" in text
