"""Database failover inside a region: a node on a primary and its streaming standby (two
private PostgreSQL instances) follows a promotion with no restart, never writes to a standby,
and keeps positions gap-free (I3) and pushes exactly-once (I2) across the switch."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from breakwater.chaos.engines import PostgresEngine
from tests.chaos.engines import require_engines
from tests.conftest import free_port

pytestmark = pytest.mark.slow

RESUME_BOUND_S = 15.0
"""How long writes may take to resume after the promotion (measured: well under 2 s)."""


def failover_url(*engines: PostgresEngine) -> str:
    """A multi-host store URL listing ``engines`` in order, with a short timeout."""
    hosts = ",".join(f"127.0.0.1:{engine.port}" for engine in engines)
    return f"postgresql://postgres@{hosts}/postgres?schema=bw_failover&timeout=2&pool_size=4"


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[PostgresEngine, PostgresEngine]]:
    """A primary whose commits wait for its synchronous standby, and that standby, running."""
    require_engines("postgres")
    primary = PostgresEngine(free_port(), tmp_path / "primary.log", synchronous_standby="standby")
    standby = PostgresEngine(
        free_port(), tmp_path / "standby.log", name="standby", upstream=primary
    )
    try:
        await primary.start()
        await standby.start()
        yield primary, standby
    finally:
        await standby.aclose()
        await primary.aclose()


def push_body(mutation_id: str) -> dict[str, Any]:
    """A push of one ``set`` whose document id is its mutation id."""
    mutation = {"mutation_id": mutation_id, "collection": "todos", "id": mutation_id}
    return {"client_id": "failover", "mutations": [{**mutation, "op": "set", "data": {"m": 1}}]}


async def wait_for(
    client: httpx.AsyncClient, path: str, status: int, seconds: float = RESUME_BOUND_S
) -> httpx.Response:
    """Poll ``path`` until it answers ``status``; fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        response = await client.get(path)
        if response.status_code == status or time.monotonic() > deadline:
            assert response.status_code == status, response.text
            return response
        await asyncio.sleep(0.1)


async def test_a_node_follows_a_promotion_and_loses_repeats_and_reuses_nothing(
    pair: tuple[PostgresEngine, PostgresEngine], make_client: Callable[..., Any]
) -> None:
    """Pushes retried (same mutation id) until acknowledged straddle the primary's loss: none
    lost, none applied twice, no seq skipped or given to another change, no restart."""
    primary, standby = pair
    node: httpx.AsyncClient = await make_client(store=failover_url(primary, standby))
    acked: dict[str, int] = {}
    promoted, warmed_up = asyncio.Event(), asyncio.Event()
    after_promotion: list[str] = []

    async def pusher(name: str, count: int) -> None:
        for i in range(count):
            mutation_id = f"{name}-{i}"
            while True:  # the SDK's retry: the same mutation id until acknowledged
                response = await node.post("/v1/sync/push", json=push_body(mutation_id))
                if response.status_code == 200:
                    break
                assert response.status_code == 503, response.text
                assert response.json()["type"] == "store_unavailable"
                await asyncio.sleep(0.05)
            [result] = response.json()["results"]
            assert result["status"] in ("applied", "duplicate")
            acked[mutation_id] = result["seq"]
            if len(acked) >= 40:
                warmed_up.set()
            if promoted.is_set():
                after_promotion.append(mutation_id)

    pushers = [asyncio.ensure_future(pusher(f"w{k}", 60)) for k in range(4)]
    await warmed_up.wait()
    await primary.kill(wipe=True)

    # Only a standby is left: the node must refuse writes (and say it is not ready).
    ready = await wait_for(node, "/readyz", 503)
    assert ready.json()["failing"] == ["store"]
    refused = await node.post("/v1/sync/push", json=push_body("during"))
    assert refused.status_code == 503
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"] == "store_unavailable"
    ready = await node.get("/readyz")
    assert "no listed host accepts writes" in ready.json()["checks"]["store"], ready.text

    await standby.promote()
    promoted.set()
    await wait_for(node, "/readyz", 200)
    await asyncio.wait_for(asyncio.gather(*pushers), RESUME_BOUND_S * 4)
    assert after_promotion, "writes must resume on the promoted standby"

    pull = (await node.get("/v1/sync/pull", params={"limit": 1000})).json()
    feed = {change["mutation_id"]: change["seq"] for change in pull["changes"]}
    seqs = [change["seq"] for change in pull["changes"]]
    assert len(feed) == len(seqs), "a mutation was applied twice"
    assert seqs == list(range(1, len(seqs) + 1)), "the feed skipped a seq"
    assert set(feed) == set(acked), "an acknowledged write was lost (or one never sent applied)"
    # Every acknowledgement named the position the change still has: no seq was reused.
    assert all(feed[mutation_id] == seq for mutation_id, seq in acked.items())


async def test_a_primary_turned_read_only_makes_the_node_refuse_writes_until_writable(
    pair: tuple[PostgresEngine, PostgresEngine], make_client: Callable[..., Any]
) -> None:
    """A primary fenced read-only (as failover tools do before a switchover) is a 503 store
    with a clear detail, never a silent failure per write, and the node recovers by itself."""
    primary, _ = pair
    node: httpx.AsyncClient = await make_client(store=failover_url(primary))
    assert (await node.post("/v1/sync/push", json=push_body("before"))).status_code == 200
    admin = await asyncpg.connect(primary.url)
    try:
        await admin.execute("ALTER SYSTEM SET default_transaction_read_only = on")
        await admin.execute("SELECT pg_reload_conf()")
        ready = await wait_for(node, "/readyz", 503)
        assert ready.json()["failing"] == ["store"]
        assert "read-only" in ready.json()["checks"]["store"]
        refused = await node.post("/v1/sync/push", json=push_body("fenced"))
        assert refused.status_code == 503 and refused.json()["type"] == "store_unavailable"
        await admin.execute("ALTER SYSTEM RESET default_transaction_read_only")
        await admin.execute("SELECT pg_reload_conf()")
    finally:
        await admin.close()
    await wait_for(node, "/readyz", 200)
    assert (await node.post("/v1/sync/push", json=push_body("after"))).status_code == 200
