"""Anti-entropy between regions: rows deleted or altered directly in one region's store (SQL on
its SQLite file, or its PostgreSQL schema) are found by digest comparison and repaired from the
peer at a new local position that devices and other regions then receive; regions in sync find
nothing to repair; the digest and bucket endpoints refuse bad input and other credentials."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from breakwater.core import cursor
from breakwater.replication.anti_entropy import RoundReport
from breakwater.replication.replicator import PeerReplicator
from tests.replication.harness import Cluster, Region, eventually, issue_key, mutation
from tests.services import POSTGRES_URL
from tests.storage.backends import drop_schema, postgres_url

pytestmark = pytest.mark.timeout(120)
PAIR = {"a": ["b"], "b": ["a"]}


def replicator(region: Region, peer: str) -> PeerReplicator:
    """``region``'s replicator of ``peer`` (one node per region here: it holds the lease)."""
    (found,) = [r for r in region.node.replication.replicators if r.peer.name == peer]
    return found


async def data_of(region: Region, ids: list[str]) -> list[Any]:
    return [
        None if doc is None else doc["data"]
        for doc in [await region.doc("todos", doc_id) for doc_id in ids]
    ]


async def write_and_converge(a: Region, b: Region, ids: list[str]) -> None:
    """Every id written at ``a`` then patched at ``b``; both regions serve the same data."""
    for doc_id in ids:
        assert (await a.push(mutation(f"set-{doc_id}", doc_id, title=doc_id))).status_code == 200
    for doc_id in ids:
        patch = mutation(f"patch-{doc_id}", doc_id, "patch", done=True)
        await eventually(lambda d=doc_id: _held(b, d), what=f"{doc_id} at b")  # type: ignore[misc]
        assert (await b.push(patch)).status_code == 200

    async def same() -> bool:
        first = await data_of(a, ids)
        return None not in first and first == await data_of(b, ids)

    await eventually(same, what="convergence")


async def _held(region: Region, doc_id: str) -> bool:
    return await region.node.store.get("todos", doc_id) is not None


def repairs_metric(region: Region, peer: str) -> float:
    value = region.node.metrics.registry.get_sample_value(
        "breakwater_replication_repairs_total", {"peer": peer, "collection": "todos"}
    )
    return value or 0.0


async def test_regions_in_sync_find_nothing_to_repair(cluster: Cluster) -> None:
    """Same documents, same digests: no bucket differs and nothing is written either side."""
    regions = await cluster.start(PAIR)
    a, b = regions["a"], regions["b"]
    await write_and_converge(a, b, [f"doc-{i}" for i in range(20)])
    heads = (await a.node.store.head(), await b.node.store.head())
    for here, peer in ((a, "b"), (b, "a")):
        report = await replicator(here, peer).anti_entropy_round()
        assert report == RoundReport()
        assert repairs_metric(here, peer) == 0
    assert (await a.node.store.head(), await b.node.store.head()) == heads


