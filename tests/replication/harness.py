"""Regions of one deployment started in-process: each an app with its own SQLite store (or
PostgreSQL schema), pulling from its peers through ASGI transports that a test can cut."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx

from breakwater.config import Config, load_config
from breakwater.core import cursor as cursor_mod
from breakwater.core.cursor import VersionVector
from breakwater.core.engine import StoredDoc
from breakwater.core.errors import StoreUnavailable
from breakwater.core.topology import Peer, Topology
from breakwater.replication.anti_entropy import RoundReport
from breakwater.replication.client import PeerClient, Pulled
from breakwater.replication.replicator import PeerReplicator, TransferProgress, peer_key
from breakwater.replication.wire import Position
from breakwater.resilience.backoff import Backoff
from breakwater.resilience.circuit_breaker import CircuitBreaker
from breakwater.server.app import create_app
from breakwater.server.auth_backend import auth_store_for
from breakwater.server.node import Node
from breakwater.storage.base import DocSummaries, FeedEntry, Repair, ReplicaApplied


class Link(httpx.AsyncBaseTransport):
    """A replication link to a region's app, resolved at each request; ``up = False`` cuts it."""

    def __init__(self, regions: Mapping[str, Region], target: str) -> None:
        self.regions = regions
        self.target = target
        self.up = True

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        region = self.regions.get(self.target)
        if not self.up or region is None or region.stopping.is_set():
            raise httpx.ConnectError("link down", request=request)
        response = await _unless_stopping(region, request)
        if not self.up:  # cut while the request was in flight (a long poll): the answer is lost
            await response.aclose()
            raise httpx.ConnectError("link down", request=request)
        return response


