"""The backlog phase of ``bench replication --cluster``: how fast a region catches up on one
peer's backlog across a latency link, against its own batched push rate in the same run.

Every link is cut. The receiving region takes ``changes`` new documents in pushes of 100 on one
connection (its own batched push rate: the reference), then the origin region takes a backlog of
``changes`` others the same way. Then only the link the receiver pulls the origin through heals
(the others stay cut, so nothing else replicates meanwhile), and the receiver's
``breakwater_replication_applied_changes_total`` from the origin is polled until it has grown by
the backlog. The rate is taken from the heal and from the first applied change (the replicator
may be in a backoff's sleep when the link heals: that wait is reported apart).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from breakwater.bench._cluster_probe import metric
from breakwater.bench._http import HttpConnection
from breakwater.chaos.cluster import LOOPBACK, LocalCluster
from breakwater.core import codec

BATCH = 100
POLL_S = 0.05
APPLIED = "breakwater_replication_applied_changes_total"


async def push_batches(port: int, collection: str, changes: int) -> float:
    """Push ``changes`` new documents in batches of :data:`BATCH`; the changes per second."""
    started = time.perf_counter()
    async with HttpConnection(LOOPBACK, port) as connection:
        for first in range(0, changes, BATCH):
            mutations = [
                {
                    "mutation_id": f"{collection}-{i}",
                    "collection": collection,
                    "id": f"d{i}",
                    "op": "set",
                    "data": {"title": f"item {i}", "done": i % 2 == 0, "rank": i},
                }
                for i in range(first, min(first + BATCH, changes))
            ]
            status, body = await connection.request(
                "POST", "/v1/sync/push", codec.dumps({"mutations": mutations})
            )
            if status != 200:
                raise RuntimeError(f"push answered {status}: {body[:200]!r}")
    return changes / (time.perf_counter() - started)


async def run(
    cluster: LocalCluster,
    origin: str,
    receiver: str,
    changes: int,
    progress: Callable[[str], None],
    limit_s: float = 600.0,
) -> dict[str, Any]:
    """The backlog phase (see the module's docstring); every link is left cut."""
    origin_port = cluster.region(origin).nodes[0].port
    receiver_port = cluster.region(receiver).nodes[0].port
    await cluster.set_fault(cluster.links(), "partition", {})
    progress(f"backlog: {receiver}'s own batched pushes of {changes:,} changes")
    receiver_push = await push_batches(receiver_port, f"own_{receiver}", changes)
    progress(f"backlog: {changes:,} changes pushed to {origin}")
    origin_push = await push_batches(origin_port, f"backlog_{origin}", changes)
    labels = {"peer": origin}
    applied_before = await metric(receiver_port, APPLIED, **labels)
    wire_before = await _wire_in(receiver_port, origin)
    json_before = await _json_in(receiver_port, origin)
    progress(f"backlog: {receiver} catching up on {origin}")
    healed = time.perf_counter()
    await cluster.clear_fault(cluster.links(src=receiver, dst=origin), "partition")
    first = done = float("nan")
    while time.perf_counter() - healed < limit_s:
        applied = await metric(receiver_port, APPLIED, **labels) - applied_before
        now = time.perf_counter()
        if applied > 0 and first != first:  # nan: nothing had arrived yet
            first = now
        if applied >= changes:
            done = now
            break
        await asyncio.sleep(POLL_S)
    wire = await _wire_in(receiver_port, origin) - wire_before
    json_bytes = await _json_in(receiver_port, origin) - json_before
    catch_up_from_heal = changes / (done - healed)
    return {
        "backlog_changes": changes,
        "backlog_receiver_push_per_s": receiver_push,
        "backlog_origin_push_per_s": origin_push,
        "backlog_heal_to_first_change_s": first - healed,
        "backlog_catch_up_s": done - healed,
        "backlog_catch_up_per_s": catch_up_from_heal,
        # None when the whole backlog came within one poll (a small one): no rate to measure.
        "backlog_catch_up_from_first_per_s": changes / (done - first) if done > first else None,
        "backlog_catch_up_over_receiver_push": catch_up_from_heal / receiver_push,
        "target_backlog_catch_up_over_receiver_push": 0.5,
        "backlog_wire_bytes_per_change": wire / changes,
        "backlog_json_bytes_per_change": json_bytes / changes,
    }


async def _wire_in(port: int, peer: str) -> float:
    name = "breakwater_replication_bytes_total"
    return await metric(port, name, peer=peer, direction="in", encoding="wire")


async def _json_in(port: int, peer: str) -> float:
    name = "breakwater_replication_bytes_total"
    return await metric(port, name, peer=peer, direction="in", encoding="json")
