"""Two nodes of one region on PostgreSQL: one delivers, each change arrives once, and the other
takes over from the shared cursor when it stops."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from tests.storage.backends import drop_schema, postgres_url
from tests.webhooks.conftest import FAST, MakeClient, admin_headers, caught_up, subscribe
from tests.webhooks.receiver import Receiver

DOCS = "/v1/collections/notes/docs"


@pytest.fixture
async def url() -> AsyncIterator[str]:
    """A PostgreSQL schema of this test's own."""
    store_url, schema = postgres_url(pool_size="4")
    yield store_url
    await drop_schema(schema)


async def test_two_postgres_nodes_deliver_each_change_once(
    make_client: MakeClient, receiver: Receiver, url: str
) -> None:
    """Writes through both nodes arrive once each; after the deliverer stops, the other node
    delivers the rest."""
    a = await make_client(store=url, node="node-a", **FAST)
    b = await make_client(store=url, node="node-b", **FAST)
    await subscribe(a, admin_headers(a), receiver.url)
    for i in range(10):
        await (a if i % 2 else b).put(f"{DOCS}/x{i}", json={"i": i})
    await receiver.wait_for(lambda: len(receiver.delivered()) >= 10)
    node_a, node_b = a.app.state.node, b.app.state.node
    leader, other = (node_a, node_b) if node_a.webhooks.leading else (node_b, node_a)
    assert leader.webhooks.leading and not other.webhooks.leading
    await caught_up(leader)
    await leader.webhooks.aclose()
    for i in range(10):
        await (a if i % 2 else b).put(f"{DOCS}/y{i}", json={"i": i})
    await receiver.wait_for(lambda: len(receiver.delivered()) >= 20)
    assert other.webhooks.leading
    counts = Counter(json.loads(r.body)["doc_id"] for r in receiver.delivered())
    assert set(counts) == {f"x{i}" for i in range(10)} | {f"y{i}" for i in range(10)}
    assert set(counts.values()) == {1}
