"""``breakwater bench sdk``: the client SDK's durable local writes, outbox drain and catch-up.

Three figures, each next to a floor measured in the same run:

- local write latency (p50/p99) of ``collection.set`` (one SQLite transaction with its outbox
  entry, fsynced), against a bare SQLite ``INSERT`` + ``COMMIT`` with the same durability
  settings (WAL, ``synchronous=FULL``): the physical cost of one durable commit;
- outbox drain rate (mutations/s) of N pending writes to a local node, against pushing the same
  N mutations with a bare HTTP client in batches of 500 (the node's own limit);
- time from the node coming back to the device being fully synced (outbox empty, states pulled)
  for N pending writes, the user-visible "reconnect" figure (retry waits capped at 0.5 s, so
  the figure is the sync work, not the retry schedule: with the defaults add up to
  ``backoff_cap`` + ``breaker_reset``).

And what one device write costs the phone once online (:mod:`.sdk_wire`): requests, WebSocket
frames, bytes on the wire against the mutation's own encoded bytes, and the device's CPU, the
latter next to its floor in CPython at the same pace (:mod:`.sdk_floor`), both in a process
of their own (:mod:`._sdk_device`).
"""

from __future__ import annotations

import asyncio
import sqlite3
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from breakwater.bench import _sdk_device
from breakwater.bench._node import BenchNode, free_port, machine
from breakwater.bench.sdk_wire import SETTLE_SECONDS
from breakwater.bench.stats import median, percentile
from breakwater.client import Client
from breakwater.core import codec

DOC = {"title": "a todo item of ordinary size", "done": False, "tags": ["home", "errand"]}


def _raw_sqlite_commit_ms(path: Path, count: int) -> list[float]:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE t (id TEXT PRIMARY KEY, data TEXT)")
    body = codec.dumps(DOC).decode()
    latencies = []
    for i in range(count):
        started = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t VALUES (?, ?)", (f"d{i}", body))
        conn.execute("COMMIT")
        latencies.append((time.perf_counter() - started) * 1000)
    conn.close()
    return latencies


async def _local_writes_ms(path: Path, count: int) -> list[float]:
    latencies = []
    async with Client(["http://127.0.0.1:9"], path, sync=False) as client:
        todos = client.collection("todos")
        for i in range(count):
            started = time.perf_counter()
            await todos.set(f"t{i}", DOC)
            latencies.append((time.perf_counter() - started) * 1000)
    return latencies


async def _queue(path: Path, count: int) -> None:
    async with Client(["http://127.0.0.1:9"], path, sync=False) as client:
        todos = client.collection("todos")
        for i in range(count):
            await todos.set(f"t{i}", DOC)


async def _drain_seconds(path: Path, url: str) -> float:
    started = time.perf_counter()
    async with Client([url], path, transports=("long_poll",)) as client:
        async with asyncio.timeout(600):
            await client.wait_synced()
    return time.perf_counter() - started


async def _raw_push_seconds(url: str, count: int, prefix: str) -> float:
    mutations = [
        {
            "mutation_id": f"{prefix}.{i}",
            "collection": "raw",
            "id": f"r{i}",
            "op": "set",
            "data": DOC,
        }
        for i in range(count)
    ]
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        for offset in range(0, count, 500):
            batch = {"mutations": mutations[offset : offset + 500]}
            (await http.post("/v1/sync/push", json=batch)).raise_for_status()
    return time.perf_counter() - started


async def _reconnect_seconds(tmp: Path, path: Path, log_level: str) -> float:
    """The device is offline with a full outbox; the node starts; time until fully synced."""
    port = free_port()
    async with Client(
        [f"http://127.0.0.1:{port}"],
        path,
        transports=("long_poll",),
        backoff_cap=0.5,
        breaker_reset=0.5,
    ) as client:
        await asyncio.sleep(1.0)  # the client has failed and is backing off
        node = BenchNode(tmp / "reconnect-node", port, log_level)
        try:
            await node.wait_ready()
            started = time.perf_counter()
            async with asyncio.timeout(600):
                await client.wait_synced()
            return time.perf_counter() - started
        finally:
            node.stop()


async def _one_run(
    tmp: Path, index: int, writes: int, pending: int, device: int, log_level: str, pause: float
) -> dict[str, Any]:
    (tmp / f"device-{index}").mkdir()
    device_figures = await _sdk_device.in_child(tmp / f"device-{index}", device, pause, log_level)
    local = await _local_writes_ms(tmp / f"local-{index}.db", writes)
    raw = _raw_sqlite_commit_ms(tmp / f"raw-{index}.db", writes)
    await _queue(tmp / f"drain-{index}.db", pending)
    await _queue(tmp / f"reconnect-{index}.db", pending)
    port = free_port()
    node = BenchNode(tmp / f"node-{index}", port, log_level)
    try:
        await node.wait_ready()
        url = f"http://127.0.0.1:{port}"
        drain = await _drain_seconds(tmp / f"drain-{index}.db", url)
        raw_push = await _raw_push_seconds(url, pending, f"raw{index}")
    finally:
        node.stop()
    reconnect = await _reconnect_seconds(
        tmp / f"r{index}", tmp / f"reconnect-{index}.db", log_level
    )
    return {
        "local_p50_ms": percentile(local, 0.5),
        "local_p99_ms": percentile(local, 0.99),
        "raw_p50_ms": percentile(raw, 0.5),
        "raw_p99_ms": percentile(raw, 0.99),
        "drain_per_s": pending / drain,
        "raw_push_per_s": pending / raw_push,
        "reconnect_s": reconnect,
        **device_figures,
    }


async def run(
    runs: int,
    writes: int,
    pending: int,
    device: int = 20,
    log_level: str = "warning",
    progress: Callable[[str], None] = lambda _: None,
    pause: float = SETTLE_SECONDS,
) -> dict[str, Any]:
    """Measure ``runs`` times and report medians; ``pause``: seconds between device writes
    (and between the floor's runs)."""
    results = []
    with tempfile.TemporaryDirectory(prefix="bw-bench-sdk-") as tmp:
        for index in range(runs):
            progress(f"run {index + 1}/{runs}")
            results.append(
                await _one_run(Path(tmp), index, writes, pending, device, log_level, pause)
            )

    def mid(key: str) -> float:
        return round(median([r[key] for r in results]), 3)

    return {
        "benchmark": "sdk",
        "runs": runs,
        "writes": writes,
        "pending": pending,
        "machine": machine(),
        "local_write_p50_ms": mid("local_p50_ms"),
        "local_write_p99_ms": mid("local_p99_ms"),
        "raw_sqlite_commit_p50_ms": mid("raw_p50_ms"),
        "raw_sqlite_commit_p99_ms": mid("raw_p99_ms"),
        "local_write_ratio_to_raw_p50": round(mid("local_p50_ms") / mid("raw_p50_ms"), 2),
        "drain_mutations_per_s": round(mid("drain_per_s")),
        "raw_push_mutations_per_s": round(mid("raw_push_per_s")),
        "drain_ratio_to_raw_push": round(mid("drain_per_s") / mid("raw_push_per_s"), 2),
        "reconnect_to_synced_s": mid("reconnect_s"),
        "device_writes": device,
        "device_pause_s": pause,
        **{key: mid(key) for key in results[0] if key.startswith(("write_", "floor_"))},
        "write_cpu_ratio_to_floor": round(mid("write_cpu_ms") / mid("floor_write_ms"), 2),
    }