async def test_rows_deleted_and_altered_in_sqlite_are_repaired_and_reach_devices(
    cluster: Cluster,
) -> None:
    """A row deleted and a row rolled back to an older state by SQL on b's file: b's round
    repairs both from a, at new positions of b's own origin, which a device of b pulls; a then
    holds the same and its own round finds nothing (the repair changed nothing there)."""
    regions = await cluster.start(PAIR)
    a, b = regions["a"], regions["b"]
    ids = [f"doc-{i}" for i in range(10)]
    await write_and_converge(a, b, ids[:-1])
    path = b.node.store.path  # type: ignore[attr-defined]
    with contextlib.closing(sqlite3.connect(path)) as conn:
        old_row = conn.execute(
            "SELECT data, state, version, hlc, origin, seq FROM docs WHERE id = 'doc-9'"
        ).fetchone()
    assert old_row is None
    assert (await a.push(mutation("set-doc-9", "doc-9", title="doc-9"))).status_code == 200
    await eventually(lambda: _held(b, "doc-9"), what="doc-9 at b")
    with contextlib.closing(sqlite3.connect(path)) as conn:
        before = conn.execute(
            "SELECT data, state, version, hlc, origin, seq FROM docs WHERE id = 'doc-9'"
        ).fetchone()
    assert (await b.push(mutation("patch-doc-9", "doc-9", "patch", done=True))).status_code == 200
    await eventually(
        lambda: _data_is(a, "doc-9", {"title": "doc-9", "done": True}), what="doc-9 patched at a"
    )
    expected = await data_of(a, ids)
    device_cursor = cursor.encode(await b.node.store.head())
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("DELETE FROM docs WHERE id = 'doc-3'")
        conn.execute(
            "UPDATE docs SET data = ?, state = ?, version = ?, hlc = ?, origin = ?, seq = ?"
            " WHERE id = 'doc-9'",
            before,
        )
    await b.node.cache.invalidate([("todos", "doc-3"), ("todos", "doc-9")])
    assert await b.node.store.get("todos", "doc-3") is None

    report = await replicator(b, "a").anti_entropy_round()

    assert report.repaired == {"todos": ["doc-3", "doc-9"]}
    assert repairs_metric(b, "a") == 2
    assert await data_of(b, ids) == expected
    pulled = await b.client.get("/v1/sync/pull", params={"cursor": device_cursor})
    assert pulled.status_code == 200, pulled.text
    changes = pulled.json()["changes"]
    assert sorted(change["id"] for change in changes) == ["doc-3", "doc-9"]
    assert {change["origin"] for change in changes} == {b.node.store.origin}
    await eventually(
        lambda: _head_covers(a, b.node.store.origin, max(c["seq"] for c in changes)),
        what="a pulls the repairs",
    )
    assert await data_of(a, ids) == expected
    for here, peer in ((a, "b"), (b, "a")):
        again = await replicator(here, peer).anti_entropy_round()
        assert again.repairs == 0 and again.buckets_differing == 0, (here.name, again)


async def _data_is(region: Region, doc_id: str, data: dict[str, Any]) -> bool:
    return await data_of(region, [doc_id]) == [data]


async def _head_covers(region: Region, origin: str, seq: int) -> bool:
    return (await region.node.store.head()).get(origin, 0) >= seq


async def test_the_lease_holder_runs_rounds_at_the_configured_interval(cluster: Cluster) -> None:
    """With ``anti_entropy_interval`` = 1 s, a row deleted by SQL comes back by itself, and a
    round between regions in sync is counted ``in_sync``."""
    regions = await cluster.start(PAIR, pull_wait=0.3, anti_entropy_interval=1.0)
    a, b = regions["a"], regions["b"]
    await write_and_converge(a, b, ["doc-0", "doc-1"])
    with contextlib.closing(sqlite3.connect(b.node.store.path)) as conn, conn:  # type: ignore[attr-defined]
        conn.execute("DELETE FROM docs WHERE id = 'doc-1'")

    async def repaired() -> bool:
        return await b.node.store.get("todos", "doc-1") is not None

    await eventually(repaired, 15, what="doc-1 repaired by b's own rounds")

    async def counted() -> bool:  # the round counts its repairs once it ends
        return repairs_metric(b, "a") >= 1

    await eventually(counted, 15, what="b's repair counted")
    assert repairs_metric(b, "a") == 1

    async def in_sync_round() -> bool:
        value = a.node.metrics.registry.get_sample_value(
            "breakwater_replication_anti_entropy_rounds_total", {"peer": "b", "outcome": "in_sync"}
        )
        return (value or 0) >= 1

    await eventually(in_sync_round, 15, what="a round of a finding b in sync")
    assert repairs_metric(a, "b") == 0


