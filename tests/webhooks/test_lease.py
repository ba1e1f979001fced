"""One deliverer per region: two nodes over one store, and only the lease holder delivers."""

from __future__ import annotations

import json
from collections import Counter

from prometheus_client import CollectorRegistry

from breakwater.server.app import webhook_policy
from breakwater.server.webhooks._database import SqliteDatabase
from breakwater.server.webhooks.deliverer import Deliverer
from breakwater.server.webhooks.metrics import WebhookMetrics
from breakwater.server.webhooks.store import WebhookStore
from tests.webhooks.conftest import FAST, MakeClient, admin_headers, caught_up, subscribe
from tests.webhooks.receiver import Receiver

DOCS = "/v1/collections/notes/docs"


async def test_only_the_lease_holder_delivers_and_another_node_takes_over(
    make_client: MakeClient, receiver: Receiver
) -> None:
    """Each change arrives once while one node leads; after it stops, the other resumes."""
    client = await make_client(**FAST)
    node = client.app.state.node
    await subscribe(client, admin_headers(client), receiver.url)
    second = Deliverer(
        WebhookStore(SqliteDatabase(node.config.data / "webhooks.db")),
        node.store,
        region=node.config.region,
        holder="second-node",
        policy=webhook_policy(node.config),
        metrics=WebhookMetrics(CollectorRegistry()),
    )
    await second.start()
    node.feed.subscribe(second)
    try:
        for i in range(10):
            await client.put(f"{DOCS}/a{i}", json={"i": i})
        await receiver.wait_for(lambda: len(receiver.delivered()) >= 10)
        assert node.webhooks.leading and not second.leading
        await caught_up(node)
        await node.webhooks.aclose()  # a clean stop gives the lease up
        for i in range(10):
            await client.put(f"{DOCS}/b{i}", json={"i": i})
        await receiver.wait_for(lambda: len(receiver.delivered()) >= 20)
        assert second.leading
    finally:
        await second.aclose()
    counts = Counter(json.loads(r.body)["doc_id"] for r in receiver.delivered())
    assert set(counts) == {f"a{i}" for i in range(10)} | {f"b{i}" for i in range(10)}
    assert set(counts.values()) == {1}, "no change was delivered by both nodes"
