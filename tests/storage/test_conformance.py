"""The Store contract, run unchanged against every backend (SQLite and PostgreSQL).

Exactly-once apply (I2), group commit, the gap-free feed under concurrent writers (I3),
retention and cursors (ADR 0003), queries and keyset pages, lifecycle.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from breakwater.core import cursor, hlc, incarnation
from breakwater.core.collections import CollectionConfig
from breakwater.core.engine import Engine
from breakwater.core.errors import ConfigError, CursorExpired, StoreUnavailable, ValidationError
from breakwater.core.hlc import HybridClock
from breakwater.core.mutation import Mutation
from breakwater.core.query import Filter, Query, decode_page_token
from breakwater.storage import NO_HOOKS, StoreHooks
from breakwater.storage.base import CommitPhases, Repair, Store
from tests.storage.backends import (
    BACKENDS,
    CountingHooks,
    build_store,
    drop_schema,
    engine,
    postgres_url,
    sqlite_url,
)

MakeStore = Callable[..., Any]


@pytest.fixture(params=BACKENDS)
async def url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A store URL of each backend, private to this test."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
        return
    store_url, schema = postgres_url(pool_size="4")
    yield store_url
    await drop_schema(schema)


@pytest.fixture
async def make_store(url: str) -> AsyncIterator[MakeStore]:
    """Open stores on this test's URL; every one still open is closed at teardown."""
    opened: list[Store] = []

    async def make(
        store_engine: Engine | None = None,
        hooks: StoreHooks = NO_HOOKS,
        clock_ms: Callable[[], int] | None = None,
        restored: bool = False,
    ) -> Store:
        store = build_store(url, store_engine or engine(), hooks, clock_ms)
        await store.open(restored=restored)
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.aclose()


@pytest.fixture
async def store(make_store: MakeStore) -> Store:
    """An open store of region ``r1`` on each backend."""
    opened: Store = await make_store()
    return opened


def put(mid: str, doc_id: str, data: dict[str, Any] | None = None, **kw: Any) -> Mutation:
    """A set mutation."""
    return Mutation(mid, "todos", doc_id, "set", data if data is not None else {"v": mid}, **kw)


def inc(mid: str, doc_id: str, amount: int = 1) -> Mutation:
    """An increment of field n."""
    return Mutation(mid, "todos", doc_id, "increment", {"n": amount})


async def read_feed(store: Store, limit: int = 7) -> list[tuple[str, int]]:
    """Follow the feed from the empty cursor to the end; return the (origin, seq) seen."""
    vector: dict[str, int] = {}
    seen = []
    while True:
        page = await store.pull(vector, None, limit)
        seen += [(e.change.origin, e.change.seq) for e in page.entries]
        vector = page.vector
        if not page.has_more:
            return seen


# -- apply: order, exactly once, group commit -----------------------------------------------------


async def test_a_traced_write_learns_its_group_commit_phases_in_order(store: Store) -> None:
    """``phases`` given: queued ≤ started ≤ merged ≤ committed, and the group's size; every
    caller of one group commit gets the same phase stamps but its own queueing time."""
    first, second = CommitPhases(), CommitPhases()
    await asyncio.gather(
        store.apply([put("m1", "a"), put("m2", "b")], first),
        store.apply([put("m3", "c")], second),
    )
    for phases in (first, second):
        assert 0 < phases.queued <= phases.started <= phases.merged <= phases.committed
        assert phases.group in (1, 2, 3)
    if first.started == second.started:  # one group commit took both
        assert first.group == second.group == 3
        assert (first.merged, first.committed) == (second.merged, second.committed)


async def test_apply_allocates_increasing_seqs_in_order(store: Store) -> None:
    """Results come back in order with consecutive seqs of the store's origin."""
    results = await store.apply([put("m1", "a"), put("m2", "b"), put("m3", "a")])
    assert [(r.status, r.origin, r.seq) for r in results] == [
        ("applied", store.origin, 1),
        ("applied", store.origin, 2),
        ("applied", store.origin, 3),
    ]


async def test_duplicate_in_the_same_batch_applies_once(store: Store) -> None:
    """The same mutation twice in one call is applied, then reported duplicate."""
    results = await store.apply([inc("m1", "a"), inc("m1", "a")])
    assert [r.status for r in results] == ["applied", "duplicate"]
    assert results[1].seq == results[0].seq
    doc = await store.get("todos", "a")
    assert doc is not None and doc.data == {"n": 1}


async def test_concurrent_pushes_of_one_mutation_apply_once(store: Store) -> None:
    """I2: 50 concurrent pushes of one increment count once and all name the same change."""
    results = await asyncio.gather(*(store.apply([inc("same", "a", 5)]) for _ in range(50)))
    statuses = sorted(r[0].status for r in results)
    assert statuses == ["applied"] + ["duplicate"] * 49
    assert {(r[0].origin, r[0].seq) for r in results} == {(store.origin, 1)}
    doc = await store.get("todos", "a")
    assert doc is not None and doc.data == {"n": 5}


