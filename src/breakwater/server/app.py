"""``create_app``: the ASGI application of one node, with its dependencies injected."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.telemetry import TelemetryConfig

import breakwater
from breakwater.auth.external_tokens import ExternalIssuer
from breakwater.auth.lifecycle import AccountLifecycle
from breakwater.auth.mail import Mailer
from breakwater.auth.oidc_sign_in import OidcSignIn
from breakwater.auth.passwords import HashParameters, Passwords
from breakwater.auth.policy import Policy
from breakwater.auth.service import AccountDisabled, AuthService
from breakwater.auth.signing_keys import load_keys
from breakwater.auth.tokens import TokenIssuer
from breakwater.auth.verifier import TokenVerifier
from breakwater.bus import Bus, open_bus
from breakwater.cache import Cache, open_cache
from breakwater.cache.buckets import MemoryBuckets, open_buckets
from breakwater.config import Config
from breakwater.core.engine import Engine
from breakwater.core.errors import BreakwaterError, ConfigError
from breakwater.core.hlc import HybridClock
from breakwater.files.blobs import open_blobs
from breakwater.files.signing import UrlSigner
from breakwater.files.uploads import Uploads
from breakwater.obs.logging import get_logger
from breakwater.obs.metrics import Metrics
from breakwater.obs.worker_metrics import WorkerMetrics
from breakwater.replication.files import PeerFiles
from breakwater.server import (
    admin_api,
    auth_api,
    docs_api,
    files_api,
    health,
    oidc_api,
    problems,
    regions_api,
    replication_api,
    status_api,
    sync_api,
    webhooks_api,
)
from breakwater.server.access import Gatekeeper
from breakwater.server.application.feed import PAGE_SIZE, FeedFollower
from breakwater.server.application.file_copies import FileCopies
from breakwater.server.application.file_metrics import FileMetrics
from breakwater.server.application.files import FilePolicy, Files
from breakwater.server.application.region import RegionView
from breakwater.server.application.replication import Replication
from breakwater.server.application.writes import Writes
from breakwater.server.auth_backend import auth_store_for
from breakwater.server.cors import Cors, Origins
from breakwater.server.direct_routes import DirectRoutes
from breakwater.server.middleware import ObserveRequests
from breakwater.server.node import Node
from breakwater.server.rate_limit import Pseudonyms, RateLimiter
from breakwater.server.read_cache import ReadCache
from breakwater.server.realtime import sse as realtime_sse
from breakwater.server.realtime import websocket as realtime_websocket
from breakwater.server.realtime.hub import Realtime
from breakwater.server.region_buckets import RegionBuckets
from breakwater.server.security_headers import NodeApp
from breakwater.server.sign_in_guard import SignInGuard
from breakwater.server.store_hooks import NodeStoreHooks
from breakwater.server.store_opener import StoreOpener
from breakwater.server.webhooks.deliverer import Deliverer, DeliveryPolicy
from breakwater.server.webhooks.metrics import WebhookMetrics
from breakwater.server.webhooks.store import webhook_store_for
from breakwater.server.workers import WorkerRole
from breakwater.storage import POSTGRES_SCHEMES, open_store
from breakwater.storage.base import CompactionReport, Store

if TYPE_CHECKING:
    from breakwater.obs.tracing import Tracing

_log = get_logger("breakwater.server")
DAY_MS = 86_400_000
DISABLED_RELOAD_SECONDS = 2.0
"""How soon the other nodes refuse an account disabled on one (ADR 0026)."""

FASTAPI_TELEMETRY_OFF: TelemetryConfig = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
    "auto_configure": False,
}


def build_node(
    config: Config,
    store: Store | None = None,
    clock: HybridClock | None = None,
    bus: Bus | None = None,
    cache: Cache | None = None,
    tracing: Tracing | None = None,
    peer_transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
) -> Node:
    """Wire clock, engine, metrics, bus, cache and store for ``config`` (arguments override
    URLs, ``tracing`` overrides ``[tracing]``).

    A store built here publishes a commit notice on the bus after every commit. A store passed
    in keeps the hooks it was built with; without notices, realtime clients and long-polls
    still get every change, within the follower's one-second poll. ``peer_transports`` carry
    replication pulls to named peer regions instead of the network (in-process tests).
    """
    if clock is None:
        clock = HybridClock(config.node_id, max_skew_ms=int(config.max_clock_skew * 1000))
        clock.offset_ms = config.clock_offset_ms
    engine = Engine(config.region, clock, config.collections, config.limits)
    if tracing is None and config.tracing.enabled:
        tracing = _tracing_for(config, clock.node)
    metrics = Metrics()
    if bus is None:
        bus = open_bus(config.bus, namespace=config.region)
    if cache is None:
        cache = open_cache(config.cache, namespace=config.region)
    if store is None:
        store = open_store(config.store_url, engine, hooks=NodeStoreHooks(metrics, bus))
    read_cache = ReadCache(cache, metrics, config.cache_ttl)
    feed = FeedFollower(store, bus, page_size=min(PAGE_SIZE, config.realtime_queue))
    region = RegionView(config, store, engine, metrics)
    realtime = Realtime(
        config,
        store,
        feed,
        metrics,
        tracing,
        stable_of=region.stable_for,
        peers_of=lambda: region.peers,
    )
    # In this order: a client told of a change reads at least that version from this node.
    feed.subscribe(read_cache)
    feed.subscribe(realtime.fanout)
    # Last, and only a wake-up: its deliveries run in tasks of their own (never slow the feed).
    webhooks = Deliverer(
        webhook_store_for(config),
        store,
        region=config.region,
        holder=clock.node,
        policy=webhook_policy(config),
        metrics=WebhookMetrics(metrics.registry),
        peer_rows=lambda: region.peer_rows,
    )
    feed.subscribe(webhooks)
    file_metrics = FileMetrics(metrics.registry)
    blobs = open_blobs(config.files_store, config.data)
    copies = FileCopies(
        blobs,
        store,
        [
            PeerFiles(peer, config.region, transport=(peer_transports or {}).get(peer.name))
            for peer in config.topology.peers.values()
        ],
        config.data / "files" / "incoming",
        file_metrics,
    )
    feed.subscribe(copies)

    settings = config.auth
    policy = Policy(
        settings.resolved_mode(config.host), config.rules, frozenset(settings.mfa_roles)
    )
    writes = Writes(store, read_cache, policy, clock, metrics, tracing=tracing, region=region)
    replication = Replication(config, store, writes, region, metrics, transports=peer_transports)

    async def start_following() -> None:
        await feed.start()
        await realtime.start()
        await replication.start()
        await copies.start()

    metrics.dependency_up.labels("bus").set_function(lambda: 1 if bus.healthy else 0)
    metrics.watch_bus(lambda: (bus.stats.sent, bus.stats.received, bus.stats.reconnects))
    metrics.dependency_up.labels("cache").set_function(lambda: 1 if read_cache.healthy else 0)
    keys_file = Path(settings.signing_keys_file) if settings.signing_keys_file else None
    auth_store = auth_store_for(config)
    passwords = Passwords(HashParameters(settings.password_memory_kib, settings.password_time_cost))
    keys = load_keys(keys_file or config.data / "auth-keys.json")
    issuer = TokenIssuer(keys, settings.audience, settings.access_ttl)
    buckets = RegionBuckets(
        open_buckets(config.cache, namespace=config.region), MemoryBuckets(), metrics
    )
    if buckets.shared is not None:
        metrics.dependency_up.labels("rate_limits").set_function(lambda: int(buckets.healthy))
    # The oldest signing key: a rotation adds a key, so bucket names survive it.
    names = Pseudonyms(keys.keys[0].secret)
    store_opener = StoreOpener(
        store,
        start_following,
        lambda up: metrics.dependency_up.labels("store").set(int(up)),
        wait=urlsplit(config.store_url).scheme in POSTGRES_SCHEMES,
    )
    auth = AuthService(auth_store, issuer, passwords, settings.refresh_ttl)
    mailer = Mailer(config.smtp)
    return Node(
        config=config,
        clock=clock,
        engine=engine,
        store=store,
        metrics=metrics,
        bus=bus,
        cache=read_cache,
        realtime=realtime,
        auth=auth,
        auth_store=auth_store,
        mailer=mailer,
        lifecycle=AccountLifecycle(auth, mailer),
        policy=policy,
        buckets=buckets,
        limiter=RateLimiter(settings, metrics, buckets, names),
        sign_in_guard=SignInGuard(settings, metrics, buckets, names),
        store_opener=store_opener,
        writes=writes,
        feed=feed,
        origins=Origins.of(config),
        webhooks=webhooks,
        verifier=TokenVerifier(auth.verify_access, [ExternalIssuer(s) for s in settings.external]),
        oidc=OidcSignIn(settings.oidc, auth),
        tracing=tracing,
        region=region,
        replication=replication,
        files=Files(
            Uploads(config.data / "files" / "uploads", config.files_upload_lifetime),
            blobs,
            store,
            policy,
            FilePolicy(
                max_size=config.files_max_size,
                content_types=config.files_content_types,
                url_ttl=config.files_url_ttl,
                gc_grace=config.files_gc_grace,
            ),
            # Shared by the nodes that share signing keys: a URL one signs, every one accepts.
            UrlSigner(keys.keys[0].secret),
            metrics=file_metrics,
            copies=copies,
        ),
    )


def webhook_policy(config: Config) -> DeliveryPolicy:
    """The delivery bounds of ``config``'s ``webhook_*`` keys."""
    return DeliveryPolicy(
        timeout=config.webhook_timeout,
        max_attempts=config.webhook_max_attempts,
        backoff_base=config.webhook_backoff_base,
        backoff_cap=config.webhook_backoff_cap,
        concurrency=config.webhook_concurrency,
        allow_private=config.webhook_allow_private,
        log_retention=config.webhook_log_retention_days * 86400,
        takeover_after=config.webhook_takeover_after,
    )


