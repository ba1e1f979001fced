"""Region drills: lose a node, a region, a region's store, silence a region, cut a region off, or
lose the active region and promote its standby, while simulated SDK devices write, and measure
what their users would have seen.

The devices are real SDK clients (:class:`breakwater.client.Client`) given every region's device
endpoints, spread over ``processes`` child processes (:mod:`.drill_devices`), so that the figures
are the SDK's rather than one starved event loop's. The target region's endpoints are the nearest
(the others' device proxies get :data:`FARTHER_MS` more), so every device starts there and a
loss drill moves all of them. Each device writes a new document every ``write_interval_s``.
Measured:

- **RTO** per device on what the fault takes away (the node, the region) when it begins: from
  the moment the drill starts the fault to the first acknowledgement the device receives
  afterwards from another node (p50, p99, max over those; an answer the lost node sent while
  the fault was being injected is not a recovery); in ``standby-promotion`` that includes the
  operator's ``promote_after_s``;
- **RPO**: acknowledged writes missing from a surviving region once the drill has converged
  (must be 0: the SDK re-pushes acknowledged writes ``stable`` did not cover, I2 dedupes them);
- **app errors**: writes the server rejected (the only errors an offline-first app sees);
- **convergence**: from the heal until every region holds every acknowledged write;
- acknowledged writes per second through the drill, for the SVG plot (:mod:`.drill_plot`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx

from breakwater.chaos.cluster import LocalCluster
from breakwater.chaos.drill_devices import COLLECTION, DeviceGroup, GroupSpec
from breakwater.client.endpoints import FAILOVER_TIMEOUT

DrillName = Literal[
    "node-loss", "region-loss", "store-loss", "region-silence", "region-partition",
    "standby-promotion",
]  # fmt: skip
DRILLS: tuple[DrillName, ...] = (
    "node-loss", "region-loss", "store-loss", "region-silence", "region-partition",
    "standby-promotion",
)  # fmt: skip
FARTHER_MS = 15.0
"""Added to the other regions' device links, so that the target is every device's nearest."""
CONVERGENCE_LIMIT_S = 120.0


@dataclass(frozen=True)
class DrillPlan:
    """How one drill runs; ``target`` is the region hit (default: the first)."""

    drill: DrillName
    devices: int = 12
    warmup_s: float = 5.0
    outage_s: float = 8.0
    settle_s: float = 6.0
    write_interval_s: float = 0.25
    target: str = ""
    processes: int = 5
    """Child processes the devices are spread over (at most one per device)."""
    failover_timeout_s: float = FAILOVER_TIMEOUT
    """The SDK's ``failover_timeout`` (its request timeout, 30 s, gives the old behaviour)."""
    promote_after_s: float = 1.0
    """``standby-promotion``: seconds from the loss to the promotion (the operator's part)."""


@dataclass
class DrillReport:
    """What one drill measured (seconds; ``None``: nothing to measure, e.g. RTO when no device
    was on the target, or a device never served again)."""

    drill: str
    target: str
    devices: int
    affected: int
    rto_p50_s: float | None
    rto_p99_s: float | None
    rto_max_s: float | None
    never_recovered: int
    acknowledged: int
    lost: int
    app_errors: int
    convergence_s: float | None
    fault_at_s: float
    heal_at_s: float
    acks_per_second: list[int] = field(default_factory=list)
    promoted_at_s: float | None = None
    """``standby-promotion``: when the standby was promoted (seconds from the start)."""
    short_at_limit: dict[str, int] = field(default_factory=dict)
    """Not converged: the acknowledged writes each region still lacked at the limit (-1: the
    region did not answer), so a failed drill says where replication stopped."""

    def to_json(self) -> dict[str, Any]:
        """The report as a JSON object."""
        return asdict(self)


def percentile(values: Sequence[float], share: float) -> float | None:
    """The nearest-rank percentile of ``values`` (``None`` when empty)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(share * len(ordered) + 0.999999) - 1))
    return ordered[rank]


async def doc_ids(url: str) -> set[str] | None:
    """Every document id of the drill's collection a region serves (``None``: unreachable)."""
    ids: set[str] = set()
    cursor = ""
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            while True:
                answer = await http.get(
                    "/v1/sync/pull",
                    params={"cursor": cursor, "limit": 1000, "collections": COLLECTION},
                )
                answer.raise_for_status()
                page = answer.json()
                ids.update(change["id"] for change in page["changes"])
                cursor = page["cursor"]
                if not page["has_more"]:
                    return ids
    except httpx.HTTPError:
        return None


