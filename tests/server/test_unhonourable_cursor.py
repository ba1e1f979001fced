"""Cursors a node cannot honour get ``410 cursor_unknown`` on every pull path (ADR 0018)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from breakwater.core import cursor as cursor_mod
from breakwater.core.engine import Engine
from breakwater.core.hlc import HybridClock
from breakwater.core.mutation import Mutation
from breakwater.storage.sqlite import SqliteStore
from tests.conftest import origin_of

PULLS = [
    pytest.param({}, id="pull"),
    pytest.param({"wait": "5"}, id="long-poll"),
    pytest.param({"collections": "todos"}, id="scoped"),
]


async def written(client: httpx.AsyncClient, *ids: str) -> str:
    """Write ``ids`` to ``todos`` and return the cursor of a full pull."""
    for doc_id in ids:
        assert (await client.put(f"/v1/collections/todos/docs/{doc_id}", json={})).is_success
    return str((await client.get("/v1/sync/pull")).json()["cursor"])


@pytest.mark.parametrize("params", PULLS)
async def test_a_cursor_from_another_deployment_is_refused(
    make_client: Callable[..., Any], params: dict[str, str], tmp_path: Path
) -> None:
    """Same region name, another store: its cursor names an origin this node never had."""
    mine, theirs = await make_client(), await make_client(data=tmp_path / "theirs")
    await written(mine, "a")
    foreign = await written(theirs, "x", "y")
    response = await mine.get("/v1/sync/pull", params={"cursor": foreign, **params})
    assert response.status_code == 410
    assert response.headers["content-type"] == "application/problem+json"
    assert (response.json()["type"], response.json()["reason"]) == (
        "cursor_unknown",
        "unknown_origin",
    )


@pytest.mark.parametrize("params", PULLS)
async def test_a_cursor_ahead_of_the_head_is_refused(
    client: httpx.AsyncClient, params: dict[str, str]
) -> None:
    """A cursor past this node's committed head for its own origin would hide later writes."""
    await written(client, "a", "b")
    ahead = cursor_mod.encode({origin_of(client): 5})
    response = await client.get("/v1/sync/pull", params={"cursor": ahead, **params})
    assert response.status_code == 410
    assert (response.json()["type"], response.json()["reason"]) == ("cursor_unknown", "ahead")


async def test_a_cursor_at_the_head_is_honoured(client: httpx.AsyncClient) -> None:
    """The head itself (and anything behind it) is a cursor like any other."""
    cursor = await written(client, "a", "b")
    await written(client, "c")
    page = (await client.get("/v1/sync/pull", params={"cursor": cursor})).json()
    assert [change["id"] for change in page["changes"]] == ["c"]


async def test_a_cursor_of_the_origin_before_incarnations_is_honoured_within_its_head(
    client: httpx.AsyncClient,
) -> None:
    """A store from before incarnations wrote under the bare region: cursors naming it read on
    where they are within its head, and are refused where they are ahead."""
    path = client.app.state.node.store.path  # type: ignore[attr-defined]
    legacy = SqliteStore(path, Engine("local", HybridClock("legacy")))
    await legacy.open()
    legacy.engine.origin = "local"  # as every store wrote before ADR 0018
    try:
        await legacy.apply([Mutation(f"old{i}", "todos", f"o{i}", "set", {}) for i in range(2)])
    finally:
        await legacy.aclose()
    await written(client, "new")
    within = await client.get("/v1/sync/pull", params={"cursor": cursor_mod.encode({"local": 1})})
    assert [change["id"] for change in within.json()["changes"]] == ["o1", "new"]
    ahead = await client.get("/v1/sync/pull", params={"cursor": cursor_mod.encode({"local": 3})})
    assert (ahead.status_code, ahead.json()["reason"]) == (410, "ahead")
