"""The device database: atomic local writes, rebase over pulled states, settle, reject, resync."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from breakwater.client import local_store
from breakwater.client.local_query import build_query
from breakwater.client.local_store import Backlog, LocalStore
from breakwater.client.outbox import OutboxEntry
from breakwater.client.rebase import Pending, rebase, view_of
from breakwater.core import codec
from breakwater.core import cursor as cursor_mod
from breakwater.core.errors import ValidationError
from tests.client.fake_node import FakeNode


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[LocalStore]:
    local = LocalStore(tmp_path / "device.db")
    await local.open()
    yield local
    await local.aclose()


async def pull_all(store: LocalStore, node: FakeNode, limit: int = 1000) -> None:
    while True:
        page = node.pull(store.cursor, limit)
        await store.apply_page(
            page["changes"], page["cursor"], page["stable"], not page["has_more"]
        )
        if not page["has_more"]:
            return


async def test_write_and_outbox_entry_survive_reopen(tmp_path: Path) -> None:
    """A returned write is on disk with its outbox entry; the clock resumes after its stamp."""
    first = LocalStore(tmp_path / "d.db")
    await first.open()
    written = await first.write("todos", "t1", "set", {"title": "milk"})
    await first.aclose()
    again = LocalStore(tmp_path / "d.db")
    await again.open()
    try:
        assert await again.get("todos", "t1") == written.view
        [entry] = await again.outbox()
        assert entry == written.entry
        assert (entry.op, entry.data, entry.hlc) == ("set", {"title": "milk"}, written.entry.hlc)
        assert again.clock.now() > written.entry.hlc
        assert again.device_id == first.device_id
    finally:
        await again.aclose()


async def test_database_is_wal_with_full_sync(store: LocalStore) -> None:
    """Durability settings: WAL journal, synchronous=FULL (2)."""
    mode = await store._run(lambda: store._db.execute("PRAGMA journal_mode").fetchone()[0])
    sync = await store._run(lambda: store._db.execute("PRAGMA synchronous").fetchone()[0])
    assert (mode, sync) == ("wal", 2)


async def test_unsent_edit_stays_visible_over_incoming_server_state(store: LocalStore) -> None:
    """Another device's older write arrives; the pending newer edit is still what the user sees."""
    other = FakeNode()
    # Another device wrote the field earlier (a lower stamp) and synced it.
    other.push(
        [
            OutboxEntry(
                0, "other.1", "todos", "t1", "set", {"title": "theirs"}, "0000000000001-0000-x"
            )
        ]
    )
    await store.write("todos", "t1", "patch", {"title": "mine"})
    await pull_all(store, other)
    doc = await store.get("todos", "t1")
    assert doc is not None and doc.data == {"title": "mine"} and doc.pending


async def test_entry_leaves_only_when_acknowledged_stable_and_pulled(store: LocalStore) -> None:
    """An ack alone keeps the entry; it leaves once stable covers it and the pull brought it."""
    node = FakeNode()
    await store.write("todos", "t1", "set", {"n": 1})
    entries = await store.unsent(10)
    await store.record_acks(node.push(entries))
    assert len(await store.outbox()) == 1 and await store.unsent(10) == []
    # A page with stable behind the ack: nothing settles.
    await store.apply_page([], "", {"r1": 0}, done=True)
    assert len(await store.outbox()) == 1
    await pull_all(store, node)
    assert await store.outbox() == []
    doc = await store.get("todos", "t1")
    assert doc is not None and doc.data == {"n": 1} and not doc.pending


async def test_moving_to_another_endpoint_unsends_unstable_acks_across_restarts(
    tmp_path: Path,
) -> None:
    """Acknowledged by region A, not yet stable: on the same endpoint the entry stays sent;
    on another one, even after a restart, it is unsent again (re-pushed there, RPO 0)."""
    first = LocalStore(tmp_path / "d.db")
    await first.open()
    assert not await first.use_endpoint("http://a")
    await first.write("todos", "t1", "set", {"n": 1})
    await first.record_acks(FakeNode("a").push(await first.unsent(10)))
    assert await first.unsent(10) == []
    assert not await first.use_endpoint("http://a")
    assert await first.unsent(10) == []
    await first.aclose()
    again = LocalStore(tmp_path / "d.db")
    await again.open()
    try:
        assert await again.use_endpoint("http://b")
        unsent = await again.unsent(10)
        assert [e.doc_id for e in unsent] == ["t1"] and unsent[0].origin is None
        # Region b acknowledges it under its own position; stable of b settles it.
        node = FakeNode("b")
        await again.record_acks(node.push(unsent))
        await pull_all(again, node)
        assert await again.outbox() == []
    finally:
        await again.aclose()


