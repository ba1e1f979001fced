"""Real processes: no acknowledged write is lost to SIGKILL (I1), retries after a restart apply
once (I2), and SIGTERM drains."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.conftest import ServerProcess

pytestmark = pytest.mark.slow


def mutation(mid: str, doc_id: str) -> dict[str, Any]:
    """An increment of the document's counter and a field naming the mutation."""
    return {
        "mutation_id": mid,
        "collection": "load",
        "id": doc_id,
        "op": "increment",
        "data": {"n": 1},
    }


async def push_until_killed(url: str, acked: list[str], enough: asyncio.Event) -> None:
    """One pusher: batches of 1-4 increments until the node stops answering."""
    async with httpx.AsyncClient(base_url=url, timeout=5) as http:
        while True:
            batch = [
                mutation(uuid.uuid4().hex, f"d{len(acked) % 50}") for _ in range(1 + len(acked) % 4)
            ]
            try:
                response = await http.post("/v1/sync/push", json={"mutations": batch})
            except httpx.HTTPError:
                return
            if response.status_code != 200:
                return
            for result in response.json()["results"]:
                assert result["status"] == "applied"
                acked.append(result["mutation_id"])
            if len(acked) >= 1500:
                enough.set()


async def feed_mutation_ids(url: str) -> list[str]:
    """Every mutation id in the node's feed, from the empty cursor to the end."""
    ids: list[str] = []
    cursor = ""
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        while True:
            page = (
                await http.get("/v1/sync/pull", params={"cursor": cursor, "limit": 1000})
            ).json()
            ids += [change["mutation_id"] for change in page["changes"]]
            cursor = page["cursor"]
            if not page["has_more"]:
                return ids


async def counters(url: str) -> int:
    """The sum of every load document's counter."""
    total: int = 0
    async with httpx.AsyncClient(base_url=url, timeout=10) as http:
        after = None
        while True:
            params: dict[str, Any] = {"limit": 1000}
            if after:
                params["after"] = after
            page = (await http.get("/v1/collections/load/docs", params=params)).json()
            total += sum(doc["data"]["n"] for doc in page["docs"])
            after = page["next"]
            if after is None:
                return total


async def test_sigkill_under_load_loses_no_acknowledged_write(
    start_server: Callable[..., ServerProcess],
) -> None:
    """I1: 16 concurrent pushers, SIGKILL mid-load, restart: every acked mutation is there."""
    server = start_server()
    acked: list[str] = []
    enough = asyncio.Event()
    pushers = [
        asyncio.ensure_future(push_until_killed(server.url, acked, enough)) for _ in range(16)
    ]
    await asyncio.wait_for(enough.wait(), 60)
    killer = threading.Thread(target=server.kill)
    killer.start()
    await asyncio.gather(*pushers)
    killer.join()
    restarted = start_server(port=int(server.url.rsplit(":", 1)[1]))
    present = set(await feed_mutation_ids(restarted.url))
    lost = [mid for mid in acked if mid not in present]
    assert not lost, f"{len(lost)} acknowledged mutations lost"
    assert await counters(restarted.url) >= len(acked)


async def test_retries_after_restart_apply_once(start_server: Callable[..., ServerProcess]) -> None:
    """I2: the same pushes repeated concurrently and after a restart change nothing more."""
    server = start_server()
    batch = [mutation(f"retry-{i}", f"d{i % 5}") for i in range(40)]
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        first = await asyncio.gather(
            *(http.post("/v1/sync/push", json={"mutations": batch}) for _ in range(8))
        )
    statuses = [r["status"] for response in first for r in response.json()["results"]]
    assert statuses.count("applied") == 40
    assert statuses.count("duplicate") == 40 * 7
    assert server.terminate() == 0
    restarted = start_server(port=int(server.url.rsplit(":", 1)[1]))
    async with httpx.AsyncClient(base_url=restarted.url, timeout=10) as http:
        again = (await http.post("/v1/sync/push", json={"mutations": batch})).json()
    assert {r["status"] for r in again["results"]} == {"duplicate"}
    assert await counters(restarted.url) == 40


def test_sigterm_drains_then_exits_cleanly(start_server: Callable[..., ServerProcess]) -> None:
    """SIGTERM: /readyz turns 503, long-polls end early, writes still work during the grace
    period, and the process exits 0 after closing the store."""
    server = start_server(None, "--drain-grace", "3")
    with httpx.Client(base_url=server.url, timeout=10) as http:
        long_poll: dict[str, Any] = {}

        def poll() -> None:
            started = time.monotonic()
            with contextlib.suppress(httpx.HTTPError):
                params: dict[str, str | int] = {"wait": 30, "collections": "quiet"}
                long_poll["status"] = http.get("/v1/sync/pull", params=params).status_code
            long_poll["seconds"] = time.monotonic() - started

        poller = threading.Thread(target=poll)
        poller.start()
        time.sleep(0.2)
        server.process.send_signal(15)
        time.sleep(0.3)
        ready = http.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["status"] == "draining"
        poller.join(timeout=20)
        assert long_poll.get("status") == 200
        assert long_poll["seconds"] < 2, "a long-poll must end early when the node drains"
        assert http.put("/v1/collections/t/docs/a", json={"during": "drain"}).status_code == 201
    assert server.process.wait(timeout=20) == 0
    events = [json.loads(line).get("event") for line in server.log.read_text().splitlines()]
    assert "node_stopped" in events