async def _unless_stopping(region: Region, request: httpx.Request) -> httpx.Response:
    """``request`` served by ``region``'s app, cut when the region stops: a long poll into a
    stopped app would never end, and the asking region's own stop would wait on it for good."""
    transport = httpx.ASGITransport(app=region.app)
    answer = asyncio.ensure_future(transport.handle_async_request(request))
    stopping = asyncio.ensure_future(region.stopping.wait())
    try:
        await asyncio.wait((answer, stopping), return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if not answer.done():
            answer.cancel()
            await asyncio.wait((answer,))
    if answer.cancelled():
        raise httpx.ConnectError(f"{region.name} stopped", request=request)
    return answer.result()


@dataclass
class Region:
    """One running region: its app, a client for devices, and its node."""

    name: str
    config: Config
    app: Any
    client: httpx.AsyncClient
    links: dict[str, Link] = field(default_factory=dict)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def node(self) -> Node:
        node: Node = self.app.state.node
        return node

    async def push(self, *mutations: dict[str, Any], **extra: Any) -> httpx.Response:
        return await self.client.post("/v1/sync/push", json={"mutations": list(mutations), **extra})

    async def doc(self, collection: str, doc_id: str) -> dict[str, Any] | None:
        answer = await self.client.get(f"/v1/collections/{collection}/docs/{doc_id}")
        if answer.status_code == 404:
            return None
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body


def issue_key(config: Config, name: str, scopes: Sequence[str] = ("replication",)) -> str:
    """An API key issued by the region of ``config`` (as ``breakwater keys create`` does)."""
    from breakwater.auth.passwords import Passwords
    from breakwater.auth.service import AuthService
    from breakwater.auth.signing_keys import load_keys
    from breakwater.auth.tokens import TokenIssuer

    store = auth_store_for(config)
    store.open()
    try:
        issuer = TokenIssuer(
            load_keys(config.data / "auth-keys.json"), config.auth.audience, config.auth.access_ttl
        )
        service = AuthService(store, issuer, Passwords(), config.auth.refresh_ttl)
        secret, _ = service.create_key(name, list(scopes))
    finally:
        store.close()
    return secret


class Cluster:
    """Start regions that pull from each other; everything stops with the exit stack."""

    def __init__(self, tmp_path: Path, stack: contextlib.AsyncExitStack) -> None:
        self.tmp_path = tmp_path
        self.stack = stack
        self.regions: dict[str, Region] = {}
        self.keys: dict[str, str] = {}

    def base_config(self, name: str, store: str = "", **overrides: Any) -> Config:
        data = self.tmp_path / name
        config = load_config(None, env={}, overrides={"data": data, "region": name})
        return replace(config, drain_grace=0.0, store=store, **overrides)

    async def start(
        self,
        peers: Mapping[str, Sequence[str]],
        *,
        states: Mapping[str, str] | None = None,
        stores: Mapping[str, str] | None = None,
        pull_wait: float = 2.0,
        write_concern_timeout: float = 5.0,
        pull_limit: int = 500,
        overrides: Mapping[str, Any] | None = None,
        anti_entropy_interval: float = 600.0,
    ) -> dict[str, Region]:
        """Start one region per key of ``peers``, each pulling from the regions listed
        (``overrides``: config settings of every region)."""
        bases = {
            name: self.base_config(name, (stores or {}).get(name, ""), **(overrides or {}))
            for name in peers
        }
        for name, config in bases.items():
            self.keys[name] = issue_key(config, f"for-peers-of-{name}")
        for name, config in bases.items():
            await self.start_region(
                name,
                config,
                peers[name],
                state=(states or {}).get(name, "active"),
                pull_wait=pull_wait,
                write_concern_timeout=write_concern_timeout,
                pull_limit=pull_limit,
                anti_entropy_interval=anti_entropy_interval,
            )
        # Regions started one after the other failed to reach the later ones: try them now
        # rather than after the breaker's wait.
        for region in self.regions.values():
            for replicator in region.node.replication.replicators:
                replicator.nudge()
        return self.regions

    async def start_region(
        self,
        name: str,
        config: Config,
        peer_names: Sequence[str],
        *,
        state: str = "active",
        pull_wait: float = 2.0,
        write_concern_timeout: float = 5.0,
        pull_limit: int = 500,
        anti_entropy_interval: float = 600.0,
    ) -> Region:
        """Start (or restart) region ``name`` over ``config``'s store."""
        topology = Topology(
            state=state,  # type: ignore[arg-type]
            public_urls=(f"http://{name}.test",),
            peers={
                peer: Peer(
                    peer, (f"http://{peer}.test",), (f"http://{peer}.test",), self.keys[peer]
                )
                for peer in peer_names
            },
            pull_wait=pull_wait,
            pull_limit=pull_limit,
            anti_entropy_interval=anti_entropy_interval,
            write_concern_timeout=write_concern_timeout,
            lease_ttl=2.0,
        )
        config = replace(config, topology=topology)
        links = {peer: Link(self.regions, peer) for peer in peer_names}
        app = create_app(config, peer_transports=links)
        await self.stack.enter_async_context(app.router.lifespan_context(app))
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://node")
        await self.stack.enter_async_context(client)
        region = Region(name, config, app, client, links)
        # Set before this region's lifespan ends (the stack unwinds last in, first out): links
        # into it cut their requests then, as a stopped process's connections would be.
        self.stack.callback(region.stopping.set)
        self.regions[name] = region
        return region


async def eventually(
    check: Callable[[], Awaitable[bool]], seconds: float = 10.0, what: str = "condition"
) -> None:
    """Poll ``check`` until it holds; fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not hold within {seconds}s")
        await asyncio.sleep(0.05)


def mutation(mid: str, doc_id: str, op: str = "set", **data: Any) -> dict[str, Any]:
    """A push mutation of collection ``todos``."""
    body: dict[str, Any] = {"mutation_id": mid, "collection": "todos", "id": doc_id, "op": op}
    if op != "delete":
        body["data"] = data
    return body


class DeviceNet(httpx.AsyncBaseTransport):
    """The network between devices and regions: ``http://<region>.test`` reaches that region's
    app after the region's added latency; a region in ``down`` refuses connections, one in
    ``silent`` never answers (a black-holed link: only the caller's own deadline ends it)."""

    def __init__(self, regions: Mapping[str, Region], latency: Mapping[str, float]) -> None:
        self.regions = regions
        self.latency = dict(latency)
        self.down: set[str] = set()
        self.silent: set[str] = set()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        name = request.url.host.removesuffix(".test")
        if name in self.down or name not in self.regions:
            raise httpx.ConnectError(f"{name} is unreachable", request=request)
        if name in self.silent:
            await asyncio.Event().wait()
        await asyncio.sleep(self.latency.get(name, 0.0))
        transport = httpx.ASGITransport(app=self.regions[name].app)
        return await transport.handle_async_request(request)


def isolate(regions: Mapping[str, Region], name: str, net: DeviceNet, up: bool = False) -> None:
    """Cut (or, ``up``, restore) region ``name`` from devices and from every other region, as
    a region lost to a power cut looks from outside: nothing it holds leaves it meanwhile."""
    if up:
        net.down.discard(name)
    else:
        net.down.add(name)
    for region in regions.values():
        for peer, link in region.links.items():
            if name in (region.name, peer):
                link.up = up


class MemoryTarget:
    """A receiving region in memory whose first ``failures`` applies of entries fail; it checks
    on every apply that the peer never believes it holds more than it has committed."""

    def __init__(self, peer: Region, name: str, failures: int = 1) -> None:
        self.peer = peer
        self.name = name
        self.committed: VersionVector = {}
        self.applied: list[str] = []
        self.failures_left = failures

    async def holds(self, mutation_ids: list[str]) -> bool:
        """Whether exactly ``mutation_ids`` were applied, in this order."""
        return self.applied == mutation_ids

    def _check_peer_belief(self) -> None:
        believed = self.peer.node.region.held.get(self.name, {})
        assert cursor_mod.covers_all(self.committed, believed), (believed, self.committed)

    async def apply_replicated(
        self,
        entries: Sequence[FeedEntry],
        progress: Mapping[str, object] | None = None,
        traces: Mapping[str, Sequence[Position]] | None = None,
    ) -> ReplicaApplied:
        await asyncio.sleep(0.05)  # the pull sent ahead reaches the peer meanwhile
        self._check_peer_belief()
        if self.failures_left and entries:
            self.failures_left -= 1
            raise StoreUnavailable("the store is down for this apply")
        row: Any = (progress or {})[peer_key(self.peer.name)]
        self.applied.extend(entry.change.mutation_id for entry in entries)
        self.committed = dict(row["cursor"])
        return ReplicaApplied(len(entries), 0)

    async def replication_state(self) -> dict[str, Any]:
        return {}

    async def put_replication_state(
        self, writes: Mapping[str, object], *, only_new: bool = False
    ) -> None:
        return None

    async def take_lease(self, name: str, holder: str, ttl_ms: int) -> bool:
        return True

    async def head(self) -> VersionVector:
        return dict(self.committed)

    async def doc_summaries(self, collection: str | None = None) -> DocSummaries:
        raise NotImplementedError

    async def apply_repairs(self, repairs: Sequence[Repair]) -> list[StoredDoc]:
        raise NotImplementedError


class QuietObserver:
    """An observer that keeps nothing."""

    def pulled(self, peer: str, pulled: Pulled, applied: ReplicaApplied, lag: int) -> None:
        pass

    def failed(self, peer: str, failure: Exception) -> None:
        pass

    def breaker(self, peer: str, state: str) -> None:
        pass

    def transfer(self, peer: str, progress: TransferProgress) -> None:
        pass

    def anti_entropy(self, peer: str, report: RoundReport) -> None:
        pass


@contextlib.asynccontextmanager
async def replicating(
    key: str,
    link: httpx.AsyncBaseTransport,
    target: MemoryTarget,
    breaker: CircuitBreaker | None = None,
) -> AsyncIterator[PeerReplicator]:
    """Region ``r``'s replicator of region ``p`` (whose replication key is ``key``), pulling
    through ``link`` into ``target``, running inside (no anti-entropy, a short backoff)."""
    peer = Peer("p", ("http://p.test",), ("http://p.test",), key)
    client = PeerClient(peer, "r", transport=link)
    replicator = PeerReplicator(
        peer,
        Topology(peers={"p": peer}, pull_wait=0.2, anti_entropy_interval=0),
        "r-node",
        target,
        QuietObserver(),
        client,
        backoff=Backoff(base=0.01, cap=0.01),
        breaker=breaker,
    )
    task = asyncio.create_task(replicator.run_forever())
    try:
        yield replicator
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await client.aclose()