async def test_rejection_rolls_back_to_server_state_and_is_listed(store: LocalStore) -> None:
    """A refused write leaves the outbox, the view shows the server's document, the list has it."""
    node = FakeNode()
    await store.write("todos", "t1", "set", {"title": "ok"})
    await store.record_acks(node.push(await store.unsent(10)))
    await pull_all(store, node)
    await store.write("todos", "t1", "patch", {"title": "bad"})
    [entry] = await store.unsent(10)
    problem = {"type": "schema_violation", "status": 422, "title": "Schema violation"}
    [rejection] = await store.reject([(entry.mutation_id, problem)])
    assert rejection.problem == problem and rejection.data == {"title": "bad"}
    doc = await store.get("todos", "t1")
    assert doc is not None and doc.data == {"title": "ok"}
    assert await store.rejections() == [rejection] and await store.outbox() == []


async def test_restamp_moves_unsent_stamps_back_to_the_node_clock(tmp_path: Path) -> None:
    """A clock 10 minutes ahead is corrected to the node's; the correction survives reopen."""
    ahead = LocalStore(tmp_path / "d.db", physical_ms=lambda: 1_800_000_600_000)
    await ahead.open()
    await ahead.write("todos", "t1", "set", {"a": 1})
    node_stamp = "1800000000000-0005-node"
    assert await ahead.restamp(node_stamp) == 1
    [entry] = await ahead.unsent(10)
    assert node_stamp < entry.hlc < "1800000000001"
    await ahead.aclose()
    again = LocalStore(tmp_path / "d.db", physical_ms=lambda: 1_800_000_600_000)
    await again.open()
    try:
        written = await again.write("todos", "t2", "set", {"a": 2})
        assert written.entry.hlc < "1800000000100"
    finally:
        await again.aclose()


async def test_full_resync_forgets_purged_documents_and_keeps_the_outbox(store: LocalStore) -> None:
    """After cursor_expired, documents the new feed lacks disappear; pending writes stay."""
    node = FakeNode()
    node.push([OutboxEntry(0, "x.1", "todos", "gone", "set", {"a": 1}, "1700000000001-0000-x")])
    await pull_all(store, node)
    await store.write("todos", "mine", "set", {"b": 2})
    assert await store.get("todos", "gone") is not None
    await store.begin_resync()
    fresh = FakeNode()  # the feed after retention: "gone" was purged
    fresh.push([OutboxEntry(0, "x.2", "todos", "kept", "set", {"c": 3}, "1700000000002-0000-x")])
    await pull_all(store, fresh)
    assert await store.get("todos", "gone") is None
    assert await store.get("todos", "kept") is not None
    assert len(await store.outbox()) == 1 and await store.get("todos", "mine") is not None


STAMP = "1700000000001-0000-d1"


def _counter_state(counter: dict[str, Any]) -> dict[str, Any]:
    return {"f": {}, "s": "", "x": "", "n": {"n": counter}}


def _counter_page(counter: dict[str, Any]) -> list[dict[str, Any]]:
    state = _counter_state(counter)
    return [{"collection": "stats", "id": "likes", "op": "increment", "state": state}]


