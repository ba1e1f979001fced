"""Through a local cluster of real regions: convergence with writers everywhere, and RPO 0 for
SDK devices when a region is lost with acknowledged writes it had not replicated yet."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from breakwater.chaos.cluster import LocalCluster
from breakwater.chaos.cluster_spec import ClusterSpec
from breakwater.chaos.runner import node_state
from breakwater.client import Client, MutationsAcknowledged

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture
async def make_cluster(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[LocalCluster]]]:
    clusters: list[LocalCluster] = []

    async def make(**options: Any) -> LocalCluster:
        cluster = LocalCluster(ClusterSpec(**options), tmp_path / f"cluster{len(clusters)}")
        clusters.append(cluster)
        await cluster.up()
        return cluster

    yield make
    for cluster in clusters:
        await cluster.down()


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds:g}s: {what}")
        await asyncio.sleep(0.25)


async def documents(url: str) -> dict[tuple[str, str], Any]:
    """A region's documents (data and version) read from its feed with states."""
    state = await node_state(url, url, 0.0)
    return {key: (doc.data, doc.version) for key, doc in state.docs.items()}


async def counter(url: str, doc_id: str = "c") -> Any:
    async with httpx.AsyncClient(timeout=5) as http:
        answer = await http.get(f"{url}/v1/collections/counters/docs/{doc_id}")
    return answer.json()["data"].get("n") if answer.status_code == 200 else None


def device(tmp_path: Path, name: str, urls: list[str], **options: Any) -> Client:
    options.setdefault("request_timeout", 1.0)
    options.setdefault("breaker_reset", 0.5)
    options.setdefault("backoff_cap", 0.5)
    options.setdefault("poll_interval", 0.5)
    return Client(urls, tmp_path / f"{name}.db", **options)


async def test_three_regions_with_writers_everywhere_converge(
    tmp_path: Path, make_cluster: Callable[..., Awaitable[LocalCluster]]
) -> None:
    """A device in each region writes its note, patches a shared document and increments a
    shared counter: every region ends with identical documents (data and version), every
    increment counted once, and each device sees the others' writes."""
    cluster = await make_cluster(regions=3, latency_ms=10)
    regions = cluster.running.regions
    clients = [device(tmp_path, name, region.device_urls()) for name, region in regions.items()]
    for client in clients:
        await client.open()
    try:
        for round_ in range(5):
            for index, client in enumerate(clients):
                await client.collection("notes").set(f"d{index}", {"round": round_})
                await client.collection("shared").patch("doc", {f"f{index}": round_})
                await client.collection("counters").increment("c", {"n": index + 1})
        total = 5 * (1 + 2 + 3)
        urls = [region.node_urls()[0] for region in regions.values()]

        async def converged() -> bool:
            states = [await documents(url) for url in urls]
            return all(s == states[0] for s in states) and await counter(urls[0]) == total

        await eventually(converged, 60, "every region holds the same documents")
        final = await documents(urls[0])
        assert final[("shared", "doc")][0] == {"f0": 4, "f1": 4, "f2": 4}
        assert {key for key in final if key[0] == "notes"} == {("notes", f"d{i}") for i in range(3)}
        for client in clients:
            await eventually(client.refresh, 30, "the device syncs")
            doc = await client.collection("counters").get("c")
            assert doc is not None and doc.data == {"n": total}
    finally:
        for client in clients:
            await client.aclose()