class Fault:
    """A drill's fault and its healing, on a running local cluster."""

    def __init__(self, cluster: LocalCluster, plan: DrillPlan, target: str) -> None:
        self.cluster = cluster
        self.drill = plan.drill
        self.target = target
        self.promote_after_s = plan.promote_after_s
        self.promoted_at: float | None = None
        self.node = 0
        """The index of the node ``node-loss`` kills (:meth:`aim`)."""

    def aim(self, endpoints: Sequence[str | None]) -> None:
        """For ``node-loss``: aim at the target region's node most devices are on (devices
        spread over a region's nodes, so the first node may have none)."""
        nodes = self.cluster.region(self.target).nodes
        on = [sum(e == node.device_url for e in endpoints) for node in nodes]
        self.node = on.index(max(on))

    def hit_urls(self) -> set[str]:
        """The device URLs the fault takes away (none for a partition between regions)."""
        region = self.cluster.region(self.target)
        if self.drill == "node-loss":
            return {region.nodes[self.node].device_url}
        return set() if self.drill == "region-partition" else set(region.device_urls())

    async def inject(self) -> None:
        region = self.cluster.region(self.target)
        if self.drill == "node-loss":
            await self.cluster.kill_node(region.nodes[self.node].name)
        elif self.drill in ("region-loss", "standby-promotion"):
            await self.cluster.kill_region(self.target)
        elif self.drill == "store-loss":
            await self.cluster.lose_region(self.target)
        elif self.drill == "region-silence":
            await self.cluster.set_fault(
                region_device_proxies(self.cluster, self.target), "blackhole"
            )
        else:
            await self.cluster.set_fault(self.cluster.region_links(self.target), "partition")
        if self.drill == "standby-promotion":
            await asyncio.sleep(self.promote_after_s)
            await self.cluster.promote(standby_region(self.cluster))
            self.promoted_at = time.monotonic()

    async def heal(self) -> None:
        region = self.cluster.region(self.target)
        if self.drill == "node-loss":
            await self.cluster.start_node(region.nodes[self.node].name)
        elif self.drill in ("region-loss", "store-loss", "standby-promotion"):
            await self.cluster.start_region(self.target)
        elif self.drill == "region-silence":
            await self.cluster.clear_fault(
                region_device_proxies(self.cluster, self.target), "blackhole"
            )
        else:
            await self.cluster.clear_fault(self.cluster.region_links(self.target), "partition")


def region_device_proxies(cluster: LocalCluster, name: str) -> list[str]:
    """The proxies between devices and region ``name``'s nodes."""
    return [node.device_proxy for node in cluster.region(name).nodes]


def standby_region(cluster: LocalCluster) -> str:
    """The cluster's (first) standby region, which ``standby-promotion`` promotes."""
    for name, region in cluster.running.regions.items():
        if region.state == "standby":
            return name
    raise ValueError("standby-promotion needs a cluster with a standby region (--standby)")


def device_regions(cluster: LocalCluster, rotate: int) -> dict[str, list[str]]:
    """Every region's device URLs, the regions in an order rotated by ``rotate``."""
    regions = list(cluster.running.regions.values())
    rotated = regions[rotate % len(regions) :] + regions[: rotate % len(regions)]
    return {region.name: region.device_urls() for region in rotated}


async def run_drill(
    plan: DrillPlan,
    cluster: LocalCluster,
    work: Path,
    progress: Callable[[str], None] = lambda _: None,
) -> DrillReport:
    """Run ``plan`` against the running ``cluster``; device databases go under ``work``."""
    target = plan.target or next(iter(cluster.running.regions))
    others = [name for name in cluster.running.regions if name != target]
    farther = [proxy for name in others for proxy in region_device_proxies(cluster, name)]
    await cluster.set_fault(farther, "latency", {"ms": FARTHER_MS})
    fault = Fault(cluster, plan, target)
    started = time.monotonic()
    groups = _groups(plan, cluster, work)
    try:
        progress(
            f"{plan.drill}: opening {plan.devices} devices in {len(groups)} processes"
            " (each catches up with the feed before the warm-up)"
        )
        await asyncio.gather(*(group.start() for group in groups))
        devices = [device for group in groups for device in group.devices.values()]
        progress(f"{plan.drill}: {plan.devices} devices writing")
        await asyncio.sleep(plan.warmup_s)
        fault.aim([d.endpoint for d in devices])
        hit = fault.hit_urls()
        affected = [d for d in devices if d.endpoint in hit]
        fault_at = time.monotonic()
        progress(f"{plan.drill}: fault on {target}")
        await fault.inject()
        await asyncio.sleep(max(0.0, fault_at + plan.outage_s - time.monotonic()))
        heal_at = time.monotonic()
        progress(f"{plan.drill}: healing {target}")
        await fault.heal()
        await asyncio.sleep(plan.settle_s)
    finally:
        await asyncio.gather(*(group.stop() for group in groups))
    ended = time.monotonic()
    acked_ids = {d.doc_of[m] for d in devices for m in d.acked if m in d.doc_of}
    progress(f"{plan.drill}: waiting for convergence")
    convergence, short = await _converged(cluster, acked_ids, heal_at)
    lost = await _lost(cluster, acked_ids)
    await cluster.clear_fault(farther, "latency")
    rto = [d.first_ack_after(fault_at, hit) for d in affected]
    measured = [value for value in rto if value is not None]
    ack_times = [at for d in devices for at in d.acked.values()]
    seconds = int(ended - started) + 1
    bins = [0] * seconds
    for at in ack_times:
        bins[max(0, min(seconds - 1, int(at - started)))] += 1
    return DrillReport(
        drill=plan.drill,
        target=target,
        devices=plan.devices,
        affected=len(affected),
        rto_p50_s=percentile(measured, 0.5),
        rto_p99_s=percentile(measured, 0.99),
        rto_max_s=max(measured) if measured else None,
        never_recovered=len(rto) - len(measured),
        acknowledged=len(acked_ids),
        lost=lost,
        app_errors=sum(d.rejected for d in devices),
        convergence_s=convergence,
        fault_at_s=fault_at - started,
        heal_at_s=heal_at - started,
        acks_per_second=bins,
        promoted_at_s=None if fault.promoted_at is None else fault.promoted_at - started,
        short_at_limit=short,
    )


