"""The store's hooks on a node: metrics, and a commit notice on the bus after every commit."""

from __future__ import annotations

from breakwater.bus import Bus, CommitNotice
from breakwater.core.cursor import VersionVector
from breakwater.obs.metrics import Metrics


class NodeStoreHooks:
    """A :class:`~breakwater.storage.StoreHooks` that feeds metrics and the bus."""

    def __init__(self, metrics: Metrics, bus: Bus) -> None:
        self.metrics = metrics
        self.bus = bus

    def on_commit(self, mutations: int, seconds: float) -> None:
        """Record the group commit."""
        self.metrics.on_commit(mutations, seconds)

    def on_conflict(self, collection: str) -> None:
        """Count the conflict."""
        self.metrics.on_conflict(collection)

    def on_commit_retried(self) -> None:
        """Count the retry."""
        self.metrics.commit_retries.inc()

    def on_feed_advanced(self, head: VersionVector, at: float) -> None:
        """Publish the commit (the store calls this after COMMIT, on the node's loop)."""
        self.bus.publish(CommitNotice(head, at))

    def on_available(self, available: bool) -> None:
        """Follow the store's health in ``breakwater_dependency_up{dependency="store"}``."""
        self.metrics.dependency_up.labels("store").set(1 if available else 0)
