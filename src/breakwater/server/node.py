"""The state one node shares between its routes: config, engine, store, bus, cache, realtime,
drain."""

from __future__ import annotations

from dataclasses import dataclass, field

from breakwater.bus import Bus
from breakwater.config import Config
from breakwater.core.engine import Engine
from breakwater.core.hlc import HybridClock
from breakwater.obs.metrics import Metrics
from breakwater.server.read_cache import ReadCache
from breakwater.server.realtime.hub import Realtime
from breakwater.storage.base import Store


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
    draining: bool = False
    dependencies: dict[str, str] = field(default_factory=dict)

    def start_draining(self) -> None:
        """Turn readiness off, refuse new realtime clients and tell open ones to reconnect.

        Safe to call from a signal handler, and more than once.
        """
        self.draining = True
        self.metrics.draining.set(1)
        self.realtime.start_draining()
