"""The SDK against a real node: offline writes, exactly once, rejections, skew, convergence."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from breakwater.client import MutationRejected, StatusChanged, SyncProgress
from tests.client.conftest import feed, record_events, server_doc, wait_status
from tests.conftest import ServerProcess, free_port

pytestmark = pytest.mark.slow


async def test_offline_writes_reach_the_server_exactly_once_and_another_device(
    start_server: Callable[..., ServerProcess], make_device: Callable[..., Any]
) -> None:
    """Writes made with the server down show locally at once, then arrive once when it is up."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    phone = await make_device(url, "phone")
    todos = phone.collection("todos")
    for i in range(20):
        await todos.set(f"t{i}", {"title": f"task {i}", "done": False})
    for _ in range(5):
        await todos.increment("t0", {"likes": 1})
    await todos.patch("t1", {"done": True})
    await todos.delete("t2")
    assert [d.id for d in await todos.query({"done": True})] == ["t1"]
    assert (await todos.get("t0")).data["likes"] == 5
    await asyncio.sleep(0.3)
    assert phone.status.state == "offline" and phone.pending == 27

    server = start_server(port=port)
    async with asyncio.timeout(30):
        await phone.wait_synced()
    assert phone.status.last_error is None and phone.status.last_synced_at is not None
    ids = Counter(change["mutation_id"] for change in feed(server.url))
    assert len(ids) == 27 and set(ids.values()) == {1}
    assert server_doc(server.url, "todos", "t0")["data"]["likes"] == 5  # type: ignore[index]
    assert server_doc(server.url, "todos", "t2") is None

    tablet = await make_device(url, "tablet")
    async with asyncio.timeout(30):
        await tablet.wait_synced()
    seen = {d.id: d.data for d in await tablet.collection("todos").query()}
    mine = {d.id: d.data for d in await todos.query()}
    assert seen == mine and len(seen) == 19


async def test_rejected_write_is_reported_and_rolled_back(
    tmp_path: Path, start_server: Callable[..., ServerProcess], make_device: Callable[..., Any]
) -> None:
    """A write the node refuses (schema) raises an event, is listed, and the view rolls back."""
    config = tmp_path / "node.toml"
    config.write_text(
        '[collections.notes]\nschema = { type = "object", properties = { title = '
        '{ type = "string" } } }\n'
    )
    server = start_server(None, "--config", str(config))
    phone = await make_device(server.url)
    events = record_events(phone)
    notes = phone.collection("notes")
    await notes.set("n1", {"title": "fine"})
    async with asyncio.timeout(30):
        await phone.wait_synced()
    await notes.patch("n1", {"title": 42})
    assert (await notes.get("n1")).data == {"title": 42}
    async with asyncio.timeout(30):
        await phone.wait_synced()
    [rejection] = await phone.rejections()
    assert rejection.problem["type"] == "schema_violation" and rejection.data == {"title": 42}
    assert [e.rejection for e in events if isinstance(e, MutationRejected)] == [rejection]
    assert (await notes.get("n1")).data == {"title": "fine"}


