"""cursor_expired: a device whose cursor fell behind the retention horizon resyncs in full and
keeps its outbox (in-process node through httpx.ASGITransport)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from breakwater.client import Client, Event, PageApplied, ResyncStarted
from breakwater.core.cursor import encode
from breakwater.server.app import compact
from tests.conftest import origin_of


def device(path: Path, node: httpx.AsyncClient) -> Client:
    return Client(
        ["http://node"],
        path,
        http_transport=httpx.ASGITransport(app=node.app),  # type: ignore[attr-defined]
        transports=("long_poll",),
        backoff_cap=0.5,
    )


async def test_expired_cursor_resyncs_and_keeps_pending_writes(
    tmp_path: Path, make_client: Callable[..., Any]
) -> None:
    """Purged documents vanish, new ones arrive, and the offline write is still delivered."""
    node: httpx.AsyncClient = await make_client()
    async with device(tmp_path / "d.db", node) as phone:
        await phone.collection("todos").set("a", {"v": 1})
        await phone.collection("todos").set("b", {"v": 2})
        async with asyncio.timeout(20):
            await phone.wait_synced()
    # While the phone is closed: b is deleted, c written, and retention purges the history.
    assert (await node.delete("/v1/collections/todos/docs/b")).status_code == 200
    assert (await node.put("/v1/collections/todos/docs/c", json={"v": 3})).status_code == 201
    await compact(node.app.state.node, horizon_ms=0, now_ms=int(time.time() * 1000) + 60_000)  # type: ignore[attr-defined]
    expired = await node.get("/v1/sync/pull", params={"cursor": encode({origin_of(node): 2})})
    assert (expired.status_code, expired.json()["type"]) == (410, "cursor_expired")

    reopened = device(tmp_path / "d.db", node)
    await reopened.open()
    try:
        todos = reopened.collection("todos")
        await todos.set("d", {"v": 4})  # pending when the resync starts
        async with asyncio.timeout(20):
            await reopened.wait_synced()
        docs = {d.id: d.data for d in await todos.query()}
        assert docs == {"a": {"v": 1}, "c": {"v": 3}, "d": {"v": 4}}
        server = (await node.get("/v1/collections/todos/docs/d")).json()
        assert server["data"] == {"v": 4}
    finally:
        await reopened.aclose()


async def test_resync_is_told_by_events_with_each_page_s_cursor_and_documents(
    tmp_path: Path, make_client: Callable[..., Any]
) -> None:
    """ResyncStarted names the 410; the page that ends the resync says so, names the document
    the resync dropped as None and the ones it brought with their data, and its cursor is the
    device's."""
    node: httpx.AsyncClient = await make_client()
    async with device(tmp_path / "d.db", node) as phone:
        await phone.collection("todos").set("a", {"v": 1})
        await phone.collection("todos").set("b", {"v": 2})
        async with asyncio.timeout(20):
            await phone.wait_synced()
    assert (await node.delete("/v1/collections/todos/docs/b")).status_code == 200
    await compact(node.app.state.node, horizon_ms=0, now_ms=int(time.time() * 1000) + 60_000)  # type: ignore[attr-defined]

    reopened = device(tmp_path / "d.db", node)
    events: list[Event] = []
    reopened.on(events.append)
    await reopened.open()
    try:
        async with asyncio.timeout(20):
            await reopened.wait_synced()
    finally:
        await reopened.aclose()
    told = [e for e in events if isinstance(e, ResyncStarted | PageApplied)]
    assert told[0] == ResyncStarted("cursor_expired")
    ending = next(e for e in told if isinstance(e, PageApplied) and e.resynced)
    assert ending.documents == {("todos", "a"): {"v": 1}, ("todos", "b"): None}
    pages = [e for e in told if isinstance(e, PageApplied)]
    assert pages[-1].cursor == encode({origin_of(node): 3})
