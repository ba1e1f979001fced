"""Process faults on real ``breakwater serve`` nodes: kill, pause, restart, and clock skew."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from breakwater.chaos.processes import NodeFailed, NodeProcess
from breakwater.core import hlc
from tests.conftest import free_port

pytestmark = pytest.mark.slow


@pytest.fixture
async def make_node(tmp_path: Path) -> AsyncIterator[Callable[..., NodeProcess]]:
    """Build nodes over one shared data directory; each still running is stopped at teardown."""
    nodes: list[NodeProcess] = []

    def make(name: str = "n1", **kwargs: Any) -> NodeProcess:
        node = NodeProcess(
            name, free_port(), tmp_path / "data", log=tmp_path / f"{name}.log", **kwargs
        )
        nodes.append(node)
        return node

    yield make
    for node in nodes:
        await node.stop()


def increment(mid: str) -> dict[str, object]:
    return {"mutation_id": mid, "collection": "c", "id": "x", "op": "increment", "data": {"n": 1}}


async def test_kill_then_restart_keeps_acknowledged_writes(
    make_node: Callable[..., NodeProcess],
) -> None:
    """SIGKILL after an ack, restart on the same port: the write is there, the PID is new."""
    node = make_node()
    await node.start()
    first_pid = node.pid
    async with httpx.AsyncClient(base_url=node.url, timeout=5) as http:
        pushed = await http.post("/v1/sync/push", json={"mutations": [increment("k1")]})
        assert pushed.json()["results"][0]["status"] == "applied"
        await node.kill()
        assert not node.running
        with pytest.raises(httpx.ConnectError):
            await http.get("/healthz")
        await node.restart()
        assert node.pid != first_pid
        assert (await http.get("/v1/collections/c/docs/x")).json()["data"] == {"n": 1}


async def test_pause_freezes_the_node_and_resume_thaws_it(
    make_node: Callable[..., NodeProcess],
) -> None:
    """SIGSTOP: requests time out; SIGCONT: the node answers again."""
    node = make_node()
    await node.start()
    async with httpx.AsyncClient(base_url=node.url, timeout=0.5) as http:
        node.pause()
        with pytest.raises(httpx.TimeoutException):
            await http.get("/healthz")
        node.resume()
        assert (await http.get("/healthz")).status_code == 200


async def test_stop_drains_and_exits_zero(make_node: Callable[..., NodeProcess]) -> None:
    """stop() sends SIGTERM (even to a paused node) and the node exits cleanly."""
    node = make_node()
    await node.start()
    node.pause()
    assert await node.stop() == 0
    assert not node.running


async def test_two_nodes_share_one_store(make_node: Callable[..., NodeProcess]) -> None:
    """Two nodes on one SQLite file: a write through one is read through the other."""
    first, second = make_node("n1"), make_node("n2")
    await asyncio.gather(first.start(), second.start())
    async with httpx.AsyncClient(timeout=5) as http:
        await http.post(f"{first.url}/v1/sync/push", json={"mutations": [increment("s1")]})
        read = await http.get(f"{second.url}/v1/collections/c/docs/x")
        assert read.json()["data"] == {"n": 1}
        assert read.json()["hlc"].endswith("-n1")


async def test_a_node_that_cannot_start_fails_with_its_log(
    make_node: Callable[..., NodeProcess],
) -> None:
    """A bad setting: start() raises NodeFailed with the node's error in the message."""
    node = make_node(env={"BREAKWATER_MAX_CLOCK_SKEW": "-1"})
    with pytest.raises(NodeFailed, match="max_clock_skew"):
        await node.start()


async def test_clock_offset_skews_the_node_and_its_skew_check_reacts(
    make_node: Callable[..., NodeProcess],
) -> None:
    """BREAKWATER_CLOCK_OFFSET_MS=-120000: a stamp at true time is 'too far ahead': clock_skew,
    and the node's own clock in the problem is two minutes behind."""
    node = make_node(env={"BREAKWATER_CLOCK_OFFSET_MS": "-120000"})
    await node.start()
    now = hlc.system_ms()
    stamped = {**increment("skew1"), "hlc": hlc.encode(now, 0, "phone")}
    async with httpx.AsyncClient(base_url=node.url, timeout=5) as http:
        refused = await http.post("/v1/sync/push", json={"mutations": [stamped]})
        assert refused.status_code == 400
        problem = refused.json()
        assert problem["type"] == "clock_skew"
        assert abs(hlc.decode(problem["hlc"]).wall_ms - (now - 120_000)) < 10_000
        assert (await http.get("/v1/collections/c/docs/x")).status_code == 404
        unstamped = await http.post("/v1/sync/push", json={"mutations": [increment("skew2")]})
        assert unstamped.json()["results"][0]["status"] == "applied"
        assert hlc.decode(unstamped.json()["results"][0]["hlc"]).wall_ms < time.time() * 1000 - 1e5
