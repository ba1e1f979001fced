"""``breakwater bench replication``: how fast a region catches up on a peer's backlog,
against the same region's own batched push rate, and the bytes each change costs on the wire.

Two in-process regions over SQLite, linked through an ASGI transport (no network: the figure
is the replication path itself, pull + decompress + parse + apply, not a WAN). The backlog is
pushed to region ``a`` in batches of 100 while ``b``'s link is cut (that push rate is the
reference), then the link opens and the time until ``b``'s head covers ``a``'s is taken.
Then, in the same run: one anti-entropy round with the regions in sync, and a full state
transfer: ``b``'s link is cut again while ``a`` takes a second backlog of new documents, writes
each twice and compacts past ``b``'s cursor, so ``b`` catches up from ``a``'s whole retained
feed (docs/adr/0032-state-transfer-and-anti-entropy.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from breakwater.auth.passwords import Passwords
from breakwater.auth.service import AuthService
from breakwater.auth.signing_keys import load_keys
from breakwater.auth.tokens import TokenIssuer
from breakwater.bench._node import machine
from breakwater.config import Config, load_config
from breakwater.core import cursor
from breakwater.core.topology import Peer, Topology
from breakwater.server.app import compact, create_app
from breakwater.server.auth_backend import auth_store_for

BATCH = 100


class _Switch(httpx.AsyncBaseTransport):
    """An ASGI link that can be cut (``up = False``: connection refused)."""

    def __init__(self) -> None:
        self.app: Any = None
        self.up = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not self.up or self.app is None:
            raise httpx.ConnectError("link down", request=request)
        return await httpx.ASGITransport(app=self.app).handle_async_request(request)


def _key(config: Config) -> str:
    store = auth_store_for(config)
    store.open()
    try:
        issuer = TokenIssuer(
            load_keys(config.data / "auth-keys.json"), config.auth.audience, config.auth.access_ttl
        )
        secret, _ = AuthService(store, issuer, Passwords(), config.auth.refresh_ttl).create_key(
            "bench", ["replication"]
        )
    finally:
        store.close()
    return secret


async def _once(root: Path, changes: int) -> dict[str, float]:
    configs = {
        name: replace(
            load_config(None, env={}, overrides={"data": root / name, "region": name}),
            drain_grace=0.0,
        )
        for name in ("a", "b")
    }
    key = _key(configs["a"])
    link = _Switch()
    peer = Peer("a", ("http://a.bench",), ("http://a.bench",), key)
    b_config = replace(configs["b"], topology=Topology(peers={"a": peer}, pull_wait=1.0))
    a_app = create_app(configs["a"])
    b_app = create_app(b_config, peer_transports={"a": link})
    async with contextlib.AsyncExitStack() as stack:
        for app in (a_app, b_app):
            await stack.enter_async_context(app.router.lifespan_context(app))
        link.app = a_app
        a = await stack.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=a_app), base_url="http://a")
        )
        push_seconds = await _push(a, 0, changes)
        a_head = await a_app.state.node.store.head()
        b_node = b_app.state.node
        replicator = b_node.replication.replicators[0]
        link.up = True
        replicator.nudge()
        replicate_seconds = await _until_covered(b_node, a_head)
        registry = b_node.metrics.registry

        def sample(encoding: str) -> float:
            labels = {"peer": "a", "direction": "in", "encoding": encoding}
            return registry.get_sample_value("breakwater_replication_bytes_total", labels) or 0.0

        async with asyncio.timeout(30):  # the replicator counts a page's bytes after its apply
            while not sample("wire"):  # noqa: ASYNC110 (polls a metric)
                await asyncio.sleep(0.01)
        json_bytes, wire_bytes = sample("json"), sample("wire")  # the backlog's pages only
        # anti-entropy with the regions in sync: the cost of one round (two digests, no bucket)
        started = time.perf_counter()
        in_sync = await replicator.anti_entropy_round()
        round_seconds = time.perf_counter() - started
        assert in_sync.buckets_differing == 0, in_sync
        # full state transfer: b away past a's retention horizon while a takes a second backlog
        link.up = False
        await _push(a, changes, changes)
        await _push(a, changes, changes, revision=1)  # supersedes the new documents' first writes
        # The pull b had in flight at the cut (a long-poll, or one sent ahead of an apply) must
        # have failed before a compacts: answered after the heal it could bring the backlog
        # without the 410 this phase measures.
        async with asyncio.timeout(30):
            while not replicator.status.last_error:  # noqa: ASYNC110 (no event for a failed pull)
                await asyncio.sleep(0.01)
        await compact(a_app.state.node, 0, now_ms=2**62)  # so b's cursor is behind a's low water
        a_head = await a_app.state.node.store.head()
        link.up = True
        replicator.nudge()
        transfer_seconds = await _until_covered(b_node, a_head)
        progress = replicator.status.transfer
        if progress is None or not progress.done:
            raise NoFullTransfer("b caught up on a's second backlog without a full transfer")
        return {
            "push_per_second": changes / push_seconds,
            "replicate_per_second": changes / replicate_seconds,
            "transfer_new_per_second": changes / transfer_seconds,
            "transfer_entries_per_second": progress.changes / transfer_seconds,
            "anti_entropy_round_ms": round_seconds * 1000,
            "json_bytes_per_change": json_bytes / changes,
            "wire_bytes_per_change": wire_bytes / changes,
        }


async def _push(client: httpx.AsyncClient, first_id: int, changes: int, revision: int = 0) -> float:
    """Push ``changes`` documents in batches (``revision`` > 0: again); the seconds it took."""
    started = time.perf_counter()
    for first in range(first_id, first_id + changes, BATCH):
        mutations = [
            {
                "mutation_id": f"m{i}r{revision}",
                "collection": "items",
                "id": f"d{i}",
                "op": "set",
                "data": {"title": f"item {i}", "done": i % 2 == 0, "rank": i + revision},
            }
            for i in range(first, min(first + BATCH, first_id + changes))
        ]
        answer = await client.post("/v1/sync/push", json={"mutations": mutations})
        answer.raise_for_status()
    return time.perf_counter() - started


class NoFullTransfer(Exception):
    """The run's last phase missed what it measures: a pull b had in flight across the cut
    brought a's second backlog before a's compaction could expire b's cursor (a race of the
    scenario, not a fault: b holds everything). The run is made again."""


ATTEMPTS = 3


async def _until_covered(node: Any, head: dict[str, int]) -> float:
    """Seconds until ``node``'s head covers ``head``."""
    started = time.perf_counter()
    while not cursor.covers_all(await node.store.head(), head):  # noqa: ASYNC110 (polls the store: no event says "b holds all of a")
        await asyncio.sleep(0.01)
    return time.perf_counter() - started


async def run(runs: int, changes: int, progress: Callable[[str], None]) -> dict[str, Any]:
    """Medians of ``runs`` runs of a backlog of ``changes``."""
    results = []
    for index in range(runs):
        for attempt in range(1, ATTEMPTS + 1):
            progress(f"run {index + 1}/{runs}" + (f", attempt {attempt}" if attempt > 1 else ""))
            try:
                with tempfile.TemporaryDirectory() as root:
                    results.append(await _once(Path(root), changes))
                break
            except NoFullTransfer:
                if attempt == ATTEMPTS:
                    raise
    median = {key: statistics.median(r[key] for r in results) for key in results[0]}
    return {
        "changes": changes,
        "runs": runs,
        **median,
        "replicate_over_push": median["replicate_per_second"] / median["push_per_second"],
        "transfer_over_push": median["transfer_new_per_second"] / median["push_per_second"],
        "target_replicate_over_push": 0.5,
        "compression_ratio": median["json_bytes_per_change"] / median["wire_bytes_per_change"],
        "machine": machine(),
    }
