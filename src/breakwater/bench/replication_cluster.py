"""``breakwater bench replication --cluster``: replication across real processes and links.

A ``breakwater cluster`` of three regions (one ``serve`` process each, SQLite) whose
cross-region links pass through fault proxies adding ``latency_ms`` each way (a round trip gains
twice that; the bare round trip through a link proxy is measured too). Measured in one run:

1. lag: writes spread round robin over the regions at ``rate`` writes/s, open loop, from
   ``writers`` generator processes (:mod:`breakwater.bench._lag_writer`); a watcher
   long-polling each region's node stamps each document's arrival, and the lag is that minus the
   acknowledgement at the writing region (one monotonic clock). The achieved rate and the CPU of
   the generator, each node and the proxies come with it;
2. convergence: every link partitioned for ``partition_seconds`` while writes continue at a
   tenth of the rate, then healed; the time until every acknowledged document is in every
   region's feed;
3. backlog (``backlog`` > 0): :mod:`breakwater.bench.replication_backlog`;
4. bytes per replicated change on the wire (gzip) and as JSON, from the nodes' metrics, for
   the lag phase's trickle of small pages and for the backlog's full pages.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from breakwater.bench import replication_backlog
from breakwater.bench._cluster_probe import cpu, metric, processes, round_trip_ms
from breakwater.bench._http import HttpConnection
from breakwater.bench._node import machine
from breakwater.bench.stats import median, percentile
from breakwater.chaos.cluster import LOOPBACK, LocalCluster
from breakwater.chaos.cluster_spec import ClusterSpec
from breakwater.core import codec

START_DELAY_S = 2.0
"""Seconds between spawning the generator processes and their first write (their start-up)."""
ARRIVAL_WAIT_S = 10.0
CONVERGENCE_LIMIT_S = 120.0


class _Recorder:
    """When each document was acknowledged at its region and seen in every other region."""

    def __init__(self) -> None:
        self.acked: dict[str, float] = {}
        self.seen: dict[tuple[str, str], float] = {}

    def everywhere(self, regions: Iterable[str], prefix: str) -> bool:
        """Every acknowledged document of ``prefix`` has reached every region's feed."""
        names = list(regions)
        return all(
            (region, doc_id) in self.seen
            for doc_id in self.acked
            if doc_id.startswith(f"{prefix}-")
            for region in names
        )

    def lags_ms(self, prefix: str) -> list[float]:
        """Each arrival of a ``prefix`` document in a region other than its writer's."""
        return [
            (at - self.acked[doc_id]) * 1000
            for (region, doc_id), at in self.seen.items()
            if doc_id.startswith(f"{prefix}-")
            and doc_id in self.acked
            and doc_id.split("-")[1] != region
        ]


async def _watch(region: str, port: int, recorder: _Recorder) -> None:
    """Long-poll ``region``'s node from the start of its feed and stamp each document's arrival."""
    cursor = ""
    while True:
        with contextlib.suppress(OSError, asyncio.IncompleteReadError):
            async with HttpConnection(LOOPBACK, port) as connection:
                while True:
                    query = urlencode({"cursor": cursor, "collections": "lag,part", "wait": 5})
                    status, body = await connection.request(
                        "GET", f"/v1/sync/pull?{query}&limit=1000"
                    )
                    now = time.monotonic()
                    if status != 200:
                        break
                    page = codec.loads(body)
                    for change in page["changes"]:
                        recorder.seen.setdefault((region, change["id"]), now)
                    cursor = page["cursor"]
        await asyncio.sleep(0.1)