async def test_duplicates_survive_reopen(make_store: MakeStore) -> None:
    """I2: after the store is closed and reopened, a known mutation id is still a duplicate."""
    first = await make_store(engine("n1"))
    [applied] = await first.apply([inc("m1", "a", 3)])
    await first.aclose()
    second = await make_store(engine("n2"))
    [again] = await second.apply([inc("m1", "a", 3)])
    doc = await second.get("todos", "a")
    assert again.status == "duplicate" and again.seq == applied.seq
    assert doc is not None and doc.data == {"n": 3}


async def test_one_mutation_pushed_to_two_nodes_at_once_applies_once(
    make_store: MakeStore,
) -> None:
    """I2 across nodes: the same increment sent to two stores concurrently counts once."""
    first, second = await make_store(engine("n1")), await make_store(engine("n2"))
    results = await asyncio.gather(
        *(node.apply([inc(f"m{i}", "a")]) for i in range(40) for node in (first, second))
    )
    statuses = [r[0].status for r in results]
    assert statuses.count("applied") == 40 and statuses.count("duplicate") == 40
    doc = await first.get("todos", "a")
    assert doc is not None and doc.data == {"n": 40}


async def test_restarted_store_continues_its_origin_seq(make_store: MakeStore) -> None:
    """A reopened store allocates after the seqs already committed, never over them."""
    first = await make_store(engine("n1"))
    await first.apply([put("m1", "a"), put("m2", "b")])
    await first.aclose()
    second = await make_store(engine("n1"))
    [result] = await second.apply([put("m3", "c")])
    origin = first.origin
    assert (result.origin, result.seq) == (origin, 3)
    assert await read_feed(second) == [(origin, 1), (origin, 2), (origin, 3)]


async def test_a_store_writes_under_its_region_and_keeps_its_incarnation(
    make_store: MakeStore,
) -> None:
    """The origin is ``region~incarnation``; reopening keeps it, so seqs continue (ADR 0018)."""
    first = await make_store(engine("n1", "eu"))
    second = await make_store(engine("n2", "eu"))
    region, incarnation_id = first.origin.split("~")
    assert (region, second.origin) == ("eu", first.origin)
    assert incarnation.PATTERN.fullmatch(incarnation_id)


async def test_a_restored_store_never_reuses_a_position(make_store: MakeStore) -> None:
    """Opened as restored, a store writes under a new origin from seq 1: no ``(origin, seq)``
    it handed out before is given to another change, and its old changes stay readable."""
    first = await make_store(engine("n1"))
    await first.apply([put("m1", "a"), put("m2", "b")])
    await first.aclose()
    restored = await make_store(engine("n1"), restored=True)
    [result] = await restored.apply([put("m3", "c")])
    assert restored.origin != first.origin
    assert (result.origin, result.seq) == (restored.origin, 1)
    assert await read_feed(restored) == [(first.origin, 1), (first.origin, 2), (result.origin, 1)]
    assert await restored.head() == {first.origin: 2, restored.origin: 1}
    await restored.aclose()
    reopened = await make_store(engine("n1"))
    assert reopened.origin == restored.origin


async def test_only_an_existing_store_can_be_marked_restored(make_store: MakeStore) -> None:
    """Marking a missing store restored is refused and creates nothing (a wrong path or URL
    would otherwise become an empty store that a node serves)."""
    for _ in range(2):  # had the first refusal created a store, the second would open it
        with pytest.raises(ConfigError, match="no Breakwater store"):
            await make_store(restored=True)


async def test_concurrent_requests_share_commits(make_store: MakeStore) -> None:
    """Group commit: 200 concurrent single-mutation calls take far fewer than 200 commits."""
    hooks = CountingHooks()
    store = await make_store(hooks=hooks)
    await asyncio.gather(*(store.apply([put(f"m{i}", f"d{i}")]) for i in range(200)))
    assert sum(hooks.commits) == 200
    assert len(hooks.commits) < 100


async def test_feed_advances_are_announced_on_the_loop_after_commit(
    make_store: MakeStore,
) -> None:
    """``on_feed_advanced`` names the new head, on the event loop, once the change is readable."""
    hooks = CountingHooks()
    store = await make_store(hooks=hooks)
    other = await make_store(engine("n2"))
    await store.apply([put("m1", "a"), put("m2", "b"), put("m3", "c")])
    for _ in range(100):
        if hooks.advanced:
            break
        await asyncio.sleep(0.01)
    origin = store.origin
    assert hooks.advanced == [({origin: 3}, threading.get_ident())]
    assert await read_feed(other) == [(origin, 1), (origin, 2), (origin, 3)]