def _groups(plan: DrillPlan, cluster: LocalCluster, work: Path) -> list[DeviceGroup]:
    """The devices, dealt round-robin over the plan's processes."""
    count = max(1, min(plan.processes, plan.devices))
    names: list[list[str]] = [[] for _ in range(count)]
    regions: list[list[dict[str, list[str]]]] = [[] for _ in range(count)]
    for index in range(plan.devices):
        names[index % count].append(f"d{index}")
        regions[index % count].append(device_regions(cluster, index))
    return [
        DeviceGroup(
            GroupSpec(
                names[i], regions[i], str(work), plan.write_interval_s, plan.failover_timeout_s
            )
        )
        for i in range(count)
    ]


async def _every_region(
    cluster: LocalCluster, check: Callable[[set[str] | None], int]
) -> Mapping[str, int]:
    regions = cluster.running.regions.values()
    found: list[set[str] | None] = await asyncio.gather(
        *(doc_ids(region.node_urls()[0]) for region in regions)
    )
    return {region.name: check(ids) for region, ids in zip(regions, found, strict=True)}


async def _converged(
    cluster: LocalCluster, acked: set[str], heal_at: float
) -> tuple[float | None, dict[str, int]]:
    """Seconds from the heal until every region holds every acknowledged write (``None`` past
    the limit), and what each region still lacked then."""
    deadline = time.monotonic() + CONVERGENCE_LIMIT_S
    while True:
        short = await _every_region(cluster, lambda ids: -1 if ids is None else len(acked - ids))
        if not any(short.values()):
            return time.monotonic() - heal_at, {}
        if time.monotonic() >= deadline:
            return None, dict(short)
        await asyncio.sleep(0.25)


async def _lost(cluster: LocalCluster, acked: set[str]) -> int:
    """Acknowledged writes that the best-stocked region lacks (the RPO, in writes)."""
    regions = cluster.running.regions.values()
    found = await asyncio.gather(*(doc_ids(region.node_urls()[0]) for region in regions))
    held: list[set[str]] = [ids for ids in found if ids is not None]
    return min((len(acked - ids) for ids in held), default=len(acked))


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} s"


def report_markdown(report: DrillReport, plot_name: str, command: str) -> str:
    """The drill's report as a Markdown page (docs/reports/), with its plot."""
    rto = (report.rto_p50_s, report.rto_p99_s, report.rto_max_s)
    rows = [
        ("devices (on the target when it failed)", f"{report.devices} ({report.affected})"),
        ("RTO p50 / p99 / max", " / ".join(_seconds(v) for v in rto)),
        ("devices never served again", str(report.never_recovered)),
        ("acknowledged writes", str(report.acknowledged)),
        ("RPO: acknowledged writes lost", str(report.lost)),
        ("errors seen by the app", str(report.app_errors)),
        ("convergence after the heal", _seconds(report.convergence_s)),
    ]
    if report.short_at_limit:
        short = ", ".join(
            f"{name} {count}" for name, count in sorted(report.short_at_limit.items())
        )
        rows.append(("acknowledged writes a region lacked at the limit", short))
    lines = [
        f"# Drill `{report.drill}` on region `{report.target}`",
        "",
        f"Command: `{command}`",
        "",
        "| measure | value |",
        "|---|---|",
        *(f"| {name} | {value} |" for name, value in rows),
        "",
        f"Fault at {report.fault_at_s:.1f} s, "
        + (
            f"standby promoted at {report.promoted_at_s:.1f} s, "
            if report.promoted_at_s is not None
            else ""
        )
        + f"heal at {report.heal_at_s:.1f} s.",
        "",
        f"![acknowledged writes per second]({plot_name})",
        "",
    ]
    return "\n".join(lines)