async def _generate(
    ports: Mapping[str, int], rate: float, seconds: float, prefix: str, writers: int
) -> dict[str, Any]:
    """Run ``writers`` generator processes splitting one schedule; their reports combined."""
    start = time.monotonic() + START_DELAY_S
    spec = {
        "targets": {name: [LOOPBACK, port] for name, port in ports.items()},
        "rate": rate,
        "seconds": seconds,
        "prefix": prefix,
        "start": start,
        "processes": writers,
    }
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "breakwater.bench._lag_writer",
            json.dumps({**spec, "index": index}),
            stdout=asyncio.subprocess.PIPE,
        )
        for index in range(writers)
    ]
    try:
        outputs = await asyncio.gather(*(child.communicate() for child in children))
    finally:
        for child in children:
            if child.returncode is None:
                child.kill()
                await child.wait()
    reports = [json.loads(out) for out, _ in outputs]
    acked = [tuple(row) for report in reports for row in report["acked"]]
    errors: dict[str, int] = {}
    for report in reports:
        for kind, count in report["errors"].items():
            errors[kind] = errors.get(kind, 0) + count
    return {
        "sent": sum(r["sent"] for r in reports),
        "acked": acked,
        "errors": errors,
        "resent": sum(r["resent"] for r in reports),
        "send_seconds": max(r["send_seconds"] for r in reports),
        "late_p99_ms": max(r["late_p99_ms"] for r in reports),
        "late_max_ms": max(r["late_max_ms"] for r in reports),
        "ack_ms": [ms for report in reports for ms in report["ack_ms"]],
        "connections": sum(r["connections"] for r in reports),
        "cpu_seconds": sum(r["cpu_seconds"] for r in reports),
    }


async def _until_everywhere(
    recorder: _Recorder, regions: list[str], prefix: str, limit: float
) -> float:
    """Seconds until every acknowledged ``prefix`` document is everywhere (nan: not in time)."""
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        if recorder.everywhere(regions, prefix):
            return time.perf_counter() - started
        await asyncio.sleep(0.05)
    return float("nan")


async def _replicated(ports: Mapping[str, int]) -> dict[str, float]:
    """Changes applied from peers and their bytes in (wire and JSON), summed over the nodes."""
    totals = {"applied": 0.0, "pages": 0.0, "wire": 0.0, "json": 0.0}
    for port in ports.values():
        totals["applied"] += await metric(port, "breakwater_replication_applied_changes_total")
        totals["pages"] += await metric(port, "breakwater_replication_pages_total")
        for encoding in ("wire", "json"):
            totals[encoding] += await metric(
                port, "breakwater_replication_bytes_total", direction="in", encoding=encoding
            )
    return totals


async def _lag_phase(
    cluster: LocalCluster,
    ports: Mapping[str, int],
    recorder: _Recorder,
    rate: float,
    seconds: float,
    writers: int,
) -> dict[str, Any]:
    pids = processes(cluster)
    cpu_before, own_before, bytes_before = cpu(pids), os.times(), await _replicated(ports)
    wall_before = time.monotonic()
    generated = await _generate(ports, rate, seconds, "lag", writers)
    recorder.acked.update({doc_id: at for doc_id, _, at in generated["acked"]})
    arrivals_s = await _until_everywhere(recorder, list(ports), "lag", ARRIVAL_WAIT_S)
    wall = time.monotonic() - wall_before
    cpu_after, own_after, bytes_after = cpu(pids), os.times(), await _replicated(ports)
    lags = recorder.lags_ms("lag")
    moved = {key: bytes_after[key] - bytes_before[key] for key in bytes_after}
    acknowledged = len(generated["acked"])
    watchers = (own_after.user - own_before.user) + (own_after.system - own_before.system)
    return {
        "rate": rate,
        "seconds": seconds,
        "writers": writers,
        "writes_sent": generated["sent"],
        "writes_acknowledged": acknowledged,
        "write_errors": generated["errors"],
        "writes_resent": generated["resent"],
        "achieved_writes_per_s": acknowledged / generated["send_seconds"],
        "send_late_p99_ms": generated["late_p99_ms"],
        "send_late_max_ms": generated["late_max_ms"],
        "generator_connections": generated["connections"],
        "push_ack_p50_ms": median(generated["ack_ms"]),
        "push_ack_p99_ms": percentile(generated["ack_ms"], 0.99),
        "arrivals": len(lags),
        "expected_arrivals": 2 * acknowledged,
        "last_arrival_after_writes_s": arrivals_s,
        "lag_p50_ms": median(lags),
        "lag_p99_ms": percentile(lags, 0.99),
        "lag_max_ms": max(lags, default=float("nan")),
        "cpu_cores": {
            "generator": generated["cpu_seconds"] / wall,
            "watchers": watchers / wall,
            **{name: (cpu_after[name] - cpu_before[name]) / wall for name in pids},
        },
        "lag_phase_changes_per_page": _ratio(moved["applied"], moved["pages"]),
        "lag_phase_wire_bytes_per_change": _ratio(moved["wire"], moved["applied"]),
        "lag_phase_json_bytes_per_change": _ratio(moved["json"], moved["applied"]),
    }


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


