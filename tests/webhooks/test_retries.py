"""Retries: exponential backoff with full jitter, bounded by the cap, then a dead letter."""

from __future__ import annotations

import asyncio
import dataclasses
import random

from prometheus_client import CollectorRegistry

from breakwater.server.app import webhook_policy
from breakwater.server.webhooks._database import SqliteDatabase
from breakwater.server.webhooks.deliverer import Deliverer
from breakwater.server.webhooks.metrics import WebhookMetrics
from breakwater.server.webhooks.store import WebhookStore
from tests.webhooks.conftest import FAST, MakeClient, admin_headers, subscribe
from tests.webhooks.receiver import Receiver


class Highest(random.Random):
    """A random source at the top of every range: each wait is its ceiling."""

    def random(self) -> float:
        return 1.0


async def test_waits_double_up_to_the_cap_then_the_delivery_is_dead_lettered(
    make_client: MakeClient, receiver: Receiver
) -> None:
    """With base 1 s and cap 4 s the waits between 5 attempts are at most 1, 2, 4, 4 s."""
    client = await make_client(**(FAST | {"webhook_backoff_base": 1.0, "webhook_backoff_cap": 4.0}))
    node = client.app.state.node
    sub = await subscribe(client, admin_headers(client), receiver.url)
    await node.webhooks.aclose()  # this test's deliverer replaces the node's
    receiver.mode = "fail"
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)
        await asyncio.sleep(0)

    policy = webhook_policy(node.config)
    deliverer = Deliverer(
        WebhookStore(SqliteDatabase(node.config.data / "webhooks.db")),
        node.store,
        region=node.config.region,
        holder="test",
        policy=dataclasses.replace(policy, max_attempts=5),
        metrics=WebhookMetrics(CollectorRegistry()),
        sleep=record,
        rng=Highest(),
    )
    await deliverer.start()
    try:
        await client.put("/v1/collections/notes/docs/a", json={"x": 1})
        await receiver.wait_for(lambda: len(receiver.requests) == 5)
        async with asyncio.timeout(30):
            while True:
                letters = await deliverer.store.dead_letters(sub["id"], 10)
                if letters:
                    break
                await asyncio.sleep(0.05)
    finally:
        await deliverer.aclose()
    assert [(d.attempts, d.error) for d in letters] == [(5, "HTTP 503")]
    assert len(receiver.requests) == 5
    assert waits == [1.0, 2.0, 4.0, 4.0]
