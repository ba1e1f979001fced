"""SDK region routing against three in-process regions at different latencies: a new device
starts in the nearest, fails over on region loss with no error surfaced and no write lost,
returns home once (no flapping), and never shows a document older than one it showed."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from breakwater.client import Client
from breakwater.client.events import (
    Event,
    MutationRejected,
    MutationsAcknowledged,
    StatusChanged,
)
from tests.replication.harness import Cluster, DeviceNet, eventually, isolate, mutation

pytestmark = pytest.mark.timeout(180)
FULL_MESH = {"a": ["b", "c"], "b": ["a", "c"], "c": ["a", "b"]}
LATENCY = {"a": 0.08, "b": 0.0, "c": 0.16}
"""b is the nearest, then a, then c."""


class Watched:
    """A device and what it showed: every region it used (in order) and every rejection."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.regions: list[str] = []
        self.rejected: list[MutationRejected] = []
        client.on(self._event)

    def _event(self, event: Event) -> None:
        if isinstance(event, MutationRejected):
            self.rejected.append(event)
        if isinstance(event, StatusChanged) and event.status.endpoint:
            region = event.status.endpoint.removeprefix("http://").removesuffix(".test")
            if not self.regions or self.regions[-1] != region:
                self.regions.append(region)

    @property
    def region(self) -> str | None:
        return self.regions[-1] if self.regions else None


def device(path: Path, net: DeviceNet, **kwargs: Any) -> Client:
    options: dict[str, Any] = {
        "http_transport": net,
        "transports": ("long_poll",),
        "long_poll_wait": 1.0,
        "backoff_base": 0.05,
        "backoff_cap": 0.3,
        "breaker_reset": 0.5,
        "request_timeout": 2.0,
        "region_probe_interval": 0.2,
        "poll_interval": 1.0,
    }
    options.update(kwargs)
    return Client(db_path=path, **options)


async def test_nearest_failover_without_loss_and_home_again_once(
    cluster: Cluster, tmp_path: Path
) -> None:
    """Kill the nearest region under writes: the device moves to the next nearest, every write
    it made reaches the survivors, nothing is rejected; back, b is rejoined once."""
    regions = await cluster.start(FULL_MESH, pull_wait=0.5)
    net = DeviceNet(regions, LATENCY)
    urls = {name: [f"http://{name}.test"] for name in regions}
    async with device(tmp_path / "d.db", net, endpoints=[], regions=urls) as phone:
        watched = Watched(phone)
        todos = phone.collection("todos")
        written: list[str] = []

        async def write(count: int) -> None:
            for _ in range(count):
                doc_id = f"w{len(written)}"
                await todos.set(doc_id, {"n": len(written)})
                written.append(doc_id)
                await asyncio.sleep(0.02)

        await write(10)
        async with asyncio.timeout(20):
            await phone.wait_synced()
        assert watched.regions == ["b"]  # the nearest, though the app listed a first

        isolate(regions, "b", net)  # b is lost with what it did not yet replicate
        await write(30)
        await eventually(lambda: _on(watched, "a"), seconds=20, what="failover to a")
        # Not wait_synced: with b gone, ``stable`` cannot cover the writes and they stay queued.

        async def all_in_a() -> bool:
            docs = [await regions["a"].doc("todos", doc_id) for doc_id in written]
            return all(doc is not None for doc in docs)

        await eventually(all_in_a, seconds=30, what="every write in region a (RPO 0)")
        isolate(regions, "b", net, up=True)
        await eventually(lambda: _on(watched, "b"), seconds=30, what="home again")
        await write(5)
        await asyncio.sleep(2.0)  # a couple of probe rounds: a and b never trade places again
        assert watched.regions == ["b", "a", "b"]
        assert watched.rejected == []
        async with asyncio.timeout(20):
            await phone.wait_synced()


