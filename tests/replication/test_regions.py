"""Regions replicating in-process over ASGI links: convergence, transitive forwarding, I2 across
regions, durable cursors, the stable vector after a round, and write concern ``replicated``."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest

from breakwater.core import cursor
from tests.replication.harness import Cluster, Region, eventually, mutation
from tests.storage.backends import drop_schema, postgres_url

pytestmark = pytest.mark.timeout(120)
FULL_MESH = {"a": ["b", "c"], "b": ["a", "c"], "c": ["a", "b"]}


async def docs_of(region: Region, ids: list[str]) -> list[Any]:
    """The documents ``ids`` of ``todos`` as the region serves them: data, version (a hash of
    the whole CRDT state) and newest write; ``origin``/``seq`` name the change that last
    touched it *here*, which depends on the order changes arrived, so they are left out."""
    docs = [await region.doc("todos", doc_id) for doc_id in ids]
    return [
        None if doc is None else (doc["data"], doc["version"], doc["hlc"], doc["deleted"])
        for doc in docs
    ]


async def converged(regions: list[Region], ids: list[str]) -> bool:
    """True when every region serves identical documents (same data, same version)."""
    first = await docs_of(regions[0], ids)
    if any(doc is None for doc in first):
        return False
    return all([await docs_of(region, ids) == first for region in regions[1:]])


async def test_three_regions_with_writers_in_each_converge(cluster: Cluster) -> None:
    """Concurrent sets, patches and increments in three regions end identical everywhere,
    counters included, and every region's feed holds every change at its original position."""
    regions = list((await cluster.start(FULL_MESH)).values())
    for index, region in enumerate(regions):
        answer = await region.push(
            mutation(f"{region.name}-set", f"own-{region.name}", title=region.name),
            mutation(f"{region.name}-patch", "shared", "patch", **{f"by_{region.name}": index}),
            mutation(f"{region.name}-inc", "counter", "increment", n=index + 1),
        )
        assert answer.status_code == 200, answer.text
    ids = ["own-a", "own-b", "own-c", "shared", "counter"]
    await eventually(lambda: converged(regions, ids), what="convergence")
    counter = await regions[0].doc("todos", "counter")
    assert counter is not None and counter["data"] == {"n": 6}
    shared = await regions[0].doc("todos", "shared")
    assert shared is not None and shared["data"] == {"by_a": 0, "by_b": 1, "by_c": 2}
    heads = [await region.node.store.head() for region in regions]
    assert heads[0] == heads[1] == heads[2]
    assert len(heads[0]) == 3  # one origin per region, each kept wherever its changes went
    metrics = regions[0].node.metrics.registry
    for peer in ("b", "c"):
        for direction in ("in", "out"):
            for encoding in ("wire", "json"):
                labels = {"peer": peer, "direction": direction, "encoding": encoding}
                sample = metrics.get_sample_value("breakwater_replication_bytes_total", labels)
                assert sample is not None and sample > 0, labels
        applied = metrics.get_sample_value(
            "breakwater_replication_applied_changes_total", {"peer": peer}
        )
        assert applied is not None and applied >= 3


async def test_a_and_b_that_cannot_reach_each_other_converge_through_c(
    cluster: Cluster,
) -> None:
    """Transitive forwarding: A and B do not pull from each other, only from C; C's feed keeps
    the original positions, so A learns B's changes under B's origin."""
    regions = await cluster.start({"a": ["c"], "b": ["c"], "c": ["a", "b"]})
    a, b, c = regions["a"], regions["b"], regions["c"]
    assert (await a.push(mutation("a1", "from-a", title="a"))).status_code == 200
    assert (await b.push(mutation("b1", "from-b", title="b"))).status_code == 200
    await eventually(lambda: converged([a, b, c], ["from-a", "from-b"]), what="convergence")
    assert (await a.node.store.head())[b.node.store.origin] == 1
    # A region that hears of regions it does not pull from cannot know what they hold.
    await eventually(
        lambda: _true(a.node.region.unknown == frozenset({"b"})), what="b seen through c"
    )
    assert a.node.region.stable == {}


async def _true(value: bool) -> bool:
    return value


