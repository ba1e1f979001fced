"""Prometheus metrics of one node, on a registry of its own (nothing registered at import)."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

CONTENT_TYPE = CONTENT_TYPE_LATEST
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)


class Metrics:
    """Every metric a node exports; the names are part of the operations contract."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "breakwater_http_requests",
            "HTTP requests answered, by route template and status code.",
            ["method", "route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "breakwater_http_request_duration_seconds",
            "Time to answer an HTTP request.",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.mutations = Counter(
            "breakwater_mutations",
            "Mutations received, by outcome (applied, duplicate, rejected).",
            ["status"],
            registry=r,
        )
        self._mutation_series: dict[str, Counter] = {}
        self.conflicts = Counter(
            "breakwater_conflicts",
            "Merges in which a concurrent write lost (last-writer-wins overrode it).",
            registry=r,
        )
        self.commit_retries = Counter(
            "breakwater_group_commit_retries",
            "Group commits read without the lock and redone under it, because another node"
            " committed between their read and their write (PostgreSQL).",
            registry=r,
        )
        self.commit_size = Histogram(
            "breakwater_group_commit_mutations",
            "Mutations per group commit (one transaction, one fsync).",
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.commit_seconds = Histogram(
            "breakwater_group_commit_duration_seconds",
            "Time of one group commit including fsync.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "breakwater_http_requests_in_flight", "Requests being answered now.", registry=r
        )
        self.draining = Gauge(
            "breakwater_draining", "1 while the node drains before shutting down.", registry=r
        )
        self.realtime_connections = Gauge(
            "breakwater_realtime_connections",
            "Open realtime connections, by transport (websocket, sse).",
            ["transport"],
            registry=r,
        )
        self.realtime = RealtimeFigures()
        r.register(_RealtimeCollector(self.realtime))
        self.realtime_overflows = Counter(
            "breakwater_realtime_overflows",
            "Times a subscriber's queue overflowed and it fell back to catching up from the store.",
            registry=r,
        )
        self.realtime_refused = Counter(
            "breakwater_realtime_refused",
            "Realtime connections refused, by transport and reason (limit, rate, draining).",
            ["transport", "reason"],
            registry=r,
        )
        self.cache_lookups = Counter(
            "breakwater_cache_lookups",
            "Cached reads (documents and query pages), by result: hit, miss, error (the cache"
            " failed; the store answered) or bypass (the cache is being left alone).",
            ["result"],
            registry=r,
        )
        self.cache_errors = Counter(
            "breakwater_cache_errors",
            "Cache calls that failed, by operation (read, write, invalidate).",
            ["operation"],
            registry=r,
        )
        self.rate_limited = Counter(
            "breakwater_rate_limited",
            "Requests refused with 429, by the limit that refused them (ip, user, key, auth,"
            " global, signin_address, signin_account).",
            ["limit"],
            registry=r,
        )
        self.rate_limit_fallbacks = Counter(
            "breakwater_rate_limit_fallbacks",
            "Rate-limit checks made with this node's own buckets because the region's shared"
            " buckets (Redis) did not answer.",
            registry=r,
        )
        self.auth_events = Counter(
            "breakwater_auth_events",
            "Sign-in outcomes and token events (login_ok, login_failed, refresh_reused, ...).",
            ["event"],
            registry=r,
        )
        self.access_denied = Counter(
            "breakwater_access_denied",
            "Requests or changes refused by an access rule or scope, by path kind.",
            ["path"],
            registry=r,
        )
        self.dependency_up = Gauge(
            "breakwater_dependency_up",
            "1 when a dependency answers its readiness check.",
            ["dependency"],
            registry=r,
        )
        # Replication (docs/multi-region.md#metrics): per peer region.
        self.replication_bytes = Counter(
            "breakwater_replication_bytes",
            "Replication page bytes, by peer, direction (in: pulled from the peer, out: served"
            " to it) and encoding (wire: as sent, compressed; json: before compression).",
            ["peer", "direction", "encoding"],
            registry=r,
        )
        self.replication_applied = Counter(
            "breakwater_replication_applied_changes",
            "Changes pulled from a peer and applied here (skipped ones, already held, excluded).",
            ["peer"],
            registry=r,
        )
        self.replication_pages = Counter(
            "breakwater_replication_pages",
            "Pages pulled from a peer and applied (applied changes over pages: the batch size).",
            ["peer"],
            registry=r,
        )
        self.replication_retries = Counter(
            "breakwater_replication_retries",
            "Failed pulls from a peer, by kind (unavailable, refused, expired, bad_answer).",
            ["peer", "kind"],
            registry=r,
        )
        self.replication_breaker = Gauge(
            "breakwater_replication_breaker_open",
            "1 while the circuit breaker towards a peer is open or half-open.",
            ["peer"],
            registry=r,
        )
        self.replication_lag_changes = Gauge(
            "breakwater_replication_lag_changes",
            "Changes the peer's head held that this region had not applied, at the last pull (0 on"
            " a node not replicating from the peer: the region's value is the max of its nodes).",
            ["peer"],
            registry=r,
        )
        self.replication_repairs = Counter(
            "breakwater_replication_repairs",
            "Documents anti-entropy changed here from a peer's state (or deleted because the"
            " peer deleted and purged them), by peer and collection.",
            ["peer", "collection"],
            registry=r,
        )
        self.replication_anti_entropy_rounds = Counter(
            "breakwater_replication_anti_entropy_rounds",
            "Anti-entropy rounds with a peer, by outcome (in_sync, repaired, differing: buckets"
            " differed but nothing here needed a repair).",
            ["peer", "outcome"],
            registry=r,
        )
        self.replication_transfer_changes = Counter(
            "breakwater_replication_transfer_changes",
            "Changes received by full state transfers from a peer (applied or already held).",
            ["peer"],
            registry=r,
        )
        self.replication_transfer_progress = Gauge(
            "breakwater_replication_transfer_progress",
            "Fraction of the peer's head positions a running full state transfer covers (1 when"
            " none runs).",
            ["peer"],
            registry=r,
        )
        self.replication_lag_seconds = Gauge(
            "breakwater_replication_lag_seconds",
            "Seconds since this region last held everything the peer held (0 when caught up, and"
            " on a node not replicating from the peer: the region's value is the max of its"
            " nodes).",
            ["peer"],
            registry=r,
        )
        self.stable_seq = Gauge(
            "breakwater_stable_seq",
            "The stable vector's position for an origin: its changes up to here every region"
            " holds durably (it never goes back).",
            ["origin"],
            registry=r,
        )
        self.stable_lag = Gauge(
            "breakwater_stable_lag_changes",
            "Changes of an origin this region holds that the stable vector does not cover yet.",
            ["origin"],
            registry=r,
        )

    def watch_bus(self, figures: Callable[[], tuple[int, int, int]]) -> None:
        """Export the bus's ``(sent, received, reconnects)`` counters, read at each scrape."""
        self.registry.register(_BusCollector(figures))

    # StoreHooks -------------------------------------------------------------------------------

    def on_commit(self, mutations: int, seconds: float) -> None:
        """Record one group commit."""
        self.commit_size.observe(mutations)
        self.commit_seconds.observe(seconds)

    def on_conflict(self, collection: str) -> None:
        """Count one conflict."""
        self.conflicts.inc()

    def count_mutations(self, status: str, count: int) -> None:
        """Count ``count`` mutations of outcome ``status`` (each outcome's series looked up
        once: ``labels()`` on every write cost about as much as the count, ADR 0044)."""
        series = self._mutation_series.get(status)
        if series is None:
            series = self._mutation_series[status] = self.mutations.labels(status)
        series.inc(count)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


TRANSPORTS = ("websocket", "sse")


class RealtimeFigures:
    """Per-message realtime figures, kept as plain numbers.

    They change for every message sent to every subscriber, tens of thousands of times a
    second: a Prometheus counter's lock per update would cost a tenth of the node's time. Only
    the event loop updates them, and ``/metrics`` reads them on that loop.
    """

    def __init__(self) -> None:
        self.messages = dict.fromkeys(TRANSPORTS, 0)
        self.bytes = dict.fromkeys(TRANSPORTS, 0)
        self.notify_buckets = [0] * (len(_LATENCY_BUCKETS) + 1)
        self.notify_sum = 0.0

    def sent(self, transport: str, size: int) -> None:
        """Count one message of ``size`` bytes."""
        self.messages[transport] += 1
        self.bytes[transport] += size

    def notified(self, seconds: float, messages: int = 1) -> None:
        """Record the time from a commit to the send of ``messages`` of its live messages."""
        self.notify_buckets[bisect.bisect_left(_LATENCY_BUCKETS, seconds)] += messages
        self.notify_sum += seconds * messages


class _RealtimeCollector(Collector):
    def __init__(self, figures: RealtimeFigures) -> None:
        self.figures = figures

    def collect(self) -> Iterator[Metric]:
        figures = self.figures
        messages = CounterMetricFamily(
            "breakwater_realtime_messages",
            "Messages (WebSocket frames or SSE events, heartbeats included) sent, by transport.",
            labels=["transport"],
        )
        sent_bytes = CounterMetricFamily(
            "breakwater_realtime_bytes",
            "Bytes of realtime messages handed to the transport (before compression).",
            labels=["transport"],
        )
        for transport in TRANSPORTS:
            messages.add_metric([transport], figures.messages[transport])
            sent_bytes.add_metric([transport], figures.bytes[transport])
        yield messages
        yield sent_bytes
        cumulative = 0
        buckets = []
        for bound, count in zip(
            [*map(str, _LATENCY_BUCKETS), "+Inf"], figures.notify_buckets, strict=True
        ):
            cumulative += count
            buckets.append((bound, cumulative))
        yield HistogramMetricFamily(
            "breakwater_realtime_notify_seconds",
            "From a commit to the send of the live message that carries it.",
            buckets=buckets,
            sum_value=figures.notify_sum,
        )


class _BusCollector(Collector):
    def __init__(self, figures: Callable[[], tuple[int, int, int]]) -> None:
        self.figures = figures

    def collect(self) -> Iterator[Metric]:
        sent, received, reconnects = self.figures()
        notices = CounterMetricFamily(
            "breakwater_bus_notices",
            "Commit notices through the bus's broker, by direction (sent, received).",
            labels=["direction"],
        )
        notices.add_metric(["sent"], sent)
        notices.add_metric(["received"], received)
        yield notices
        yield CounterMetricFamily(
            "breakwater_bus_reconnects",
            "Times the bus lost its broker and connected again.",
            value=reconnects,
        )
