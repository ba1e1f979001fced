"""A device settles its own acknowledged write from the push answer, without pulling it back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from breakwater.client.local_query import build_query
from breakwater.client.local_store import LocalStore
from breakwater.core import cursor as cursor_mod
from tests.client.fake_node import FakeNode


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
    assert await store.pending_count() == 0
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
    assert store.cursor == "" and await store.pending_count() == 1
    page = node.pull(store.cursor)
    await store.apply_page(page["changes"], page["cursor"], page["stable"], done=True)
    assert await store.pending_count() == 0
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
    assert await store.pending_count() == 1
    document = await store.get("todos", "t1")
    assert document is not None and document.data == {"title": "milk"}
