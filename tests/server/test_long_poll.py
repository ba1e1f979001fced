"""``GET /v1/sync/pull?wait=``: a long-poll ends as soon as a matching change commits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx

from breakwater.core import cursor as cursor_mod
from breakwater.core.engine import Engine
from breakwater.core.hlc import HybridClock
from breakwater.core.mutation import Mutation
from breakwater.storage.sqlite import SqliteStore
from tests.conftest import origin_of


async def test_a_long_poll_ends_right_after_a_commit(client: httpx.AsyncClient) -> None:
    """The waiting pull answers within a fraction of a second of the write, with the change."""
    poll = asyncio.ensure_future(client.get("/v1/sync/pull", params={"wait": 20}))
    await asyncio.sleep(0.2)
    assert not poll.done()
    written = time.monotonic()
    await client.put("/v1/collections/todos/docs/t1", json={"a": 1})
    response = await asyncio.wait_for(poll, 5)
    assert time.monotonic() - written < 0.5
    assert [c["id"] for c in response.json()["changes"]] == ["t1"]


async def test_a_change_elsewhere_does_not_end_a_filtered_long_poll(
    client: httpx.AsyncClient,
) -> None:
    """A write to another collection keeps the pull waiting; its cursor still moves past it."""
    started = time.monotonic()
    poll = asyncio.ensure_future(
        client.get("/v1/sync/pull", params={"wait": 1, "collections": "todos"})
    )
    await asyncio.sleep(0.1)
    await client.put("/v1/collections/notes/docs/n1", json={"a": 1})
    body = (await asyncio.wait_for(poll, 5)).json()
    assert time.monotonic() - started >= 0.9
    assert body["changes"] == []
    assert cursor_mod.decode(body["cursor"]) == {origin_of(client): 1}


async def test_draining_ends_waiting_long_polls_at_once(client: httpx.AsyncClient) -> None:
    """``start_draining`` makes every waiting pull answer now, empty."""
    poll = asyncio.ensure_future(client.get("/v1/sync/pull", params={"wait": 30}))
    await asyncio.sleep(0.2)
    client.app.state.node.start_draining()  # type: ignore[attr-defined]
    response = await asyncio.wait_for(poll, 2)
    assert response.status_code == 200
    assert response.json()["changes"] == []


async def test_a_commit_from_another_writer_of_the_file_is_seen_by_polling(
    make_client: Callable[..., Any], tmp_path: Any
) -> None:
    """A writer the node's bus does not hear (another process) still ends the wait, later."""
    client = await make_client()
    node = client.app.state.node
    other = SqliteStore(node.store.path, Engine("local", HybridClock("other")))
    await other.open()
    try:
        poll = asyncio.ensure_future(client.get("/v1/sync/pull", params={"wait": 20}))
        await asyncio.sleep(0.2)
        written = time.monotonic()
        await other.apply([Mutation("o1", "todos", "x", "set", {"v": 1})])
        response = await asyncio.wait_for(poll, 5)
    finally:
        await other.aclose()
    assert time.monotonic() - written < 2.5
    assert [c["mutation_id"] for c in response.json()["changes"]] == ["o1"]
