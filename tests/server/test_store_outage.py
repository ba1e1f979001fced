"""I8 with PostgreSQL unreachable: /readyz names the store, writes get 503 with Retry-After,
nothing acknowledged is lost, the health gauge follows, and the node recovers by itself."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest

from breakwater.storage._pg_schema import LATEST
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
async def schema_url(forwarder: Forwarder) -> AsyncIterator[tuple[str, str]]:
    """A PostgreSQL URL through the forwarder to a schema of this test's own, and the schema."""
    direct, schema = postgres_url(pool_size="4", timeout="2")
    parts = urlsplit(direct)
    yield parts._replace(netloc=f"postgres@127.0.0.1:{forwarder.port}").geturl(), schema
    await drop_schema(schema)


@pytest.fixture
async def node(schema_url: tuple[str, str], make_client: Callable[..., Any]) -> httpx.AsyncClient:
    """An in-process node whose PostgreSQL store is reached through the forwarder."""
    client: httpx.AsyncClient = await make_client(store=schema_url[0])
    return client


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
    some_acknowledged = asyncio.Event()

    async def writer(name: str, stop: asyncio.Event) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            response = await node.put(f"{DOCS}/{name}-{i}", json={"i": i})
            if response.status_code in (200, 201):
                acknowledged[f"{name}-{i}"] = i
                some_acknowledged.set()
            else:
                assert response.status_code == 503, response.text
            await asyncio.sleep(0.005)

    stop = asyncio.Event()
    writers = [asyncio.ensure_future(writer(f"w{k}", stop)) for k in range(4)]
    # Cut mid-traffic: once writes are being acknowledged (under load the first ones, which
    # open the pool's connections, took more than a fixed half second), then a little more.
    async with asyncio.timeout(30):
        await some_acknowledged.wait()
    await asyncio.sleep(0.2)
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


async def migrated_version(schema: str) -> int | None:
    """The schema's migration version, or None if it was never created."""
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        exists = await conn.fetchval("SELECT to_regclass($1)", f'"{schema}".schema_migrations')
        if exists is None:
            return None
        version: int = await conn.fetchval(f'SELECT MAX(version) FROM "{schema}".schema_migrations')
        return version
    finally:
        await conn.close()


async def test_a_node_started_while_postgresql_is_down_serves_503_then_recovers_by_itself(
    forwarder: Forwarder, schema_url: tuple[str, str], make_client: Callable[..., Any]
) -> None:
    """Start with PostgreSQL cut off: 503s naming the store; restore: migrated, serving, live."""
    await forwarder.cut()
    node: httpx.AsyncClient = await make_client(store=schema_url[0])

    ready = await node.get("/readyz")
    assert ready.status_code == 503 and ready.headers["retry-after"]
    assert ready.json()["failing"] == ["store"]
    assert ready.json()["checks"]["store"].startswith("not open: ")
    assert gauge((await node.get("/metrics")).text) == 0.0
    write = await node.put(f"{DOCS}/early", json={"x": 1})
    assert write.status_code == 503 and write.headers["retry-after"]
    assert write.headers["content-type"] == "application/problem+json"
    assert write.json()["type"] == "store_unavailable"
    assert (await node.get(f"{DOCS}/early")).status_code == 503
    assert (await node.get("/v1/sync/pull")).status_code == 503
    account = {"email": "early@example.com", "password": "correct horse"}
    signup = await node.post("/v1/auth/signup", json=account)
    assert signup.status_code == 503 and signup.json()["type"] == "store_unavailable"
    assert await migrated_version(schema_url[1]) is None

    await forwarder.restore()
    await wait_ready(node)
    assert await migrated_version(schema_url[1]) == LATEST
    assert gauge((await node.get("/metrics")).text) == 1.0
    # The realtime follower started from the head, so subscribers can go live again.
    assert node.app.state.node.realtime.fanout.following  # type: ignore[attr-defined]
    cursor = (await node.get("/v1/sync/pull")).json()["cursor"]
    waiting = asyncio.ensure_future(
        node.get("/v1/sync/pull", params={"cursor": cursor, "wait": 10})
    )
    assert (await node.put(f"{DOCS}/late", json={"x": 2})).status_code == 201
    woken = await asyncio.wait_for(waiting, 8)
    assert [change["id"] for change in woken.json()["changes"]] == ["late"]
    assert (await node.get(f"{DOCS}/late")).json()["data"] == {"x": 2}
    assert (await node.post("/v1/auth/signup", json=account)).status_code == 201