async def test_clock_ahead_of_the_node_is_corrected_and_writes_still_land(
    start_server: Callable[..., ServerProcess], make_device: Callable[..., Any]
) -> None:
    """A device clock 10 minutes fast gets clock_skew; the SDK re-stamps and the write applies."""
    server = start_server()
    fast = await make_device(server.url, physical_ms=lambda: time.time_ns() // 10**6 + 600_000)
    await fast.collection("todos").set("t1", {"title": "from the future"})
    async with asyncio.timeout(30):
        await fast.wait_synced()
    doc = server_doc(server.url, "todos", "t1")
    assert doc is not None and doc["data"] == {"title": "from the future"}
    assert int(doc["hlc"][:13]) < time.time() * 1000 + 60_000


async def test_two_devices_editing_offline_converge(
    start_server: Callable[..., ServerProcess], make_device: Callable[..., Any]
) -> None:
    """Concurrent offline edits of one document end identical on both devices and the node."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(port=port)
    phone = await make_device(url, "phone")
    tablet = await make_device(url, "tablet")
    await phone.collection("todos").set("t1", {"title": "shared", "n": 0})
    async with asyncio.timeout(30):
        await phone.wait_synced()
        await tablet.wait_synced()
    server.kill()
    await phone.collection("todos").patch("t1", {"title": "phone title", "color": "red"})
    await phone.collection("todos").increment("t1", {"n": 2})
    await tablet.collection("todos").patch("t1", {"title": "tablet title", "size": 3})
    await tablet.collection("todos").increment("t1", {"n": 5})
    # Offline, each device sees its own edits.
    assert (await tablet.collection("todos").get("t1")).data["title"] == "tablet title"
    start_server(port=port)
    async with asyncio.timeout(60):
        await phone.wait_synced()
        await tablet.wait_synced()
        while True:  # the tablet may have pulled before the phone pushed: wait for the change
            a = await phone.collection("todos").get("t1")
            b = await tablet.collection("todos").get("t1")
            if a == b or (a and b and a.data == b.data):
                break
            tablet.sync_now()
            phone.sync_now()
            await asyncio.sleep(0.1)
    assert a is not None and b is not None
    assert a.data == b.data == server_doc(url, "todos", "t1")["data"]  # type: ignore[index]
    assert a.data["n"] == 7 and a.data["color"] == "red" and a.data["size"] == 3
    assert a.data["title"] == "tablet title"  # the later write wins


async def test_first_sync_reports_progress_in_pages(
    start_server: Callable[..., ServerProcess], make_device: Callable[..., Any]
) -> None:
    """A new device pulls an existing dataset page by page and says so."""
    server = start_server()
    writer = await make_device(server.url, "writer")
    for i in range(250):
        await writer.collection("items").set(f"i{i}", {"n": i})
    async with asyncio.timeout(30):
        await writer.wait_synced()
    reader = await make_device(server.url, "reader", pull_limit=100)
    events = record_events(reader)
    async with asyncio.timeout(30):
        await reader.wait_synced()
    progress = [e for e in events if isinstance(e, SyncProgress)]
    assert [p.changes for p in progress][:3] == [100, 200, 250]
    assert progress[2].has_more is False
    assert len(await reader.collection("items").query()) == 250


async def test_status_reports_offline_syncing_online_pending_and_errors(
    start_server: Callable[..., ServerProcess], make_device: Callable[..., Any]
) -> None:
    """Properties and StatusChanged events follow the connection and the outbox."""
    port = free_port()
    phone = await make_device(f"http://127.0.0.1:{port}")
    events = record_events(phone)
    await phone.collection("todos").set("t1", {"a": 1})
    await phone.collection("todos").set("t2", {"a": 2})
    await wait_status(phone, lambda status: status.last_error is not None, 10)
    assert phone.status.state == "offline" and not phone.online and phone.pending == 2
    start_server(port=port)
    async with asyncio.timeout(30):
        await phone.wait_synced()
    states = [e.status.state for e in events if isinstance(e, StatusChanged)]
    assert states[-1] == "online" and "syncing" in states and "offline" in states
    assert phone.pending == 0 and phone.status.last_error is None and phone.online


@pytest.mark.parametrize(
    ("options", "settle"),
    [
        # After a failure the client would wait a minute of backoff.
        ({"backoff_base": 60.0, "backoff_cap": 60.0, "breaker_failures": 100}, 0.0),
        # Past a short backoff, the only node's breaker is open for a minute: the client
        # waits on the breaker, and sync_now must let a probe through now.
        (
            {
                "backoff_base": 0.05,
                "backoff_cap": 0.05,
                "breaker_failures": 1,
                "breaker_reset": 60.0,
            },
            0.3,
        ),
    ],
    ids=["backoff", "open-breaker"],
)
async def test_sync_now_cuts_a_wait_short(
    start_server: Callable[..., ServerProcess],
    make_device: Callable[..., Any],
    options: dict[str, float],
    settle: float,
) -> None:
    """The network is back (the app calls sync_now): the client syncs at once, whether it was
    waiting out a backoff or an open circuit breaker."""
    port = free_port()
    phone = await make_device(f"http://127.0.0.1:{port}", **options)
    await phone.collection("todos").set("t1", {"a": 1})
    await wait_status(phone, lambda status: status.last_error is not None, 10)
    await asyncio.sleep(settle)
    start_server(port=port)
    phone.sync_now()
    async with asyncio.timeout(10):
        await phone.wait_synced()


async def test_sync_now_during_a_failing_attempt_cuts_the_next_backoff_short(
    start_server: Callable[..., ServerProcess], make_device: Callable[..., Any]
) -> None:
    """The network comes back while a request still hangs on a dead link: the app's sync_now
    then must not be forgotten when that request fails, or the client sleeps a whole backoff
    (up to a minute here) with the node already back."""
    port = free_port()
    hanging: list[asyncio.StreamWriter] = []
    accepted = asyncio.Event()

    async def never_answer(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        hanging.append(writer)
        accepted.set()

    blackhole = await asyncio.start_server(never_answer, "127.0.0.1", port)
    phone = await make_device(
        f"http://127.0.0.1:{port}",
        backoff_base=60.0,
        backoff_cap=60.0,
        breaker_failures=100,
        request_timeout=30.0,
    )
    await phone.collection("todos").set("t1", {"a": 1})
    async with asyncio.timeout(10):
        await accepted.wait()  # the sync loop's request now hangs
    blackhole.close()
    start_server(port=port)
    phone.sync_now()  # "the network is back", while the request still hangs
    for writer in hanging:
        writer.transport.abort()  # the hanging request fails now, after sync_now
    async with asyncio.timeout(10):
        await phone.wait_synced()
