"""The webhook deliverer's metrics, registered on the node's registry when the node is built."""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class WebhookMetrics:
    """Deliveries by outcome, their latency, each subscription's backlog and lag, dead letters."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.attempts = Counter(
            "breakwater_webhook_attempts",
            "Delivery attempts, by outcome (delivered: a 2xx answer; failed: another answer, a"
            " timeout or a network error; refused: a target this node does not call).",
            ["outcome"],
            registry=r,
        )
        self.latency = Histogram(
            "breakwater_webhook_attempt_duration_seconds",
            "Time from sending a delivery to the receiver's answer (or the timeout).",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.dead_letters = Counter(
            "breakwater_webhook_dead_letters",
            "Deliveries that failed every attempt and were kept for manual redelivery.",
            registry=r,
        )
        self.gaps = Counter(
            "breakwater_webhook_gaps",
            "Times a subscription fell behind the feed's retention and restarted at its head"
            " (changes in between were never delivered).",
            registry=r,
        )
        self.pending = Gauge(
            "breakwater_webhook_pending",
            "Changes of the page being delivered that are not delivered yet, by subscription.",
            ["subscription"],
            registry=r,
        )
        self.lag = Gauge(
            "breakwater_webhook_lag_seconds",
            "Age of the oldest change a subscription is delivering (0 when it is caught up).",
            ["subscription"],
            registry=r,
        )
        self.leader = Gauge(
            "breakwater_webhook_deliverer",
            "1 while this node holds the region's webhook lease and delivers.",
            registry=r,
        )

    def forget(self, sub_id: str) -> None:
        """Drop the series of a removed subscription."""
        for gauge in (self.pending, self.lag):
            with contextlib.suppress(KeyError):
                gauge.remove(sub_id)