async def test_a_commit_that_writes_nothing_announces_nothing(make_store: MakeStore) -> None:
    """Duplicates only: no feed entry was written, so no advance is announced."""
    hooks = CountingHooks()
    store = await make_store(hooks=hooks)
    await store.apply([put("m1", "a")])
    await store.apply([put("m1", "a")])
    await asyncio.sleep(0.05)
    assert [head for head, _ in hooks.advanced] == [{store.origin: 1}]


async def test_failure_inside_one_request_fails_only_that_request(make_store: MakeStore) -> None:
    """An unexpected error while applying one caller's mutations rolls back only that caller."""

    def explode(doc: dict[str, Any]) -> None:
        if doc.get("boom"):
            raise RuntimeError("validator bug")

    store: Store = await make_store(
        engine(collections={"todos": CollectionConfig("todos", validator=explode)})
    )
    good, bad = await asyncio.gather(
        store.apply([put("m1", "a")]),
        store.apply([put("m2", "b"), put("m3", "c", {"boom": True})]),
        return_exceptions=True,
    )
    assert not isinstance(good, BaseException) and good[0].status == "applied"
    assert isinstance(bad, RuntimeError)
    assert await store.get("todos", "b") is None
    assert await read_feed(store) == [(store.origin, 1)]


async def test_closed_store_refuses_work(store: Store) -> None:
    """After aclose every call raises StoreUnavailable, and aclose again is harmless."""
    await store.aclose()
    await store.aclose()
    with pytest.raises(StoreUnavailable):
        await store.apply([put("m1", "a")])
    with pytest.raises(StoreUnavailable):
        await store.get("todos", "a")


async def test_aclose_flushes_queued_writes(make_store: MakeStore) -> None:
    """Writes queued before aclose are committed, not dropped."""
    store = await make_store()
    pending = [asyncio.ensure_future(store.apply([put(f"m{i}", f"d{i}")])) for i in range(50)]
    await asyncio.sleep(0)
    await store.aclose()
    results = await asyncio.gather(*pending)
    assert all(r[0].status == "applied" for r in results)
    reopened = await make_store(engine("n2"))
    assert len(await read_feed(reopened, limit=100)) == 50


async def test_reopened_store_never_stamps_behind_its_writes(make_store: MakeStore) -> None:
    """After a restart with the wall clock set back, new stamps still sort after old ones."""
    first = await make_store(engine("n1"))
    [old] = await first.apply([put("m1", "a")])
    await first.aclose()
    clock = HybridClock("n1", physical_ms=lambda: 1_000)  # 1970: far behind
    second = await make_store(engine(clock=clock))
    [new] = await second.apply([put("m2", "a")])
    assert old.doc is not None and new.doc is not None
    assert new.doc.hlc > old.doc.hlc
    assert new.doc.data == {"v": "m2"}


# -- the gap-free feed (I3) -----------------------------------------------------------------------


