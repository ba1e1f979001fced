"""``breakwater bench push --tracing``: what tracing costs a push, off and on, in one run.

Each run serves the same push scenarios from fresh nodes, one per variant, in an order that
rotates from run to run (so that no variant always goes first on a warming machine): tracing
off; tracing on with every trace kept, exported over OTLP/HTTP to a sink in this process (the
collector's share of the machine is paid, as it would be next to a node); the same with 1% of
traces kept; and, with ``baseline_src``, a node served from another source tree (e.g. a
checkout of main) with this one's dependencies. Reported: medians of push rate, latency and
the node's CPU per document, and each variant's ratio to tracing off.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import tempfile
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from breakwater.bench._node import BenchNode, free_port, machine
from breakwater.bench.push import SCENARIOS, Scenario, push_load
from breakwater.bench.stats import median

_LENGTH = re.compile(rb"(?im)^content-length:\s*(\d+)\s*$")


@dataclass(frozen=True)
class Variant:
    """One way of serving the node: environment settings and, maybe, another source tree."""

    name: str
    settings: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Cell:
    """One variant's figures for one scenario, over the runs."""

    docs_per_s: list[float] = field(default_factory=list)
    p50_ms: list[float] = field(default_factory=list)
    p99_ms: list[float] = field(default_factory=list)
    cpu_us_per_doc: list[float] = field(default_factory=list)
    errors: int = 0


class OtlpSink:
    """An OTLP/HTTP endpoint that reads every export and answers 200 (counting them)."""

    def __init__(self) -> None:
        self.exports = 0
        self.bytes = 0
        self.port = 0

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[OtlpSink]:
        """Listen on a loopback port while the block runs."""
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        async with server:
            yield self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                found = _LENGTH.search(head)
                length = int(found.group(1)) if found else 0
                await reader.readexactly(length)
                self.exports += 1
                self.bytes += length
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def variants(sink_port: int, baseline_src: Path | None) -> list[Variant]:
    """Tracing off, on, on at 1%, and the baseline tree when given."""
    traced = {
        "BREAKWATER_TRACING_ENABLED": "true",
        "BREAKWATER_TRACING_ENDPOINT": f"http://127.0.0.1:{sink_port}/v1/traces",
    }
    found = [
        Variant("tracing off"),
        Variant("tracing on, all kept", traced),
        Variant("tracing on, 1% kept", {**traced, "BREAKWATER_TRACING_SAMPLER_RATIO": "0.01"}),
    ]
    if baseline_src is not None:
        found.append(Variant("baseline", {"PYTHONPATH": str(baseline_src.resolve())}))
    return found


async def _measure(
    variant: Variant, scenarios: tuple[Scenario, ...], seconds: float, log_level: str
) -> list[tuple[float, float, float, float, int]]:
    """One fresh node of ``variant``: each scenario's rate, p50, p99, CPU µs/doc, errors."""
    figures = []
    with tempfile.TemporaryDirectory(prefix="bw-bench-tracing-") as tmp:
        node = BenchNode(Path(tmp) / "data", free_port(), log_level, settings=variant.settings)
        try:
            await node.wait_ready()
            for scenario in scenarios:
                cpu_before = node.cpu_seconds()
                measured = await push_load([node.port], scenario, seconds)
                cpu = node.cpu_seconds() - cpu_before
                docs = measured.docs_per_s * seconds
                figures.append(
                    (
                        measured.docs_per_s,
                        measured.p50_ms,
                        measured.p99_ms,
                        cpu / docs * 1e6 if docs else 0.0,
                        measured.errors,
                    )
                )
        finally:
            node.stop()
    return figures


async def run(
    runs: int,
    seconds: float,
    log_level: str = "info",
    progress: Callable[[str], None] = lambda _: None,
    baseline_src: Path | None = None,
) -> dict[str, Any]:
    """Every variant and scenario ``runs`` times; a JSON-ready dict of medians and ratios."""
    scenarios = SCENARIOS
    sink = OtlpSink()
    async with sink.serving():
        chosen = variants(sink.port, baseline_src)
        cells = {(v.name, s.name): Cell() for v in chosen for s in scenarios}
        for run_index in range(runs):
            shift = run_index % len(chosen)
            for variant in chosen[shift:] + chosen[:shift]:
                progress(f"run {run_index + 1}/{runs}: {variant.name}")
                figures = await _measure(variant, scenarios, seconds, log_level)
                for scenario, (rate, p50, p99, cpu, errors) in zip(scenarios, figures, strict=True):
                    cell = cells[variant.name, scenario.name]
                    cell.docs_per_s.append(rate)
                    cell.p50_ms.append(p50)
                    cell.p99_ms.append(p99)
                    cell.cpu_us_per_doc.append(cpu)
                    cell.errors += errors
    rows = []
    for scenario in scenarios:
        off = cells["tracing off", scenario.name]
        for variant in chosen:
            cell = cells[variant.name, scenario.name]
            rows.append(
                {
                    "scenario": scenario.name,
                    "variant": variant.name,
                    "docs_per_s": round(median(cell.docs_per_s)),
                    "p50_ms": round(median(cell.p50_ms), 2),
                    "p99_ms": round(median(cell.p99_ms), 2),
                    "cpu_us_per_doc": round(median(cell.cpu_us_per_doc), 1),
                    "rate_vs_off": round(median(cell.docs_per_s) / median(off.docs_per_s), 3),
                    "cpu_vs_off": round(
                        median(cell.cpu_us_per_doc) / median(off.cpu_us_per_doc), 3
                    ),
                    "errors": cell.errors,
                    "runs_docs_per_s": [round(r) for r in cell.docs_per_s],
                }
            )
    return {
        "benchmark": "push tracing",
        "runs": runs,
        "seconds_per_scenario": seconds,
        "otlp_exports": sink.exports,
        "otlp_bytes": sink.bytes,
        "machine": machine(),
        "results": rows,
    }
