"""``breakwater bench push --store postgresql://…``: durable pushes on PostgreSQL, 1 and 2 nodes.

Each run gives the nodes a fresh schema of the given database, starts one ``breakwater serve``
and pushes the scenarios of :mod:`breakwater.bench.push`, then two nodes on one schema with each
scenario's connections split between them. In the same run, the peer: raw asyncpg inserts of
the same 1 KB rows into a one-table schema with the same durability (``synchronous_commit=on``),
the same batch size (one transaction per batch) and the same number of concurrent connections.
Reports medians over the runs; the schemas are dropped afterwards.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from breakwater.bench import store_rows
from breakwater.bench._node import BenchNode, free_port, machine
from breakwater.bench.push import DOC_BYTES, SCENARIOS, Measurement, Scenario, payload, push_load
from breakwater.bench.stats import median
from breakwater.core import codec
from breakwater.core.engine import Engine
from breakwater.core.hlc import HybridClock
from breakwater.core.mutation import Mutation
from breakwater.storage import redact_url
from breakwater.storage.postgres import PostgresStore

NODE_COUNTS = (1, 2)
TARGET = 0.50
"""Issue #6's target: this share of the raw asyncpg rate of the same run."""


@dataclass
class PgScenarioResult:
    """One scenario on ``nodes`` nodes: medians over runs, next to raw asyncpg's rate."""

    scenario: Scenario
    nodes: int
    runs: list[Measurement] = field(default_factory=list)
    raw_rows_per_s: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Medians and the ratio to raw asyncpg inserts."""
        docs = median([m.docs_per_s for m in self.runs])
        raw = median(self.raw_rows_per_s)
        return {
            "scenario": self.scenario.name,
            "nodes": self.nodes,
            "batch": self.scenario.batch,
            "concurrency": self.scenario.concurrency,
            "docs_per_s": round(docs),
            "p50_ms": round(median([m.p50_ms for m in self.runs]), 2),
            "p99_ms": round(median([m.p99_ms for m in self.runs]), 2),
            "raw_asyncpg_rows_per_s": round(raw),
            "ratio_to_raw": round(docs / raw, 3) if raw else None,
            "errors": sum(m.errors for m in self.runs),
            "runs": [asdict(m) for m in self.runs],
        }


def with_schema(url: str, schema: str) -> str:
    """``url`` pointing at ``schema`` (any ``schema`` it named is replaced)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "schema"] + [("schema", schema)]
    return urlunsplit(parts._replace(query=urlencode(query)))


def driver_dsn(url: str) -> str:
    """``url`` without Breakwater's own query parameters, for asyncpg."""
    parts = urlsplit(url)
    ours = ("schema", "pool_size", "timeout")
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ours]
    return urlunsplit(parts._replace(query=urlencode(query)))


async def raw_asyncpg_rate(dsn: str, schema: str, scenario: Scenario, seconds: float) -> float:
    """Rows/s of plain inserts of the same rows: ``concurrency`` connections, one transaction
    of ``batch`` rows at a time each, ``synchronous_commit=on``."""
    settings = {"synchronous_commit": "on", "search_path": schema}
    conns = [
        await asyncpg.connect(dsn, server_settings=settings) for _ in range(scenario.concurrency)
    ]
    await conns[0].execute("CREATE TABLE raw_docs (id text PRIMARY KEY, data text NOT NULL)")
    body = payload(0).decode()
    rows = 0
    started = time.perf_counter()
    deadline = started + seconds

    async def insert(conn: asyncpg.Connection, worker: int) -> None:
        nonlocal rows
        sent = 0
        while time.perf_counter() < deadline:
            ids = [f"r{worker}-{sent + k}" for k in range(scenario.batch)]
            async with conn.transaction():
                await conn.execute(
                    "INSERT INTO raw_docs SELECT * FROM unnest($1::text[], $2::text[])",
                    ids,
                    [body] * scenario.batch,
                )
            sent += scenario.batch
            rows += scenario.batch

    try:
        await asyncio.gather(*(insert(conn, i) for i, conn in enumerate(conns)))
        elapsed = time.perf_counter() - started
        await conns[0].execute("DROP TABLE raw_docs")
    finally:
        for conn in conns:
            await conn.close()
    return rows / elapsed


async def store_only_rate(url: str, scenario: Scenario, seconds: float) -> float:
    """Docs/s of ``PostgresStore.apply`` in this process, ``scenario.concurrency`` callers of
    ``scenario.batch`` mutations each: the engine and writer without HTTP."""
    store = PostgresStore(url, Engine("bench", HybridClock("bench-store")))
    await store.open()
    data = codec.loads(payload(0))
    docs = 0
    started = time.perf_counter()

    async def caller(index: int) -> None:
        nonlocal docs
        sent = 0
        while time.perf_counter() - started < seconds:
            ids = [f"s{index}-{sent + k}" for k in range(scenario.batch)]
            await store.apply([Mutation(i, "bench", i, "set", data) for i in ids])
            sent += scenario.batch
            docs += scenario.batch

    try:
        await asyncio.gather(*(caller(i) for i in range(scenario.concurrency)))
    finally:
        await store.aclose()
    return docs / (time.perf_counter() - started)


