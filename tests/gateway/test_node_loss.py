"""Through a real HAProxy: a node SIGKILLed during a load of pushes costs nothing.

Pushers retry a batch that failed with the same mutation ids, as the SDK does
(docs/protocol.md): every mutation is acknowledged, its effect is applied exactly once (I2),
and no request waits longer than the gateway's bounds.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.gateway.conftest import TEST_TIMEOUTS, Region
from tests.process.test_durability import counters, feed_mutation_ids

pytestmark = pytest.mark.slow
PUSHERS = 8
BATCHES = 40
CLIENT_TIMEOUT = 30.0


class Pusher:
    """One device: batches of increments, each pushed again until acknowledged."""

    def __init__(self, url: str, name: str) -> None:
        self.url = url
        self.name = name
        self.acked: dict[str, str] = {}
        self.durations: list[float] = []
        self.failures = 0
        self.finished: list[float] = []

    async def run(self, http: httpx.AsyncClient, started: asyncio.Event) -> None:
        for number in range(BATCHES):
            batch = [
                {
                    "mutation_id": uuid.uuid4().hex,
                    "collection": "load",
                    "id": f"{self.name}-{number % 5}",
                    "op": "increment",
                    "data": {"n": 1},
                }
                for _ in range(1 + number % 3)
            ]
            await self._push_until_acknowledged(http, batch)
            self.finished.append(time.monotonic())
            if number == 3:
                started.set()

    async def _push_until_acknowledged(
        self, http: httpx.AsyncClient, batch: list[dict[str, Any]]
    ) -> None:
        for attempt in range(20):
            began = time.monotonic()
            try:
                response = await http.post(f"{self.url}/v1/sync/push", json={"mutations": batch})
            except httpx.HTTPError:
                response = None
            self.durations.append(time.monotonic() - began)
            if response is not None and response.status_code == 200:
                for result in response.json()["results"]:
                    assert result["status"] in ("applied", "duplicate"), result
                    self.acked[result["mutation_id"]] = result["status"]
                return
            self.failures += 1
            await asyncio.sleep(random.uniform(0, 0.1 * 2**attempt))  # full jitter
        raise AssertionError("a push was never acknowledged")


async def test_a_node_killed_under_pushes_loses_nothing_and_applies_nothing_twice(
    start_region: Callable[..., Region],
    region_store: str | None,
) -> None:
    """SIGKILL n1 mid-load: every push is acknowledged, once in the feed and in the counters,
    and every request through the gateway ended within its bounds."""
    region = start_region(3, store=region_store)
    pushers = [Pusher(region.url, f"p{i}") for i in range(PUSHERS)]
    started = asyncio.Event()
    async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT) as http:
        load = asyncio.gather(*(pusher.run(http, started) for pusher in pushers))
        await asyncio.wait_for(started.wait(), 30)
        killer = threading.Thread(target=region.nodes["n1"].kill)
        killed_at = time.monotonic()
        killer.start()
        await load
        killer.join()
    after_kill = [t for pusher in pushers for t in pusher.finished if t > killed_at + 0.2]
    assert len(after_kill) > PUSHERS, "the load ended before the node was killed"
    acked = Counter(mid for pusher in pushers for mid in pusher.acked)
    in_feed = Counter(await feed_mutation_ids(region.url))
    assert len(acked) == sum(len(p.acked) for p in pushers) > PUSHERS * BATCHES
    assert set(acked) <= set(in_feed), "an acknowledged push is missing"
    assert max(in_feed.values()) == 1, "a push was applied twice"
    assert await counters(region.url) == len(acked)
    bound = (1 + region.gateway.plan.retries) * (TEST_TIMEOUTS.connect + TEST_TIMEOUTS.request)
    slowest = max(d for pusher in pushers for d in pusher.durations)
    assert slowest < bound, f"a request took {slowest:.1f} s"
    # HAProxy sent the pushes in flight on n1 again to n2 or n3: the devices saw no failure.
    assert sum(pusher.failures for pusher in pushers) == 0
