"""``breakwater bench webhooks``: delivery latency at a fixed write rate, against its floor.

A ``breakwater serve`` subprocess with one subscription to a receiver in this process (on
loopback, private targets allowed). Documents are pushed (``/v1/sync/push``, :data:`BATCH` per
push) paced at ``rate`` per second; each delivery's latency is from the moment its push was sent
to the moment the receiver read it. The floor, measured in the same run: the push's own answer time
plus a bare signed-size ``POST`` from this process to the same receiver, that is, what the
delivery cannot beat without skipping the commit or the network hop. The peer, also in each
run: the same paced writes on a node without subscriptions (does delivering slow writes?).
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from breakwater.bench._node import BenchNode, free_port, machine
from breakwater.bench.loopback_receiver import LoopbackReceiver
from breakwater.bench.stats import median, percentile
from breakwater.server.webhooks._database import SqliteDatabase
from breakwater.server.webhooks.store import WebhookStore
from breakwater.server.webhooks.subscriptions import new_subscription

IN_FLIGHT = 64
"""Pushes in flight at most (the pacing, not this, sets the rate)."""
BATCH = 10
PUSH_ATTEMPTS = 3
"""Documents per push: 500 changes/s are 50 pushes/s, which a loaded 2-core machine sustains."""


class _Receiver(LoopbackReceiver):
    """Notes when each delivery's body arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived: dict[str, float] = {}

    async def answer(self, headers: dict[str, str], body: bytes) -> int:
        now = time.perf_counter()
        if body.startswith(b"{"):
            doc_id = json.loads(body).get("doc_id")
            if isinstance(doc_id, str):
                self.arrived.setdefault(doc_id, now)
        return 200


async def _subscribe(data: Path, url: str) -> None:
    store = WebhookStore(SqliteDatabase(data / "webhooks.db"))
    await store.open()
    try:
        await store.add(new_subscription({"url": url, "collections": ["bench"]}, 0), None)
    finally:
        await store.aclose()


async def _write_paced(
    client: httpx.AsyncClient, prefix: str, count: int, rate: float
) -> tuple[dict[str, float], list[float]]:
    """Push ``count`` documents at ``rate`` per second, :data:`BATCH` per push; when each was
    sent, and each push's answer time."""
    sent: dict[str, float] = {}
    answers: list[float] = []
    limit = asyncio.Semaphore(IN_FLIGHT)
    start = time.perf_counter()

    async def one(first: int) -> None:
        ids = [f"{prefix}{index}" for index in range(first, min(count, first + BATCH))]
        mutations = [
            {"mutation_id": doc_id, "collection": "bench", "id": doc_id, "op": "set", "data": {}}
            for doc_id in ids
        ]
        async with limit:
            began = time.perf_counter()
            sent.update(dict.fromkeys(ids, began))
            for attempt in range(PUSH_ATTEMPTS):
                try:
                    response = await client.post(
                        "/v1/sync/push", json={"client_id": "bench", "mutations": mutations}
                    )
                    break
                except httpx.TransportError:
                    # A connection the loaded node closed: a push is idempotent (mutation ids).
                    if attempt == PUSH_ATTEMPTS - 1:
                        raise
            response.raise_for_status()
            answers.append(time.perf_counter() - began)

    tasks = []
    for first in range(0, count, BATCH):
        delay = start + first / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(first)))
    await asyncio.gather(*tasks)
    return sent, answers


async def _bare_posts(port: int, samples: int) -> list[float]:
    """Round trips of a delivery-sized POST to the receiver: the network floor."""
    body = b'{"doc_id":null,' + b'"x":"' + b"y" * 400 + b'"}'
    times = []
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        for _ in range(samples):
            began = time.perf_counter()
            await client.post("/floor", content=body)
            times.append(time.perf_counter() - began)
    return times


async def _control(rate: float, seconds: float, settings: Mapping[str, str]) -> list[float]:
    """The same paced writes on a node without subscriptions: their answer times."""
    with tempfile.TemporaryDirectory(prefix="bw-bench-webhooks-") as folder:
        port = free_port()
        node = BenchNode(Path(folder), port, "warning", settings=settings)
        try:
            await node.wait_ready()
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}",
                limits=httpx.Limits(max_connections=IN_FLIGHT),
                timeout=30,
            ) as client:
                _, answers = await _write_paced(client, "c-", int(rate * seconds), rate)
        finally:
            node.stop()
    return answers


async def _one_run(
    rate: float, seconds: float, run: int, settings: Mapping[str, str]
) -> dict[str, float]:
    control = await _control(rate, seconds, settings)
    receiver = _Receiver()
    await receiver.start()
    with tempfile.TemporaryDirectory(prefix="bw-bench-webhooks-") as folder:
        data = Path(folder)
        await _subscribe(data, f"http://127.0.0.1:{receiver.port}/hook")
        port = free_port()
        node = BenchNode(
            data,
            port,
            "warning",
            settings={**settings, "BREAKWATER_WEBHOOK_ALLOW_PRIVATE": "true"},
        )
        try:
            await node.wait_ready()
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{port}",
                limits=httpx.Limits(max_connections=IN_FLIGHT),
                timeout=30,
            ) as client:
                # Warm up until the deliverer holds the lease and its cursor is placed.
                for attempt in range(100):
                    await client.put(f"/v1/collections/bench/docs/warm{attempt}", json={})
                    await asyncio.sleep(0.1)
                    if receiver.arrived:
                        break
                count = int(rate * seconds)
                sent, answers = await _write_paced(client, f"r{run}-", count, rate)
                deadline = time.perf_counter() + 60
                while len(set(sent) & set(receiver.arrived)) < count:
                    if time.perf_counter() > deadline:
                        break
                    await asyncio.sleep(0.05)
            floor_posts = await _bare_posts(receiver.port, 200)
        finally:
            node.stop()
            await receiver.aclose()
    latencies = [receiver.arrived[d] - sent[d] for d in sent if d in receiver.arrived]
    elapsed = max(sent.values()) - min(sent.values()) if sent else 0.0
    return {
        "writes": float(len(sent)),
        "delivered": len(latencies) / max(1, len(sent)),
        "rate": len(sent) / elapsed if elapsed else 0.0,
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "write_p50_ms": percentile(answers, 0.5) * 1000,
        "write_p99_ms": percentile(answers, 0.99) * 1000,
        "post_p50_ms": percentile(floor_posts, 0.5) * 1000,
        "control_write_p50_ms": percentile(control, 0.5) * 1000,
        "control_write_p99_ms": percentile(control, 0.99) * 1000,
    }


async def run(
    rate: float, seconds: float, runs: int, settings: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Medians over ``runs`` of the figures of one run (see the module docstring); ``settings``
    are ``BREAKWATER_*`` variables for both nodes."""
    results = [await _one_run(rate, seconds, index, settings or {}) for index in range(runs)]
    medians = {key: median([r[key] for r in results]) for key in results[0]}
    floor = medians["write_p50_ms"] + medians["post_p50_ms"]
    return {
        "benchmark": "webhooks",
        "rate": rate,
        "seconds": seconds,
        "settings": dict(settings or {}),
        "runs": results,
        "median": medians,
        "p50_over_floor": medians["p50_ms"] / floor if floor else None,
        "machine": machine(),
    }
