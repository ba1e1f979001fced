"""A device settles its own acknowledged write from the push answer, without pulling it back."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from breakwater.client import Client, Event, PageApplied
from breakwater.client.local_query import build_query
from breakwater.client.local_store import LocalStore, PageResult
from breakwater.client.transports import LongPollTransport, StreamContext
from breakwater.core import cursor as cursor_mod
from tests.client.conftest import wait_status
from tests.client.fake_node import FakeNode
from tests.conftest import origin_of


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[LocalStore]:
    local = LocalStore(tmp_path / "device.db")
    await local.open()
    yield local
    await local.aclose()


async def test_an_ack_right_after_the_cursor_with_its_state_settles_the_write(
    store: LocalStore,
) -> None:
    """The state joins the server states, the cursor moves past the change, the outbox empties
    and the view shows the write as settled; a pull then has nothing left to bring."""
    node = FakeNode()
    written = await store.write("todos", "t1", "set", {"title": "milk"})
    [ack] = node.push([written.entry])
    states = {ack[0]: node.states[("todos", "t1")]}
    taken = await store.record_acks([ack], states, {node.origin: ack[2]})
    assert taken is not None and taken.documents == {("todos", "t1"): {"title": "milk"}}
    assert cursor_mod.decode(store.cursor) == {node.origin: 1}
    assert store.backlog.pending == 0
    document = await store.get("todos", "t1")
    assert document is not None and document.data == {"title": "milk"} and not document.pending
    assert node.pull(store.cursor)["changes"] == []


async def test_an_ack_behind_a_gap_waits_for_the_pull(store: LocalStore) -> None:
    """Another writer's change lies between the cursor and the ack: the state is not taken in
    (the cursor cannot skip that change), the entry stays, and the pull settles it."""
    node = FakeNode()
    other = LocalStore(store.path.with_name("other.db"))
    await other.open()
    try:
        theirs = await other.write("todos", "t9", "set", {"title": "theirs"})
    finally:
        await other.aclose()
    node.push([theirs.entry])
    written = await store.write("todos", "t1", "set", {"title": "milk"})
    [ack] = node.push([written.entry])
    states = {ack[0]: node.states[("todos", "t1")]}
    taken = await store.record_acks([ack], states, {node.origin: ack[2]})
    assert taken is not None and taken.documents == {}  # only stable was merged
    assert store.cursor == "" and store.backlog.pending == 1
    page = node.pull(store.cursor)
    await store.apply_page(page["changes"], page["cursor"], page["stable"], done=True)
    assert store.backlog.pending == 0
    assert {d.id for d in await store.query(build_query("todos", None, None, None))} == {"t1", "t9"}


async def test_an_ack_that_is_not_stable_stays_in_the_outbox(store: LocalStore) -> None:
    """Taken in but not yet held by every region: the entry stays until ``stable`` covers it
    (RPO 0), and the view still shows the write."""
    node = FakeNode()
    written = await store.write("todos", "t1", "set", {"title": "milk"})
    [ack] = node.push([written.entry])
    states = {ack[0]: node.states[("todos", "t1")]}
    assert await store.record_acks([ack], states, {}) is not None
    assert cursor_mod.decode(store.cursor) == {node.origin: 1}
    assert store.backlog.pending == 1
    document = await store.get("todos", "t1")
    assert document is not None and document.data == {"title": "milk"}


async def _hear_nothing(_transport: LongPollTransport, _context: StreamContext) -> None:
    await asyncio.Event().wait()


def _phone(node: httpx.AsyncClient, path: Path) -> Client:
    return Client(
        ["http://node"],
        path,
        http_transport=httpx.ASGITransport(app=node.app),  # type: ignore[attr-defined]
        transports=("long_poll",),
    )


async def test_a_settling_push_is_told_as_a_page(
    tmp_path: Path, make_client: Callable[..., Any]
) -> None:
    """The write taken in from the push answer is told as a PageApplied naming the cursor past
    the change and the document's synced data (the chaos checker rebuilds the device's copy
    from these)."""
    node: httpx.AsyncClient = await make_client()
    pages: list[PageApplied] = []
    phone = _phone(node, tmp_path / "phone.db")
    phone.on(lambda event: pages.append(event) if isinstance(event, PageApplied) else None)
    async with phone:
        async with asyncio.timeout(10):
            await phone.refresh()
        await phone.collection("todos").set("t1", {"title": "milk"})
        await wait_status(phone, lambda s: s.pending == 0 and s.state == "online", 10)
    told = [p for p in pages if ("todos", "t1") in p.documents]
    assert [(cursor_mod.decode(p.cursor), dict(p.documents)) for p in told] == [
        ({origin_of(node): 1}, {("todos", "t1"): {"title": "milk"}})
    ]


async def test_a_settling_push_committing_while_paused_is_still_told(
    tmp_path: Path, make_client: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sync stopped (pause, going offline) while the push answer's states commit: they commit
    in the store's thread either way, so the page is still told, with its cursor and document;
    otherwise the device's copy rebuilt from the events would lag its cursor."""
    node: httpx.AsyncClient = await make_client()
    committed, release = threading.Event(), threading.Event()
    original = LocalStore._record_acks

    def slow_record(self: LocalStore, *args: Any) -> PageResult | None:
        result = original(self, *args)
        if result is not None and result.documents:
            committed.set()
            release.wait(10)  # taken in and committed; the thread is not done
        return result

    monkeypatch.setattr(LocalStore, "_record_acks", slow_record)
    # Realtime hears nothing: an in-process long poll held open while the sync is cancelled can
    # outlive the cancel (asyncio.wait_for in the node's wait, Python 3.11), hanging the pause.
    monkeypatch.setattr(LongPollTransport, "listen", _hear_nothing)
    told = asyncio.Event()
    pages: list[PageApplied] = []

    def listen(event: Event) -> None:
        if isinstance(event, PageApplied) and event.documents:
            pages.append(event)
            told.set()

    phone = _phone(node, tmp_path / "phone.db")
    phone.on(listen)
    async with phone:
        await phone.collection("todos").set("t1", {"title": "milk"})
        assert await asyncio.to_thread(committed.wait, 10)
        await phone.pause()  # cancels the sync while the acks' thread is still running
        release.set()
        async with asyncio.timeout(10):
            await told.wait()
    [page] = pages
    assert cursor_mod.decode(page.cursor) == {origin_of(node): 1}
    assert page.documents == {("todos", "t1"): {"title": "milk"}}