async def test_a_mutation_repushed_to_another_region_is_a_duplicate_and_counts_once(
    cluster: Cluster,
) -> None:
    """I2 across regions: a device that pushed to A re-pushes to B (failover) after B got the
    change from A: B answers duplicate with A's position, and the increment counts once."""
    regions = await cluster.start({"a": ["b"], "b": ["a"]})
    a, b = regions["a"], regions["b"]
    increment = {**mutation("m1", "c", "increment", n=5), "hlc": a.node.clock.now()}
    first = (await a.push(increment)).json()["results"][0]
    await eventually(lambda: _has(b, "c"), what="replication of c")
    again = (await b.push(increment)).json()["results"][0]
    assert (again["status"], again["origin"], again["seq"]) == (
        "duplicate",
        first["origin"],
        first["seq"],
    )
    doc = await b.doc("todos", "c")
    assert doc is not None and doc["data"] == {"n": 5}


async def _has(region: Region, doc_id: str) -> bool:
    return await region.doc("todos", doc_id) is not None


async def test_an_increment_applied_in_both_regions_before_they_meet_counts_once(
    cluster: Cluster,
) -> None:
    """A device re-pushes to B while the link is down: both regions apply it, under two
    positions; when they meet, it counts once in both (ADR 0019's union of positions)."""
    regions = await cluster.start({"a": ["b"], "b": ["a"]})
    a, b = regions["a"], regions["b"]
    a.links["b"].up = b.links["a"].up = False
    increment = {**mutation("m1", "c", "increment", n=5), "hlc": a.node.clock.now()}
    assert (await a.push(increment)).json()["results"][0]["status"] == "applied"
    assert (await b.push(increment)).json()["results"][0]["status"] == "applied"
    assert (await a.push(mutation("m2", "c", "increment", n=1))).status_code == 200
    a.links["b"].up = b.links["a"].up = True
    await eventually(lambda: converged([a, b], ["c"]), what="convergence")
    doc = await a.doc("todos", "c")
    assert doc is not None and doc["data"] == {"n": 6}


async def test_stable_covers_a_write_only_after_the_peer_holds_it(cluster: Cluster) -> None:
    """While B cannot pull from A, A's write is not stable anywhere; once B pulls it and A
    sees B's head cover it, it is, within about a round; a pull answers that vector."""
    regions = await cluster.start({"a": ["b"], "b": ["a"]}, pull_wait=0.5)
    a, b = regions["a"], regions["b"]
    b.links["a"].up = False
    result = (await a.push(mutation("m1", "d", title="x"))).json()["results"][0]
    origin, seq = result["origin"], result["seq"]
    for _ in range(10):  # several refreshes of A's view: it must stay uncovered
        await a.node.region.refresh()
        assert not cursor.covers(a.node.region.stable, origin, seq)
    pulled = (await a.client.get("/v1/sync/pull")).json()
    assert not cursor.covers(pulled["stable"], origin, seq)
    b.links["a"].up = True
    await eventually(
        lambda: _true(cursor.covers(a.node.region.stable, origin, seq)), what="stable at a"
    )
    assert cursor.covers((await a.client.get("/v1/sync/pull")).json()["stable"], origin, seq)
    assert await b.doc("todos", "d") is not None


async def test_without_peers_stable_is_the_own_head_as_before(cluster: Cluster) -> None:
    """No [topology.peers]: pulls answer the region's head as stable, nothing replicates."""
    region = (await cluster.start({"solo": []}))["solo"]
    await region.push(mutation("m1", "d", title="x"))
    body = (await region.client.get("/v1/sync/pull")).json()
    assert body["stable"] == await region.node.store.head()
    assert region.node.engine.stable is None


async def test_replication_resumes_from_the_durable_cursor_after_a_restart(
    tmp_path: Path,
) -> None:
    """B stopped and started again pulls from its stored cursor: only A's new change is
    applied after the restart, nothing twice."""
    async with contextlib.AsyncExitStack() as outer:
        cluster = Cluster(tmp_path, outer)
        a_config = cluster.base_config("a")
        b_config = cluster.base_config("b")
        from tests.replication.harness import issue_key

        cluster.keys = {"a": issue_key(a_config, "pa"), "b": issue_key(b_config, "pb")}
        a = await cluster.start_region("a", a_config, [])
        for index in range(5):
            await a.push(mutation(f"m{index}", f"d{index}", v=index))
        async with contextlib.AsyncExitStack() as first_run:
            cluster.stack = first_run
            b = await cluster.start_region("b", b_config, ["a"])
            await eventually(lambda: _true(_applied(b) == 5), what="first replication")
        await a.push(mutation("m5", "d5", v=5))
        async with contextlib.AsyncExitStack() as second_run:
            cluster.stack = second_run
            b = await cluster.start_region("b", b_config, ["a"])
            await eventually(lambda: _true(_applied(b) >= 1), what="replication after restart")
            assert await _has(b, "d5")
            assert _applied(b) == 1  # a fresh process: only the change made while it was down
            assert (await b.node.store.head())[a.node.store.origin] == 6