@pytest.mark.parametrize("regions", [("r1", "r1"), ("r1", "r2")], ids=["one-region", "two-origins"])
@pytest.mark.parametrize("seed", range(3))
async def test_feed_is_gap_free_under_concurrent_writers(
    make_store: MakeStore, seed: int, regions: tuple[str, str]
) -> None:
    """I3: two stores on one database (two nodes writing at once) and a live reader: every
    (origin, seq) exactly once, in seq order per origin, and no cursor ever passes a change."""
    writers = [await make_store(engine(f"n{i}", region)) for i, region in enumerate(regions)]
    origins = [writer.origin for writer in writers]
    reader = await make_store(engine("reader"))
    total = 600
    done = asyncio.Event()
    rnd = random.Random(seed)

    async def write(writer: Store, offset: int) -> None:
        for batch in range(0, total // 2, 5):
            mutations = [put(f"w{offset}-{batch + k}", f"d{rnd.randint(0, 40)}") for k in range(5)]
            await asyncio.gather(*(writer.apply([m]) for m in mutations))

    async def follow() -> list[tuple[str, int]]:
        vector: dict[str, int] = {}
        seen: list[tuple[str, int]] = []
        while True:
            finished = done.is_set()
            page = await reader.pull(vector, None, rnd.randint(1, 20))
            seen += [(e.change.origin, e.change.seq) for e in page.entries]
            for origin in set(origins):
                newest = max((s for o, s in seen if o == origin), default=0)
                assert cursor.covers(page.vector, origin, newest)
            vector = page.vector
            if finished and not page.has_more:
                return seen
            await asyncio.sleep(0)

    follower = asyncio.ensure_future(follow())
    await asyncio.gather(write(writers[0], 0), write(writers[1], 1))
    done.set()
    seen = await follower
    assert len(seen) == len(set(seen)) == total
    for origin in set(origins):
        seqs = [s for o, s in seen if o == origin]
        assert seqs == list(range(1, len(seqs) + 1))
    assert sum(1 for o, _ in seen if o == origins[1]) >= total // 2


async def test_pull_filters_collections_and_still_advances(store: Store) -> None:
    """A filtered pull returns only its collections, and its cursor moves past the others."""
    await store.apply([put("m1", "a"), Mutation("m2", "notes", "x", "set", {"t": 1})])
    page = await store.pull({}, ["notes"], 10)
    assert [e.change.collection for e in page.entries] == ["notes"]
    assert page.vector == {store.origin: 2}
    again = await store.pull(page.vector, ["notes"], 10)
    assert again.entries == []


async def test_pull_pages_carry_the_current_document(store: Store) -> None:
    """Each entry carries the document's merged state now; a tombstone carries None."""
    await store.apply([put("m1", "a", {"x": 1}), put("m2", "b")])
    await store.apply([Mutation("m3", "todos", "a", "patch", {"y": 2})])
    await store.apply([Mutation("m4", "todos", "b", "delete", None)])
    page = await store.pull({}, None, 10, include_state=True)
    by_seq = {e.change.seq: e for e in page.entries}
    assert by_seq[1].data == {"x": 1, "y": 2} and by_seq[3].data == {"x": 1, "y": 2}
    assert by_seq[4].data is None and by_seq[4].change.op == "delete"
    assert by_seq[1].state is not None
    assert page.head == {store.origin: 4}


async def test_an_urgent_pull_reads_what_a_plain_one_does(store: Store) -> None:
    """``urgent`` may change where a pull runs, never what it returns (pages, cursor, expiry)."""
    await store.apply([put(f"m{i}", f"d{i % 3}", {"i": i}) for i in range(7)])
    await store.apply([Mutation("n1", "notes", "x", "set", {"t": 1})])
    for vector, collections, limit in [
        ({}, None, 3),
        ({store.origin: 2}, ["todos"], 10),
        ({}, None, 50),
    ]:
        plain = await store.pull(vector, collections, limit)
        urgent = await store.pull(vector, collections, limit, urgent=True)
        assert urgent == plain
    await store.aclose()
    with pytest.raises(StoreUnavailable):
        await store.pull({}, None, 10, urgent=True)


async def test_head_is_the_committed_seq_of_every_origin(make_store: MakeStore) -> None:
    """head names the newest committed seq of each origin."""
    first, second = await make_store(engine("n1", "r1")), await make_store(engine("n2", "r2"))
    assert await first.head() == {}
    await first.apply([put("m1", "a"), put("m2", "b")])
    await second.apply([put("m3", "c")])
    assert await first.head() == {first.origin: 2, second.origin: 1}


# -- retention (ADR 0003) -------------------------------------------------------------------------


async def test_compaction_expires_old_cursors_but_not_full_sync(make_store: MakeStore) -> None:
    """Past the horizon: superseded changes and tombstones go, old cursors get CursorExpired,
    the empty cursor still yields every live document."""
    now = [1_000_000]
    store = await make_store(clock_ms=lambda: now[0])
    await store.apply([put("m1", "a"), put("m2", "b"), put("m3", "c")])
    await store.apply([put("m4", "a"), Mutation("m5", "todos", "b", "delete", None)])
    old_cursor = {store.origin: 1}
    now[0] += 10_000
    report = await store.compact(horizon_ms=5_000)
    assert report.changes_removed == 3  # m1 (superseded), m2 (superseded), m5 (tombstone)
    assert report.tombstones_purged == 1
    assert report.low_water == {store.origin: 5}
    with pytest.raises(CursorExpired):
        await store.pull(old_cursor, None, 10)
    page = await store.pull({}, None, 10)
    assert sorted(e.change.doc_id for e in page.entries) == ["a", "c"]
    assert (await store.pull(page.vector, None, 10)).entries == []
    assert await store.get("todos", "b") is None


async def test_compaction_keeps_recent_changes(store: Store) -> None:
    """Nothing newer than the horizon is removed and no cursor expires."""
    await store.apply([put("m1", "a"), put("m2", "a")])
    report = await store.compact(horizon_ms=60_000)
    assert report.changes_removed == 0
    assert len((await store.pull({store.origin: 0}, None, 10)).entries) == 2


# -- queries --------------------------------------------------------------------------------------

OPERATOR_DOCS: dict[str, dict[str, Any]] = {
    "a": {"n": 1, "s": "apple", "flag": True},
    "b": {"n": 2, "s": "banana", "flag": False},
    "c": {"n": 3, "s": "cherry", "opt": 1},
    "d": {"n": 2.5, "s": "date", "opt": None},
    "e": {"n": "text", "s": 7},
}


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ([("n", "eq", 2)], ["b"]),
        ([("n", "ne", 2)], ["a", "c", "d", "e"]),
        ([("n", "lt", 2.5)], ["a", "b"]),
        ([("n", "gte", 2)], ["b", "c", "d", "e"]),
        ([("n", "gt", "a")], ["e"]),
        ([("s", "gt", "b")], ["b", "c", "d"]),
        ([("s", "lte", "cherry")], ["a", "b", "c", "e"]),
        ([("flag", "eq", True)], ["a"]),
        ([("flag", "eq", 0)], ["b"]),
        ([("opt", "eq", None)], ["a", "b", "d", "e"]),
        ([("opt", "ne", None)], ["c"]),
        ([("n", "gte", 2), ("s", "lt", "d")], ["b", "c", "e"]),
    ],
    ids=lambda value: (
        "&".join(f"{f}:{o}:{v}" for f, o, v in value)
        if isinstance(value, list) and value and isinstance(value[0], tuple)
        else None
    ),
)
async def test_filters_compare_by_type_then_value(
    store: Store, where: list[tuple[str, str, Any]], expected: list[str]
) -> None:
    """Filters: null (missing) matches no comparison, numbers sort before text, booleans are 1/0."""
    await store.apply([put(f"m-{k}", k, v) for k, v in OPERATOR_DOCS.items()])
    page = await store.query(Query("todos", tuple(Filter(f, o, v) for f, o, v in where)))
    assert [d.doc_id for d in page.docs] == expected


