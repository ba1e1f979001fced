"""Real `breakwater serve` processes over one PostgreSQL database: two nodes writing at once give
one gap-free feed that a reader (pull or WebSocket) follows exactly once (I2, I3, I5), SIGKILL
loses no acknowledged write (I1), and a second node with a taken node id is refused."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import websockets

from tests.conftest import ServerProcess, free_port
from tests.forwarder import Forwarder
from tests.process.test_durability import counters, feed_mutation_ids, push_until_killed
from tests.realtime.clients import recv, subscribe
from tests.storage.backends import drop_schema, postgres_url

pytestmark = pytest.mark.slow


@pytest.fixture
async def store_url() -> AsyncIterator[str]:
    """A PostgreSQL store URL with a schema of this test's own."""
    url, schema = postgres_url(pool_size="4")
    yield url
    await drop_schema(schema)


def increment(doc_id: str) -> dict[str, Any]:
    """A new increment of ``doc_id``'s counter."""
    return {
        "mutation_id": uuid.uuid4().hex,
        "collection": "load",
        "id": doc_id,
        "op": "increment",
        "data": {"n": 1},
    }


async def test_two_nodes_writing_at_once_give_one_gap_free_feed(
    start_server: Callable[..., ServerProcess], store_url: str
) -> None:
    """Pushers on both nodes and a reader following cursors on one: each acknowledged mutation
    exactly once, seqs strictly increasing, counters equal to the acknowledgements."""
    nodes = [start_server(None, "--store", store_url, "--node", f"n{i}") for i in range(2)]
    acked: list[str] = []
    seen: list[tuple[int, str]] = []
    writing = True

    async def pusher(url: str, index: int) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            for round_ in range(25):
                batch = [increment(f"d{(index + round_ + k) % 20}") for k in range(1 + round_ % 4)]
                response = await http.post("/v1/sync/push", json={"mutations": batch})
                assert response.status_code == 200, response.text
                acked.extend(r["mutation_id"] for r in response.json()["results"])

    async def follow(url: str) -> None:
        cursor = ""
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            while True:
                still_writing = writing
                params: dict[str, str | int] = {"cursor": cursor, "limit": 37}
                page = (await http.get("/v1/sync/pull", params=params)).json()
                seen.extend((c["seq"], c["mutation_id"]) for c in page["changes"])
                cursor = page["cursor"]
                if not still_writing and not page["has_more"]:
                    return
                await asyncio.sleep(0.01)

    reader = asyncio.ensure_future(follow(nodes[1].url))
    await asyncio.gather(*(pusher(nodes[i % 2].url, i) for i in range(8)))
    writing = False
    await reader
    seqs = [seq for seq, _ in seen]
    assert seqs == list(range(1, len(acked) + 1))
    assert sorted(mid for _, mid in seen) == sorted(acked)
    assert await counters(nodes[0].url) == len(acked)


async def test_sigkill_of_a_postgres_node_loses_no_acknowledged_write(
    start_server: Callable[..., ServerProcess], store_url: str
) -> None:
    """I1 on PostgreSQL: 16 pushers, SIGKILL mid-load; the other node has every acked write."""
    victim = start_server(None, "--store", store_url, "--node", "victim")
    survivor = start_server(None, "--store", store_url, "--node", "survivor")
    acked: list[str] = []
    enough = asyncio.Event()
    pushers = [
        asyncio.ensure_future(push_until_killed(victim.url, acked, enough)) for _ in range(16)
    ]
    await asyncio.wait_for(enough.wait(), 60)
    killer = threading.Thread(target=victim.kill)
    killer.start()
    await asyncio.gather(*pushers)
    killer.join()
    present = set(await feed_mutation_ids(survivor.url))
    lost = [mid for mid in acked if mid not in present]
    assert not lost, f"{len(lost)} acknowledged mutations lost"
    restarted = start_server(None, "--store", store_url, "--node", "victim")
    async with httpx.AsyncClient(base_url=restarted.url, timeout=10) as http:
        response = await http.put("/v1/collections/t/docs/after", json={"x": 1})
    assert response.status_code == 201
    assert response.json()["seq"] == len(present) + 1