async def test_the_endpoints_refuse_other_credentials_and_bad_input(cluster: Cluster) -> None:
    """401 anonymous, 403 an admin key; 400 problem+json for bad buckets, bucket, collection."""
    regions = await cluster.start({"a": []})
    a = regions["a"]
    replication = {"Authorization": f"ApiKey {cluster.keys['a']}"}
    admin = {"Authorization": f"ApiKey {issue_key(a.config, 'admin', ['admin'])}"}
    for path in ("/v1/replication/digest", "/v1/replication/bucket?collection=todos&bucket=0"):
        assert (await a.client.get(path)).status_code == 401
        assert (await a.client.get(path, headers=admin)).status_code == 403
    bad = [
        ("/v1/replication/digest", {"buckets": "0"}),
        ("/v1/replication/digest", {"buckets": "4097"}),
        ("/v1/replication/digest", {"buckets": "ten"}),
        ("/v1/replication/bucket", {"collection": "todos", "bucket": "16", "buckets": "16"}),
        ("/v1/replication/bucket", {"collection": "todos", "bucket": "-1"}),
        ("/v1/replication/bucket", {"collection": "no such/thing", "bucket": "0"}),
        ("/v1/replication/bucket", {"bucket": "0"}),
    ]
    for path, params in bad:
        answer = await a.client.get(path, params=params, headers=replication)
        assert answer.status_code in (400, 422), (path, params, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
    assert (await a.push(mutation("m1", "d1", title="t"))).status_code == 200
    digest = await a.client.get("/v1/replication/digest?buckets=4", headers=replication)
    assert digest.status_code == 200
    body = digest.json()
    assert body["region"] == "a" and len(body["collections"]["todos"]) == 4
    listed = []
    for index in range(4):
        answer = await a.client.get(
            "/v1/replication/bucket",
            params={"collection": "todos", "bucket": str(index), "buckets": "4"},
            headers=replication,
        )
        assert answer.status_code == 200
        listed += [doc["id"] for doc in answer.json()["docs"]]
    assert listed == ["d1"]


async def test_rows_deleted_and_altered_in_a_postgresql_schema_are_repaired(
    tmp_path: Path,
) -> None:
    """The same repair on PostgreSQL: rows changed by SQL in b's schema come back from a."""
    urls = {name: postgres_url(pool_size="4") for name in PAIR}
    try:
        # Inside pytest's timeout: a hang (seen once in CI, under load) fails with the stack of
        # the await that hung, not the event loop's.
        async with asyncio.timeout(90), contextlib.AsyncExitStack() as stack:
            cluster = Cluster(tmp_path, stack)
            regions = await cluster.start(PAIR, stores={n: u for n, (u, _) in urls.items()})
            a, b = regions["a"], regions["b"]
            ids = [f"doc-{i}" for i in range(6)]
            await write_and_converge(a, b, ids)
            schema = urls["b"][1]
            columns = "data, state, version, hlc, origin, seq"
            conn = await asyncpg.connect(POSTGRES_URL)
            try:
                before = await conn.fetchrow(
                    f"SELECT {columns} FROM \"{schema}\".docs WHERE id = 'doc-2'"
                )
                patch = mutation("again-doc-2", "doc-2", "patch", title="renamed")
                assert (await a.push(patch)).status_code == 200
                renamed = {"title": "renamed", "done": True}
                await eventually(lambda: _data_is(b, "doc-2", renamed), what="doc-2 renamed at b")
                expected = await data_of(a, ids)
                await conn.execute(f"DELETE FROM \"{schema}\".docs WHERE id = 'doc-1'")
                await conn.execute(
                    f'UPDATE "{schema}".docs SET data = $1, state = $2, version = $3, hlc = $4,'
                    " origin = $5, seq = $6 WHERE id = 'doc-2'",
                    *tuple(before or ()),
                )
            finally:
                await conn.close()
            await b.node.cache.invalidate([("todos", "doc-1"), ("todos", "doc-2")])
            report = await replicator(b, "a").anti_entropy_round()
            assert report.repaired == {"todos": ["doc-1", "doc-2"]}
            assert await data_of(b, ids) == expected
            again = await replicator(b, "a").anti_entropy_round()
            assert again.repairs == 0 and again.buckets_differing == 0
    finally:
        for _, schema in urls.values():
            await drop_schema(schema)