async def _partition_phase(
    cluster: LocalCluster,
    ports: Mapping[str, int],
    recorder: _Recorder,
    rate: float,
    partition_seconds: float,
    writers: int,
) -> dict[str, Any]:
    await cluster.set_fault(cluster.links(), "partition", {})
    generated = await _generate(ports, rate, partition_seconds, "part", writers)
    recorder.acked.update({doc_id: at for doc_id, _, at in generated["acked"]})
    crossed = len(recorder.lags_ms("part"))
    healed = time.perf_counter()  # the first link heals right after this
    await cluster.heal_network()
    heal_call = time.perf_counter() - healed
    converged = await _until_everywhere(recorder, list(ports), "part", CONVERGENCE_LIMIT_S)
    return {
        "partition_seconds": partition_seconds,
        "partition_writes": len(generated["acked"]),
        "partition_writes_crossed_before_heal": crossed,
        "converged_after_heal_s": converged + heal_call,
        "heal_call_s": heal_call,
        "target_converged_s": 5.0,
    }


async def run(
    rate: float,
    seconds: float,
    partition_seconds: float,
    latency_ms: float,
    progress: Callable[[str], None],
    *,
    backlog: int = 0,
    writers: int = 1,
) -> dict[str, Any]:
    """One run of the measurements on one cluster."""
    with tempfile.TemporaryDirectory() as root:
        spec = ClusterSpec(regions=3, latency_ms=latency_ms)
        async with LocalCluster(spec, Path(root) / "cluster", progress) as cluster:
            regions = cluster.running.regions
            ports = {name: r.nodes[0].port for name, r in regions.items()}
            names = sorted(ports)
            origin, receiver = names[0], names[1]
            link = cluster.running.proxies[cluster.links(src=receiver, dst=origin)[0]][0]
            report: dict[str, Any] = {
                "regions": 3,
                "latency_ms_each_way": latency_ms,
                "added_rtt_ms": 2 * latency_ms,
                "node_rtt_ms": await round_trip_ms(ports[origin]),
                "link_rtt_ms": await round_trip_ms(link),
                "target_lag_p99_ms": 2 * latency_ms + 100,
            }
            recorder = _Recorder()
            watchers = [
                asyncio.create_task(_watch(name, port, recorder)) for name, port in ports.items()
            ]
            try:
                progress(f"lag: {rate:g} writes/s for {seconds:g} s")
                report |= await _lag_phase(cluster, ports, recorder, rate, seconds, writers)
                progress(f"partition: every link cut for {partition_seconds:g} s")
                report |= await _partition_phase(
                    cluster, ports, recorder, rate / 10, partition_seconds, writers
                )
            finally:
                for task in watchers:
                    task.cancel()
                await asyncio.gather(*watchers, return_exceptions=True)
            if backlog:
                report |= await replication_backlog.run(
                    cluster, origin, receiver, backlog, progress
                )
    report["machine"] = machine()
    return report
