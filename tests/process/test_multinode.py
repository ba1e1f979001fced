"""Two ``breakwater serve`` processes on one SQLite file: a change committed on either reaches
WebSocket subscribers on both exactly once, promptly through a Redis or NATS bus, and still
(through the fallback poll) when the bus's broker is dead."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.conftest import ServerProcess, free_port
from tests.services import NATS_URL, REDIS_URL, require_service

pytestmark = pytest.mark.slow

POLL_INTERVAL = 1.0
"""The follower's fallback poll (breakwater.server.realtime.fanout.POLL_INTERVAL)."""


def live_bus(scheme: str) -> str:
    """A bus URL on the test broker with a prefix of this test's own."""
    url = require_service(REDIS_URL if scheme == "redis" else NATS_URL)
    return f"{url}?prefix=test-{uuid.uuid4().hex[:12]}"


def dead_bus(scheme: str) -> str:
    """A bus URL whose broker port has nothing listening."""
    return f"{scheme}://127.0.0.1:{free_port()}"


def two_nodes(
    start_server: Callable[..., ServerProcess], data: Path, bus: str
) -> tuple[ServerProcess, ServerProcess]:
    """Nodes A and B on one data directory (one SQLite file) and one bus."""
    a = start_server(data, "--node", "node-a", "--bus", bus)
    b = start_server(data, "--node", "node-b", "--bus", bus)
    return a, b


async def subscribe(server: ServerProcess) -> ClientConnection:
    """A WebSocket subscribed to every collection from the start of the feed."""
    ws = await connect(server.url.replace("http://", "ws://") + "/v1/realtime")
    await ws.send(json.dumps({"type": "subscribe", "cursor": ""}))
    while json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] != "subscribed":
        pass
    return ws


async def changes(ws: ClientConnection, seconds: float) -> list[dict[str, Any]]:
    """The changes of the next ``changes`` message (answering pings on the way)."""
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), seconds))
        if message["type"] == "ping":
            await ws.send(json.dumps({"type": "pong"}))
        elif message["type"] == "changes" and message["changes"]:
            found: list[dict[str, Any]] = message["changes"]
            return found


async def collect(
    ws: ClientConnection, expected: set[tuple[str, int]], seconds: float
) -> list[tuple[str, int]]:
    """Every ``(origin, seq)`` received until ``expected`` is covered (or ``seconds`` pass)."""
    received: list[tuple[str, int]] = []
    deadline = time.monotonic() + seconds
    while not expected <= set(received) and time.monotonic() < deadline:
        try:
            batch = await changes(ws, max(0.1, deadline - time.monotonic()))
        except TimeoutError:
            break
        received += [(c["origin"], c["seq"]) for c in batch]
    # Anything sent twice would already be here: give a late duplicate a moment to show.
    with contextlib.suppress(TimeoutError):
        received += [(c["origin"], c["seq"]) for c in await changes(ws, 0.5)]
    return received


