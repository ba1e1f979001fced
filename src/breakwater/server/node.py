"""The state one node shares between its routes: config, engine, store, bus, metrics, drain."""

from __future__ import annotations

from dataclasses import dataclass, field

from breakwater.bus import Bus
from breakwater.config import Config
from breakwater.core.engine import Engine
from breakwater.core.hlc import HybridClock
from breakwater.obs.metrics import Metrics
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
    draining: bool = False
    dependencies: dict[str, str] = field(default_factory=dict)

    def start_draining(self) -> None:
        """Turn readiness off so that balancers stop sending new work here."""
        self.draining = True
        self.metrics.draining.set(1)
