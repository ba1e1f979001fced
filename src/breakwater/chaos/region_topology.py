"""A scenario's multi-region topology: a :class:`LocalCluster` that the nemesis breaks.

Targets of a fault (validated by :mod:`breakwater.chaos.scenario`):

- a node (``eu-n1``) or ``all``: network faults act on the proxy devices reach it through,
  process faults on its process;
- a region (``eu``): network faults act on every link between it and the other regions (both
  ways: the region is cut off from its peers while its own devices still reach it), process
  faults on every node of it; ``region_loss`` kills them all and deletes its store; ``promote``
  turns a standby region active;
- a link: ``eu/us`` is both directions between two regions, ``eu>us`` only the one on which
  ``eu`` reaches ``us`` (``eu``'s pulls from ``us`` and their answers): an asymmetric partition.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any, Literal

from breakwater.chaos.cluster import LocalCluster
from breakwater.chaos.cluster_spec import ClusterSpec, NodeInfo
from breakwater.chaos.faults import FAULT_TYPES
from breakwater.chaos.scenario import Scenario

Action = Literal["start", "heal"]


def cluster_spec(scenario: Scenario) -> ClusterSpec:
    """The cluster a multi-region scenario runs on."""
    topology = scenario.regions
    assert topology is not None
    return ClusterSpec(
        regions=len(topology.regions),
        nodes_per_region=topology.nodes_per_region,
        store="postgres" if scenario.engines.store == "postgresql" else "sqlite",
        latency_ms=topology.latency_ms,
        jitter_ms=topology.jitter_ms,
        loss_pct=topology.loss_pct,
        standby=tuple(r.name for r in topology.regions if r.state == "standby"),
        clock_offsets_ms={r.name: r.clock_offset_ms for r in topology.regions if r.clock_offset_ms},
        region_names=tuple(topology.names),
    )


class RegionTopology:
    """The run's regions; the same interface as the runner's single-region ``Cluster``."""

    def __init__(self, scenario: Scenario, out: Path) -> None:
        self.scenario = scenario
        self.cluster = LocalCluster(cluster_spec(scenario), out / "cluster")
        self.paused: set[str] = set()
        self._busy: dict[str, asyncio.Lock] = {}

    async def start(self) -> None:
        await self.cluster.up()

    @property
    def regions(self) -> list[str]:
        return list(self.cluster.running.regions)

    def _nodes(self) -> list[NodeInfo]:
        return [n for r in self.cluster.running.regions.values() for n in r.nodes]

    def endpoints(self) -> list[tuple[str, str]]:
        """Every node's device proxy, region by region: device ``i`` starts at entry ``i``,
        so devices spread over the regions, and each knows every region to fail over to."""
        return [(node.name, node.device_url) for node in self._nodes()]

    def replica_urls(self) -> dict[str, str]:
        """One node per region, named by the region: the region's store is what is judged."""
        return {name: r.nodes[0].url for name, r in self.cluster.running.regions.items()}

    def targets(self, target: str) -> list[str]:
        return [node.name for node in self._nodes()] if target == "all" else [target]

    def _proxies(self, target: str) -> list[str]:
        if ">" in target:
            src, dst = target.split(">")
            return self.cluster.links(src, dst)
        if "/" in target:
            one, two = target.split("/")
            return self.cluster.links(one, two) + self.cluster.links(two, one)
        if target in self.regions:
            return self.cluster.region_links(target)
        return [self.cluster.node(target)[1].device_proxy]

    def _node_names(self, target: str) -> list[str]:
        if target in self.regions:
            return [node.name for node in self.cluster.region(target).nodes]
        return [target]

    def _region_of(self, target: str) -> str:
        return target if target in self.regions else self.cluster.node(target)[0].name

    async def apply(self, kind: str, target: str, action: Action, params: dict[str, Any]) -> None:
        """Start or heal fault ``kind`` on ``target``. Process faults on one region wait for
        each other: a node still starting (seconds, on a loaded machine) when the next fault
        kills its region would otherwise die under its own readiness wait."""
        if kind in FAULT_TYPES:
            await self._apply(kind, target, action, params)
            return
        lock = self._busy.setdefault(self._region_of(target), asyncio.Lock())
        async with lock:
            await self._apply(kind, target, action, params)

    async def _apply(self, kind: str, target: str, action: Action, params: dict[str, Any]) -> None:
        if kind in FAULT_TYPES:
            if action == "start":
                await self.cluster.set_fault(self._proxies(target), kind, params)
            else:
                await self.cluster.clear_fault(self._proxies(target), kind)
        elif kind == "region_loss":
            if action == "start":
                await self.cluster.lose_region(target)
            else:
                await self.cluster.start_region(target)
        elif kind == "promote":
            await self.cluster.promote(target)
        elif kind == "clock_skew":
            region = self._region_of(target)
            offset = params["offset_ms"] if action == "start" else None
            await self.cluster.restart_region(region, offset)
        else:
            for name in self._node_names(target):
                await self._process_fault(kind, name, action)

    async def _process_fault(self, kind: str, name: str, action: Action) -> None:
        _, node = self.cluster.node(name)
        if kind == "kill" or (kind == "restart" and action == "start"):
            if action == "start":
                await self.cluster.kill_node(name)
            if kind == "restart" or action == "heal":
                await self.cluster.start_node(name)
        elif kind == "pause" and node.process is not None:
            if not node.process.signal(signal.SIGSTOP if action == "start" else signal.SIGCONT):
                raise RuntimeError(f"node {name} is not running")
            (self.paused.add if action == "start" else self.paused.discard)(name)

    async def heal(self) -> None:
        """Every link healed (to its baseline), paused nodes resumed, lost regions and dead
        nodes started, clocks back to the spec's."""
        await self.cluster.heal_network()
        for name in list(self.paused):
            await self._process_fault("pause", name, "heal")
        for region in self.cluster.running.regions.values():
            wanted = self.cluster.spec.clock_offsets_ms.get(region.name, 0)
            if region.clock_offset_ms != wanted:
                await self.cluster.restart_region(region.name)
            else:
                await self.cluster.start_region(region.name)

    async def aclose(self) -> None:
        # The nodes' logs stay in the run's output; the cluster's databases do not.
        await asyncio.shield(self.cluster.down(remove=False))
