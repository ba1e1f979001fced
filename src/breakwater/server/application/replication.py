"""The node's replication: one replicator per peer region (active while its lease is held
here), the region view they feed, and the metrics and logs they report through.

Replicators run as tasks of their own: a slow or dead peer delays nothing local. Pages go through
:meth:`Writes.apply_replicated`, so the read cache, realtime and long-polls see replicated changes
exactly like local ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from breakwater.config import Config
from breakwater.core.cursor import VersionVector
from breakwater.core.engine import StoredDoc
from breakwater.core.errors import BreakwaterError
from breakwater.obs.logging import get_logger
from breakwater.obs.metrics import Metrics
from breakwater.replication.anti_entropy import RoundReport
from breakwater.replication.client import PeerClient, Pulled, PullFailed
from breakwater.replication.replicator import PeerReplicator, TransferProgress, peer_key
from breakwater.replication.wire import Position
from breakwater.server.application.region import RegionView
from breakwater.server.application.writes import Writes
from breakwater.storage.base import (
    DocSummaries,
    FeedEntry,
    Lease,
    Repair,
    ReplicaApplied,
    Store,
)

_log = get_logger("breakwater.replication")
ROUND_OUTCOMES = ("in_sync", "repaired", "differing")


class _Target:
    """Where replicators write: the write path for pages, the store for bookkeeping."""

    def __init__(self, store: Store, writes: Writes) -> None:
        self.store = store
        self.writes = writes

    async def apply_replicated(
        self,
        entries: Sequence[FeedEntry],
        progress: Mapping[str, object] | None = None,
        traces: Mapping[str, Sequence[Position]] | None = None,
    ) -> ReplicaApplied:
        return await self.writes.apply_replicated(entries, progress, traces)

    async def replication_state(self) -> dict[str, Any]:
        return await self.store.replication_state()

    async def put_replication_state(
        self, writes: Mapping[str, object], *, only_new: bool = False
    ) -> None:
        await self.store.put_replication_state(writes, only_new=only_new)

    async def take_lease(self, name: str, holder: str, ttl_ms: int) -> bool:
        return await self.store.take_lease(name, holder, ttl_ms)

    async def head(self) -> VersionVector:
        return await self.store.head()

    async def doc_summaries(self, collection: str | None = None) -> DocSummaries:
        return await self.store.doc_summaries(collection)

    async def apply_repairs(self, repairs: Sequence[Repair]) -> list[StoredDoc]:
        return await self.writes.apply_repairs(repairs)


class _Reporter:
    """Replicator events to Prometheus metrics and structured logs (never a key)."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._last_failure: dict[str, str] = {}

    def pulled(self, peer: str, pulled: Pulled, applied: ReplicaApplied, lag: int) -> None:
        m = self.metrics
        m.replication_bytes.labels(peer, "in", "wire").inc(pulled.wire_bytes)
        m.replication_bytes.labels(peer, "in", "json").inc(pulled.json_bytes)
        m.replication_applied.labels(peer).inc(applied.applied)
        m.replication_pages.labels(peer).inc()
        if self._last_failure.pop(peer, None) is not None:
            _log.info("replication_resumed", peer=peer)

    def failed(self, peer: str, failure: Exception) -> None:
        kind: str
        if isinstance(failure, PullFailed):
            kind, detail = failure.kind, failure.detail
        elif isinstance(failure, BreakwaterError):
            kind, detail = "apply", failure.detail
        else:
            kind, detail = "bug", repr(failure)
        self.metrics.replication_retries.labels(peer, kind).inc()
        if self._last_failure.get(peer) != kind:  # one line per kind of trouble, not per try
            self._last_failure[peer] = kind
            log = _log.warning if kind in ("unavailable", "apply") else _log.error
            log("replication_failed", peer=peer, kind=kind, detail=detail)

    def breaker(self, peer: str, state: str) -> None:
        self.metrics.replication_breaker.labels(peer).set(0 if state == "closed" else 1)
        _log.info("replication_breaker", peer=peer, state=state)

    def transfer(self, peer: str, progress: TransferProgress) -> None:
        m = self.metrics
        fraction = progress.covered / progress.total if progress.total else 1.0
        m.replication_transfer_progress.labels(peer).set(1.0 if progress.done else fraction)
        m.replication_transfer_changes.labels(peer).inc(progress.page)
        _log.info(
            "replication_transfer_done" if progress.done else "replication_transfer",
            peer=peer,
            changes=progress.changes,
            applied=progress.applied,
            positions_covered=progress.covered,
            positions_total=progress.total,
            changes_per_second=round(progress.rate, 1),
        )

    def anti_entropy(self, peer: str, report: RoundReport) -> None:
        m = self.metrics
        for collection, ids in report.repaired.items():
            m.replication_repairs.labels(peer, collection).inc(len(ids))
            for doc_id in ids:
                _log.warning("replication_repaired", peer=peer, collection=collection, id=doc_id)
        outcome = (
            "repaired" if report.repairs else "differing" if report.buckets_differing else "in_sync"
        )
        m.replication_anti_entropy_rounds.labels(peer, outcome).inc()
        _log.info(
            "replication_anti_entropy",
            peer=peer,
            outcome=outcome,
            buckets_differing=report.buckets_differing,
            docs_compared=report.docs_compared,
            repairs=report.repairs,
            kept_deleted=report.kept_deleted,
        )


