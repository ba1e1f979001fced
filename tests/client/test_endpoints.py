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


def three_regions(clock: FakeClock, **kwargs: Any) -> EndpointPool:
    return EndpointPool(
        [],
        3,
        5.0,
        clock,
        regions={"far": ["http://far"], "near": ["http://near"], "mid": ["http://mid"]},
        **kwargs,
    )


def test_a_new_device_picks_the_nearest_measured_region() -> None:
    """Probed once each, the region with the lowest latency wins whatever the app's order."""
    pool = three_regions(FakeClock())
    far, near, mid = pool.endpoints
    for endpoint, latency in ((far, 0.2), (near, 0.01), (mid, 0.1)):
        pool.succeeded(endpoint, latency)
    assert pool.choose() is near


def test_returns_home_only_after_settling_and_never_flaps() -> None:
    """After a failover, home is rejoined once it answered 3 probes and is faster by the margin;
    two regions of similar latency never trade places."""
    clock = FakeClock()
    pool = three_regions(clock)
    far, near, mid = pool.endpoints
    for endpoint, latency in ((far, 0.2), (near, 0.01), (mid, 0.1)):
        pool.succeeded(endpoint, latency)
    assert pool.choose() is near
    for _ in range(3):
        pool.failed(near)
    assert pool.choose() is mid  # failover to the next nearest, not the far one
    clock.now = 6.0
    pool.succeeded(near, 0.01)  # back: one probe is not enough
    pool.succeeded(near, 0.01)
    assert pool.choose() is mid
    pool.succeeded(near, 0.01)
    assert pool.choose() is near  # settled and much faster: home again
    for _ in range(10):  # mid keeps answering a little slower: no move back
        pool.succeeded(mid, 0.012)
        pool.succeeded(near, 0.011)
        assert pool.choose() is near


def test_a_faster_region_within_the_margin_is_not_worth_a_move() -> None:
    """Hysteresis: 20 % faster is inside the 30 % margin."""
    pool = three_regions(FakeClock())
    _, near, mid = pool.endpoints
    pool.succeeded(mid, 0.1)
    pool.current = mid
    for _ in range(5):
        pool.succeeded(near, 0.08)
    assert pool.choose() is mid
    for _ in range(5):
        pool.succeeded(near, 0.05)
    assert pool.choose() is near


def test_directory_names_regions_adds_endpoints_and_standby_is_left() -> None:
    """``GET /v1/regions`` groups a known URL, adds unknown ones, and a standby region is left
    for a writable one while one works."""
    pool = EndpointPool(["http://eu.example"], clock=FakeClock())
    eu = pool.choose()
    assert eu is not None
    pool.succeeded(eu, 0.01)
    added = pool.learn(
        {
            "regions": [
                {"name": "eu", "state": "standby", "endpoints": ["http://eu.example/"]},
                {"name": "us", "state": "active", "endpoints": ["http://us.example", "ftp://x"]},
                {"name": 3, "state": "active", "endpoints": ["http://bad"]},
            ]
        }
    )
    assert [e.url for e in added] == ["http://us.example"]
    assert pool.region_of("http://eu.example") == "eu"
    assert pool.region_of("http://us.example") == "us"
    assert pool.choose().url == "http://us.example"  # type: ignore[union-attr]
    pool.region_states["eu"] = "active"
    pool.region_states["us"] = "standby"
    pool.failed(pool.endpoints[1])
    assert pool.choose() is eu


def test_only_other_regions_are_probed_one_endpoint_each() -> None:
    """The current region is measured by its requests; open breakers wait their turn."""
    clock = FakeClock()
    pool = EndpointPool(
        [],
        1,
        5.0,
        clock,
        regions={"a": ["http://a1", "http://a2"], "b": ["http://b1", "http://b2"]},
    )
    pool.current = pool.endpoints[0]
    [first] = pool.to_probe()
    assert first.region == "b"
    pool.failed(first)
    [second] = pool.to_probe()
    assert second.region == "b" and second is not first
    pool.failed(second)
    assert pool.to_probe() == []
    clock.now = 5.0
    assert pool.to_probe() == [first]


def test_a_failed_health_check_before_switching_opens_the_breaker_at_once() -> None:
    """In a region loss the region's other endpoints cost one try each, then another region."""
    pool = EndpointPool(
        [], 3, 5.0, FakeClock(), regions={"a": ["http://a1", "http://a2"], "b": ["http://b1"]}
    )
    first = pool.choose()
    assert first is not None and first.region == "a"
    sibling = next(e for e in pool.endpoints if e.region == "a" and e is not first)
    for _ in range(3):
        pool.failed(first)
    assert pool.choose() is sibling and pool.has_alternative()
    pool.failed(sibling, health_check=True)
    assert pool.choose() is pool.endpoints[2]