MIXED_VALUES: list[Any] = [
    None,
    False,
    True,
    -3,
    0,
    2.5,
    18446744073709551615,
    "",
    "b",
    "é",
    "a\x00b",
    [1, 2],
    [],
    {"k": "v", "a": 1},
    {},
]


async def walk(store: Store, query: Query) -> list[str]:
    """Every document id of ``query``, page by page."""
    ids: list[str] = []
    after = None
    for _ in range(100):
        page = await store.query(dataclasses.replace(query, after=after))
        ids += [d.doc_id for d in page.docs]
        if page.next_token is None:
            return ids
        after = decode_page_token(page.next_token)
    raise AssertionError("pagination did not end")


@pytest.mark.parametrize("descending", [False, True])
async def test_keyset_pages_over_mixed_json_values(store: Store, descending: bool) -> None:
    """Order values of every JSON type page completely, in the order of one big page, nulls
    first ascending, numbers before text."""
    docs = {f"doc{i:02d}": {"value": value} for i, value in enumerate(MIXED_VALUES)}
    docs["nofield"] = {"other": 1}
    await store.apply([put(f"m-{k}", k, v) for k, v in docs.items()])
    query = Query("todos", order="value", descending=descending, limit=2)
    walked = await walk(store, query)
    single = await store.query(Query("todos", order="value", descending=descending, limit=100))
    assert walked == [d.doc_id for d in single.docs]
    assert sorted(walked) == sorted(docs)
    ascending = walked[::-1] if descending else walked
    assert set(ascending[:2]) == {"doc00", "nofield"}
    numbers = ["doc01", "doc04", "doc02", "doc05", "doc06"]
    assert [i for i in ascending if i in numbers] == numbers
    assert ascending.index("doc06") < ascending.index("doc07") < ascending.index("doc08")


async def test_indexed_collection_answers_like_an_unindexed_one(make_store: MakeStore) -> None:
    """A configured index changes speed only: the same documents in the same pages."""
    config = {"indexed": CollectionConfig("indexed", indexes=("rank", "done"))}
    store = await make_store(engine(collections=config))
    for collection in ("indexed", "plain"):
        await store.apply(
            [
                Mutation(
                    f"{collection}-{i}",
                    collection,
                    f"doc{i}",
                    "set",
                    {"done": i % 3 == 0, **({} if i % 7 == 3 else {"rank": i % 5})},
                )
                for i in range(41)
            ]
        )
    for filters, order, descending in [
        ((Filter("done", "eq", True),), None, False),
        ((Filter("rank", "gte", 2), Filter("done", "eq", False)), "rank", True),
        ((Filter("rank", "eq", None),), "rank", False),
    ]:
        pages = [
            await walk(store, Query(c, filters, order, descending, limit=6))
            for c in ("indexed", "plain")
        ]
        assert pages[0] and pages[0] == pages[1]


async def test_query_leaves_out_tombstones(store: Store) -> None:
    """Deleted documents never appear in a query."""
    await store.apply([put("m1", "a"), put("m2", "b")])
    await store.apply([Mutation("m3", "todos", "a", "delete", None)])
    page = await store.query(Query("todos"))
    assert [d.doc_id for d in page.docs] == ["b"]
    tombstone = await store.get("todos", "a")
    assert tombstone is not None and tombstone.deleted


async def test_ping_answers_on_an_open_store(store: Store) -> None:
    """ping returns quietly while the store serves."""
    await store.ping()