def _applied(region: Region) -> float:
    value = region.node.metrics.registry.get_sample_value(
        "breakwater_replication_applied_changes_total", {"peer": "a"}
    )
    return value or 0.0


async def test_write_concern_replicated_waits_for_a_peer_and_says_when_it_did_not(
    cluster: Cluster,
) -> None:
    """``replicated`` answers 200 once B pulled the change past it; with B cut off, 202 and
    ``replicated: false`` after the configured wait (the write itself is durable in A)."""
    regions = await cluster.start(
        {"a": ["b"], "b": ["a"]}, pull_wait=1.0, write_concern_timeout=0.6
    )
    a, b = regions["a"], regions["b"]
    held = await a.push(mutation("m1", "d1", title="x"), write_concern="replicated")
    assert held.status_code == 200, held.text
    assert held.json()["results"][0]["replicated"] is True
    assert await b.doc("todos", "d1") is not None
    b.links["a"].up = False
    late = await a.push(mutation("m2", "d2", title="y"), write_concern="replicated")
    assert late.status_code == 202, late.text
    assert late.json()["results"][0] == {**late.json()["results"][0], "replicated": False}
    assert late.json()["results"][0]["status"] == "applied"
    rest = await a.client.put(
        "/v1/collections/todos/docs/d3", json={"t": 1}, headers={"Write-Concern": "replicated"}
    )
    assert (rest.status_code, rest.headers["replicated"]) == (202, "false")
    local = await a.push(mutation("m3", "d4", title="z"))
    assert local.status_code == 200 and "replicated" not in local.json()["results"][0]
    bad = await a.push(mutation("m4", "d5", title="z"), write_concern="everywhere")
    assert bad.status_code == 400
    assert await a.doc("todos", "d5") is None


async def test_three_regions_on_postgresql_converge_and_dedupe(tmp_path: Path) -> None:
    """The core on PostgreSQL, one schema per region: writers everywhere converge to identical
    documents and counters, and a re-push to another region is a duplicate."""
    urls = {name: postgres_url(pool_size="4") for name in FULL_MESH}
    try:
        async with contextlib.AsyncExitStack() as stack:
            cluster = Cluster(tmp_path, stack)
            started = await cluster.start(FULL_MESH, stores={n: u for n, (u, _) in urls.items()})
            regions = list(started.values())
            stamp = regions[0].node.clock.now()
            for index, region in enumerate(regions):
                answer = await region.push(
                    mutation(f"{region.name}-patch", "shared", "patch", **{region.name: index}),
                    mutation(f"{region.name}-inc", "counter", "increment", n=index + 1),
                )
                assert answer.status_code == 200, answer.text
            repushed = {**mutation("dev-inc", "counter", "increment", n=10), "hlc": stamp}
            assert (await regions[0].push(repushed)).status_code == 200
            ids = ["shared", "counter"]
            await eventually(lambda: converged(regions, ids), 20, what="convergence")
            again = (await regions[2].push(repushed)).json()["results"][0]
            assert again["status"] == "duplicate"
            counter = await regions[2].doc("todos", "counter")
            assert counter is not None and counter["data"] == {"n": 16}
    finally:
        for _, schema in urls.values():
            await drop_schema(schema)


async def test_a_device_cursor_from_a_peer_is_honoured_before_replication_brings_it(
    cluster: Cluster,
) -> None:
    """A device that pulled from A fails over to B before B has A's change: B answers its
    cursor (no 410 cursor_unknown) with B's own changes, not the one the device has."""
    regions = await cluster.start({"a": ["b"], "b": ["a"]})
    a, b = regions["a"], regions["b"]
    b.links["a"].up = False
    await a.push(mutation("m1", "from-a", title="a"))
    await b.push(mutation("m2", "from-b", title="b"))
    device_cursor = (await a.client.get("/v1/sync/pull")).json()["cursor"]
    answer = await b.client.get("/v1/sync/pull", params={"cursor": device_cursor})
    assert answer.status_code == 200, answer.text
    assert [change["id"] for change in answer.json()["changes"]] == ["from-b"]