def test_the_devices_of_a_region_spread_over_its_endpoints() -> None:
    """Each pool takes a region's endpoints in its own order (seeded), the app's order of
    regions kept: many devices land on every node of their region, not all on the first."""
    regions = {"a": ["http://a1", "http://a2"], "b": ["http://b1", "http://b2"]}
    chosen = set()
    for seed in range(40):
        pool = EndpointPool([], regions=regions, spread_seed=seed)
        endpoint = pool.choose()
        assert endpoint is not None and endpoint.region == "a"
        chosen.add(endpoint.url)
        assert {e.region for e in pool.to_probe()} == {"b"}
    assert chosen == {"http://a1", "http://a2"}


def test_the_probed_endpoint_of_a_region_is_the_one_the_device_would_choose() -> None:
    """The prober asks the endpoint a failover would pick, so its answer can vouch for it."""
    for seed in range(10):
        pool = EndpointPool(
            [], regions={"a": ["http://a"], "b": ["http://b1", "http://b2"]}, spread_seed=seed
        )
        a = pool.choose()
        assert a is not None
        [probed] = pool.to_probe()
        for endpoint in pool.endpoints:
            pool.succeeded(endpoint, 0.01)
        pool.failed(a, health_check=True)
        assert pool.choose() is probed


def test_a_fresh_answer_vouches_for_an_endpoint_until_it_fails_or_ages() -> None:
    """A probe or call that succeeded within the window stands for a health check; a failure
    since, an open breaker or an older answer does not."""
    clock = FakeClock()
    pool = EndpointPool(["http://a", "http://b"], 3, 5.0, clock)
    a, b = pool.endpoints
    assert not pool.vouched_for(b, 1.0)  # never answered
    pool.succeeded(b, 0.02)
    clock.now = 1.0
    assert pool.vouched_for(b, 1.0)
    clock.now = 1.5
    assert not pool.vouched_for(b, 1.0)  # too old
    pool.succeeded(a, 0.02)
    pool.failed(a)
    assert not pool.vouched_for(a, 1.0)  # failed since


def test_another_healthy_region_makes_one_failure_enough() -> None:
    """Only a region that answered its last probe counts; an unprobed one does not."""
    pool = EndpointPool([], 3, 5.0, FakeClock(), regions={"a": ["http://a"], "b": ["http://b"]})
    a, b = pool.endpoints
    assert pool.choose() is a
    assert not pool.healthy_elsewhere(a)  # b never answered
    pool.succeeded(b, 0.05)
    assert pool.healthy_elsewhere(a)
    pool.failed(a, health_check=pool.healthy_elsewhere(a))
    assert pool.choose() is b


def test_patience_is_the_failover_timeout_only_when_there_is_another_region() -> None:
    """With one region a request waits its full timeout; with another region it waits the
    failover timeout, or four times its region's latency if longer."""
    single = EndpointPool(["http://a1", "http://a2"], regions={"a": ["http://a1", "http://a2"]})
    assert single.patience(single.endpoints[0]) is None
    pool = EndpointPool(
        [], 3, 5.0, FakeClock(), regions={"a": ["http://a"], "b": ["http://b"]},
        failover_timeout=1.0,
    )  # fmt: skip
    a, _ = pool.endpoints
    assert pool.choose() is a
    assert pool.patience(a) == 1.0
    pool.succeeded(a, 0.5)
    assert pool.patience(a) == 2.0


def test_an_unanswered_call_counts_as_slow_so_the_device_does_not_move_straight_back() -> None:
    """A silent region's wait enters its latency: after failing over, the next probe that
    answers fast does not make it look nearer than the region the device moved to."""
    clock = FakeClock()
    pool = EndpointPool([], 3, 0.5, clock, regions={"a": ["http://a"], "b": ["http://b"]})
    a, b = pool.endpoints
    pool.succeeded(a, 0.01)
    pool.succeeded(b, 0.03)
    assert pool.choose() is a
    pool.failed(a, health_check=True, waited=1.0)
    assert pool.choose() is b
    clock.now = 1.0
    for _ in range(3):
        pool.succeeded(a, 0.01)
        pool.succeeded(b, 0.03)
    assert pool.better_region() is None and pool.choose() is b