@pytest.mark.parametrize("descending", [False, True])
async def test_a_query_pages_only_what_visible_accepts(store: Store, descending: bool) -> None:
    """With ``visible``, pages hold only accepted documents, ``next`` exists only if another
    accepted one follows and names the page's last document; none accepted: one empty page."""
    await store.apply([put(f"m-{i}", f"d{i}", {"n": i}) for i in range(10)])
    query = Query("todos", order="n", descending=descending, limit=2)
    even = [f"d{i}" for i in (range(0, 10, 2) if not descending else range(8, -1, -2))]
    pages: list[tuple[list[str], str | None]] = []
    after = None
    while True:
        page = await store.query(
            dataclasses.replace(query, after=after), lambda data: data["n"] % 2 == 0
        )
        pages.append(([d.doc_id for d in page.docs], page.next_token))
        if page.next_token is None:
            break
        after = decode_page_token(page.next_token)
    assert [ids for ids, _ in pages] == [even[0:2], even[2:4], even[4:]]
    assert [token and decode_page_token(token) for _, token in pages] == [
        (int(even[1][1:]), even[1]),
        (int(even[3][1:]), even[3]),
        None,
    ]
    nothing = await store.query(query, lambda data: data["n"] > 100)
    assert nothing.docs == [] and nothing.next_token is None


# -- conflicts ------------------------------------------------------------------------------------


async def test_conflicts_are_read_back_newest_first(store: Store) -> None:
    """A write older than the stored field is recorded as a conflict with the fields it lost;
    the store lists conflicts newest first, per collection and up to a limit."""
    clock = HybridClock("dev")
    older, newer, newest = clock.now(), clock.now(), clock.now()
    await store.apply([put("m1", "a", {"v": 2, "w": 1}, hlc=newer)])
    lost = await store.apply([put("m2", "a", {"v": 1}, hlc=older)])
    await store.apply([Mutation("m3", "notes", "x", "set", {"t": 2}, hlc=newest)])
    await store.apply([Mutation("m4", "notes", "x", "patch", {"t": 1}, hlc=older)])
    assert lost[0].conflict_fields
    conflicts = await store.conflicts(10)
    assert [(c.collection, c.doc_id, c.mutation_id) for c in conflicts] == [
        ("notes", "x", "m4"),
        ("todos", "a", "m2"),
    ]
    todo = conflicts[1]
    assert (todo.fields, todo.winner_hlc, todo.origin, todo.seq) == (
        lost[0].conflict_fields,
        newer,
        lost[0].origin,
        lost[0].seq,
    )
    assert todo.at_ms > 0
    assert [c.mutation_id for c in await store.conflicts(10, "todos")] == ["m2"]
    assert [c.mutation_id for c in await store.conflicts(1)] == ["m4"]
    assert await store.conflicts(10, "other") == []


# replication (docs/adr/0022-replication.md) --------------------------------------------------


@pytest.fixture
async def region_store(
    request: pytest.FixtureRequest, url: str, tmp_path: Path
) -> AsyncIterator[Callable[[str], Any]]:
    """Open a store of another region on this test's backend (a file or a schema of its own)."""
    opened: list[Store] = []
    schemas: list[str] = []

    async def make(region: str, region_engine: Engine | None = None) -> Store:
        region_engine = region_engine or engine(node=f"{region}-n", region=region)
        if url.startswith("sqlite"):
            region_url = sqlite_url(tmp_path / region)
        else:
            region_url, schema = postgres_url(pool_size="4")
            schemas.append(schema)
        store = build_store(region_url, region_engine, NO_HOOKS, None)
        await store.open()
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.aclose()
    for schema in schemas:
        await drop_schema(schema)


async def replicate(source: Store, target: Store, vector: dict[str, int] | None = None) -> Any:
    """Copy every change ``source`` holds past ``vector`` into ``target``; the last cursor."""
    vector = dict(vector or {})
    while True:
        page = await source.pull(vector, None, 3, include_state=True)
        await target.apply_replicated(page.entries, {"peer:test": {"cursor": page.vector}})
        vector = page.vector
        if not page.has_more:
            return vector


async def test_replicated_changes_keep_their_positions_and_apply_once(
    store: Store, region_store: Callable[[str], Any]
) -> None:
    """A peer's changes land at their original (origin, seq), with equal documents; a page
    applied again is skipped whole, and the progress row is written with the batch."""
    peer: Store = await region_store("r2")
    await store.apply([put(f"m{i}", f"d{i % 3}") for i in range(7)])
    await replicate(store, peer)
    assert await read_feed(peer) == await read_feed(store)
    assert (await peer.head())[store.origin] == 7
    for doc_id in ("d0", "d1", "d2"):
        mine, theirs = await store.get("todos", doc_id), await peer.get("todos", doc_id)
        assert mine is not None and theirs is not None
        assert (theirs.data, theirs.version) == (mine.data, mine.version)
    page = await store.pull({}, None, 100, include_state=True)
    again = await peer.apply_replicated(page.entries)
    assert (again.applied, again.skipped) == (0, 7)
    assert (await peer.replication_state())["peer:test"]["cursor"] == await store.head()


