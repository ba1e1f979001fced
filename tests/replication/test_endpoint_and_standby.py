"""The replication endpoint's authentication and input checks, and standby regions:
every write refused with 503 region_standby, promotion by the admin endpoint, durable."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from breakwater.core import codec
from breakwater.core import cursor as cursor_mod
from tests.replication.harness import Cluster, Region, eventually, issue_key, mutation

pytestmark = pytest.mark.timeout(120)


async def _user_token(region: Region, email: str) -> str:
    answer = await region.client.post(
        "/v1/auth/signup", json={"email": email, "password": "correct horse battery"}
    )
    assert answer.status_code in (200, 201), answer.text
    token: str = answer.json()["access_token"]
    return token


async def test_only_a_replication_key_may_pull(cluster: Cluster) -> None:
    """Anonymous 401; a user's token, a read:* key and an admin key 403 (a user can never read
    another user's documents through it); a replication key 200 with full states."""
    regions = await cluster.start({"a": []})
    a = regions["a"]
    alice = await _user_token(a, "alice@example.com")
    await a.client.put(
        "/v1/collections/notes/docs/n1",
        json={"text": "alice's secret"},
        headers={"Authorization": f"Bearer {alice}"},
    )
    mallory = await _user_token(a, "mallory@example.com")
    read_key = issue_key(a.config, "reader", ["read:*"])
    admin_key = issue_key(a.config, "admin", ["admin"])
    path = "/v1/replication/pull"
    anonymous = await a.client.get(path)
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"] == "application/problem+json"
    for credential in (f"Bearer {mallory}", f"ApiKey {read_key}", f"ApiKey {admin_key}"):
        refused = await a.client.get(path, headers={"Authorization": credential})
        assert refused.status_code == 403, credential
        assert "secret" not in refused.text
    allowed = await a.client.get(
        path, headers={"Authorization": f"ApiKey {cluster.keys['a']}", "Accept-Encoding": "gzip"}
    )
    assert allowed.status_code == 200
    assert allowed.headers["content-encoding"] == "gzip"
    body = allowed.json()  # httpx undoes the gzip
    assert (body["region"], body["state"]) == ("a", "active")
    [entry] = body["entries"]
    assert entry["state"]["f"]["text"][1] == "alice's secret"
    assert body["head"] == {entry["origin"]: 1}


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=100000",
        "limit=abc",
        "wait=-1",
        "wait=1e9",
        "cursor=not-a-cursor",
        "cursor=c1.%25%25%25",
        "region=a~b",
        "region=" + "x" * 60,
    ],
)
async def test_bad_replication_input_is_a_4xx_and_changes_nothing(
    cluster: Cluster, query: str
) -> None:
    """Bad parameters: 400 problem+json; no held vector is recorded, the head does not move."""
    regions = await cluster.start({"a": ["b"], "b": []})
    a, b = regions["a"], regions["b"]
    await b.push(mutation("m1", "d", title="x"))
    head = await b.node.store.head()
    held_before = dict(b.node.region.held)
    answer = await b.client.get(
        f"/v1/replication/pull?{query}", headers={"Authorization": f"ApiKey {cluster.keys['b']}"}
    )
    assert 400 <= answer.status_code < 500, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert await b.node.store.head() == head
    assert b.node.region.held == held_before
    assert a.name == "a"


async def test_a_pull_records_what_the_peer_holds_at_once_and_the_store_keeps_it(
    cluster: Cluster,
) -> None:
    """A peer's pull cursor is what it holds: known at once, then written to the store (where a
    restarted node or another node of the region reads it), never going back."""
    regions = await cluster.start({"a": ["b"], "b": ["a"]})
    b = regions["b"]
    await b.push(mutation("m1", "d1", title="x"), mutation("m2", "d2", title="y"))
    head = await b.node.store.head()
    key = f"ApiKey {cluster.keys['b']}"
    query = f"region=a&cursor={cursor_mod.encode(head)}"
    answer = await b.client.get(f"/v1/replication/pull?{query}", headers={"Authorization": key})
    assert answer.status_code == 200, answer.text
    assert cursor_mod.covers_all(b.node.region.held["a"], head)

    async def stored() -> bool:
        held = (await b.node.store.replication_state()).get("held:a", {})
        return cursor_mod.covers_all(held, head)

    await eventually(stored, what="the held vector in the store")
    older = {origin: seq - 1 for origin, seq in head.items()}
    query = f"region=a&cursor={cursor_mod.encode(older)}"
    await b.client.get(f"/v1/replication/pull?{query}", headers={"Authorization": key})
    await b.node.region.refresh()
    assert cursor_mod.covers_all(b.node.region.held["a"], head)
    assert await stored()


