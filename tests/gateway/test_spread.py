"""Through a real HAProxy in front of three real nodes: requests spread as the strategy says,
and a node that is down or not ready leaves the pool through the ``/readyz`` checks."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable

import httpx
import pytest

from tests.gateway.conftest import Region, served_by

pytestmark = pytest.mark.slow


def spread(url: str, requests: int) -> Counter[str]:
    """Which server answered each of ``requests`` sequential reads, each on a new connection."""
    seen: Counter[str] = Counter()
    for _ in range(requests):
        response = httpx.get(f"{url}/v1/collections/notes/docs/missing", timeout=10)
        assert response.status_code == 404
        seen[served_by(response)] += 1
    return seen


def test_round_robin_gives_each_node_its_turn(start_region: Callable[..., Region]) -> None:
    """60 requests over 3 nodes: 20 each."""
    region = start_region(3, strategy="roundrobin")
    assert spread(region.url, 60) == {"n1": 20, "n2": 20, "n3": 20}


def test_weighted_round_robin_follows_the_weights(start_region: Callable[..., Region]) -> None:
    """Weights 1, 2, 3: 60 requests split 10, 20, 30."""
    region = start_region(3, strategy="weighted", weights=(1, 2, 3))
    assert spread(region.url, 60) == {"n1": 10, "n2": 20, "n3": 30}


async def test_least_connections_sends_new_requests_to_the_idle_node(
    start_region: Callable[..., Region],
) -> None:
    """Two long-polls hold n1 and n2 (one each): the next requests all go to n3."""
    region = start_region(3, strategy="leastconn")
    async with httpx.AsyncClient(base_url=region.url, timeout=20) as http:
        cursor = (await http.get("/v1/sync/pull")).json()["cursor"]
        polls = [
            asyncio.ensure_future(http.get("/v1/sync/pull", params={"cursor": cursor, "wait": 5}))
            for _ in range(2)
        ]
        await asyncio.sleep(0.5)  # both long-polls are waiting on their nodes
        quick = [served_by(await http.get("/healthz")) for _ in range(12)]
        held = {served_by(await poll) for poll in polls}
    assert len(held) == 2
    (idle,) = {"n1", "n2", "n3"} - held
    assert quick == [idle] * 12


def test_a_killed_node_is_ejected_and_its_share_goes_to_the_others(
    start_region: Callable[..., Region],
) -> None:
    """SIGKILL n2: HAProxy marks it DOWN within a few checks and no request fails after that."""
    region = start_region(3, strategy="roundrobin")
    region.nodes["n2"].kill()
    started = time.monotonic()
    region.wait_state("n2", "DOWN", seconds=5)
    assert time.monotonic() - started < 5
    assert spread(region.url, 40) == {"n1": 20, "n3": 20}


def test_a_node_not_ready_leaves_the_pool_and_returns(
    start_region: Callable[..., Region],
) -> None:
    """A node stopped (SIGSTOP: its checks time out) is DOWN; resumed, it is UP and served."""
    region = start_region(2, strategy="roundrobin")
    process = region.nodes["n1"].process
    process.send_signal(19)  # SIGSTOP
    try:
        region.wait_state("n1", "DOWN", seconds=5)
        assert spread(region.url, 10) == {"n2": 10}
    finally:
        process.send_signal(18)  # SIGCONT
    region.wait_state("n1", "UP", seconds=5)
    assert spread(region.url, 10) == {"n1": 5, "n2": 5}