def _tracing_for(config: Config, node: str) -> Tracing:
    """The node's tracing from ``[tracing]`` (imported here: a node that does not trace never
    imports OpenTelemetry)."""
    try:
        from breakwater.obs.tracing import build_tracing
    except ImportError as exc:
        raise ConfigError(
            "tracing.enabled needs OpenTelemetry: pip install 'breakwater-server[otel]'"
        ) from exc
    return build_tracing(config.tracing, node, config.region)


async def compact(node: Node, horizon_ms: int, now_ms: int | None = None) -> CompactionReport:
    """One retention pass; realtime resumes then refuse cursors behind it, as pulls do."""
    report = await node.store.compact(horizon_ms, now_ms)
    node.feed.forget_before(report.low_water)
    return report


async def _reload_disabled_forever(node: Node) -> None:
    """Follow the accounts disabled elsewhere (other nodes, the CLI): ADR 0026."""
    while True:
        try:
            await node.auth.reload_disabled()
        except BreakwaterError as error:
            _log.warning("disabled_reload_failed", error=error.type)
        if node.auth.disabled:
            node.realtime.end_sessions_of(
                node.auth.disabled, AccountDisabled("this account is disabled")
            )
        await asyncio.sleep(DISABLED_RELOAD_SECONDS)


async def _collect_files_forever(node: Node) -> None:
    while True:
        await asyncio.sleep(node.config.files_gc_interval)
        try:
            report = await node.files.collect_garbage()
            _log.info(
                "files_collected",
                kept=report.kept,
                deleted=report.deleted,
                expired_uploads=report.expired_uploads,
            )
        except BreakwaterError as error:
            _log.warning("files_collection_failed", error=error.type, detail=error.detail)


