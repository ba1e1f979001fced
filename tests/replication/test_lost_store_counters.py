"""A counter across a region whose store is lost (issue 17): a device that pulled an increment
from the lost store holds a position no region will ever have; once the survivors fold the
re-pushed copy, that device must not count it twice (ADR 0037)."""

from __future__ import annotations

import asyncio
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from breakwater.client import Client
from breakwater.core import incarnation
from tests.replication.harness import Cluster, DeviceNet, Region, eventually, isolate

pytestmark = pytest.mark.timeout(180)
LATENCY = {"a": 0.0, "b": 0.1}
"""a is the devices' nearest region."""


def device(path: Path, net: DeviceNet) -> Client:
    return Client(
        ["http://a.test", "http://b.test"],
        path,
        http_transport=net,
        transports=("long_poll",),
        long_poll_wait=0.5,
        backoff_base=0.05,
        backoff_cap=0.3,
        breaker_reset=0.5,
        request_timeout=2.0,
        region_probe_interval=0.2,
        poll_interval=0.5,
    )


async def value(client: Client) -> Any:
    doc = await client.collection("counters").get("c")
    return None if doc is None or doc.data is None else doc.data.get("n")


async def region_value(region: Region) -> Any:
    doc = await region.doc("counters", "c")
    return None if doc is None else doc["data"].get("n")


def cut_replication(regions: dict[str, Region], up: bool) -> None:
    for region in regions.values():
        for link in region.links.values():
            link.up = up


async def test_a_device_that_pulled_from_a_lost_store_counts_the_repushed_increment_once(
    cluster: Cluster, tmp_path: Path
) -> None:
    """D1's increment is acknowledged by a, D2 pulls it there, a's store is lost before it
    replicates; D1 re-pushes it to b; a is rebuilt (a new incarnation) and b folds the
    increment. D2, back on b with a cursor into the lost store, shows the true sum, and every
    device and region keeps showing it after more increments."""
    regions = await cluster.start({"a": ["b"], "b": ["a"]}, pull_wait=0.5)
    net = DeviceNet(regions, LATENCY)
    async with device(tmp_path / "d1.db", net) as d1:
        for _ in range(3):
            await d1.collection("counters").increment("c", {"n": 1})
        async with asyncio.timeout(30):
            await d1.wait_synced()  # acknowledged and stable: both regions hold 3

        cut_replication(regions, up=False)
        await d1.collection("counters").increment("c", {"n": 1})

        async def acknowledged_by_a() -> bool:
            entries = await d1.outbox()
            return bool(entries) and all(
                e.origin is not None and incarnation.region_of(e.origin) == "a" for e in entries
            )

        await eventually(acknowledged_by_a, 20, "a acknowledges the increment")
        lost_origin = regions["a"].node.engine.origin
        async with device(tmp_path / "d2.db", net) as d2:
            await eventually(lambda: _equals(value(d2), 4), 20, "d2 pulls 4 from a")
        assert await region_value(regions["b"]) == 3, "b never received it"

        isolate(regions, "a", net)  # a is lost with its store
        await eventually(lambda: _equals(region_value(regions["b"]), 4), 30, "d1 re-pushes")

        # a is rebuilt on an empty store (a new incarnation); it rejoins replication while
        # devices cannot reach it yet.
        config = cluster.base_config("a", store=f"sqlite:///{tmp_path / 'a-rebuilt.db'}")
        rebuilt = await cluster.start_region("a", config, ["b"], pull_wait=0.5)
        assert rebuilt.node.engine.origin != lost_origin
        regions["b"].links["a"].up = True
        await eventually(lambda: _equals(region_value(rebuilt), 4), 30, "a catches up")
        async with asyncio.timeout(30):
            await d1.wait_synced()  # b's stable covers the re-pushed increment
        await d1.collection("counters").increment("c", {"n": 1})  # b folds the re-pushed one
        await eventually(lambda: _equals(region_value(regions["b"]), 5), 30, "b counts 5")
        await eventually(lambda: _equals(value(d1), 5), 30, "d1 shows 5")

        async with device(tmp_path / "d2.db", net) as d2:  # back, on b (a is unreachable)
            async with asyncio.timeout(30):
                await d2.refresh()
            assert await value(d2) == 5, "d2 counts the re-pushed increment once"

            net.down.discard("a")
            await d2.collection("counters").increment("c", {"n": 1})
            async with asyncio.timeout(30):
                await d2.wait_synced()
            await eventually(lambda: _equals(value(d1), 6), 30, "d1 shows 6")
            for region in regions.values():
                await eventually(partial(_counts, region, 6), 30, f"{region.name} counts 6")
            assert await value(d2) == 6


async def _equals(value: Any, wanted: Any) -> bool:
    return bool(await value == wanted)


async def _counts(region: Region, wanted: int) -> bool:
    return bool(await region_value(region) == wanted)
