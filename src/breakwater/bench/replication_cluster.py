"""``breakwater bench replication --cluster``: replication across real processes and links.

A ``breakwater cluster`` of three regions (one ``serve`` process each, SQLite) whose
cross-region links pass through fault proxies adding ``latency_ms`` each way. Measured in one
run: the replication lag of writes spread over the regions at ``rate`` writes/s (from a write's
acknowledgement at its region to its arrival in each other region's feed, as a device
long-polling there sees it), the time to converge after a partition of every link with writes
everywhere, and the bytes per replicated change on the wire and as JSON (the nodes' metrics).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import httpx

from breakwater.bench._node import machine
from breakwater.chaos.cluster import LocalCluster
from breakwater.chaos.cluster_spec import ClusterSpec


class _Recorder:
    """When each document was acknowledged at its region and seen in every other region."""

    def __init__(self) -> None:
        self.acked: dict[str, float] = {}
        self.seen: dict[tuple[str, str], float] = {}

    def everywhere(self, regions: Iterable[str]) -> bool:
        """Every acknowledged document has reached every region's feed."""
        names = list(regions)
        return all((region, doc_id) in self.seen for doc_id in self.acked for region in names)

    def lags_ms(self, prefix: str) -> list[float]:
        return [
            (at - self.acked[doc_id]) * 1000
            for (region, doc_id), at in self.seen.items()
            if doc_id.startswith(f"{prefix}-")
            and doc_id in self.acked
            and doc_id.split("-")[1] != region
        ]


async def _watch(http: httpx.AsyncClient, region: str, url: str, recorder: _Recorder) -> None:
    """Long-poll ``region``'s feed from its head and stamp each document's arrival."""
    cursor = (await http.get(f"{url}/v1/sync/pull", params={"limit": 1000})).json()["cursor"]
    while True:
        params = {"cursor": cursor, "limit": 1000, "wait": 5}
        with contextlib.suppress(httpx.HTTPError):
            answer = await http.get(f"{url}/v1/sync/pull", params=params, timeout=15)
            if answer.status_code == 200:
                body = answer.json()
                now = time.perf_counter()
                for change in body["changes"]:
                    recorder.seen.setdefault((region, change["id"]), now)
                cursor = body["cursor"]
                continue
        await asyncio.sleep(0.1)


async def _write(
    http: httpx.AsyncClient,
    urls: dict[str, str],
    rate: float,
    seconds: float,
    prefix: str,
    recorder: _Recorder,
) -> int:
    """Writes at ``rate`` per second for ``seconds``, round robin over the regions."""
    regions = itertools.cycle(sorted(urls))
    pending: set[asyncio.Task[None]] = set()
    started = time.perf_counter()
    count = 0

    async def one(region: str, doc_id: str) -> None:
        mutation = {"mutation_id": doc_id, "collection": "lag", "id": doc_id, "op": "set"}
        with contextlib.suppress(httpx.HTTPError):
            answer = await http.post(
                f"{urls[region]}/v1/sync/push",
                json={"mutations": [{**mutation, "data": {"at": region}}]},
                timeout=10,
            )
            if answer.status_code == 200:
                recorder.acked[doc_id] = time.perf_counter()

    while time.perf_counter() - started < seconds:
        region = next(regions)
        task = asyncio.create_task(one(region, f"{prefix}-{region}-{count}"))
        pending.add(task)
        task.add_done_callback(pending.discard)
        count += 1
        await asyncio.sleep(max(0.0, started + count / rate - time.perf_counter()))
    await asyncio.gather(*pending)
    return count


async def _metric_sum(
    http: httpx.AsyncClient, urls: dict[str, str], name: str, label: str
) -> float:
    """The sum over every node of the samples of ``name`` pulled in (with ``label``, if any)."""
    total = 0.0
    for url in urls.values():
        for line in (await http.get(f"{url}/metrics")).text.splitlines():
            if not line.startswith(name):
                continue
            if label and (label not in line or 'direction="in"' not in line):
                continue
            total += float(line.rsplit(" ", 1)[1])
    return total


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def run(
    rate: float,
    seconds: float,
    partition_seconds: float,
    latency_ms: float,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """One run of the three measurements on one cluster."""
    with tempfile.TemporaryDirectory() as root:
        spec = ClusterSpec(regions=3, latency_ms=latency_ms)
        async with LocalCluster(spec, Path(root) / "cluster", progress) as cluster:
            urls = {name: r.nodes[0].url for name, r in cluster.running.regions.items()}
            recorder = _Recorder()
            async with httpx.AsyncClient(timeout=10) as http:
                watchers = [
                    asyncio.create_task(_watch(http, name, url, recorder))
                    for name, url in urls.items()
                ]
                try:
                    progress(f"lag: {rate:g} writes/s for {seconds:g} s")
                    written = await _write(http, urls, rate, seconds, "lag", recorder)
                    await asyncio.sleep(5)  # the last writes arrive
                    lags = recorder.lags_ms("lag")
                    progress(f"partition: every link cut for {partition_seconds:g} s")
                    await cluster.set_fault(cluster.links(), "partition", {})
                    await _write(http, urls, rate / 10, partition_seconds, "part", recorder)
                    crossed_during_partition = len(recorder.lags_ms("part"))
                    healed = time.perf_counter()  # the first link heals right after this
                    await cluster.heal_network()
                    heal_call = time.perf_counter() - healed
                    converged = float("nan")
                    while time.perf_counter() - healed < 120:
                        if recorder.everywhere(urls):
                            converged = time.perf_counter() - healed
                            break
                        await asyncio.sleep(0.05)
                    wire = await _metric_sum(
                        http, urls, "breakwater_replication_bytes_total", 'encoding="wire"'
                    )
                    json_bytes = await _metric_sum(
                        http, urls, "breakwater_replication_bytes_total", 'encoding="json"'
                    )
                    applied = await _metric_sum(
                        http, urls, "breakwater_replication_applied_changes_total", ""
                    )
                finally:
                    for task in watchers:
                        task.cancel()
                    await asyncio.gather(*watchers, return_exceptions=True)
    expected_arrivals = 2 * len([d for d in recorder.acked if d.startswith("lag")])
    return {
        "regions": 3,
        "latency_ms_each_way": latency_ms,
        "link_rtt_ms": 2 * latency_ms,
        "rate": rate,
        "seconds": seconds,
        "writes": written,
        "acknowledged": len([d for d in recorder.acked if d.startswith("lag")]),
        "arrivals": len(lags),
        "expected_arrivals": expected_arrivals,
        "lag_p50_ms": statistics.median(lags) if lags else float("nan"),
        "lag_p99_ms": _percentile(lags, 0.99),
        "target_lag_p99_ms": 2 * latency_ms + 100,
        "partition_seconds": partition_seconds,
        "partition_writes": len([d for d in recorder.acked if d.startswith("part")]),
        "partition_writes_crossed_before_heal": crossed_during_partition,
        "converged_after_heal_s": converged,
        "heal_call_s": heal_call,
        "target_converged_s": 5.0,
        "wire_bytes_per_change": wire / applied if applied else float("nan"),
        "json_bytes_per_change": json_bytes / applied if applied else float("nan"),
        "machine": machine(),
    }
