"""Endpoint failover: breakers skip dead endpoints, the fastest healthy one is preferred."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from breakwater.client.endpoints import EndpointPool
from tests.client.conftest import server_doc
from tests.conftest import ServerProcess, free_port


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_sticks_with_the_current_endpoint_while_it_works() -> None:
    """A working endpoint is kept even if another measures faster (no flapping)."""
    pool = EndpointPool(["http://a", "http://b"], clock=FakeClock())
    first = pool.choose()
    assert first is not None and first.url == "http://a"
    pool.succeeded(first, 0.5)
    pool.succeeded(pool.endpoints[1], 0.01)
    assert pool.choose() is first


def test_fails_over_after_the_breaker_opens_and_prefers_lower_latency() -> None:
    """Three failures open a's breaker; the pool moves to the fastest closed endpoint."""
    clock = FakeClock()
    pool = EndpointPool(["http://a", "http://b", "http://c"], 3, 5.0, clock)
    a, b, c = pool.endpoints
    pool.succeeded(b, 0.2)
    pool.succeeded(c, 0.05)
    assert pool.choose() is a
    for _ in range(3):
        pool.failed(a)
    assert pool.choose() is c
    clock.now = 6.0  # a's breaker half-opens, but c works: stay on c
    assert pool.choose() is c


def test_all_open_means_none_until_a_probe_is_due() -> None:
    """With every breaker open the pool says when to retry."""
    clock = FakeClock()
    pool = EndpointPool(["http://a"], 1, 2.0, clock)
    pool.failed(pool.endpoints[0])
    assert pool.choose() is None and pool.retry_in() == 2.0
    clock.now = 2.0
    assert pool.choose() is pool.endpoints[0]


@pytest.mark.slow
async def test_client_fails_over_to_a_live_endpoint(
    start_server: Callable[..., ServerProcess], make_device: Callable[..., Any]
) -> None:
    """The first endpoint is down: writes still reach the second one."""
    live = start_server()
    dead = f"http://127.0.0.1:{free_port()}"
    phone = await make_device([dead, live.url], breaker_failures=1, breaker_reset=5.0)
    await phone.collection("todos").set("t1", {"title": "via the second region"})
    async with asyncio.timeout(30):
        await phone.wait_synced()
    assert server_doc(live.url, "todos", "t1") is not None
    assert phone.status.endpoint == live.url