async def _drop_schemas(dsn: str, schemas: list[str]) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for schema in schemas:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


async def _nodes_run(
    url: str,
    nodes: int,
    results: list[PgScenarioResult],
    seconds: float,
    log_level: str,
    progress: Callable[[str], None],
    workers: int,
) -> None:
    with tempfile.TemporaryDirectory(prefix="bw-bench-pg-") as tmp:
        started = [
            BenchNode(
                Path(tmp) / f"data{i}",
                free_port(),
                log_level,
                workers,
                ["--store", url, "--node", f"bench-{i}"],
            )
            for i in range(nodes)
        ]
        try:
            for node in started:
                await node.wait_ready()
            ports = [node.port for node in started]
            for result in results:
                progress(f"{nodes} node(s): {result.scenario.name}")
                result.runs.append(await push_load(ports, result.scenario, seconds))
        finally:
            for node in started:
                node.stop()


def _prefixed(progress: Callable[[str], None], prefix: str) -> Callable[[str], None]:
    return lambda text: progress(prefix + text)


async def run(
    url: str,
    runs: int,
    seconds: float,
    log_level: str = "info",
    progress: Callable[[str], None] = lambda _: None,
    workers: int = 1,
) -> dict[str, Any]:
    """Every scenario on 1 and 2 nodes of ``workers`` processes each, ``runs`` times; the report
    as a JSON-ready dict."""
    dsn = driver_dsn(url)
    store_rates: dict[Scenario, list[float]] = {s: [] for s in SCENARIOS}
    results = {
        nodes: [
            PgScenarioResult(s, nodes) for s in SCENARIOS if nodes == 1 or s.concurrency >= nodes
        ]
        for nodes in NODE_COUNTS
    }
    used: list[str] = []
    row_rates: list[float] = []
    for run_index in range(runs):
        schemas: list[str] = []
        try:
            for nodes, scenario_results in results.items():
                schema = f"bw_bench_{uuid.uuid4().hex[:10]}"
                schemas.append(schema)
                progress(f"run {run_index + 1}/{runs}: {nodes} node(s)")
                await _nodes_run(
                    with_schema(url, schema),
                    nodes,
                    scenario_results,
                    seconds,
                    log_level,
                    _prefixed(progress, f"run {run_index + 1}/{runs}: "),
                    workers,
                )
            store_schema = f"bw_bench_store_{uuid.uuid4().hex[:10]}"
            schemas.append(store_schema)
            for scenario, rates in store_rates.items():
                progress(f"run {run_index + 1}/{runs}: store only (no HTTP), {scenario.name}")
                rates.append(
                    await store_only_rate(with_schema(url, store_schema), scenario, seconds)
                )
            rows_schema = f"bw_bench_rows_{uuid.uuid4().hex[:10]}"
            schemas.append(rows_schema)
            progress(f"run {run_index + 1}/{runs}: the store's rows alone, batch 100")
            row_rates.append(
                await store_rows.postgres_rate(
                    with_schema(url, rows_schema), payload(0), 100, seconds
                )
            )
            raw_schema = f"bw_bench_raw_{uuid.uuid4().hex[:10]}"
            schemas.append(raw_schema)
            conn = await asyncpg.connect(dsn)
            await conn.execute(f'CREATE SCHEMA "{raw_schema}"')
            await conn.close()
            for result in results[1]:
                progress(f"run {run_index + 1}/{runs}: raw asyncpg, {result.scenario.name}")
                rate = await raw_asyncpg_rate(dsn, raw_schema, result.scenario, seconds)
                result.raw_rows_per_s.append(rate)
                for other in results[2]:
                    if other.scenario == result.scenario:
                        other.raw_rows_per_s.append(rate)
        finally:
            await _drop_schemas(dsn, schemas)
            used += schemas
    single = next(r for r in results[1] if r.scenario.batch == 100 and r.scenario.concurrency == 1)
    return {
        "benchmark": "push",
        "store": redact_url(url),
        "store_rows_batch_100": store_rows.floor_report(
            single.raw_rows_per_s, row_rates, [m.docs_per_s for m in single.runs], TARGET
        ),
        "workers": workers,
        "schemas_dropped": used,
        "store_only": [
            {
                "scenario": scenario.name,
                "docs_per_s": round(median(rates)),
                "ratio_to_raw": round(median(rates) / median(r.raw_rows_per_s), 3),
            }
            for scenario, rates in store_rates.items()
            for r in results[1]
            if r.scenario == scenario
        ],
        "doc_bytes": DOC_BYTES,
        "seconds_per_scenario": seconds,
        "runs": runs,
        "machine": machine(),
        "results": [r.summary() for nodes in NODE_COUNTS for r in results[nodes]],
    }