async def test_a_device_repushing_a_replicated_mutation_gets_duplicate(
    store: Store, region_store: Callable[[str], Any]
) -> None:
    """I2 across regions: the mutation id comes with the replicated change."""
    peer: Store = await region_store("r2")
    [first] = await store.apply([inc("m1", "d")])
    await replicate(store, peer)
    [again] = await peer.apply([inc("m1", "d")])
    assert (again.status, again.origin, again.seq) == ("duplicate", first.origin, first.seq)
    doc = await peer.get("todos", "d")
    assert doc is not None and doc.data == {"n": 1}


async def test_changes_are_forwarded_transitively_with_their_origin(
    store: Store, region_store: Callable[[str], Any]
) -> None:
    """C learns A's changes through B, and a device cursor of A is honoured by C."""
    b: Store = await region_store("r2")
    c: Store = await region_store("r3")
    await store.apply([put("a1", "x"), put("a2", "y")])
    await b.apply([put("b1", "z")])
    await replicate(store, b)
    await replicate(b, c)
    assert sorted(await read_feed(c)) == sorted(await read_feed(b))
    assert (await c.head())[store.origin] == 2
    cursor_at_a = (await store.pull({}, None, 100)).vector
    page = await c.pull(cursor_at_a, None, 100)
    assert [(e.change.origin, e.change.mutation_id) for e in page.entries] == [(b.origin, "b1")]


async def test_an_increment_applied_in_two_regions_counts_once(
    region_store: Callable[..., Any],
) -> None:
    """One mutation applied under two positions (a device re-pushed it to another region before
    replication) counts once everywhere, and both positions stay in each feed; folding up to a
    causally stable vector afterwards changes no value."""
    engines = [engine(node=f"{name}-n", region=name) for name in ("r1", "r2")]
    for region_engine in engines:
        region_engine.stable = {}  # a region with peers folds only what is stable
    store: Store = await region_store("r1", engines[0])
    peer: Store = await region_store("r2", engines[1])
    stamp = hlc.encode(hlc.system_ms(), 0, "device")  # the device's stamp travels with it
    repushed = dataclasses.replace(inc("m1", "d", 5), hlc=stamp)
    await store.apply([repushed, inc("m2", "d", 1)])
    await peer.apply([repushed])
    await replicate(store, peer)
    await replicate(peer, store)
    for region in (store, peer):
        doc = await region.get("todos", "d")
        assert doc is not None and doc.data == {"n": 6}
    mine, theirs = await store.get("todos", "d"), await peer.get("todos", "d")
    assert mine is not None and theirs is not None and mine.version == theirs.version
    assert len(await read_feed(store)) == len(await read_feed(peer)) == 3
    # Both regions hold everything: fold it all at r1 on its next write, and exchange again.
    engines[0].stable = cursor.merge(await store.head(), await peer.head())
    await store.apply([inc("m3", "d", 1)])
    await replicate(store, peer, await peer.head())
    for region in (store, peer):
        doc = await region.get("todos", "d")
        assert doc is not None and doc.data == {"n": 7}
    folded = await store.get("todos", "d")
    assert folded is not None and set(folded.state["n"]["n"]["i"]) == {"m3"}


async def test_a_batch_out_of_seq_order_is_refused_and_changes_nothing(
    store: Store, region_store: Callable[[str], Any]
) -> None:
    """I3: a page whose origin's seqs go backwards, or an entry without state, is a
    ValidationError before any work (progress included)."""
    peer: Store = await region_store("r2")
    await store.apply([put("m1", "a"), put("m2", "b")])
    entries = (await store.pull({}, None, 10, include_state=True)).entries
    with pytest.raises(ValidationError):
        await peer.apply_replicated(entries[::-1], {"peer:test": {"cursor": {"x": 1}}})
    stateless = [dataclasses.replace(e, state=None) for e in entries]
    with pytest.raises(ValidationError):
        await peer.apply_replicated(stateless)
    assert await peer.head() == {}
    assert await peer.replication_state() == {}


async def test_a_lease_has_one_holder_until_it_expires(make_store: MakeStore) -> None:
    """Two nodes of a region: one takes the lease, renews it; the other takes over only after
    it expires."""
    now = [1_000_000]
    first = await make_store(clock_ms=lambda: now[0])
    second = await make_store(engine(node="n2"), clock_ms=lambda: now[0])
    assert await first.take_lease("us", "node-a", 3000)
    assert not await second.take_lease("us", "node-b", 3000)
    now[0] += 2000
    assert await first.take_lease("us", "node-a", 3000)
    now[0] += 2500
    assert not await second.take_lease("us", "node-b", 3000)
    now[0] += 1000
    assert await second.take_lease("us", "node-b", 3000)
    assert not await first.take_lease("us", "node-a", 3000)


