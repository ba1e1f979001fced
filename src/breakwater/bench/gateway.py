"""``breakwater bench gateway``: the latency HAProxy adds in front of a node.

The peer is the same node reached directly, in the same run: each run sends sequential requests
on one keep-alive connection straight to the node and on one through the gateway, interleaved
one by one, and reports the difference of their percentiles.
Reads (a document GET) and pushes (one mutation, which HAProxy buffers whole so it can send it
again) are measured separately.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from breakwater.bench._http import HttpConnection
from breakwater.bench._node import BenchNode, free_port, machine
from breakwater.bench.stats import median, percentile
from breakwater.core import codec
from breakwater.gateway import GatewayPlan, HaproxyProcess, Node

READ_PATH = "/v1/collections/bench/docs/gateway"
KINDS = ("read", "push")


def _push_body() -> bytes:
    mutation = {
        "mutation_id": uuid.uuid4().hex,
        "collection": "bench",
        "id": "pushed",
        "op": "increment",
        "data": {"n": 1},
    }
    return codec.dumps({"mutations": [mutation]})


def _request(kind: str) -> tuple[str, str, bytes]:
    if kind == "read":
        return "GET", READ_PATH, b""
    return "POST", "/v1/sync/push", _push_body()


async def _timed(connection: HttpConnection, kind: str) -> float:
    method, path, body = _request(kind)
    started = time.perf_counter()
    status, _ = await connection.request(method, path, body)
    elapsed = time.perf_counter() - started
    if status != 200:
        raise RuntimeError(f"{method} {path} answered {status}")
    return elapsed


def _ms(value: float) -> float:
    return round(value * 1000, 3)


async def _one_run(node_port: int, gateway_port: int, kind: str, count: int) -> dict[str, float]:
    """``count`` requests each way, interleaved one by one (the first way alternating), so
    that the machine's noise falls on both alike."""
    direct: list[float] = []
    gateway: list[float] = []
    async with (
        HttpConnection("127.0.0.1", node_port) as straight,
        HttpConnection("127.0.0.1", gateway_port) as through,
    ):
        for _ in range(max(count // 10, 10)):  # warm both connections and the caches
            await _timed(straight, kind)
            await _timed(through, kind)
        for index in range(count):
            if index % 2:
                direct.append(await _timed(straight, kind))
                gateway.append(await _timed(through, kind))
            else:
                gateway.append(await _timed(through, kind))
                direct.append(await _timed(straight, kind))
    return {
        "direct_p50_ms": _ms(percentile(direct, 0.5)),
        "direct_p99_ms": _ms(percentile(direct, 0.99)),
        "gateway_p50_ms": _ms(percentile(gateway, 0.5)),
        "gateway_p99_ms": _ms(percentile(gateway, 0.99)),
        "added_p50_ms": _ms(percentile(gateway, 0.5) - percentile(direct, 0.5)),
        "added_p99_ms": _ms(percentile(gateway, 0.99) - percentile(direct, 0.99)),
    }


async def _measure(
    node_port: int, gateway_port: int, requests: int, runs: int, progress: Callable[[str], None]
) -> dict[str, list[dict[str, float]]]:
    async with HttpConnection("127.0.0.1", node_port) as connection:
        await connection.request("PUT", READ_PATH, b'{"v": 1}')
    results: dict[str, list[dict[str, float]]] = {kind: [] for kind in KINDS}
    for index in range(runs):
        for kind in KINDS:
            progress(f"run {index + 1}/{runs}: {kind}")
            results[kind].append(await _one_run(node_port, gateway_port, kind, requests))
    return results


def run(
    requests: int, runs: int, progress: Callable[[str], None] = lambda _: None
) -> dict[str, Any]:
    """Start a node and an HAProxy in front of it; measure ``runs`` runs of each kind."""
    with tempfile.TemporaryDirectory(prefix="bw-bench-gateway-") as tmp:
        node_port = free_port()
        node = BenchNode(Path(tmp) / "data", node_port, "warning")
        try:
            asyncio.run(node.wait_ready())
            plan = GatewayPlan(
                (Node.from_url(f"http://127.0.0.1:{node_port}", name="node"),),
                bind_port=free_port(),
            )
            with HaproxyProcess(plan, Path(tmp) / "gateway") as gateway:
                progress("measuring")
                results = asyncio.run(_measure(node_port, plan.bind_port, requests, runs, progress))
                version = gateway.command("show info")
        finally:
            node.stop()
    summary = {
        kind: {
            key: round(median([one[key] for one in results[kind]]), 3) for key in results[kind][0]
        }
        for kind in KINDS
    }
    haproxy = next(
        (
            line.split(":", 1)[1].strip()
            for line in version.splitlines()
            if line.startswith("Version:")
        ),
        "unknown",
    )
    return {
        "benchmark": "gateway",
        "requests_per_run": requests,
        "runs": runs,
        "machine": machine() | {"haproxy": haproxy},
        "median_of_runs": summary,
        "per_run": results,
    }