async def test_a_standby_refuses_every_write_naming_the_active_regions(cluster: Cluster) -> None:
    """Push, PUT, PATCH, DELETE and increments on a standby: 503 region_standby listing the
    active regions, nothing applied; it still replicates and serves reads."""
    regions = await cluster.start({"a": ["s"], "s": ["a"]}, states={"s": "standby"})
    a, s = regions["a"], regions["s"]
    await a.push(mutation("m1", "d", title="from a"))
    await eventually(lambda: _readable(s, "d"), what="replication into the standby")
    await eventually(lambda: _is(s.node.region.active_regions(), ["a"]), what="a known active")
    head = await s.node.store.head()
    attempts: list[Callable[[], Awaitable[httpx.Response]]] = [
        lambda: s.push(mutation("m2", "d2", title="no")),
        lambda: s.push(mutation("m3", "c", "increment", n=1)),
        lambda: s.client.put("/v1/collections/todos/docs/d3", json={"t": 1}),
        lambda: s.client.patch("/v1/collections/todos/docs/d", json={"t": 1}),
        lambda: s.client.delete("/v1/collections/todos/docs/d"),
    ]
    for attempt in attempts:
        answer = await attempt()
        assert answer.status_code == 503, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        problem = answer.json()
        assert problem["type"] == "region_standby"
        assert problem["active_regions"] == ["a"]
    assert await s.node.store.head() == head
    assert (await s.client.get("/v1/sync/pull")).status_code == 200


async def _readable(region: Region, doc_id: str) -> bool:
    return await region.doc("todos", doc_id) is not None


async def test_promotion_takes_writes_and_survives_a_restart(tmp_path: Path) -> None:
    """The admin endpoint promotes the standby (admin only); the state lives in the store, so
    the region restarted with its config still saying standby is active; peers see it."""
    async with contextlib.AsyncExitStack() as outer:
        cluster = Cluster(tmp_path, outer)
        configs = {name: cluster.base_config(name) for name in ("a", "s")}
        cluster.keys = {name: issue_key(config, "p") for name, config in configs.items()}
        admin = issue_key(configs["s"], "ops", ["admin"])
        a = await cluster.start_region("a", configs["a"], ["s"])
        async with contextlib.AsyncExitStack() as first:
            cluster.stack = first
            s = await cluster.start_region("s", configs["s"], ["a"], state="standby")
            refused = await s.client.post("/v1/admin/region/promote")
            assert refused.status_code == 401
            promoted = await s.client.post(
                "/v1/admin/region/promote", headers={"Authorization": f"ApiKey {admin}"}
            )
            assert promoted.status_code == 200, promoted.text
            assert promoted.json() == {"region": "s", "state": "active", "before": "standby"}
            assert (await s.push(mutation("m1", "d", title="s"))).status_code == 200
        async with contextlib.AsyncExitStack() as second:
            cluster.stack = second
            s = await cluster.start_region("s", configs["s"], ["a"], state="standby")
            assert s.node.region.state == "active"
            assert (await s.push(mutation("m2", "d2", title="s"))).status_code == 200
            await eventually(lambda: _readable(a, "d2"), what="replication from s")
            await eventually(
                lambda: _is(a.node.region.active_regions(), ["a", "s"]), what="a sees s active"
            )
            # The stopped node's lease runs out (lease_ttl), then the new node replicates.
            await eventually(lambda: _holds_lease(s), what="the restarted node takes the lease")
            await eventually(lambda: _caught_up(s, a, admin), what="s caught up with a")


async def _holds_lease(region: Region) -> bool:
    return region.node.replication.replicators[0].status.holding_lease


async def _caught_up(region: Region, peer: Region, admin: str) -> bool:
    report = await region.client.get(
        "/v1/admin/replication", headers={"Authorization": f"ApiKey {admin}"}
    )
    assert report.status_code == 200
    row = report.json()["peers"][peer.name]
    assert row["state"] == "active" and row["lease"]["this_node"] is True
    return cursor_mod.covers_all(row["cursor"], await peer.node.store.head())