async def test_only_the_acknowledgement_commits_without_its_own_fsync(store: LocalStore) -> None:
    """The app's write commits with ``synchronous=FULL``; the record of its acknowledgement
    with ``NORMAL`` (ADR 0060), and the connection is ``FULL`` again after it."""
    statements: list[str] = []
    await store._run(store._db.set_trace_callback, statements.append)
    node = FakeNode()
    written = await store.write("todos", "t1", "set", {"title": "milk"})
    assert not any(s.startswith("PRAGMA") for s in statements)
    statements.clear()
    [ack] = node.push([written.entry])
    await store.record_acks([ack], {ack[0]: node.states[("todos", "t1")]}, {node.origin: 1})
    assert statements[:2] == ["PRAGMA synchronous = NORMAL", "BEGIN IMMEDIATE"]
    assert statements[-2:] == ["COMMIT", "PRAGMA synchronous = FULL"]
    assert store.backlog.pending == 0
    await store.write("todos", "t2", "set", {"title": "bread"})
    mode = await store._run(lambda: store._db.execute("PRAGMA synchronous").fetchone()[0])
    assert mode == 2  # FULL


READ_BACK = "SELECT op, data, hlc, mutation_id, origin, seq FROM outbox"


async def test_an_online_write_is_viewed_and_settled_without_reading_the_outbox_back(
    store: LocalStore,
) -> None:
    """A write into an empty outbox, and the acknowledgement that empties it again, compute
    the document's view without reading its outbox entries back (it holds this one, or none),
    and the view is the same as read back: pending after the write, settled after the ack."""
    statements: list[str] = []
    await store._run(store._db.set_trace_callback, statements.append)
    node = FakeNode()
    written = await store.write("todos", "t1", "set", {"title": "milk", "tags": ["a"]})
    assert written.view is not None and written.view.pending
    assert written.view.data == {"title": "milk", "tags": ["a"]}
    [ack] = node.push([written.entry])
    await store.record_acks([ack], {ack[0]: node.states[("todos", "t1")]}, {node.origin: 1})
    assert not any(s.startswith(READ_BACK) for s in statements)
    document = await store.get("todos", "t1")
    assert document is not None and not document.pending
    assert document.data == {"title": "milk", "tags": ["a"]}


async def test_a_write_behind_a_pending_one_of_its_document_reads_both(
    store: LocalStore,
) -> None:
    """With an earlier write of the document still in the outbox, the view of a new write is
    rebased on both (read back), and settling the first leaves the second pending on top."""
    node = FakeNode()
    first = await store.write("todos", "t1", "set", {"title": "milk", "n": 1})
    second = await store.write("todos", "t1", "patch", {"title": "oat milk"})
    assert second.view is not None and second.view.data == {"title": "oat milk", "n": 1}
    [ack] = node.push([first.entry])
    await store.record_acks([ack], {ack[0]: node.states[("todos", "t1")]}, {node.origin: 1})
    document = await store.get("todos", "t1")
    assert document is not None and document.pending
    assert document.data == {"title": "oat milk", "n": 1}
    assert store.backlog.pending == 1