async def test_a_resync_replaces_what_it_has_not_brought_and_joins_what_it_has(
    store: LocalStore,
) -> None:
    """A lost store's copy of an increment goes in a resync (it counts once after the survivor
    folded its re-pushed copy, ADR 0037); a later page of the resync joins the earlier one."""
    lost = {"i": {"d1.1": [STAMP, 1, [["a~00000000000a", 5]]]}}
    folded = {"b": {"b~00000000000b": [3, 1, STAMP]}}
    later = {"b": {"b~00000000000b": [4, 2, STAMP]}}
    await store.apply_page(_counter_page(lost), cursor_mod.encode({"a~00000000000a": 5}), {}, True)
    assert (await _likes(store)) == {"n": 1}
    await store.begin_resync()
    await store.apply_page(
        _counter_page(folded), cursor_mod.encode({"b~00000000000b": 3}), {}, False
    )
    assert (await _likes(store)) == {"n": 1}, "joined, the lost copy would count again"
    await store.apply_page(
        _counter_page(later), cursor_mod.encode({"b~00000000000b": 4}), {}, False
    )
    await store.apply_page(
        _counter_page(folded), cursor_mod.encode({"b~00000000000b": 4}), {}, True
    )
    assert (await _likes(store)) == {"n": 2}, "an older copy on a later page takes nothing back"
    assert not store.resyncing


async def _likes(store: LocalStore) -> dict[str, Any] | None:
    doc = await store.get("stats", "likes")
    return None if doc is None else doc.data


async def test_query_filters_orders_and_limits_like_the_server(store: LocalStore) -> None:
    """where (dict, clause strings, tuples), order_by with -field, limit; deleted docs excluded."""
    for i, (done, prio) in enumerate([(False, 3), (True, 1), (False, 2), (False, 5)]):
        await store.write("tasks", f"k{i}", "set", {"done": done, "priority": prio})
    await store.write("tasks", "k3", "delete", None)
    ids = [d.id for d in await store.query(build_query("tasks", {"done": False}, "-priority"))]
    assert ids == ["k0", "k2"]
    clause = [d.id for d in await store.query(build_query("tasks", ["priority:gte:2"], "priority"))]
    assert clause == ["k2", "k0"]
    limited = await store.query(build_query("tasks", [("priority", "lt", 10)], None, 2))
    assert [d.id for d in limited] == ["k0", "k1"]


actions = st.lists(
    st.one_of(
        st.tuples(
            st.just("write"),
            st.sampled_from(["d0", "d1"]),
            st.sampled_from(["set", "patch", "delete", "increment"]),
            st.sampled_from(["a", "n"]),
            st.integers(0, 3),
        ),
        st.tuples(st.just("push"), st.integers(1, 3)),
        st.tuples(st.just("pull"), st.integers(1, 3)),
        st.tuples(st.just("reject")),
        st.tuples(st.just("remote"), st.sampled_from(["d0", "d1"]), st.integers(0, 3)),
    ),
    max_size=25,
)


def _data(op: str, field: str, value: int) -> dict[str, Any] | None:
    if op == "delete":
        return None
    return {field: value}


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(actions)
def test_view_is_always_server_state_rebased_and_converges(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[Any, ...]]
) -> None:
    """Model-based: after every step each document's view is its pulled server state with the
    outbox re-applied; after a final push and pull the device equals the node, outbox empty."""
    asyncio.run(_run_steps(tmp_path_factory.mktemp("device") / "d.db", steps))


async def _run_steps(path: Path, steps: list[tuple[Any, ...]]) -> None:
    node = FakeNode()
    store = LocalStore(path)
    await store.open()
    remote = 0
    try:
        for step in steps:
            if step[0] == "write":
                _, doc_id, op, field, value = step
                await store.write("c", doc_id, op, _data(op, field, value))
            elif step[0] == "push":
                await store.record_acks(node.push(await store.unsent(step[1])))
            elif step[0] == "pull":
                page = node.pull(store.cursor, step[1])
                await store.apply_page(
                    page["changes"], page["cursor"], page["stable"], not page["has_more"]
                )
            elif step[0] == "reject":
                unsent = await store.unsent(1)
                if unsent:
                    await store.reject([(unsent[0].mutation_id, {"type": "schema_violation"})])
            else:
                remote += 1
                stamp = store.clock.now().replace("-d-", "-r-")
                node.push(
                    [OutboxEntry(0, f"r.{remote}", "c", step[1], "patch", {"a": step[2]}, stamp)]
                )
            await _check_view(store)
        await store.record_acks(node.push(await store.unsent(1000)))
        await pull_all(store, node)
        assert await store.outbox() == []
        for doc_id in ("d0", "d1"):
            doc = await store.get("c", doc_id)
            assert (None if doc is None else doc.data) == node.visible("c", doc_id)
    finally:
        await store.aclose()


