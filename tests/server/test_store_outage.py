"""I8 with PostgreSQL unreachable: /readyz names the store, writes get 503 with Retry-After,
nothing acknowledged is lost, the health gauge follows, and the node recovers by itself."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.forwarder import Forwarder
from tests.services import POSTGRES_URL, require_service
from tests.storage.backends import drop_schema, postgres_url

GAUGE = 'breakwater_dependency_up{dependency="store"}'
DOCS = "/v1/collections/todos/docs"


@pytest.fixture
async def forwarder() -> AsyncIterator[Forwarder]:
    """A cuttable path to the shared PostgreSQL."""
    proxy = Forwarder(require_service(POSTGRES_URL))
    await proxy.start()
    yield proxy
    await proxy.aclose()


@pytest.fixture
async def node(
    forwarder: Forwarder, make_client: Callable[..., Any]
) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process node whose PostgreSQL store is reached through the forwarder."""
    direct, schema = postgres_url(pool_size="4", timeout="2")
    parts = urlsplit(direct)
    url = parts._replace(netloc=f"postgres@127.0.0.1:{forwarder.port}").geturl()
    client: httpx.AsyncClient = await make_client(store=url)
    yield client
    await drop_schema(schema)


def gauge(metrics: str) -> float:
    """The store health gauge's value in a /metrics text."""
    line = next(line for line in metrics.splitlines() if line.startswith(GAUGE))
    return float(line.rsplit(" ", 1)[1])


async def wait_ready(client: httpx.AsyncClient, seconds: float = 20) -> None:
    """Poll /readyz until it says 200."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if (await client.get("/readyz")).status_code == 200:
            return
        await asyncio.sleep(0.2)
    raise AssertionError("the node did not become ready again")


async def test_store_outage_is_503_and_recovers_without_losing_acknowledged_writes(
    node: httpx.AsyncClient, forwarder: Forwarder
) -> None:
    """Cut PostgreSQL off mid-traffic, check every degraded answer, restore, check everything."""
    acknowledged: dict[str, int] = {}

    async def writer(name: str, stop: asyncio.Event) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            response = await node.put(f"{DOCS}/{name}-{i}", json={"i": i})
            if response.status_code in (200, 201):
                acknowledged[f"{name}-{i}"] = i
            else:
                assert response.status_code == 503, response.text
            await asyncio.sleep(0.005)

    stop = asyncio.Event()
    writers = [asyncio.ensure_future(writer(f"w{k}", stop)) for k in range(4)]
    await asyncio.sleep(0.5)
    await forwarder.cut()
    await asyncio.sleep(0.5)
    stop.set()
    await asyncio.gather(*writers)
    assert acknowledged, "some writes must have been acknowledged before the cut"
    assert gauge((await node.get("/metrics")).text) == 0.0  # failed writes, before any probe

    ready = await node.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["failing"] == ["store"]
    assert ready.headers["retry-after"]
    write = await node.put(f"{DOCS}/during", json={"x": 1})
    assert write.status_code == 503
    assert write.headers["content-type"] == "application/problem+json"
    assert write.json()["type"] == "store_unavailable"
    assert write.headers["retry-after"]
    push = await node.post(
        "/v1/sync/push",
        json={
            "client_id": "c1",
            "mutations": [
                {
                    "mutation_id": "p1",
                    "collection": "todos",
                    "id": "p",
                    "op": "set",
                    "data": {"x": 1},
                }
            ],
        },
    )
    assert push.status_code == 503 and push.json()["type"] == "store_unavailable"
    assert (await node.get(f"{DOCS}/w0-1")).status_code == 503

    await forwarder.restore()
    await wait_ready(node)
    assert gauge((await node.get("/metrics")).text) == 1.0
    assert (await node.put(f"{DOCS}/after", json={"x": 2})).status_code == 201
    for doc_id, i in acknowledged.items():
        response = await node.get(f"{DOCS}/{doc_id}")
        assert response.status_code == 200, doc_id
        assert response.json()["data"] == {"i": i}
    pull = await node.get("/v1/sync/pull", params={"limit": 1000})
    seqs = [change["seq"] for change in pull.json()["changes"]]
    assert seqs == sorted(seqs) and len(seqs) == len(set(seqs)) >= len(acknowledged) + 1