class Replication:
    """Every replicator of this node and the region view; started once the store is open."""

    def __init__(
        self,
        config: Config,
        store: Store,
        writes: Writes,
        region: RegionView,
        metrics: Metrics,
        holder: str | None = None,
        transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.region = region
        self.metrics = metrics
        self.holder = holder or f"{config.node_id}-{secrets.token_hex(4)}"
        """This node's lease identity: unique per process, so a restarted node is a new one."""
        target = _Target(store, writes)
        reporter = _Reporter(metrics)
        self.replicators = [
            PeerReplicator(
                peer,
                config.topology,
                self.holder,
                target,
                reporter,
                PeerClient(peer, config.region, transport=(transports or {}).get(peer.name)),
                retention_ms=int(config.retention_days * 86_400_000),
            )
            for peer in config.topology.peers.values()
        ]
        self._tasks: list[asyncio.Task[None]] = []
        self.bytes_out: dict[str, int] = {}
        """Page bytes this node served to each peer on the wire (compressed)."""

    async def start(self) -> None:
        """Read the region's bookkeeping, then start the refresh loop and the replicators."""
        await self.region.open()
        self._tasks.append(asyncio.create_task(self.region.run_forever()))
        self._tasks.append(asyncio.create_task(self.region.write_held_forever()))
        for replicator in self.replicators:
            self._tasks.append(asyncio.create_task(replicator.run_forever()))
            self._watch(replicator)

    def _watch(self, replicator: PeerReplicator) -> None:
        """Export the peer's series from the start (alerts need a series to compare): lag
        read from the replicator at each scrape, counted only on the node holding the lease
        (the others' figures are stale), and the breaker and transfer at rest."""
        status, name, m = replicator.status, replicator.peer.name, self.metrics
        m.replication_lag_seconds.labels(name).set_function(
            lambda: (status.lag_seconds(time.time()) or 0.0) if status.holding_lease else 0.0
        )
        m.replication_lag_changes.labels(name).set_function(
            lambda: status.lag_changes if status.holding_lease else 0
        )
        m.replication_breaker.labels(name).set(0)
        m.replication_transfer_progress.labels(name).set(1.0)
        for outcome in ROUND_OUTCOMES:
            m.replication_anti_entropy_rounds.labels(name, outcome)

    async def aclose(self) -> None:
        """Stop every task and close the peer connections."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        for replicator in self.replicators:
            await replicator.client.aclose()

    def heard_from(self, region: str) -> None:
        """Peer ``region`` just pulled from this node: it is up, so stop backing off from it."""
        for replicator in self.replicators:
            if replicator.peer.name == region:
                replicator.nudge()

    def served(self, peer: str, wire_bytes: int) -> None:
        """A page of ``wire_bytes`` went to ``peer`` (for the admin view; metrics count too)."""
        self.bytes_out[peer] = self.bytes_out.get(peer, 0) + wire_bytes

    def summary(self) -> dict[str, Any]:
        """Each peer's state and cursor as this node last read them (for ``/readyz``: no store
        read; a peer that is down never makes the node unready, replication is asynchronous)."""
        peers = {}
        for replicator in self.replicators:
            name = replicator.peer.name
            row = self.region.peer_rows.get(name, {})
            status = replicator.status
            peers[name] = {
                "state": row.get("state", "unknown"),
                "cursor": row.get("cursor", {}),
                "needs_full_transfer": bool(row.get("needs_full_transfer", False))
                or status.needs_full_transfer,
                "replicating_here": status.holding_lease,
                "transfer": _transfer_json(status.transfer),
                "last_error": status.last_error or None,
            }
        return {"state": self.region.state, "peers": peers}

    async def report(self) -> dict[str, Any]:
        """Each peer's state, cursor, lag and lease holder, as the store and this node know."""
        values = await self.store.replication_state()
        now = time.time()
        peers = {}
        for replicator in self.replicators:
            name = replicator.peer.name
            row = values.get(peer_key(name), {})
            lease = Lease.parse(values.get(f"lease:{name}"))
            status = replicator.status
            peers[name] = {
                "state": row.get("state", "unknown"),
                "urls": list(replicator.peer.urls),
                "cursor": row.get("cursor", {}),
                "caught_up": row.get("caught_up"),
                "peer_head": row.get("head", {}),
                "needs_full_transfer": bool(row.get("needs_full_transfer", False)),
                "updated_ms": row.get("updated_ms"),
                "held": self.region.held.get(name, {}),
                "lease": {
                    "holder": lease.holder or None,
                    "expires_ms": lease.expires_ms or None,
                    "this_node": lease.holder == self.holder and lease.expires_ms > now * 1000,
                },
                "lag_changes": status.lag_changes if status.holding_lease else None,
                "lag_seconds": status.lag_seconds(now) if status.holding_lease else None,
                "breaker": status.breaker,
                "last_error": status.last_error or None,
                "transfer": _transfer_json(status.transfer),
                "anti_entropy_at": status.anti_entropy_at,
                "repairs": status.repairs,
                "bytes_in": status.bytes_in,
                "bytes_out": self.bytes_out.get(name, 0),
            }
        head = await self.store.head()
        stable = self.region.stable_for(head)
        return {
            "region": self.config.region,
            "state": self.region.state,
            "head": head,
            "stable": stable,
            "stable_lag": {
                origin: max(0, seq - stable.get(origin, 0)) for origin, seq in head.items()
            },
            "unknown_regions": sorted(self.region.unknown),
            "peers": peers,
        }


def _transfer_json(progress: TransferProgress | None) -> dict[str, Any] | None:
    """This node's last full state transfer from a peer, for ``/readyz`` and the admin view."""
    if progress is None:
        return None
    return {
        "done": progress.done,
        "changes": progress.changes,
        "applied": progress.applied,
        "positions_covered": progress.covered,
        "positions_total": progress.total,
        "changes_per_second": round(progress.rate, 1),
    }