async def _is(value: object, expected: object) -> bool:
    return value == expected


async def test_readyz_shows_peers_and_stays_ready_when_a_peer_is_down(cluster: Cluster) -> None:
    """A peer that is down is reported, never a reason to be unready (replication is async)."""
    regions = await cluster.start({"a": ["b"], "b": []})
    a = regions["a"]
    a.links["b"].up = False
    await eventually(
        lambda: _true(bool(a.node.replication.replicators[0].status.last_error)),
        what="a failed pull",
    )
    ready = await a.client.get("/readyz")
    assert ready.status_code == 200
    peer = ready.json()["replication"]["peers"]["b"]
    assert peer["last_error"].startswith("unavailable")
    assert codec.dumps(ready.json()).find(cluster.keys["b"].encode()) == -1
    assert isinstance(httpx.codes.OK, int)


async def _true(value: bool) -> bool:
    return value


async def test_a_cursor_past_the_peers_retention_is_caught_up_by_a_full_transfer(
    cluster: Cluster,
) -> None:
    """B compacted away changes A never pulled: A's pull gets 410 cursor_expired (counted), A
    marks the peer for a full state transfer, which then brings B's documents and clears the
    mark in /readyz and in its stored peer row (ADR 0032)."""
    from breakwater.server.app import compact

    regions = await cluster.start({"a": ["b"], "b": []}, pull_wait=0.3)
    a, b = regions["a"], regions["b"]
    await b.push(mutation("m1", "d0", v=1))
    await eventually(lambda: _readable(a, "d0"), what="first replication")
    a.links["b"].up = False
    await asyncio.sleep(0.6)  # the long-poll in flight ends empty; no pull reaches b now
    await b.push(mutation("m2", "d1", v=1))
    await b.push(mutation("m3", "d1", v=2))  # supersedes m2, which compaction then drops
    report = await compact(b.node, 0, now_ms=2**62)
    assert report.changes_removed >= 1
    a.links["b"].up = True
    replicator = a.node.replication.replicators[0]
    replicator.nudge()

    async def transferred() -> bool:
        doc = await a.doc("todos", "d1")
        progress = replicator.status.transfer
        return doc is not None and doc["data"] == {"v": 2} and bool(progress and progress.done)

    await eventually(transferred, what="full transfer")
    expired = a.node.metrics.registry.get_sample_value(
        "breakwater_replication_retries_total", {"peer": "b", "kind": "expired"}
    )
    assert expired is not None and expired >= 1
    await a.node.region.refresh()  # the rows /readyz reports, as the node re-reads them
    ready = (await a.client.get("/readyz")).json()
    assert ready["replication"]["peers"]["b"]["needs_full_transfer"] is False
    assert ready["replication"]["peers"]["b"]["transfer"]["done"] is True
    row = (await a.node.store.replication_state())["peer:b"]
    assert row["needs_full_transfer"] is False


async def test_the_admin_report_shows_bytes_and_the_stable_lag(cluster: Cluster) -> None:
    """Once b's write reached a: a's report counts the bytes it pulled from b, b's the bytes
    it served to a, and both give the head, the stable vector and their difference."""
    regions = await cluster.start({"a": ["b"], "b": ["a"]})
    a, b = regions["a"], regions["b"]
    admins = {name: issue_key(region.config, "ops", ["admin"]) for name, region in regions.items()}
    assert (await b.client.put("/v1/collections/notes/docs/n1", json={"t": 1})).is_success

    async def report(region: Region) -> dict[str, Any]:
        answer = await region.client.get(
            "/v1/admin/replication", headers={"Authorization": f"ApiKey {admins[region.name]}"}
        )
        assert answer.status_code == 200
        body: dict[str, Any] = answer.json()
        return body

    async def replicated() -> bool:
        return (await a.client.get("/v1/collections/notes/docs/n1")).status_code == 200

    await eventually(replicated, what="b's write reached a")
    from_b, to_a = (await report(a))["peers"]["b"], (await report(b))["peers"]["a"]
    assert from_b["bytes_in"] > 0 and to_a["bytes_out"] > 0
    assert from_b["breaker"] == "closed"
    served = await report(b)
    origin = next(iter(served["head"]))
    assert served["stable_lag"][origin] == served["head"][origin] - served["stable"].get(origin, 0)
