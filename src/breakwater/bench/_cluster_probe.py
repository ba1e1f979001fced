"""What the cluster benchmarks read from a running ``breakwater cluster``: node metrics, the CPU
of its processes, and the round trip of a link proxy against the node behind it."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

from breakwater.bench._http import HttpConnection
from breakwater.bench._node import cpu_seconds
from breakwater.bench.stats import median
from breakwater.chaos.cluster import LOOPBACK, LocalCluster


async def metric(port: int, name: str, **labels: str) -> float:
    """The sum of node ``port``'s samples of ``name`` that carry every label of ``labels``."""
    async with HttpConnection(LOOPBACK, port) as connection:
        _, body = await connection.request("GET", "/metrics")
    wanted = [f'{key}="{value}"' for key, value in labels.items()]
    total = 0.0
    for line in body.decode().splitlines():
        head, _, value = line.rpartition(" ")
        if head.split("{", 1)[0] == name and all(label in head for label in wanted):
            total += float(value)
    return total


def processes(cluster: LocalCluster) -> dict[str, int]:
    """The PID of every node (by node name) and of the proxies' process (``proxies``)."""
    info = cluster.running
    pids = {
        node.name: node.process.pid
        for region in info.regions.values()
        for node in region.nodes
        if node.process is not None
    }
    if info.proxy_host is not None:
        pids["proxies"] = info.proxy_host.pid
    return pids


def cpu(pids: Mapping[str, int]) -> dict[str, float]:
    """CPU seconds each process has used so far."""
    return {name: cpu_seconds(Path(f"/proc/{pid}")) for name, pid in pids.items()}


async def round_trip_ms(port: int, requests: int = 20) -> float:
    """The median milliseconds of ``GET /healthz`` on one keep-alive connection to ``port``."""
    times = []
    async with HttpConnection(LOOPBACK, port) as connection:
        for _ in range(requests + 1):
            started = time.perf_counter()
            await connection.request("GET", "/healthz")
            times.append((time.perf_counter() - started) * 1000)
    return median(times[1:])  # the first one pays for the connection's setup
