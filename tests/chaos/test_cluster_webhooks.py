"""Through a local cluster of three real regions: one webhook subscription (the same id and
secret in every region), writes in every region; each change is delivered by one region only,
and when a region is lost its undelivered changes are delivered by another one (ADR 0042)."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from breakwater.chaos.cluster import LocalCluster
from breakwater.chaos.cluster_spec import ClusterSpec
from breakwater.core.incarnation import region_of
from breakwater.server.webhooks import signature
from breakwater.server.webhooks.payload import delivery_id
from tests.chaos.test_cluster_regions import eventually
from tests.webhooks.conftest import receiver
from tests.webhooks.receiver import Received, Receiver

__all__ = ["receiver"]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(400)]
SUB_ID = "wh_everywhere"
SECRET = "whsec_" + "s" * 43
SUBSCRIPTION = {"id": SUB_ID, "secret": SECRET, "collections": ["notes"]}
SETTINGS = {
    "webhook_allow_private": True,
    "webhook_backoff_base": 0.2,
    "webhook_backoff_cap": 1.0,
    "webhook_max_attempts": 1000,  # eu's refused deliveries stay undelivered, not dead letters
    "webhook_takeover_after": 25.0,
}


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[LocalCluster]:
    spec = ClusterSpec(regions=3, latency_ms=5, settings=SETTINGS)
    async with LocalCluster(spec, tmp_path / "cluster") as running:
        yield running


def event(request: Received) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(request.body)
    return parsed


def delivered_ids(receiver: Receiver) -> Counter[str]:
    """How many times each document's change was answered 200."""
    return Counter(event(r)["doc_id"] for r in receiver.delivered())


async def test_each_change_is_delivered_by_one_region_and_a_lost_regions_by_another(
    cluster: LocalCluster, receiver: Receiver
) -> None:
    """With writers in eu, us and ap, every change arrives once, from the region it was written
    in; then eu's deliveries fail, eu is lost, and its replicated changes arrive from a live
    region with the idempotency keys eu had used, signed with the one secret."""
    regions = cluster.running.regions
    urls = {name: region.node_urls()[0] for name, region in regions.items()}
    async with httpx.AsyncClient(timeout=30) as http:
        for name, region in regions.items():
            created = await http.post(
                f"{urls[name]}/v1/admin/webhooks",
                json={"url": receiver.url, **SUBSCRIPTION},
                headers={"Authorization": f"ApiKey {region.admin_key()}"},
            )
            assert created.status_code == 201, created.text
            assert created.json()["id"] == SUB_ID
        written = set()
        for round_ in range(4):
            for name in regions:
                doc_id = f"{name}-{round_}"
                put = await http.put(f"{urls[name]}/v1/collections/notes/docs/{doc_id}", json={})
                assert put.status_code in (200, 201), put.text
                written.add(doc_id)
        await receiver.wait_for(lambda: set(delivered_ids(receiver)) >= written)
        # A second region's delivery of a change would come within a second or two: give it
        # time to show before counting.
        await asyncio.sleep(5)
        assert delivered_ids(receiver) == Counter(dict.fromkeys(written, 1)), "each change once"
        for request in receiver.delivered():
            body = event(request)
            assert body["doc_id"].split("-")[0] == region_of(body["origin"])

        receiver.refuse = lambda body: region_of(json.loads(body)["origin"]) == "eu"
        late = {f"eu-late-{i}" for i in range(5)}
        for doc_id in sorted(late):
            put = await http.put(f"{urls['eu']}/v1/collections/notes/docs/{doc_id}", json={})
            assert put.status_code in (200, 201), put.text

        async def tried_and_replicated() -> bool:
            """eu tried (and was refused) the first of them: its deliverer is stuck on it, so
            none is delivered; every one of them reached us and ap."""
            if not any(r.answered == 503 for r in receiver.requests):
                return False
            for name in ("us", "ap"):
                for doc_id in late:
                    answer = await http.get(f"{urls[name]}/v1/collections/notes/docs/{doc_id}")
                    if answer.status_code != 200:
                        return False
            return True

        await eventually(tried_and_replicated, 60, "eu tried its late changes; they replicated")
        assert not late & set(delivered_ids(receiver))
        keys_eu_used = {
            event(r)["doc_id"]: r.headers["idempotency-key"]
            for r in receiver.requests
            if r.answered == 503
        }
        await cluster.lose_region("eu")
        receiver.refuse = None

        async def taken_over() -> bool:
            return set(delivered_ids(receiver)) >= late

        await eventually(taken_over, 120, "a live region delivers eu's undelivered changes")
    for request in receiver.delivered():
        body = event(request)
        if body["doc_id"] in late:
            key = delivery_id(SUB_ID, body["origin"], body["seq"])
            assert request.headers["idempotency-key"] == body["id"] == key
            assert keys_eu_used.get(body["doc_id"], key) == key  # what eu sent, if it tried
            signature.verify(SECRET, request.body, request.headers["breakwater-signature"])
    counts = delivered_ids(receiver)
    assert all(counts[doc_id] == 1 for doc_id in written), "nothing delivered before is repeated"
