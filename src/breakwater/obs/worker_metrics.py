"""``/metrics`` of a node served by several worker processes (``serve --workers``).

Each worker writes its own exposition to a file in the node's run directory every second, and
``/metrics`` on any worker answers with every worker's figures, each sample labelled with its
``worker``: sum over that label for the node's totals. The answering worker's figures are current,
the others' at most :data:`PUBLISH_SECONDS` old; the file of a worker that stopped writing for
:data:`STALE_SECONDS` (it died and was not replaced) is left out.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.samples import Sample

from breakwater.obs.metrics import Metrics

PUBLISH_SECONDS = 1.0
STALE_SECONDS = 10.0


class WorkerMetrics:
    """One worker's share of the node's metrics, and the merged view of all workers."""

    def __init__(self, metrics: Metrics, directory: Path, worker: int) -> None:
        self.metrics = metrics
        self.directory = directory
        self.worker = worker
        self._file = directory / f"worker-{worker}.prom"

    def publish(self) -> None:
        """Write this worker's figures where the other workers read them (atomically)."""
        partial = self._file.with_suffix(".tmp")
        partial.write_bytes(self.metrics.render())
        partial.replace(self._file)

    async def publish_forever(self) -> None:
        """Publish every :data:`PUBLISH_SECONDS` until cancelled."""
        while True:
            await asyncio.to_thread(self.publish)
            await asyncio.sleep(PUBLISH_SECONDS)

    def render(self) -> bytes:
        """Every live worker's figures, labelled by worker, in the Prometheus text format."""
        texts = {self.worker: self.metrics.render().decode()}
        now = time.time()
        for path in self.directory.glob("worker-*.prom"):
            try:
                worker = int(path.stem.removeprefix("worker-"))
                if worker == self.worker or now - path.stat().st_mtime > STALE_SECONDS:
                    continue
                texts[worker] = path.read_text()
            except (ValueError, OSError):
                continue  # a stray file, or a worker replacing its own right now
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Merged(texts))
        return generate_latest(registry)


class _Merged(Collector):
    def __init__(self, texts: dict[int, str]) -> None:
        self.texts = texts

    def collect(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        for worker, text in sorted(self.texts.items()):
            for family in text_string_to_metric_families(text):
                merged = families.setdefault(
                    family.name, Metric(family.name, family.documentation, family.type)
                )
                merged.samples += [
                    Sample(s.name, {**s.labels, "worker": str(worker)}, s.value, s.timestamp)
                    for s in family.samples
                ]
        yield from families.values()
