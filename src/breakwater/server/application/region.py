"""This region as the node sees it: its state, its stable vector and what peers hold.

Everything here is kept in the store (a promotion, each peer's caught-up head, what each peer
confirmed holding), so every node of a region answers alike and a restart forgets nothing; each
node re-reads it twice a second (and every 50 ms while a write waits for ``replicated``). The
stable vector is :func:`breakwater.replication.stable.stable_vector` over this region's head and
every peer's caught-up head; the engine folds counters with it. Without peers nothing changes:
``stable`` is the region's own head, as it was before replication.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Mapping
from typing import Any

from breakwater.config import Config
from breakwater.core import cursor as cursor_mod
from breakwater.core.cursor import Peers, VersionVector
from breakwater.core.engine import Engine
from breakwater.core.errors import BreakwaterError, RegionStandby
from breakwater.core.incarnation import region_of
from breakwater.obs.logging import get_logger
from breakwater.obs.metrics import Metrics
from breakwater.replication.replicator import peer_key
from breakwater.replication.stable import stable_vector, unknown_regions
from breakwater.storage.base import Store

_log = get_logger("breakwater.region")
REGION_STATE_KEY = "region_state"
HELD_PREFIX = "held:"
REFRESH = 0.5
REFRESH_WHILE_WAITING = 0.05


class RegionView:
    """This region's replicated bookkeeping, read from the store, for one node."""

    def __init__(self, config: Config, store: Store, engine: Engine, metrics: Metrics) -> None:
        self.region = config.region
        self.topology = config.topology
        self.store = store
        self.engine = engine
        self.metrics = metrics
        self.state: str = config.topology.state
        self.peer_rows: dict[str, dict[str, Any]] = {}
        self.held: dict[str, VersionVector] = {}
        """What each peer region confirmed holding of this region's feed (the cursor it pulls
        with: a region pulls only from a cursor it has durably applied)."""
        self.unknown: frozenset[str] = frozenset()
        self._held_unwritten: set[str] = set()
        self._held_recorded = asyncio.Event()
        self.peers = Peers(config.topology.peer_regions)
        """What the peers' pulls told of their feeds (their current origins and heads): which
        cursors this region can honour (ADR 0037)."""
        self._stable: VersionVector = {}
        self._waiters = 0
        self._refreshed = asyncio.Event()
        if self.replicated:
            engine.stable = {}  # nothing is stable before every peer was caught up once

    @property
    def replicated(self) -> bool:
        """True when this region has peers."""
        return bool(self.topology.peers)

    @property
    def stable(self) -> VersionVector:
        """The causally stable vector (meaningful only with peers)."""
        return self._stable

    def stable_for(self, head: VersionVector) -> VersionVector:
        """The ``stable`` to send with a page read at ``head`` (not copied: realtime keeps one
        per queued message; neither vector is ever changed in place)."""
        return self._stable if self.replicated else head

    def active_regions(self) -> list[str]:
        """The regions known to take writes (this one, and peers that said so)."""
        names = [self.region] if self.state == "active" else []
        names += [name for name, row in self.peer_rows.items() if row.get("state") == "active"]
        return sorted(names)

    def require_writable(self) -> None:
        """Refuse a write on a standby, naming where to write instead."""
        if self.state == "standby":
            active = self.active_regions()
            raise RegionStandby(
                f"region {self.region!r} is a standby and takes no writes; write to an active"
                f" region ({', '.join(active) if active else 'none known yet'})",
                region=self.region,
                active_regions=active,
            )

    async def open(self) -> None:
        """Seed the region's state from the configuration (once, ever) and read everything."""
        await self.store.put_replication_state(
            {REGION_STATE_KEY: self.topology.state}, only_new=True
        )
        await self.refresh()

    async def refresh(self) -> None:
        """Read the region's state, peers' rows and held vectors; recompute ``stable``."""
        values = await self.store.replication_state()
        state = values.get(REGION_STATE_KEY, self.topology.state)
        if state != self.state:
            _log.info("region_state", region=self.region, state=state)
        self.state = state
        self.peer_rows = {
            name: row
            for name in self.topology.peers
            if isinstance(row := values.get(peer_key(name)), dict)
        }
        self.peers = _peers(self.topology.peer_regions, self.peer_rows.values())
        stored = {
            key[len(HELD_PREFIX) :]: dict(value)
            for key, value in values.items()
            if key.startswith(HELD_PREFIX) and isinstance(value, dict)
        }
        # What a peer told this node may not be written yet: what it holds never goes back.
        for region, vector in self.held.items():
            stored[region] = cursor_mod.merge(stored.get(region, {}), vector)
        self.held = stored
        if self.replicated:
            head = await self.store.head()
            self._update_stable(head)
        self._refreshed.set()
        self._refreshed = asyncio.Event()

    def _update_stable(self, head: Mapping[str, int]) -> None:
        heard_of = [row.get("regions", []) for row in self.peer_rows.values()]
        self.unknown = unknown_regions(self.region, self.topology.peers, heard_of)
        caught_up = [self.peer_rows.get(name, {}).get("caught_up") for name in self.topology.peers]
        computed = {} if self.unknown else stable_vector(head, caught_up)
        # Each computed vector is stable; so is their union, and stable never goes back.
        self._stable = cursor_mod.merge(self._stable, computed)
        self.engine.stable = dict(self._stable)
        for origin, seq in head.items():
            stable = self._stable.get(origin, 0)
            self.metrics.stable_seq.labels(origin).set(stable)
            self.metrics.stable_lag.labels(origin).set(max(0, seq - stable))

    async def run_forever(self) -> None:
        """Re-read the bookkeeping twice a second (faster while writes wait on peers)."""
        while True:
            await asyncio.sleep(REFRESH_WHILE_WAITING if self._waiters else REFRESH)
            with contextlib.suppress(BreakwaterError):
                await self.refresh()

    async def promote(self) -> str:
        """Make this region active (durably, for every node); the state before."""
        before = self.state
        await self.store.put_replication_state({REGION_STATE_KEY: "active"})
        await self.refresh()
        _log.warning("region_promoted", region=self.region, before=before)
        return before

    def record_held(self, region: str, vector: Mapping[str, int]) -> None:
        """Peer ``region`` pulled with ``vector``: it durably holds every change it covers.

        Known here at once; written to the store by :meth:`write_held_forever`, off the pull's
        path (a pull waiting on a commit would add one to every replication round trip). A crash
        before the write forgets only that the peer holds these changes, which makes ``stable``
        and write concern ``replicated`` wait for the peer's next pull, never claim more."""
        if region not in self.topology.peers:
            return
        current = self.held.get(region, {})
        if cursor_mod.covers_all(current, vector):
            return
        self.held[region] = cursor_mod.merge(current, vector)
        self._held_unwritten.add(region)
        self._held_recorded.set()

    async def write_held_forever(self) -> None:
        """Write what peers hold as it changes, many pulls' news in one write when they come
        faster than the store commits (so other nodes of the region learn it too)."""
        while True:
            await self._held_recorded.wait()
            self._held_recorded.clear()
            writes = {HELD_PREFIX + name: self.held[name] for name in self._held_unwritten}
            self._held_unwritten.clear()
            try:
                await self.store.put_replication_state(writes)
            except BreakwaterError:
                self._held_unwritten.update(key[len(HELD_PREFIX) :] for key in writes)
                await asyncio.sleep(REFRESH)  # the store is failing: try again later
                self._held_recorded.set()

    def held_elsewhere(self, positions: Iterable[tuple[str, int]]) -> bool:
        """True when at least one peer region holds every one of ``positions``."""
        wanted = list(positions)
        return any(
            all(cursor_mod.covers(vector, origin, seq) for origin, seq in wanted)
            for vector in self.held.values()
        )

    async def wait_held_elsewhere(
        self, positions: Iterable[tuple[str, int]], seconds: float
    ) -> bool:
        """Wait up to ``seconds`` for a peer region to hold every position."""
        wanted = list(positions)
        if not wanted or self.held_elsewhere(wanted):
            return True
        if not self.replicated:
            return False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        self._waiters += 1
        try:
            while not self.held_elsewhere(wanted):
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return False
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(remaining):
                        await self._refreshed.wait()
            return True
        finally:
            self._waiters -= 1


def _peers(regions: frozenset[str], rows: Iterable[Mapping[str, Any]]) -> Peers:
    """The peers' current origins and the pointwise maximum of their heads, from their rows."""
    current: dict[str, str] = {}
    held: VersionVector = {}
    for row in rows:
        origin = row.get("origin")
        if isinstance(origin, str):
            current[region_of(origin)] = origin
        held = cursor_mod.merge(held, row.get("head") or {})
    return Peers(regions, current, held)
