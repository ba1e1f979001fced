"""One device write in region eu followed to its delivery in region us, through a real
two-region cluster exporting to an OTLP collector (issue 21, docs/adr/0041)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from breakwater.chaos.cluster import LocalCluster
from breakwater.chaos.cluster_spec import ClusterSpec
from breakwater.client import Client
from tests.client.conftest import wait_status
from tests.tracing.collector import CollectedSpan, Collector

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture
def collector(monkeypatch: pytest.MonkeyPatch) -> Iterator[Collector]:
    """A collector the cluster's nodes export to every 200 ms (they inherit OTEL_BSP_*)."""
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "200")
    with Collector() as running:
        yield running


async def span_in(
    collector: Collector, name: str, region: str, trace_id: str, seconds: float = 30
) -> CollectedSpan:
    """The first span ``name`` of ``region`` in trace ``trace_id`` (waiting for its export)."""
    async with asyncio.timeout(seconds):
        while True:
            for span in collector.named(name, region):
                if span.trace_id == trace_id:
                    return span
            await asyncio.sleep(0.1)


async def test_a_device_write_in_one_region_is_traced_to_its_delivery_in_another(
    tmp_path: Path, collector: Collector
) -> None:
    """The phone's push in eu makes a write span; us applies the replicated change in a
    ``replication.apply`` span that is the write's child, and delivers it to the tablet
    subscribed in us in a ``realtime.deliver`` span: all in the one trace."""
    spec = ClusterSpec(regions=2, tracing_endpoint=collector.endpoint)
    async with LocalCluster(spec, tmp_path / "cluster") as cluster:
        eu, us = cluster.region("eu"), cluster.region("us")
        phone = Client(eu.device_urls(), tmp_path / "phone.db", poll_interval=600, transports=[])
        tablet = Client(us.device_urls(), tmp_path / "tablet.db", poll_interval=600)
        async with phone, tablet:
            await wait_status(tablet, lambda status: status.transport == "websocket", 30)
            updates = tablet.collection("notes").watch()
            assert await anext(updates) == []
            await phone.collection("notes").set("n1", {"text": "from eu"})
            async with asyncio.timeout(60):
                async for documents in updates:
                    if [d.id for d in documents] == ["n1"]:
                        break

            async with asyncio.timeout(30):
                while not list(collector.named("write", "eu")):  # noqa: ASYNC110  (exports)
                    await asyncio.sleep(0.1)
            [write] = collector.named("write", "eu")
            applied = await span_in(collector, "replication.apply", "us", write.trace_id)
            delivered = await span_in(collector, "realtime.deliver", "us", write.trace_id)
    assert applied.parent_span_id == write.span_id
    assert delivered.parent_span_id == applied.span_id