def test_a_second_node_with_a_taken_node_id_is_refused(
    start_server: Callable[..., ServerProcess], store_url: str
) -> None:
    """Starting a node whose id another live node holds exits 2 and names the problem."""
    start_server(None, "--store", store_url, "--node", "twin")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BREAKWATER_")}
    command = [sys.executable, "-m", "breakwater", "serve", "--port", str(free_port())]
    command += ["--store", store_url, "--node", "twin", "--drain-grace", "0"]
    result = subprocess.run(command, capture_output=True, env=env, timeout=60, check=False)
    output = (result.stdout + result.stderr).decode()
    assert result.returncode != 0
    assert "startup_failed" in output and "node id 'twin' is already serving" in output


async def test_a_subscriber_on_one_node_gets_every_change_written_on_both(
    start_server: Callable[..., ServerProcess], store_url: str
) -> None:
    """I3 and I5 across nodes: a WebSocket subscriber on node b, reconnecting once with its
    cursor, receives every change pushed to a or b exactly once, in seq order."""
    nodes = [start_server(None, "--store", store_url, "--node", f"rt{i}") for i in range(2)]
    ws_url = nodes[1].url.replace("http://", "ws://") + "/v1/realtime"
    acked: list[str] = []
    received: list[tuple[int, str]] = []

    async def pusher(url: str, index: int) -> None:
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            for round_ in range(15):
                batch = [increment(f"d{(index + round_ + k) % 7}") for k in range(1 + round_ % 3)]
                response = await http.post("/v1/sync/push", json={"mutations": batch})
                assert response.status_code == 200, response.text
                acked.extend(r["mutation_id"] for r in response.json()["results"])
                await asyncio.sleep(0.01)

    async def listen(cursor: str, until: Callable[[], bool]) -> str:
        deadline = asyncio.get_running_loop().time() + 30
        async with websockets.connect(ws_url) as ws:
            await subscribe(ws, ["load"], cursor)
            while not until():
                assert asyncio.get_running_loop().time() < deadline, "changes stopped coming"
                try:
                    message = await recv(ws, 0.5)
                except TimeoutError:
                    continue  # look at until() again: the writers may have finished
                if message["type"] == "changes":
                    received.extend((c["seq"], c["mutation_id"]) for c in message["changes"])
                    cursor = message["cursor"]
        return cursor

    writers = asyncio.ensure_future(
        asyncio.gather(*(pusher(nodes[i % 2].url, i) for i in range(4)))
    )
    cursor = await listen("", lambda: len(received) >= 20)
    await listen(cursor, lambda: writers.done() and len(received) >= len(acked))
    await writers
    assert [seq for seq, _ in received] == list(range(1, len(acked) + 1))
    assert sorted(mid for _, mid in received) == sorted(acked)


async def test_a_node_started_while_postgresql_is_down_serves_once_it_returns(
    start_server: Callable[..., ServerProcess], store_url: str
) -> None:
    """`serve` with the database cut off at start: alive, 503 naming the store; restored:
    ready by itself, and the write is durable."""
    proxy = Forwarder(store_url)
    await proxy.start()
    await proxy.cut()
    try:
        parts = urlsplit(store_url)
        cut_url = parts._replace(netloc=f"postgres@127.0.0.1:{proxy.port}").geturl()
        node = start_server(None, "--store", cut_url, "--node", "late")  # waits for /healthz
        async with httpx.AsyncClient(base_url=node.url, timeout=10) as http:
            ready = await http.get("/readyz")
            assert ready.status_code == 503 and ready.json()["failing"] == ["store"]
            refused = await http.put("/v1/collections/t/docs/x", json={"x": 1})
            assert refused.status_code == 503 and refused.headers["retry-after"]
            await proxy.restore()
            deadline = asyncio.get_running_loop().time() + 20
            while (await http.get("/readyz")).status_code != 200:
                assert asyncio.get_running_loop().time() < deadline, "never became ready"
                await asyncio.sleep(0.1)
            assert (await http.put("/v1/collections/t/docs/x", json={"x": 2})).status_code == 201
        assert node.process.poll() is None
    finally:
        await proxy.aclose()
    assert "store_unavailable_at_start" in node.log.read_text()