async def test_a_silent_region_is_left_in_about_the_failover_timeout(
    cluster: Cluster, tmp_path: Path
) -> None:
    """b stops answering without refusing (a black-holed link; the in-process network has no
    timeout of its own, and the request timeout is 60 s): the device's writes are acknowledged
    by a within the failover timeout's reach, nothing is rejected, and once b answers again
    the device goes home once."""
    regions = await cluster.start(FULL_MESH, pull_wait=0.5)
    net = DeviceNet(regions, LATENCY)
    urls = {name: [f"http://{name}.test"] for name in regions}
    options = {"request_timeout": 60.0, "failover_timeout": 0.5}
    async with device(tmp_path / "d.db", net, endpoints=[], regions=urls, **options) as phone:
        watched = Watched(phone)
        acked_by: list[str] = []
        phone.on(
            lambda e: acked_by.append(e.endpoint) if isinstance(e, MutationsAcknowledged) else None
        )
        todos = phone.collection("todos")
        await todos.set("before", {"n": 0})
        async with asyncio.timeout(20):
            await phone.wait_synced()
        assert watched.regions == ["b"]

        net.silent.add("b")
        silenced = asyncio.get_running_loop().time()
        acked_before = len(acked_by)
        await todos.set("during", {"n": 1})

        async def acknowledged() -> bool:  # by the device: the write can be in a before that
            return len(acked_by) > acked_before

        await eventually(acknowledged, seconds=20, what="the write acknowledged")
        # Far below the 60 s request timeout the device would otherwise wait out.
        assert asyncio.get_running_loop().time() - silenced < 20
        assert acked_by[-1] == "http://a.test"
        await eventually(
            lambda: _has(regions["a"], "during", {"n": 1}), seconds=20, what="the write in a"
        )

        net.silent.discard("b")
        await eventually(lambda: _on(watched, "b"), seconds=30, what="home again")
        await asyncio.sleep(2.0)  # probe rounds: no move back and forth
        assert watched.regions == ["b", "a", "b"]
        assert watched.rejected == []


async def _on(watched: Watched, region: str) -> bool:
    return watched.region == region


async def test_a_device_learns_regions_from_one_url_and_moves_to_the_nearest(
    cluster: Cluster, tmp_path: Path
) -> None:
    """Configured with region c only, the device reads ``GET /v1/regions``, probes the others
    and settles in b, the nearest, after the settling probes."""
    regions = await cluster.start(FULL_MESH, pull_wait=0.5)
    net = DeviceNet(regions, LATENCY)
    async with device(tmp_path / "d.db", net, endpoints=["http://c.test"]) as phone:
        watched = Watched(phone)
        await phone.collection("todos").set("x", {"v": 1})
        await eventually(lambda: _on(watched, "b"), seconds=30, what="move to the nearest")
        assert watched.regions == ["c", "b"]


async def test_failover_never_shows_an_older_document(cluster: Cluster, tmp_path: Path) -> None:
    """The device saw x at v2 in a; b never received v2 when a is lost. After failing over to
    b (which has x at v1 and a change of its own) the device still shows v2 and b's change."""
    regions = await cluster.start({"a": ["b"], "b": ["a"]}, pull_wait=0.5)
    net = DeviceNet(regions, {"a": 0.0, "b": 0.08})
    assert (await regions["a"].push(mutation("x1", "x", v=1))).status_code == 200
    await eventually(
        lambda: _has(regions["b"], "x", {"v": 1}), seconds=20, what="x v1 replicated to b"
    )
    for region in regions.values():
        for link in region.links.values():
            link.up = False  # from now on neither region hears of the other
    await asyncio.sleep(1.5)  # long polls already in flight (0.5 s) end first
    assert (await regions["a"].push(mutation("x2", "x", "patch", v=2))).status_code == 200
    assert (await regions["b"].push(mutation("y1", "y", w=1))).status_code == 200

    urls = {name: [f"http://{name}.test"] for name in regions}
    async with device(tmp_path / "d.db", net, endpoints=[], regions=urls) as phone:
        watched = Watched(phone)
        todos = phone.collection("todos")
        async with asyncio.timeout(20):
            await phone.wait_synced()
        assert watched.regions == ["a"]
        doc = await todos.get("x")
        assert doc is not None and doc.data == {"v": 2}
        net.down.add("a")
        shown: list[Any] = []

        async def sees_y() -> bool:
            x = await todos.get("x")
            shown.append(None if x is None else x.data)
            return await todos.get("y") is not None

        await eventually(sees_y, seconds=30, what="b's change after failover")
        assert watched.region == "b"
        assert all(data == {"v": 2} for data in shown), shown  # never v1, never gone


async def _has(region: Any, doc_id: str, data: dict[str, Any]) -> bool:
    doc = await region.doc("todos", doc_id)
    return doc is not None and doc["data"] == data
