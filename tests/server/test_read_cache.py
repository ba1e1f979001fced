"""Cached reads: hits, invalidation on commit (this node's and other nodes'), read-your-writes,
and a cache outage that degrades to store reads (I8)."""

from __future__ import annotations

import asyncio
import random
import re
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from breakwater.cache.memory import MemoryCache
from breakwater.core.engine import StoredDoc
from breakwater.obs.metrics import Metrics
from breakwater.server.read_cache import ReadCache
from tests.forwarder import Forwarder
from tests.services import REDIS_URL, require_service

DOC = "/v1/collections/notes/docs/n1"


def counter(text: str, name: str, label: str) -> float:
    """The value of ``name{...="label"}`` in a Prometheus exposition (0 when absent)."""
    match = re.search(rf'^{name}_total{{\w+="{label}"}} (\S+)$', text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def lookups(client: httpx.AsyncClient, result: str) -> float:
    """How many cached reads ended with ``result``."""
    return counter((await client.get("/metrics")).text, "breakwater_cache_lookups", result)


async def eventually(check: Callable[[], Any], seconds: float = 5.0) -> None:
    """Retry the async ``check`` until it stops failing, or re-raise its last failure."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        try:
            await check()
            return
        except AssertionError:
            if loop.time() > deadline:
                raise
            await asyncio.sleep(0.05)


async def test_a_second_read_is_a_hit_with_the_same_answer(client: httpx.AsyncClient) -> None:
    """The second GET of a document comes from the cache, byte for byte the same."""
    await client.put(DOC, json={"text": "hello"})
    first = await client.get(DOC)
    second = await client.get(DOC)
    assert second.status_code == 200
    assert second.content == first.content
    assert second.headers["etag"] == first.headers["etag"]
    assert await lookups(client, "hit") >= 1


async def test_a_write_is_read_back_at_once(client: httpx.AsyncClient) -> None:
    """After a cached read, every acknowledged write is what the next read returns."""
    for round_ in range(20):
        written = await client.put(DOC, json={"round": round_})
        read = await client.get(DOC)
        assert read.json()["data"] == {"round": round_}
        assert read.headers["etag"] == written.headers["etag"]
    await client.delete(DOC)
    assert (await client.get(DOC)).status_code == 404


async def test_a_pushed_write_invalidates_the_document_and_its_queries(
    client: httpx.AsyncClient,
) -> None:
    """A sync push invalidates cached documents and query pages of its collection."""
    await client.put(DOC, json={"n": 1})
    query = "/v1/collections/notes/docs?where=n:gte:1"
    assert len((await client.get(query)).json()["docs"]) == 1
    await client.get(DOC)
    mutation = {"mutation_id": uuid.uuid4().hex, "collection": "notes", "id": "n2"}
    push = {"client_id": "c1", "mutations": [mutation | {"op": "set", "data": {"n": 2}}]}
    assert (await client.post("/v1/sync/push", json=push)).status_code == 200
    patch = {"mutation_id": uuid.uuid4().hex, "collection": "notes", "id": "n1"}
    push = {"client_id": "c1", "mutations": [patch | {"op": "patch", "data": {"n": 5}}]}
    assert (await client.post("/v1/sync/push", json=push)).status_code == 200
    assert [d["data"]["n"] for d in (await client.get(query)).json()["docs"]] == [5, 2]
    assert (await client.get(DOC)).json()["data"] == {"n": 5}


async def test_concurrent_writers_always_read_their_own_writes(
    client: httpx.AsyncClient,
) -> None:
    """Clients writing and reading concurrently never read a version older than their ack."""

    async def writer(name: str) -> None:
        path = f"/v1/collections/notes/docs/{name}"
        for round_ in range(15):
            await client.put(path, json={"round": round_})
            other = random.choice(["w0", "w1", "w2", "w3"])
            await client.get(f"/v1/collections/notes/docs/{other}")
            assert (await client.get(path)).json()["data"] == {"round": round_}
            await client.get("/v1/collections/notes/docs?where=round:gte:0")

    await asyncio.gather(*(writer(f"w{i}") for i in range(4)))
    docs = (await client.get("/v1/collections/notes/docs")).json()["docs"]
    assert [d["data"]["round"] for d in docs] == [14, 14, 14, 14]


async def test_a_write_on_another_node_reaches_this_nodes_memory_cache(
    make_client: Callable[..., Any],
) -> None:
    """Two nodes on one SQLite file with in-process caches: B's cached copy is replaced
    once B's follower meets A's commit (within the fallback poll, here without a bus)."""
    node_a = await make_client(node="node-a")
    node_b = await make_client(node="node-b")
    await node_a.put(DOC, json={"v": 1})
    await node_b.get(DOC)
    await node_b.get(DOC)
    assert await lookups(node_b, "hit") >= 1
    await node_a.put(DOC, json={"v": 2})

    async def b_sees_v2() -> None:
        assert (await node_b.get(DOC)).json()["data"] == {"v": 2}

    await eventually(b_sees_v2, 3.0)


async def test_a_shared_redis_cache_is_fresh_on_every_node_at_once(
    make_client: Callable[..., Any],
) -> None:
    """Two nodes sharing one Redis cache: A's acknowledged write is what B reads next."""
    url = f"{require_service(REDIS_URL)}?prefix=test-{uuid.uuid4().hex[:12]}"
    node_a = await make_client(node="node-a", cache=url)
    node_b = await make_client(node="node-b", cache=url)
    for round_ in range(10):
        await node_a.put(DOC, json={"round": round_})
        assert (await node_b.get(DOC)).json()["data"] == {"round": round_}
        assert (await node_b.get(DOC)).json()["data"] == {"round": round_}
    assert await lookups(node_b, "hit") >= 5


async def test_an_unreachable_redis_cache_degrades_to_store_reads(
    make_client: Callable[..., Any],
) -> None:
    """With Redis cut: reads and writes answer 200 from the store, errors are counted and
    /readyz says degraded; a write made meanwhile is never hidden by an older cached copy
    after Redis returns; the cache is used again by itself."""
    forwarder = Forwarder(require_service(REDIS_URL))
    await forwarder.start()
    try:
        url = f"{forwarder.url}?prefix=test-{uuid.uuid4().hex[:12]}"
        client = await make_client(cache=url)
        await client.put(DOC, json={"v": 1})
        await client.get(DOC)
        assert (await client.get(DOC)).json()["data"] == {"v": 1}
        await forwarder.cut()
        for round_ in range(2, 6):
            assert (await client.put(DOC, json={"v": round_})).status_code == 200
            read = await client.get(DOC)
            assert read.status_code == 200
            assert read.json()["data"] == {"v": round_}
            page = await client.get("/v1/collections/notes/docs")
            assert page.json()["docs"][0]["data"] == {"v": round_}
        ready = await client.get("/readyz")
        assert ready.status_code == 200
        # The rate limits' shared buckets live in the same Redis: they fall back to the node's.
        assert ready.json()["degraded"] == ["cache", "rate_limits"]
        metrics = (await client.get("/metrics")).text
        assert counter(metrics, "breakwater_cache_errors", "invalidate") >= 1
        assert 'breakwater_dependency_up{dependency="cache"} 0.0' in metrics
        await forwarder.restore()
        hits_before = await lookups(client, "hit")

        async def cached_again() -> None:
            assert (await client.get(DOC)).json()["data"] == {"v": 5}
            assert await lookups(client, "hit") > hits_before

        await eventually(cached_again, 15.0)

        async def ready_again() -> None:
            # The rate limits go back to Redis at their next retry (every 2 s, on a request).
            assert (await client.get("/readyz")).json()["status"] == "ready"

        await eventually(ready_again, 15.0)
        metrics = (await client.get("/metrics")).text
        assert 'breakwater_dependency_up{dependency="cache"} 1.0' in metrics
    finally:
        await forwarder.aclose()


def stored(version: str) -> StoredDoc:
    """A live document at ``version``."""
    return StoredDoc("notes", "n1", {}, {"v": version}, version, "h", "r", 1)


async def test_a_read_racing_a_commit_never_keeps_the_old_state() -> None:
    """A read that loaded the old state while a commit invalidated it may answer it once,
    but the entry it stores is never served afterwards."""
    cache = ReadCache(MemoryCache(), Metrics(), ttl=60)
    await cache.start()
    current = {"version": "v1"}

    async def load_then_commit() -> StoredDoc:
        doc = stored(current["version"])
        current["version"] = "v2"  # a commit lands after the store read ...
        await cache.invalidate([("notes", "n1")])  # ... and invalidates before its ack
        return doc

    async def load() -> StoredDoc:
        return stored(current["version"])

    raced = await cache.document("notes", "n1", load_then_commit)
    assert raced is not None and raced.version == "v1"
    after = await cache.document("notes", "n1", load)
    assert after is not None and after.version == "v2"
    again = await cache.document("notes", "n1", load)
    assert again is not None and again.version == "v2"


async def test_a_commit_of_documents_never_read_adds_nothing_to_the_cache() -> None:
    """Invalidating documents that have no token stores nothing: a push of new documents
    does not fill the LRU with tokens (and evict what readers use)."""
    memory = MemoryCache()
    cache = ReadCache(memory, Metrics(), ttl=60)
    await cache.start()
    before = len(memory)
    await cache.invalidate([("notes", f"n{index}") for index in range(100)])
    assert len(memory) == before


@pytest.mark.parametrize("evicted", ["e", "g/notes/n1"])
async def test_an_evicted_token_never_revives_an_old_entry(evicted: str) -> None:
    """When a token is evicted and recreated, entries tagged with the old one stay invalid."""
    memory = MemoryCache()
    cache = ReadCache(memory, Metrics(), ttl=60)
    await cache.start()
    calls = []

    async def load() -> StoredDoc:
        calls.append(1)
        return stored(f"v{len(calls)}")

    await cache.document("notes", "n1", load)
    memory._drop(evicted)
    doc = await cache.document("notes", "n1", load)
    assert doc is not None and doc.version == "v2"
    assert len(calls) == 2


@pytest.mark.parametrize(
    ("cache", "expected"),
    [("memory://", "none://"), ("memory://?max_entries=5", "none://"), ("none://", "none://")],
)
def test_workers_turn_an_in_process_cache_off(
    make_config: Callable[..., Any], tmp_path: Any, cache: str, expected: str
) -> None:
    """With several workers a per-process cache could break read-your-writes: it is off."""
    from breakwater.server.workers import WorkerRole, worker_config

    config = make_config(cache=cache)
    role = WorkerRole(index=0, count=2, run_dir=tmp_path, supervisor=1)
    assert worker_config(config, role).cache == expected


def test_workers_keep_a_shared_cache(make_config: Callable[..., Any], tmp_path: Any) -> None:
    """A redis cache is shared by the workers and stays on."""
    from breakwater.server.workers import WorkerRole, worker_config

    config = make_config(cache="redis://127.0.0.1:6379/0")
    role = WorkerRole(index=1, count=2, run_dir=tmp_path, supervisor=1)
    assert worker_config(config, role).cache == "redis://127.0.0.1:6379/0"