async def _check_view(store: LocalStore) -> None:
    await _check_known(store)
    outbox = await store.outbox()
    for doc_id in ("d0", "d1"):
        server = await store._run(store._server_state, "c", doc_id)
        pending: list[Pending] = [
            (
                e.op,
                e.data,
                e.hlc,
                e.mutation_id,
                None if e.origin is None or e.seq is None else (e.origin, e.seq),
            )
            for e in outbox
            if e.doc_id == doc_id
        ]
        expected = view_of(rebase(server, pending))[0] if (server or pending) else None
        doc = await store.get("c", doc_id)
        assert (None if doc is None else codec.loads(codec.dumps(doc.data))) == expected


async def _check_known(store: LocalStore) -> None:
    """The counts and unsent entries kept in memory are the outbox's."""
    outbox = await store._run(store._entries, "", -1)
    unsent = [e for e in outbox if e.origin is None]
    assert store.backlog == Backlog(len(outbox), len(unsent), len(outbox) - len(unsent))
    assert await store.unsent(1000) == unsent


async def test_what_is_kept_in_memory_follows_every_change_of_the_outbox(tmp_path: Path) -> None:
    """Writes, a rolled-back transaction, acknowledgements (again for an acknowledged entry
    too), settling, a move to another endpoint, a resync, a re-stamp and a reopen all leave the
    counts and unsent entries the sync loop reads equal to the table's."""
    store = LocalStore(tmp_path / "d.db")
    await store.open()
    node = FakeNode()
    try:
        await store.use_endpoint("http://a")
        for i in range(3):
            await store.write("todos", f"t{i}", "set", {"n": i})
        await _check_known(store)
        acks = node.push(await store.unsent(2))
        with pytest.raises(KeyError):  # a state it cannot take in: the acks roll back too
            await store.record_acks(acks, {acks[0][0]: {"bogus": 1}})
        assert store.backlog == Backlog(3, 3, 0)
        await _check_known(store)
        await store.record_acks(acks)
        await _check_known(store)
        await store.record_acks(acks)  # the same acknowledgements again
        await _check_known(store)
        assert store.backlog == Backlog(3, 1, 2)
        await store.use_endpoint("http://b")
        await _check_known(store)
        await store.record_acks(node.push(await store.unsent(10)))
        await store.begin_resync()
        await _check_known(store)
        assert await store.restamp(store.clock.now()) == 3
        await _check_known(store)
        await store.record_acks(node.push(await store.unsent(10)))
        await pull_all(store, node)
        assert store.backlog == Backlog(0, 0, 0)
        await store.write("todos", "t9", "set", {"n": 9})
    finally:
        await store.aclose()
    again = LocalStore(tmp_path / "d.db")
    await again.open()
    try:
        assert again.backlog == Backlog(1, 1, 0)
        await _check_known(again)
    finally:
        await again.aclose()


async def test_a_rolled_back_page_leaves_the_state_in_memory_as_stored(tmp_path: Path) -> None:
    """A page that fails after moving the cursor (a cursor that does not decode) rolls back
    the cursor, ``stable`` and the end of the pull in memory too, as a reopen reads them."""
    store = LocalStore(tmp_path / "d.db")
    await store.open()
    node = FakeNode()
    try:
        await store.write("todos", "t1", "set", {"n": 1})
        await store.record_acks(node.push(await store.unsent(10)))
        await pull_all(store, node)
        before = (store.cursor, store.stable, store.last_synced_at, store.resyncing)
        with pytest.raises(ValidationError):
            await store.apply_page([], "not a cursor", {node.origin: 9, "other": 4}, done=True)
        assert (store.cursor, store.stable, store.last_synced_at, store.resyncing) == before
    finally:
        await store.aclose()
    again = LocalStore(tmp_path / "d.db")
    await again.open()
    try:
        assert (again.cursor, again.stable, again.last_synced_at, again.resyncing) == before
    finally:
        await again.aclose()


