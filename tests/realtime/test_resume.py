"""I5: a subscriber that keeps dropping its connection and resuming from its last cursor ends
with every change exactly once, in seq order per origin."""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import Awaitable, Callable
from typing import Any, cast

import httpx
import pytest
from websockets.asyncio.client import connect

from breakwater.core import incarnation
from breakwater.core.engine import Engine
from breakwater.core.hlc import HybridClock
from breakwater.core.mutation import Mutation
from breakwater.storage.sqlite import SqliteStore
from tests.realtime.clients import sse_events
from tests.realtime.conftest import LiveNode

WRITES = 600
Change = tuple[str, int, str]


async def write_stream(node: LiveNode, rng: random.Random, done: asyncio.Event) -> None:
    """Pushes to the node (region ``local``) and, in the same file, a second region ``eu``
    (changes that arrive the way replicated ones will: not announced on this node's bus)."""
    other = SqliteStore(cast(SqliteStore, node.node.store).path, Engine("eu", HybridClock("eu-1")))
    await other.open()
    try:
        async with httpx.AsyncClient(base_url=node.url, timeout=10) as http:
            written = 0
            while written < WRITES:
                size = rng.randint(1, 5)
                batch: list[dict[str, Any]] = [
                    {
                        "mutation_id": f"w{written + k}",
                        "collection": rng.choice(["todos", "notes"]),
                        "id": f"d{rng.randrange(40)}",
                        "op": "set",
                        "data": {"n": written + k},
                    }
                    for k in range(size)
                ]
                if rng.random() < 0.2:
                    await other.apply(
                        [
                            Mutation(m["mutation_id"], m["collection"], m["id"], "set", m["data"])
                            for m in batch
                        ]
                    )
                else:
                    response = await http.post("/v1/sync/push", json={"mutations": batch})
                    assert response.status_code == 200
                written += size
                await asyncio.sleep(rng.uniform(0, 0.01))
    finally:
        await other.aclose()
        done.set()


async def full_feed(url: str, collections: str | None) -> list[Change]:
    """Every change of the feed (filtered like the subscriber), by paging the pull."""
    changes: list[Change] = []
    cursor = ""
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        while True:
            params: dict[str, Any] = {"cursor": cursor, "limit": 1000}
            if collections:
                params["collections"] = collections
            page = (await http.get("/v1/sync/pull", params=params)).json()
            changes += [(c["origin"], c["seq"], c["mutation_id"]) for c in page["changes"]]
            cursor = page["cursor"]
            if not page["has_more"]:
                return changes


def check_exactly_once_in_order(got: list[Change], want: list[Change]) -> None:
    """Same set, no duplicates, and within each origin strictly increasing seqs."""
    assert len(got) == len(set(got)), "a change was delivered twice"
    assert set(got) == set(want), f"missing: {sorted(set(want) - set(got))[:10]}"
    last: dict[str, int] = {}
    for origin, seq, _ in got:
        assert seq > last.get(origin, 0), f"{origin} seq {seq} after {last[origin]}"
        last[origin] = seq


async def websocket_session(
    node: LiveNode, cursor: str, collections: list[str] | None, rng: random.Random
) -> tuple[list[Change], str]:
    """One connection: subscribe from ``cursor``, read a random while, drop at a random point."""
    got: list[Change] = []
    budget = rng.choice([0, 1, 1, 2, 3, 8])
    linger = rng.uniform(0, 0.05)
    ws = await connect(f"{node.ws_url}/v1/realtime", compression=rng.choice([None, "deflate"]))
    try:
        await ws.send(
            json.dumps({"type": "subscribe", "collections": collections, "cursor": cursor})
        )
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(linger + 0.2):
                while budget > 0:
                    message = json.loads(await ws.recv())
                    if message["type"] == "changes":
                        got += [
                            (c["origin"], c["seq"], c["mutation_id"]) for c in message["changes"]
                        ]
                        cursor = message["cursor"]
                        budget -= 1
                    elif message["type"] == "ping":
                        await ws.send('{"type":"pong"}')
    finally:
        if rng.random() < 0.5:
            ws.transport.abort()  # vanish mid-stream, possibly with frames in flight
        else:
            await ws.close()
    return got, cursor


async def test_websocket_resume_after_random_disconnects(
    make_node: Callable[..., Awaitable[LiveNode]],
) -> None:
    """80 random disconnects during 600 writes from two origins: each change once, in order."""
    await resume_many_times(await make_node(), None, seed=20261122, sessions=80)


async def test_websocket_resume_with_a_filter(
    make_node: Callable[..., Awaitable[LiveNode]],
) -> None:
    """The same with a collection filter: every change of ``todos`` once, nothing else."""
    await resume_many_times(await make_node(), ["todos"], seed=7, sessions=40)


async def resume_many_times(
    node: LiveNode, collections: list[str] | None, seed: int, sessions: int
) -> None:
    """Reconnect at least ``sessions`` times while writing, then until caught up."""
    rng = random.Random(seed)
    done = asyncio.Event()
    writer = asyncio.ensure_future(write_stream(node, random.Random(seed + 1), done))
    got: list[Change] = []
    cursor = ""
    count = 0
    async with asyncio.timeout(90):
        while count < sessions or not done.is_set():
            received, cursor = await websocket_session(node, cursor, collections, rng)
            got += received
            count += 1
        await writer
        want = await full_feed(node.url, ",".join(collections) if collections else None)
        while len(got) < len(want):
            received, cursor = await websocket_session(node, cursor, collections, rng)
            got += received
    check_exactly_once_in_order(got, want)
    assert {incarnation.region_of(origin) for origin, _, _ in got} == {"local", "eu"}
    assert count >= sessions


@pytest.mark.parametrize("seed", [3, 4])
async def test_sse_resume_with_last_event_id(
    make_node: Callable[..., Awaitable[LiveNode]], seed: int
) -> None:
    """An SSE reader that reconnects with ``Last-Event-ID`` ends with every change once."""
    node = await make_node()
    rng = random.Random(seed)
    done = asyncio.Event()
    writer = asyncio.ensure_future(write_stream(node, random.Random(seed + 1), done))
    got: list[Change] = []
    last_id: str | None = None
    async with asyncio.timeout(90), httpx.AsyncClient(base_url=node.url, timeout=10) as http:
        want: list[Change] | None = None
        while want is None or len(got) < len(want):
            headers = {} if last_id is None else {"Last-Event-ID": last_id}
            with contextlib.suppress(TimeoutError):
                async with (
                    asyncio.timeout(rng.uniform(0.01, 0.2)),
                    http.stream("GET", "/v1/realtime/sse", headers=headers) as response,
                ):
                    async for event in sse_events(response):
                        if event.event == "changes":
                            got += [
                                (c["origin"], c["seq"], c["mutation_id"])
                                for c in event.json()["changes"]
                            ]
                            last_id = event.id
            if done.is_set() and want is None:
                await writer
                want = await full_feed(node.url, None)
    assert want is not None
    check_exactly_once_in_order(got, want)