async def test_a_lease_given_up_with_no_time_left_is_free_at_once(make_store: MakeStore) -> None:
    """``ttl_ms = 0`` by the holder frees the lease for another node now; by another node it
    takes nothing away from the holder."""
    now = [1_000_000]
    first = await make_store(clock_ms=lambda: now[0])
    second = await make_store(engine(node="n2"), clock_ms=lambda: now[0])
    assert await first.take_lease("webhooks:us", "node-a", 15_000)
    assert not await second.take_lease("webhooks:us", "node-b", 0)
    assert not await second.take_lease("webhooks:us", "node-b", 15_000)
    assert await first.take_lease("webhooks:us", "node-a", 0)
    assert await second.take_lease("webhooks:us", "node-b", 15_000)
    assert not await first.take_lease("webhooks:us", "node-a", 15_000)


async def test_replication_state_keeps_a_value_when_asked_for_new_only(store: Store) -> None:
    """``only_new`` seeds a value once (a region's initial state), never overwriting it."""
    await store.put_replication_state({"region_state": "standby"}, only_new=True)
    await store.put_replication_state({"region_state": "active"})
    await store.put_replication_state({"region_state": "standby"}, only_new=True)
    assert (await store.replication_state())["region_state"] == "active"


# anti-entropy and full state transfer (docs/adr/0032-state-transfer-and-anti-entropy.md) ------


async def test_doc_summaries_list_every_document_with_the_head(store: Store) -> None:
    """Live documents and tombstones, with their version and last position, in one snapshot."""
    await store.apply(
        [put("m1", "a"), put("m2", "b"), Mutation("m3", "other", "x", "set", {"v": 3})]
    )
    await store.apply([Mutation("m4", "todos", "b", "delete", None)])
    summaries = await store.doc_summaries()
    assert summaries.head == await store.head()
    listed = [(s.collection, s.doc_id, s.seq, s.deleted) for s in summaries.docs]
    assert listed == [("other", "x", 3, False), ("todos", "a", 1, False), ("todos", "b", 4, True)]
    a = await store.get("todos", "a")
    assert a is not None and summaries.docs[1].version == a.version
    assert [s.doc_id for s in (await store.doc_summaries("other")).docs] == ["x"]


async def test_a_repair_that_changes_a_document_gets_a_new_local_position(
    store: Store, region_store: Callable[[str], Any]
) -> None:
    """A peer's newer state joined here is a new change of this store's origin (devices and
    regions pull it); a state that adds nothing writes nothing; a delete decided on an old
    position does not remove a document written since; a repair delete deletes."""
    peer: Store = await region_store("r2")
    await store.apply([put("m1", "d", {"title": "old"}), put("m2", "e"), put("m3", "f")])
    await replicate(store, peer)
    await peer.apply([put("m4", "d", {"title": "new"})])
    newer = await peer.get("todos", "d")
    assert newer is not None
    same = await peer.get("todos", "e")
    assert same is not None
    head = await store.head()
    repaired = await store.apply_repairs(
        [
            Repair("todos", "d", "repair:r2:1", newer.state),
            Repair("todos", "e", "repair:r2:2", same.state),
            Repair("todos", "f", "repair:r2:3", None, only_at=(store.origin, 2)),
        ]
    )
    assert [(doc.doc_id, doc.origin, doc.seq) for doc in repaired] == [("d", store.origin, 4)]
    d = await store.get("todos", "d")
    assert d is not None and d.data == {"title": "new"} and d.version == newer.version
    page = await store.pull(head, None, 10)
    assert [(e.change.doc_id, e.change.op) for e in page.entries] == [("d", "set")]
    deleted = await store.apply_repairs(
        [Repair("todos", "f", "repair:r2:4", None, only_at=(store.origin, 3))]
    )
    assert [doc.doc_id for doc in deleted] == ["f"]
    f = await store.get("todos", "f")
    assert f is not None and f.deleted


async def test_a_transfer_pull_is_served_past_the_horizon(make_store: MakeStore) -> None:
    """A cursor the empty one led to is expired after compaction, but a transfer continues
    from it and gets every live document it has not had yet."""
    now = [1_000_000]
    store = await make_store(clock_ms=lambda: now[0])
    await store.apply([put(f"m{i}", f"d{i}") for i in range(6)])
    await store.apply([put("m9", "d0"), Mutation("m10", "todos", "d1", "delete", None)])
    now[0] += 10_000
    await store.compact(horizon_ms=5_000)
    first = await store.pull({}, None, 2, include_state=True)
    with pytest.raises(CursorExpired):
        await store.pull(first.vector, None, 2, include_state=True)
    ids = [e.change.doc_id for e in first.entries]
    vector = first.vector
    while True:
        page = await store.pull(vector, None, 2, include_state=True, past_horizon=True)
        ids += [e.change.doc_id for e in page.entries]
        vector = page.vector
        if not page.has_more:
            break
    assert sorted(ids) == ["d0", "d2", "d3", "d4", "d5"]
    assert vector == await store.head()
