"""What the SDK tells and lets the app do: write and acknowledgement events, pause and resume,
refresh, the server's copy of the documents, and the request timeout."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from breakwater.chaos.faults import Blackhole
from breakwater.chaos.proxy import ChaosProxy
from breakwater.client import Client, MutationQueued, MutationsAcknowledged
from tests.client.conftest import feed, record_events, server_doc, wait_status
from tests.conftest import ServerProcess

pytestmark = pytest.mark.slow


def acknowledged(events: list[Any]) -> Counter[str]:
    """How many times each mutation id was acknowledged, by the events."""
    return Counter(
        entry.mutation_id
        for event in events
        if isinstance(event, MutationsAcknowledged)
        for entry in event.entries
    )


def queued(events: list[Any]) -> str:
    """The mutation id of the one write queued, by the events."""
    [entry] = [e.entry for e in events if isinstance(e, MutationQueued)]
    return entry.mutation_id


async def test_a_write_names_its_mutation_before_returning_and_its_acknowledgement(
    start_server: Callable[..., ServerProcess], make_device: Callable[..., Any]
) -> None:
    """MutationQueued carries the queued entry before the call returns; MutationsAcknowledged
    names the same id once, as applied, with the stamp pushed and the node's (origin, seq)."""
    server = start_server()
    phone = await make_device(server.url)
    events = record_events(phone)
    await phone.pause()
    await phone.collection("todos").set("t1", {"title": "milk"})
    [queued] = [e.entry for e in events if isinstance(e, MutationQueued)]
    [entry] = await phone.outbox()
    assert queued == entry and queued.mutation_id.startswith(phone.device_id)
    phone.resume()
    async with asyncio.timeout(20):
        assert await phone.refresh()
    [ack] = [e for e in events if isinstance(e, MutationsAcknowledged)]
    [acked] = ack.entries
    assert (acked.mutation_id, acked.hlc, acked.data) == (entry.mutation_id, entry.hlc, entry.data)
    assert acked.origin is not None and acked.seq is not None
    assert ack.duplicates == frozenset() and ack.endpoint == server.url
    [change] = feed(server.url)
    assert (change["mutation_id"], change["hlc"]) == (entry.mutation_id, entry.hlc)


async def test_a_paused_client_sends_nothing_and_resume_delivers_each_write_once(
    start_server: Callable[..., ServerProcess], make_device: Callable[..., Any]
) -> None:
    """While paused: local writes and reads work, the node gets nothing, refresh says False;
    after resume every write reaches the node exactly once."""
    server = start_server()
    phone = await make_device(server.url)
    events = record_events(phone)
    await phone.pause()
    assert phone.paused and phone.status.state == "offline"
    todos = phone.collection("todos")
    for _ in range(5):
        await todos.increment("t1", {"n": 1})
    assert (await todos.get("t1")).data == {"n": 5}
    assert not await phone.refresh()
    await asyncio.sleep(0.5)  # an unpaused client pushes within milliseconds
    assert feed(server.url) == [] and not acknowledged(events)
    phone.resume()
    async with asyncio.timeout(20):
        assert await phone.refresh()
    assert not phone.paused
    ids = Counter(change["mutation_id"] for change in feed(server.url))
    assert len(ids) == 5 and set(ids.values()) == {1}
    assert acknowledged(events) == Counter(dict.fromkeys(ids, 1))
    assert server_doc(server.url, "todos", "t1")["data"] == {"n": 5}  # type: ignore[index]


async def test_refresh_returns_after_a_round_that_saw_another_devices_write(
    start_server: Callable[..., ServerProcess], make_device: Callable[..., Any]
) -> None:
    """Right after ``await refresh()`` the device shows what another device had pushed."""
    server = start_server()
    reader = await make_device(server.url, "reader", poll_interval=60)
    writer = await make_device(server.url, "writer")
    async with asyncio.timeout(20):
        assert await reader.refresh()
        await writer.collection("todos").set("t1", {"title": "from the writer"})
        assert await writer.refresh()
        assert await reader.refresh()
    seen = await reader.collection("todos").get("t1")
    assert seen is not None and seen.data == {"title": "from the writer"}