async def test_region_lost_with_unreplicated_acks_loses_nothing_and_counts_once(
    tmp_path: Path, make_cluster: Callable[..., Awaitable[LocalCluster]]
) -> None:
    """eu acknowledges a device's writes while cut off from us (unreplicated), then dies: the
    device fails over to us and pushes them again; when eu returns with its copy, every
    increment counts once everywhere. Then eu is lost with its store: nothing acknowledged is
    lost, and eu comes back empty and catches up. The device's reads never go backwards."""
    cluster = await make_cluster(regions=2, latency_ms=5)
    eu, us = cluster.region("eu"), cluster.region("us")
    phone = device(tmp_path, "phone", eu.device_urls() + us.device_urls())
    acked: dict[str, str] = {}

    def on_event(event: object) -> None:
        if isinstance(event, MutationsAcknowledged):
            for entry in event.entries:
                acked.setdefault(entry.mutation_id, event.endpoint)

    phone.on(on_event)
    seen: list[int] = []
    await phone.open()
    # The SDK starts in the region its first probes found nearest (ADR 0033); on one machine
    # either may win, so the region the phone lives in is the one that acknowledges first.
    await phone.collection("notes").set("hello", {"text": "first"})
    await eventually(lambda: _true(len(acked) == 1), 30, "the first write is acknowledged")
    home, away = (eu, us) if next(iter(acked.values())) in eu.device_urls() else (us, eu)
    await eventually(lambda: _outbox_empty(phone), 60, "the first write is stable")

    async def watch() -> None:
        while True:
            doc = await phone.collection("counters").get("c")
            seen.append((doc.data or {}).get("n", 0) if doc else 0)
            await asyncio.sleep(0.02)

    watcher = asyncio.create_task(watch())
    try:
        await cluster.set_fault(cluster.region_links(home.name), "partition")
        for _ in range(10):
            await phone.collection("counters").increment("c", {"n": 1})
        await phone.collection("notes").set("n", {"text": "written in eu"})
        await eventually(lambda: _true(len(acked) == 12), 30, "home acknowledges every write")
        assert {acked[m] for m in list(acked)[1:]} == {home.device_urls()[0]}
        assert len(await phone.outbox()) == 11, "acknowledged but not stable: kept (I6)"
        assert await counter(away.node_urls()[0]) is None, "away has not received them"

        await cluster.kill_region(home.name)  # its store survives
        await eventually(
            lambda: _equals(counter(away.node_urls()[0]), 10), 60, "the device re-pushes away"
        )
        await cluster.clear_fault(cluster.region_links(home.name), "partition")
        await cluster.start_region(home.name)
        for url in (eu.node_urls()[0], us.node_urls()[0]):
            await eventually(partial(_counts, url, 10), 60, f"{url} counts 10")
        await eventually(lambda: _outbox_empty(phone), 60, "stable covers every write")
        states = [await documents(r.node_urls()[0]) for r in (eu, us)]
        assert states[0] == states[1]
        assert states[0][("notes", "n")][0] == {"text": "written in eu"}

        # Lost for good, across an app restart: a second phone, at home in eu, writes while eu
        # is cut off and closes once eu acknowledged; eu dies with its store; the app opens
        # again (eu unreachable) and must push those writes to us.
        await cluster.set_fault(cluster.region_links("eu"), "partition")
        # (Its first life knows eu only, so that eu is what acknowledges.)
        second = device(tmp_path, "second", eu.device_urls())
        second.on(on_event)
        await second.open()
        try:
            for _ in range(5):
                await second.collection("counters").increment("c", {"n": 2})
            await eventually(lambda: _true(len(acked) == 17), 30, "eu acknowledges them")
            assert len(await second.outbox()) == 5, "acknowledged, not stable: kept"
        finally:
            await second.aclose()
        await cluster.lose_region("eu")
        await cluster.clear_fault(cluster.region_links("eu"), "partition")
        reopened = device(tmp_path, "second", eu.device_urls() + us.device_urls())
        await reopened.open()
        try:
            await eventually(lambda: _equals(counter(us.node_urls()[0]), 20), 60, "none lost")
            await cluster.start_region("eu")
            await eventually(lambda: _equals(counter(eu.node_urls()[0]), 20), 60, "eu catches up")
            await eventually(lambda: _outbox_empty(reopened), 60, "stable covers every write")
        finally:
            await reopened.aclose()
        await eventually(lambda: _equals(_seen_last(seen), 20), 30, "the phone sees 20")
        assert await counter(us.node_urls()[0]) == 20 and await counter(eu.node_urls()[0]) == 20
    finally:
        watcher.cancel()
        await phone.aclose()
    assert seen and all(a <= b for a, b in itertools.pairwise(seen)), (
        "the device showed a counter going down"
    )


async def _seen_last(seen: list[int]) -> int:
    return seen[-1] if seen else 0


async def _true(value: bool) -> bool:
    return value


async def _equals(value: Awaitable[Any], wanted: Any) -> bool:
    return bool(await value == wanted)


async def _counts(url: str, wanted: int) -> bool:
    return bool(await counter(url) == wanted)


async def _outbox_empty(client: Client) -> bool:
    return not await client.outbox()
