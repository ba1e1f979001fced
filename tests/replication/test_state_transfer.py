"""Full state transfer: a region away longer than its peer's retention horizon (the peer answers
410 cursor_expired) catches up from the peer's retained feed, resumes an interrupted transfer
from its durable cursor after a restart, then follows the feed; a document whose delete the peer
purged meanwhile is deleted here, never brought back there."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from breakwater.core import cursor
from breakwater.replication.replicator import peer_key
from breakwater.server.app import compact
from breakwater.server.application.replication import Replication
from tests.replication.harness import Cluster, Link, Region, eventually, mutation

pytestmark = pytest.mark.timeout(120)
PAIR = {"a": ["b"], "b": ["a"]}
RETENTION_DAYS = 0.1 / 86_400
"""A horizon of 100 ms: what the test waits past instead of days."""


async def data(region: Region, doc_id: str) -> Any:
    doc = await region.doc("todos", doc_id)
    return None if doc is None else doc["data"]


async def partition_then_expire(a: Region, b: Region, new_docs: int) -> None:
    """b holds ``keep`` and ``gone``; while b cannot reach a, a writes ``new_docs`` documents,
    renames ``keep``, deletes ``gone`` and compacts past all of it (purging ``gone``), so b's
    cursor is behind a's low-water mark."""
    for doc_id in ("keep", "gone"):
        assert (await a.push(mutation(f"set-{doc_id}", doc_id, title=doc_id))).status_code == 200
    await eventually(lambda: _present(b, "gone"), what="b holds gone")
    b.links["a"].up = False
    pushed = [mutation(f"new-{i}", f"new-{i}", n=i) for i in range(new_docs)]
    pushed += [mutation("rename", "keep", "patch", title="kept"), mutation("del", "gone", "delete")]
    assert (await a.push(*pushed)).status_code == 200
    await asyncio.sleep(0.3)  # past the 100 ms horizon
    report = await compact(a.node, int(RETENTION_DAYS * 86_400_000))
    assert report.tombstones_purged == 1
    assert await a.node.store.get("todos", "gone") is None
    expired = await b.client.get("/v1/sync/pull")  # b's own feed still serves b's devices
    assert expired.status_code == 200


async def _present(region: Region, doc_id: str) -> bool:
    return await data(region, doc_id) is not None


async def caught_up(b: Region, new_docs: int) -> bool:
    if await data(b, "keep") != {"title": "kept"}:
        return False
    return all([await _present(b, f"new-{i}") for i in range(new_docs)])


def metric(region: Region, name: str, labels: dict[str, str]) -> float:
    return region.node.metrics.registry.get_sample_value(name, labels) or 0.0


async def test_a_region_back_after_the_horizon_catches_up_and_purged_deletes_stay_deleted(
    cluster: Cluster,
) -> None:
    regions = await cluster.start(PAIR, pull_limit=4, overrides={"retention_days": RETENTION_DAYS})
    a, b = regions["a"], regions["b"]
    await partition_then_expire(a, b, new_docs=20)

    b.links["a"].up = True
    for replicator in b.node.replication.replicators:
        replicator.nudge()
    await eventually(lambda: caught_up(b, 20), 30, what="b caught up by full transfer")

    async def gone_deleted_at_b() -> bool:
        doc = await b.node.store.get("todos", "gone")
        return doc is not None and doc.deleted

    await eventually(gone_deleted_at_b, 10, what="gone deleted at b")
    (replicator,) = b.node.replication.replicators
    progress = replicator.status.transfer
    assert progress is not None and progress.done and progress.changes >= 20
    assert progress.covered == progress.total
    row = (await b.node.store.replication_state())[peer_key("a")]
    assert row["needs_full_transfer"] is False and "transfer" not in row
    assert metric(b, "breakwater_replication_transfer_changes_total", {"peer": "a"}) >= 20
    assert metric(b, "breakwater_replication_transfer_progress", {"peer": "a"}) == 1.0
    labels = {"peer": "a", "collection": "todos"}
    assert metric(b, "breakwater_replication_repairs_total", labels) == 1

    # a learns the delete through b's feed: a tombstone there, never the live document again
    b_origin = b.node.store.origin
    b_seq = (await b.node.store.head())[b_origin]

    async def a_holds_b() -> bool:
        return (await a.node.store.head()).get(b_origin, 0) >= b_seq

    await eventually(a_holds_b, 10, what="a pulls b's feed")
    at_a = await a.node.store.get("todos", "gone")
    assert at_a is None or at_a.deleted
    assert await data(a, "gone") is None
    # and the regions then follow each other's feeds as before
    assert (await a.push(mutation("after", "after", ok=True))).status_code == 200
    await eventually(lambda: _present(b, "after"), 10, what="b follows a's feed")


class CountingLink(Link):
    """A link that records the cursor of every pull and goes down after ``allow`` of them."""

    def __init__(self, link: Link, allow: int) -> None:
        super().__init__(link.regions, link.target)
        self.allow = allow
        self.cursors: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = urlsplit(str(request.url))
        if url.path == "/v1/replication/pull":
            if len(self.cursors) >= self.allow:
                raise httpx.ConnectError("link down", request=request)
            self.cursors.append(parse_qs(url.query).get("cursor", [""])[0])
        return await super().handle_async_request(request)


async def test_an_interrupted_transfer_resumes_from_its_durable_cursor_after_a_restart(
    cluster: Cluster,
) -> None:
    regions = await cluster.start(PAIR, pull_limit=4, overrides={"retention_days": RETENTION_DAYS})
    a, b = regions["a"], regions["b"]
    await partition_then_expire(a, b, new_docs=30)
    # b's replicator is stopped (a crash), then one starts whose link fails after 4 pulls:
    # the expired one and three pages of the transfer
    await b.node.replication.aclose()
    first = CountingLink(b.links["a"], allow=4)
    crashed = Replication(
        b.config, b.node.store, b.node.writes, b.node.region, b.node.metrics, None, {"a": first}
    )
    await crashed.start()
    try:

        async def saved() -> bool:
            row = (await b.node.store.replication_state()).get(peer_key("a"), {})
            transfer = row.get("transfer") or {}
            return int(transfer.get("changes", 0)) >= 12

        await eventually(saved, 20, what="three transfer pages applied")
    finally:
        await crashed.aclose()
    row = (await b.node.store.replication_state())[peer_key("a")]
    assert row["needs_full_transfer"] is True
    assert first.cursors[1] == ""  # the transfer starts from the empty cursor
    assert not await caught_up(b, 30)

    second = CountingLink(b.links["a"], allow=10_000)
    restarted = Replication(
        b.config, b.node.store, b.node.writes, b.node.region, b.node.metrics, None, {"a": second}
    )
    await restarted.start()
    try:
        await eventually(lambda: caught_up(b, 30), 30, what="b caught up after the restart")
    finally:
        await restarted.aclose()
    resumed_from = cursor.encode(row["transfer"]["cursor"])
    assert second.cursors[0] == resumed_from != ""  # resumed where the first life stopped
    (replicator,) = restarted.replicators
    assert replicator.status.transfer is not None
    assert replicator.status.transfer.changes >= 30  # counted across both lives