async def test_server_documents_are_the_nodes_without_pending_writes(
    start_server: Callable[..., ServerProcess], make_device: Callable[..., Any]
) -> None:
    """The server copy has the node's data and version (ETag), tombstones included; a pending
    local write shows in the local view only."""
    server = start_server()
    phone = await make_device(server.url)
    todos = phone.collection("todos")
    await todos.set("t1", {"title": "synced"})
    await todos.set("t2", {"title": "gone"})
    await todos.delete("t2")
    async with asyncio.timeout(20):
        assert await phone.refresh()
    await phone.pause()
    await todos.patch("t1", {"title": "pending"})
    copy = {(d.collection, d.id): d for d in await phone.server_documents()}
    assert set(copy) == {("todos", "t1"), ("todos", "t2")}
    assert copy["todos", "t1"].data == {"title": "synced"}
    assert copy["todos", "t2"].data is None
    assert copy["todos", "t1"].version == server_doc(server.url, "todos", "t1")["version"]  # type: ignore[index]
    assert (await todos.get("t1")).data == {"title": "pending"}


async def test_a_lost_answer_times_out_and_the_retry_is_acknowledged_as_duplicate(
    start_server: Callable[..., ServerProcess], make_device: Callable[..., Any]
) -> None:
    """With answers blackholed, a push is applied but unanswered: the request times out after
    ``request_timeout``, and once answers flow the same id comes back as a duplicate, counted
    once."""
    server = start_server()
    port = int(server.url.rsplit(":", 1)[1])
    async with ChaosProxy(("127.0.0.1", port)) as proxy:
        url = f"http://{proxy.address}"
        phone = await make_device(url, request_timeout=0.5, transports=("long_poll",))
        events = record_events(phone)
        async with asyncio.timeout(20):
            assert await phone.refresh()
        proxy.set_fault(Blackhole(direction="downstream"))
        started = time.monotonic()
        await phone.collection("todos").increment("t1", {"n": 3})
        await wait_status(phone, lambda status: status.last_error is not None, 20)
        assert time.monotonic() - started < 5
        assert [c["mutation_id"] for c in feed(server.url)] == [queued(events)]
        assert not acknowledged(events)
        proxy.heal()
        phone.sync_now()
        async with asyncio.timeout(20):
            assert await phone.refresh()
    [ack] = [e for e in events if isinstance(e, MutationsAcknowledged)]
    [entry] = ack.entries
    assert ack.duplicates == {entry.mutation_id}
    assert [c["mutation_id"] for c in feed(server.url)] == [entry.mutation_id]
    assert server_doc(server.url, "todos", "t1")["data"] == {"n": 3}  # type: ignore[index]


steps = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.integers(1, 5)),
        st.tuples(st.sampled_from(["pause", "resume", "refresh"])),
        st.tuples(st.just("wait"), st.sampled_from([0.0, 0.005, 0.02])),
    ),
    min_size=1,
    max_size=12,
)
examples = itertools.count()


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps)
def test_any_interleaving_of_pause_resume_and_writes_delivers_each_write_once(
    tmp_path_factory: pytest.TempPathFactory,
    start_server: Callable[..., ServerProcess],
    steps: list[tuple[Any, ...]],
) -> None:
    """Model-based: whatever the order of writes, pauses (cutting pushes short), resumes and
    refreshes, after a final resume and refresh each write is in the node's feed exactly once,
    acknowledged by an event, and the node's counter is the sum of the writes."""
    # One node for every example of this test (the fixture stops it at teardown).
    if not hasattr(start_server, "shared"):
        start_server.shared = start_server()  # type: ignore[attr-defined]
    server: ServerProcess = start_server.shared  # type: ignore[attr-defined]
    doc_id = f"d{next(examples)}"
    path = tmp_path_factory.mktemp("device") / "d.db"
    asyncio.run(_play(server.url, path, doc_id, steps))


async def _play(url: str, path: Path, doc_id: str, steps: list[tuple[Any, ...]]) -> None:
    async with Client([url], path, backoff_cap=0.5, breaker_reset=0.5) as phone:
        events = record_events(phone)
        counters = phone.collection("counters")
        total = 0
        for step in steps:
            if step[0] == "write":
                await counters.increment(doc_id, {"n": step[1]})
                total += step[1]
            elif step[0] == "pause":
                await phone.pause()
            elif step[0] == "resume":
                phone.resume()
            elif step[0] == "refresh":
                async with asyncio.timeout(20):
                    refreshed = await phone.refresh()
                assert refreshed == (not phone.paused)
            else:
                await asyncio.sleep(step[1])  # lets a push start, so a pause can cut it short
        phone.resume()
        async with asyncio.timeout(20):
            assert await phone.refresh()
        mine = {e.entry.mutation_id for e in events if isinstance(e, MutationQueued)}
        ids = Counter(c["mutation_id"] for c in feed(url) if c["id"] == doc_id)
        assert ids == Counter(dict.fromkeys(mine, 1))
        assert set(acknowledged(events)) == mine
        expected = {"n": total} if total else None
        assert (server_doc(url, "counters", doc_id) or {}).get("data") == expected
        local = await counters.get(doc_id)
        assert (local.data if local else None) == expected
