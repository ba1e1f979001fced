"""The state one node shares between its routes: config, engine, store, bus, cache, realtime,
drain."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from breakwater.auth.lifecycle import AccountLifecycle
from breakwater.auth.mail import Mailer
from breakwater.auth.oidc_sign_in import OidcSignIn
from breakwater.auth.policy import Policy
from breakwater.auth.service import AuthService
from breakwater.auth.store import AuthStore
from breakwater.auth.verifier import TokenVerifier
from breakwater.bus import Bus
from breakwater.config import Config
from breakwater.core.engine import Engine
from breakwater.core.hlc import HybridClock
from breakwater.obs.metrics import Metrics
from breakwater.obs.status import HealthHistory
from breakwater.obs.worker_metrics import WorkerMetrics
from breakwater.server.application.feed import FeedFollower
from breakwater.server.application.region import RegionView
from breakwater.server.application.replication import Replication
from breakwater.server.application.writes import Writes
from breakwater.server.cors import Origins
from breakwater.server.rate_limit import RateLimiter
from breakwater.server.read_cache import ReadCache
from breakwater.server.realtime.hub import Realtime
from breakwater.server.region_buckets import RegionBuckets
from breakwater.server.sign_in_guard import SignInGuard
from breakwater.server.store_opener import StoreOpener
from breakwater.server.webhooks.deliverer import Deliverer
from breakwater.storage.base import Store

if TYPE_CHECKING:
    from breakwater.obs.tracing import Tracing


@dataclass
class Node:
    """One serving process."""

    config: Config
    clock: HybridClock
    engine: Engine
    store: Store
    metrics: Metrics
    bus: Bus
    cache: ReadCache
    realtime: Realtime
    auth: AuthService
    auth_store: AuthStore
    mailer: Mailer
    lifecycle: AccountLifecycle
    """Mailed account flows: verification, password reset, change of email."""
    policy: Policy
    buckets: RegionBuckets
    limiter: RateLimiter
    sign_in_guard: SignInGuard
    store_opener: StoreOpener
    writes: Writes
    """The write path every route and worker writes through."""
    feed: FeedFollower
    """The node's one reader of committed changes (cache, realtime and long-polls follow it)."""
    origins: Origins
    """The web pages that may call this node (HTTP and WebSocket)."""
    webhooks: Deliverer
    """Webhook subscriptions and their delivery (delivers while it holds the region's lease)."""
    verifier: TokenVerifier
    """Bearer tokens: Breakwater's own and the configured external issuers'."""
    oidc: OidcSignIn
    """Sign-in with the configured OpenID Connect providers."""
    region: RegionView
    """This region's state (active or standby), stable vector and what peers hold."""
    replication: Replication
    """The replicators pulling from peer regions (none without ``[topology.peers]``)."""
    draining: bool = False
    worker_metrics: WorkerMetrics | None = None
    """Set when this process is one worker of several: ``/metrics`` answers for all of them."""
    health_history: HealthHistory = field(default_factory=HealthHistory)
    """Readiness outcomes per component, for the public status page."""
    tracing: Tracing | None = None
    """The node's OpenTelemetry tracing; None (no span anywhere) unless enabled (ADR 0028)."""

    def start_draining(self) -> None:
        """Turn readiness off, refuse new realtime clients and tell open ones to reconnect.

        Safe to call from a signal handler, and more than once.
        """
        self.draining = True
        self.metrics.draining.set(1)
        self.realtime.start_draining()
