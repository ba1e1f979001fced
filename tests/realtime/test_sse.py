"""``GET /v1/realtime/sse``: the change stream as Server-Sent Events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from breakwater.core import cursor as cursor_mod
from breakwater.server.app import compact
from tests.realtime.clients import SseEvent, put, sse_events
from tests.realtime.conftest import LiveNode


async def next_event(events: AsyncIterator[SseEvent], seconds: float = 5) -> SseEvent:
    """The next event that is not a comment."""
    async with asyncio.timeout(seconds):
        async for event in events:
            if event.comment is None:
                return event
    raise AssertionError("the stream ended")


async def test_changes_arrive_as_events_whose_ids_are_cursors(live: LiveNode) -> None:
    """``retry`` first, then one ``changes`` event per message, ``id`` = its cursor."""
    await put(live.url, "todos", "t1", {"a": 1})
    async with (
        httpx.AsyncClient(base_url=live.url, timeout=10) as http,
        http.stream("GET", "/v1/realtime/sse", params={"collections": "todos"}) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert response.headers["cache-control"] == "private, no-store"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "content-length" not in response.headers
        events = sse_events(response)
        first = await next_event(events)
        replayed = await next_event(events)
        await put(live.url, "todos", "t2", {"a": 2})
        fresh = await next_event(events)
    assert first.retry is not None and 1000 <= first.retry < 3000
    assert (replayed.event, replayed.id) == ("changes", replayed.json()["cursor"])
    assert [c["id"] for c in replayed.json()["changes"]] == ["t1"]
    assert [c["id"] for c in fresh.json()["changes"]] == ["t2"]
    assert cursor_mod.decode(fresh.id) == {live.node.store.origin: 2}


async def test_last_event_id_wins_over_the_cursor_parameter(live: LiveNode) -> None:
    """A reconnecting EventSource's ``Last-Event-ID`` is where the stream resumes."""
    for i in range(4):
        await put(live.url, "todos", f"t{i}", {"i": i})
    params = {"cursor": cursor_mod.encode({live.node.store.origin: 1})}
    headers = {"Last-Event-ID": cursor_mod.encode({live.node.store.origin: 3})}
    async with (
        httpx.AsyncClient(base_url=live.url, timeout=10) as http,
        http.stream("GET", "/v1/realtime/sse", params=params, headers=headers) as response,
    ):
        events = sse_events(response)
        await next_event(events)  # retry
        replayed = await next_event(events)
    assert [c["seq"] for c in replayed.json()["changes"]] == [4]


async def test_comments_keep_an_idle_stream_alive(
    make_node: Callable[..., Awaitable[LiveNode]],
) -> None:
    """An idle stream gets a ``: keep-alive`` comment every heartbeat."""
    node = await make_node(realtime_heartbeat=0.2, realtime_timeout=1.0)
    comments = []
    async with (
        httpx.AsyncClient(base_url=node.url, timeout=10) as http,
        http.stream("GET", "/v1/realtime/sse") as response,
    ):
        async with asyncio.timeout(5):
            async for event in sse_events(response):
                if event.comment is not None:
                    comments.append(event.comment)
                if len(comments) == 2:
                    break
    assert comments == ["keep-alive", "keep-alive"]


@pytest.mark.parametrize(
    ("params", "headers", "status", "type_"),
    [
        ({"cursor": "x"}, {}, 400, "validation_error"),
        ({}, {"Last-Event-ID": "c1.!!"}, 400, "validation_error"),
        ({"collections": "a,9b"}, {}, 400, "validation_error"),
    ],
)
async def test_bad_parameters_get_a_problem_not_a_stream(
    live: LiveNode, params: dict[str, str], headers: dict[str, str], status: int, type_: str
) -> None:
    """A bad cursor or collection is refused with problem+json before any stream starts."""
    async with httpx.AsyncClient(base_url=live.url, timeout=10) as http:
        response = await http.get("/v1/realtime/sse", params=params, headers=headers)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == type_


async def test_an_expired_cursor_gets_410(live: LiveNode) -> None:
    """A cursor behind the retention horizon gets ``410 cursor_expired`` (no stream to retry)."""
    for _ in range(3):
        await put(live.url, "todos", "same", {"v": 1})
    await compact(live.node, horizon_ms=0, now_ms=2**62)
    async with httpx.AsyncClient(base_url=live.url, timeout=10) as http:
        response = await http.get(
            "/v1/realtime/sse", params={"cursor": cursor_mod.encode({live.node.store.origin: 1})}
        )
    assert response.status_code == 410
    assert response.json()["type"] == "cursor_expired"


async def test_the_connection_limit_refuses_with_503_and_retry_after(
    make_node: Callable[..., Awaitable[LiveNode]],
) -> None:
    """Over the limit an SSE request gets 503 problem+json with ``Retry-After``."""
    node = await make_node(max_realtime_connections=1)
    async with (
        httpx.AsyncClient(base_url=node.url, timeout=10) as http,
        http.stream("GET", "/v1/realtime/sse") as first,
    ):
        assert first.status_code == 200
        refused = await http.get("/v1/realtime/sse")
    assert refused.status_code == 503
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.json()["reason"] == "limit"


async def test_draining_sends_a_reconnect_event_and_ends_the_stream(live: LiveNode) -> None:
    """On drain the stream gets ``event: reconnect`` with the cursor, then ends."""
    await put(live.url, "todos", "t1", {"a": 1})
    async with (
        httpx.AsyncClient(base_url=live.url, timeout=10) as http,
        http.stream("GET", "/v1/realtime/sse") as response,
    ):
        events = sse_events(response)
        await next_event(events)  # retry
        changes = await next_event(events)
        live.node.start_draining()
        goodbye = await next_event(events)
        async with asyncio.timeout(5):
            rest = [event async for event in events]
    assert goodbye.event == "reconnect"
    assert goodbye.json() == {"type": "reconnect", "reason": "draining", "cursor": changes.id}
    assert rest == []


async def test_sse_connections_are_counted_by_transport(live: LiveNode) -> None:
    """The connections gauge has an ``sse`` series while a stream is open."""
    async with (
        httpx.AsyncClient(base_url=live.url, timeout=10) as http,
        http.stream("GET", "/v1/realtime/sse") as response,
    ):
        await next_event(sse_events(response))
        text = (await http.get("/metrics")).text
    assert 'breakwater_realtime_connections{transport="sse"} 1.0' in text