async def test_more_unsent_entries_than_are_kept_are_read_from_the_table(
    store: LocalStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the cap the unsent entries come from the table, in order, and are kept again once
    a read finds them few enough."""
    monkeypatch.setattr(local_store, "MAX_KNOWN_UNSENT", 3)
    node = FakeNode()
    for i in range(5):
        await store.write("todos", f"t{i}", "set", {"n": i})
        await _check_known(store)
    assert store._known_unsent is None
    await store.record_acks(node.push(await store.unsent(3)))
    await _check_known(store)
    assert [e.doc_id for e in await store.unsent(10)] == ["t3", "t4"]
    assert store._known_unsent is not None
    await store.write("todos", "t5", "set", {"n": 5})
    await _check_known(store)


async def test_last_sync_time_survives_reopen(tmp_path: Path) -> None:
    """The end of a complete pull is remembered across restarts; a partial page is not one."""
    first = LocalStore(tmp_path / "d.db")
    await first.open()
    await first.apply_page([], "", {}, done=False)
    assert first.last_synced_at is None
    await first.apply_page([], "", {}, done=True)
    synced = first.last_synced_at
    await first.aclose()
    again = LocalStore(tmp_path / "d.db")
    await again.open()
    try:
        assert synced is not None and again.last_synced_at == synced
    finally:
        await again.aclose()


async def test_pulled_removal_drops_the_document_and_keeps_the_cursor(store: LocalStore) -> None:
    """A document the user may no longer read arrives as a removal (no state): it leaves the
    device, the cursor moves, and a later readable change of it brings it back."""
    node = FakeNode()
    node.push([OutboxEntry(0, "o.1", "notes", "n1", "set", {"text": "hi"}, "0000000000001-0000-x")])
    await pull_all(store, node)
    assert await store.get("notes", "n1") is not None
    node.push([OutboxEntry(0, "o.2", "notes", "n1", "set", {"text": "x"}, "0000000000002-0000-x")])
    removal = {
        "origin": node.origin, "seq": 2, "collection": "notes", "id": "n1", "op": "remove",
        "mutation_id": "", "hlc": "", "deleted": True, "version": "", "data": None,
    }  # fmt: skip
    cursor = cursor_mod.encode({node.origin: 2})
    result = await store.apply_page([removal], cursor, {}, done=True)
    assert await store.get("notes", "n1") is None
    assert result.collections == frozenset({"notes"})
    assert store.cursor == cursor
    node.push([OutboxEntry(0, "o.3", "notes", "n1", "set", {"text": "y"}, "0000000000003-0000-x")])
    await pull_all(store, node)  # readable again: the full state comes back
    doc = await store.get("notes", "n1")
    assert doc is not None and doc.data == {"text": "y"}


async def test_server_states_with_unfolded_counters_are_pulled_again(tmp_path: Path) -> None:
    """A database from before folding forgets its old counter states and resyncs, so the node's
    folded bases never join the same increments kept by id; the local view stays until then."""
    path = tmp_path / "device.db"
    node = FakeNode()
    for i in range(3):
        stamp = f"170000000000{i}-0000-x"
        node.push([OutboxEntry(0, f"x.{i}", "stats", "likes", "increment", {"n": 1}, stamp)])
    store = LocalStore(path)
    await store.open()
    await pull_all(store, node)
    old = {"f": {}, "s": "", "x": "", "n": {"n": {f"x.{i}": [f"{i}", 1] for i in range(3)}}}
    await store._run(
        store._db.execute, "UPDATE server_docs SET state = ?", (codec.dumps(old).decode(),)
    )
    await store._run(store._db.execute, "DELETE FROM meta WHERE key = 'counter_format'")
    await store.aclose()

    again = LocalStore(path)
    await again.open()
    try:
        assert again.resyncing and again.cursor == ""
        assert await again.server_documents() == []
        assert (await again.get("stats", "likes")) is not None
        await pull_all(again, node)
        doc = await again.get("stats", "likes")
        assert doc is not None and doc.data == {"n": 3}
    finally:
        await again.aclose()