def bus_received(server: ServerProcess) -> float:
    """Notices the node received from other nodes through its broker."""
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    match = re.search(r'^breakwater_bus_notices_total\{direction="received"\} (\S+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


@pytest.mark.parametrize("scheme", ["redis", "nats"])
async def test_a_write_on_node_a_reaches_a_subscriber_on_node_b_once_through_the_bus(
    scheme: str, start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """Each write on A arrives on B's WebSocket once, well within the fallback poll interval,
    and B's metrics show the bus carried the notices."""
    a, b = two_nodes(start_server, tmp_path / "data", live_bus(scheme))
    ws = await subscribe(b)
    delays = []
    async with httpx.AsyncClient(base_url=a.url, timeout=10) as http:
        for i in range(5):
            started = time.monotonic()
            ack = (await http.put(f"/v1/collections/notes/docs/n{i}", json={"i": i})).json()
            batch = await changes(ws, 5)
            delays.append(time.monotonic() - started)
            assert [(c["origin"], c["seq"], c["data"]) for c in batch] == [
                (ack["origin"], ack["seq"], {"i": i})
            ]
    await ws.close()
    assert max(delays) < POLL_INTERVAL / 2, delays
    assert bus_received(b) >= 5


async def write_many(url: str, prefix: str, count: int) -> set[tuple[str, int]]:
    """``count`` PUTs on one node; the ``(origin, seq)`` of every acknowledged write."""
    acked = set()
    async with httpx.AsyncClient(base_url=url, timeout=20) as http:
        for i in range(count):
            doc_id = f"{prefix}-{i % 7}"  # writers also overwrite each other's documents
            response = await http.put(f"/v1/collections/notes/docs/{doc_id}", json={"i": i})
            assert response.status_code in (200, 201)
            acked.add((response.json()["origin"], response.json()["seq"]))
    return acked


async def every_change_once_on_both(a: ServerProcess, b: ServerProcess, seconds: float) -> None:
    """Concurrent writers on both nodes; subscribers on both get every change exactly once."""
    subscribers = [await subscribe(a), await subscribe(b)]
    writes = await asyncio.gather(
        write_many(a.url, "a1", 30),
        write_many(a.url, "shared", 30),
        write_many(b.url, "b1", 30),
        write_many(b.url, "shared", 30),
    )
    expected = set().union(*writes)
    assert len(expected) == 120
    for ws in subscribers:
        received = await collect(ws, expected, seconds)
        await ws.close()
        assert len(received) == len(set(received)), "a change was delivered twice"
        assert set(received) == expected


@pytest.mark.parametrize("scheme", ["redis", "nats"])
async def test_concurrent_writers_on_both_nodes_reach_every_subscriber_once(
    scheme: str, start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """With a live bus, both subscribers end with every change of both nodes, once each."""
    a, b = two_nodes(start_server, tmp_path / "data", live_bus(scheme))
    await every_change_once_on_both(a, b, 20)
    assert bus_received(a) > 0 and bus_received(b) > 0


@pytest.mark.parametrize("scheme", ["redis", "nats"])
async def test_with_the_broker_dead_every_change_still_arrives_through_the_poll(
    scheme: str, start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """A bus whose broker is down: writes and reads work on both nodes, /readyz says the bus
    is degraded, and subscribers still get every change once (the fallback poll)."""
    a, b = two_nodes(start_server, tmp_path / "data", dead_bus(scheme))
    async with httpx.AsyncClient(timeout=10) as http:
        ready = await http.get(f"{b.url}/readyz")
        metrics = (await http.get(f"{b.url}/metrics")).text
    assert ready.status_code == 200
    assert ready.json()["degraded"] == ["bus"]
    assert 'breakwater_dependency_up{dependency="bus"} 0.0' in metrics
    await every_change_once_on_both(a, b, 30)
    async with httpx.AsyncClient(timeout=10) as http:
        await http.put(f"{b.url}/v1/collections/notes/docs/last", json={"v": "b"})
        for _ in range(2):  # now in B's cache
            assert (await http.get(f"{b.url}/v1/collections/notes/docs/last")).status_code == 200
        await http.put(f"{a.url}/v1/collections/notes/docs/last", json={"v": "a"})
        deadline = time.monotonic() + 3 * POLL_INTERVAL
        while (await http.get(f"{b.url}/v1/collections/notes/docs/last")).json()["data"] != {
            "v": "a"
        }:
            assert time.monotonic() < deadline, "node B kept serving a stale read"
            await asyncio.sleep(0.05)
    assert bus_received(a) == bus_received(b) == 0


@pytest.mark.parametrize("scheme", ["redis", "nats"])
async def test_a_long_poll_on_node_b_answers_a_write_on_node_a_promptly(
    scheme: str, start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """A pull waiting on B returns the change written on A well within the poll interval."""
    a, b = two_nodes(start_server, tmp_path / "data", live_bus(scheme))
    async with httpx.AsyncClient(timeout=20) as http:
        cursor = (await http.get(f"{b.url}/v1/sync/pull")).json()["cursor"]
        waiting = asyncio.ensure_future(
            http.get(f"{b.url}/v1/sync/pull", params={"cursor": cursor, "wait": 10})
        )
        await asyncio.sleep(0.5)  # the pull is waiting on B
        started = time.monotonic()
        ack = (await http.put(f"{a.url}/v1/collections/notes/docs/lp", json={"v": 1})).json()
        pulled = (await waiting).json()
        elapsed = time.monotonic() - started
    assert [(c["origin"], c["seq"]) for c in pulled["changes"]] == [(ack["origin"], ack["seq"])]
    assert elapsed < POLL_INTERVAL / 2, elapsed