async def _compact_forever(node: Node) -> None:
    horizon_ms = int(node.config.retention_days * DAY_MS)
    while True:
        await asyncio.sleep(node.config.compaction_interval)
        try:
            report = await compact(node, horizon_ms)
            _log.info(
                "compacted",
                changes=report.changes_removed,
                tombstones=report.tombstones_purged,
            )
        except BreakwaterError as error:
            _log.warning("compaction_failed", error=error.type, detail=error.detail)


def _direct_routes() -> list[tuple[str, APIRoute]]:
    """The hot routes :class:`DirectRoutes` answers: the push, and one document's read and
    writes (not ``HEAD``, which FastAPI answers without a body)."""
    hot = {
        sync_api.push: ("POST",),
        docs_api.get_document: ("GET",),
        docs_api.put_document: ("PUT",),
        docs_api.patch_document: ("PATCH",),
        docs_api.delete_document: ("DELETE",),
    }
    routes = [
        (method, route)
        for router in (sync_api.router, docs_api.router)
        for route in router.routes
        if isinstance(route, APIRoute)
        for method in hot.get(route.endpoint, ())
        if method in (route.methods or ())
    ]
    if len(routes) != len(hot):
        raise RuntimeError(f"a direct route is not registered: {routes}")
    return routes


def create_app(
    config: Config,
    store: Store | None = None,
    clock: HybridClock | None = None,
    bus: Bus | None = None,
    role: WorkerRole | None = None,
    cache: Cache | None = None,
    tracing: Tracing | None = None,
    peer_transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
) -> FastAPI:
    """The node's app; the store is opened on startup and flushed and closed on shutdown.

    With ``role``, the app is one worker process of a node (``serve --workers``).
    """
    node = build_node(config, store, clock, bus, cache, tracing, peer_transports)
    if role is not None:
        node.worker_metrics = WorkerMetrics(node.metrics, role.run_dir, role.index)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(node.auth_store.open)
        with contextlib.suppress(BreakwaterError):  # a store still down is followed below
            await node.auth.reload_disabled()
        await node.bus.open()
        await node.cache.cache.open()
        await node.cache.start()
        await node.buckets.open()
        try:
            # A store that is unreachable is waited for in the background (I8).
            await node.store_opener.open()
        except BreakwaterError as error:
            # One clear line (the store names itself, password hidden) before the traceback.
            _log.error("startup_failed", error=error.type, detail=error.detail)
            await node.buckets.aclose()
            await node.cache.cache.aclose()
            await node.bus.aclose()
            raise
        await node.webhooks.start()
        compaction = asyncio.create_task(_compact_forever(node))
        background = [
            compaction,
            asyncio.create_task(_reload_disabled_forever(node)),
            asyncio.create_task(_collect_files_forever(node)),
        ]
        if node.worker_metrics is not None:
            background.append(asyncio.create_task(node.worker_metrics.publish_forever()))
        _log.info(
            "node_started",
            region=config.region,
            node=node.clock.node,
            store=config.store_url_redacted,
            auth=node.policy.mode,
        )
        if config.clock_offset_ms:
            _log.warning("clock_offset", offset_ms=config.clock_offset_ms)
        try:
            yield
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await node.store_opener.aclose()
            await node.webhooks.aclose()
            await node.replication.aclose()
            if node.files.copies is not None:
                await node.files.copies.aclose()
            await node.files.blobs.aclose()
            await node.realtime.aclose()
            await node.feed.aclose()
            await node.store.aclose()
            await node.buckets.aclose()
            await node.cache.cache.aclose()
            await node.bus.aclose()
            await node.mailer.aclose()
            await asyncio.to_thread(node.auth_store.close)
            if node.tracing is not None:
                await asyncio.to_thread(node.tracing.shutdown)
            _log.info("node_stopped", node=node.clock.node)

    app = NodeApp(
        title="Breakwater",
        version=breakwater.__version__,
        description="Offline-first document sync for mobile apps. See docs/protocol.md.",
        lifespan=lifespan,
        # A trailing slash is a wrong path, not a redirect: a 307 is no problem+json (I7).
        redirect_slashes=False,
        # The node owns its spans (ADR 0028): FastAPI's own would use the process-global
        # providers, miss the direct routes and come back whenever something in the process
        # configures those providers, traced or not.
        telemetry=FASTAPI_TELEMETRY_OFF,
    )
    app.state.node = node
    problems.install(app)
    app.include_router(health.router)
    app.include_router(status_api.router)
    app.include_router(admin_api.router)
    app.include_router(webhooks_api.router)
    app.include_router(auth_api.router)
    app.include_router(oidc_api.router)
    app.include_router(docs_api.router)
    app.include_router(files_api.router)
    app.include_router(sync_api.router)
    app.include_router(replication_api.router)
    app.include_router(regions_api.router)
    app.include_router(realtime_sse.router)
    app.add_middleware(DirectRoutes, routes=_direct_routes())
    # Outside the direct routes, so that every request, pushes included, has its caller
    # resolved and its rate limits applied (inside the observer: refusals are counted).
    app.add_middleware(Gatekeeper, node=node)
    # Outside the gatekeeper: preflights carry no credential, and refusals (401, 429) need
    # the CORS headers for a page to read them.
    app.add_middleware(Cors, origins=node.origins, max_age=config.cors_max_age)
    app.add_middleware(ObserveRequests, metrics=node.metrics)
    # Realtime WebSockets skip the routing layers (see its module).
    app.add_middleware(realtime_websocket.WebSocketEntry)
    if node.tracing is not None:
        from breakwater.server.trace_requests import TraceRequests

        # Outermost: a request's access log line carries its trace ids, and WebSocket
        # handshakes are seen before the realtime entry takes them.
        app.add_middleware(TraceRequests, tracing=node.tracing)
    return app
