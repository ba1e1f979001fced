"""Prometheus metrics of one node, on a registry of its own (nothing registered at import)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

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
        self.conflicts = Counter(
            "breakwater_conflicts",
            "Merges in which a concurrent write lost (last-writer-wins overrode it).",
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
        self.realtime_messages = Counter(
            "breakwater_realtime_messages",
            "Messages (WebSocket frames or SSE events, heartbeats included) sent, by transport.",
            ["transport"],
            registry=r,
        )
        self.realtime_bytes = Counter(
            "breakwater_realtime_bytes",
            "Bytes of realtime messages handed to the transport (before compression).",
            ["transport"],
            registry=r,
        )
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
        self.realtime_notify_seconds = Histogram(
            "breakwater_realtime_notify_seconds",
            "From a commit to the send of the live message that carries it.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.dependency_up = Gauge(
            "breakwater_dependency_up",
            "1 when a dependency answers its readiness check.",
            ["dependency"],
            registry=r,
        )

    # StoreHooks -------------------------------------------------------------------------------

    def on_commit(self, mutations: int, seconds: float) -> None:
        """Record one group commit."""
        self.commit_size.observe(mutations)
        self.commit_seconds.observe(seconds)

    def on_conflict(self, collection: str) -> None:
        """Count one conflict."""
        self.conflicts.inc()

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
