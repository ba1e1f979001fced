"""Rate limits that know who is asking: per account and API key, per address only without a
credential, failed sign-ins that cannot lock an owner out, and one limit for a region's nodes."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pyotp
import pytest
from fastapi import FastAPI

from breakwater.server.node import Node
from tests.auth.conftest import FAST_HASH, User, sign_up
from tests.forwarder import Forwarder
from tests.services import REDIS_URL, require_service

DOC = "/v1/collections/a/docs/x"
PASSWORD = "correct horse"
NO_REFILL = 0.0001
"""A refill rate so low that no token comes back during a test."""


def settings(**values: float) -> str:
    """An ``[auth]`` table with cheap hashing and the given limits."""
    return FAST_HASH + "".join(f"{key} = {value}\n" for key, value in values.items())


@pytest.fixture
async def from_address() -> AsyncIterator[Callable[[httpx.AsyncClient, str], httpx.AsyncClient]]:
    """Clients of a node's app that connect from a given address."""
    stack = contextlib.AsyncExitStack()

    def make(client: httpx.AsyncClient, ip: str) -> httpx.AsyncClient:
        app: FastAPI = client.app  # type: ignore[attr-defined]
        transport = httpx.ASGITransport(app=app, client=(ip, 40000))
        other = httpx.AsyncClient(transport=transport, base_url="http://node")
        other.app = app  # type: ignore[attr-defined]
        return other

    def opened(client: httpx.AsyncClient, ip: str) -> httpx.AsyncClient:
        other = make(client, ip)
        stack.push_async_callback(other.aclose)
        return other

    async with stack:
        yield opened


def node_of(client: httpx.AsyncClient) -> Node:
    """The node behind an in-process client."""
    node: Node = client.app.state.node  # type: ignore[attr-defined]
    return node


async def login(client: httpx.AsyncClient, email: str, password: str, **extra: str) -> int:
    """The status of one sign-in."""
    body = {"email": email, "password": password, **extra}
    return (await client.post("/v1/auth/login", json=body)).status_code


# requests of signed-in callers ----------------------------------------------------------------


async def test_a_user_rotating_addresses_keeps_one_limit(
    make_client: Callable[..., Any], from_address: Callable[..., httpx.AsyncClient]
) -> None:
    """The per-account bucket follows the account across addresses."""
    client = await make_client(settings(rate_per_user=NO_REFILL, burst_per_user=3))
    user = await sign_up(client, "rot@example.com")
    statuses = [
        (await from_address(client, f"198.51.100.{i}").get(DOC, headers=user.headers)).status_code
        for i in range(4)
    ]
    assert statuses == [404, 404, 404, 429]


async def test_users_behind_one_address_are_not_limited_by_each_other(
    make_client: Callable[..., Any], from_address: Callable[..., httpx.AsyncClient]
) -> None:
    """Carrier-grade NAT: many signed-in users on one address each get their own limit."""
    client = await make_client(settings(rate_per_ip=NO_REFILL, burst_per_ip=2))
    users = [
        await sign_up(from_address(client, f"203.0.113.{i}"), f"nat{i}@example.com")
        for i in range(5)
    ]
    nat = from_address(client, "192.0.2.1")
    statuses = {(await nat.get(DOC, headers=u.headers)).status_code for u in users for _ in "ab"}
    assert statuses == {404}
    # Callers without a credential on that address still share its bucket.
    anonymous = [(await nat.get(DOC)).status_code for _ in range(3)]
    assert anonymous == [404, 404, 429]


async def test_an_api_key_has_a_limit_of_its_own(
    make_client: Callable[..., Any],
) -> None:
    """A key past ``burst_per_key`` is refused (limit ``key``); another key is not."""
    client = await make_client(
        settings(rate_per_key=NO_REFILL, burst_per_key=2, rate_per_ip=NO_REFILL, burst_per_ip=1)
    )
    auth = node_of(client).auth
    busy = {"Authorization": f"ApiKey {auth.create_key('busy', ['read:*'])[0]}"}
    idle = {"Authorization": f"ApiKey {auth.create_key('idle', ['read:*'])[0]}"}
    statuses = [(await client.get(DOC, headers=busy)).status_code for _ in range(3)]
    assert statuses == [404, 404, 429]
    assert (await client.get(DOC, headers=busy)).json()["limit"] == "key"
    assert (await client.get(DOC, headers=idle)).status_code == 404
    metrics = (await client.get("/metrics")).text
    assert 'breakwater_rate_limited_total{limit="key"}' in metrics


async def test_sign_in_endpoints_are_limited_per_address_whatever_the_credential(
    make_client: Callable[..., Any],
) -> None:
    """A valid access token in the header does not move sign-in off the address's bucket."""
    client = await make_client(
        settings(rate_auth_per_ip=NO_REFILL, burst_auth_per_ip=2, burst_per_ip=100)
    )
    user = await sign_up(client, "hdr@example.com")  # takes one token
    wrong = {"email": "hdr@example.com", "password": "wrong wrong"}
    first = await client.post("/v1/auth/login", json=wrong, headers=user.headers)
    second = await client.post("/v1/auth/login", json=wrong, headers=user.headers)
    assert (first.status_code, second.status_code) == (401, 429)
    assert second.json()["limit"] == "auth"


# failed sign-ins ------------------------------------------------------------------------------


async def test_guessing_from_one_address_is_stopped_and_the_owner_still_signs_in(
    make_client: Callable[..., Any], from_address: Callable[..., httpx.AsyncClient]
) -> None:
    """Past ``burst_signin_failures_per_address`` one address is refused for the account, even
    with the right password; the owner, from an address of their own, is not."""
    client = await make_client(
        settings(
            burst_auth_per_ip=100,
            rate_signin_failures_per_address=NO_REFILL,
            burst_signin_failures_per_address=3,
        )
    )
    await sign_up(client, "victim@example.com")
    attacker = from_address(client, "198.51.100.7")
    guesses = [await login(attacker, "victim@example.com", f"guess {i:04}") for i in range(4)]
    assert guesses == [401, 401, 401, 429]
    assert await login(attacker, "victim@example.com", PASSWORD) == 429
    assert await login(from_address(client, "192.0.2.50"), "victim@example.com", PASSWORD) == 200
    metrics = (await client.get("/metrics")).text
    assert 'breakwater_rate_limited_total{limit="signin_address"}' in metrics


async def test_an_attacker_rotating_addresses_is_stopped_and_a_known_address_is_not(
    make_client: Callable[..., Any], from_address: Callable[..., httpx.AsyncClient]
) -> None:
    """The account-wide bucket stops guesses from ever new addresses (the right password
    included), while the owner signs in from an address they signed in from before."""
    client = await make_client(
        settings(
            burst_auth_per_ip=100,
            rate_signin_failures_per_account=NO_REFILL,
            burst_signin_failures_per_account=5,
        )
    )
    home = from_address(client, "192.0.2.10")
    await sign_up(home, "owner@example.com")
    assert await login(home, "owner@example.com", PASSWORD) == 200  # home is now known
    guesses = [
        await login(from_address(client, f"198.51.100.{i}"), "owner@example.com", f"guess {i:03}")
        for i in range(6)
    ]
    assert guesses == [401] * 5 + [429]
    assert await login(from_address(client, "198.51.100.99"), "owner@example.com", PASSWORD) == 429
    assert [await login(home, "owner@example.com", PASSWORD) for _ in range(3)] == [200] * 3
    metrics = (await client.get("/metrics")).text
    assert 'breakwater_rate_limited_total{limit="signin_account"}' in metrics


async def test_successful_sign_ins_do_not_count_as_failures(
    make_client: Callable[..., Any],
) -> None:
    """Only failures take from the sign-in buckets: an owner can sign in any number of times."""
    client = await make_client(
        settings(
            burst_auth_per_ip=100,
            rate_signin_failures_per_address=NO_REFILL,
            burst_signin_failures_per_address=2,
            rate_signin_failures_per_account=NO_REFILL,
            burst_signin_failures_per_account=2,
        )
    )
    await sign_up(client, "often@example.com")
    assert [await login(client, "often@example.com", PASSWORD) for _ in range(5)] == [200] * 5
    assert await login(client, "often@example.com", "wrong wrong") == 401
    assert await login(client, "often@example.com", PASSWORD) == 200


async def test_wrong_one_time_codes_count_as_failed_sign_ins(
    make_client: Callable[..., Any],
) -> None:
    """With MFA on, guessing the TOTP code from one address is stopped like guessing passwords."""
    client = await make_client(
        settings(
            burst_auth_per_ip=100,
            rate_signin_failures_per_address=NO_REFILL,
            burst_signin_failures_per_address=3,
        )
    )
    user: User = await sign_up(client, "otp@example.com")
    secret = (await client.post("/v1/auth/mfa/enroll", headers=user.headers)).json()["secret"]
    code = pyotp.TOTP(secret).now()
    confirm = await client.post("/v1/auth/mfa/confirm", json={"code": code}, headers=user.headers)
    assert confirm.status_code == 200
    wrong = [await login(client, "otp@example.com", PASSWORD, otp="000000") for _ in range(4)]
    assert wrong == [401, 401, 401, 429]


async def test_an_unknown_email_is_limited_like_a_known_one(
    make_client: Callable[..., Any],
) -> None:
    """The limits do not tell whether an email has an account."""
    client = await make_client(
        settings(
            burst_auth_per_ip=100,
            rate_signin_failures_per_address=NO_REFILL,
            burst_signin_failures_per_address=2,
        )
    )
    await sign_up(client, "exists@example.com")
    for email in ("exists@example.com", "nobody@example.com"):
        assert [await login(client, email, "wrong wrong") for _ in range(3)] == [401, 401, 429]


# a region's nodes -----------------------------------------------------------------------------


def redis_cache() -> str:
    """A Redis cache URL with a prefix of its own (skips when Redis is down)."""
    return f"{require_service(REDIS_URL)}?prefix=test-limits-{uuid.uuid4().hex[:12]}"


async def test_two_nodes_sharing_redis_allow_the_limit_once(
    make_client: Callable[..., Any],
) -> None:
    """With a ``redis://`` cache, a limit holds for the region: two nodes allow it once."""
    limits = settings(rate_per_ip=NO_REFILL, burst_per_ip=4)
    cache = redis_cache()
    first, second = await make_client(limits, cache=cache), await make_client(limits, cache=cache)
    statuses = [(await node.get(DOC)).status_code for _ in range(3) for node in (first, second)]
    assert statuses == [404] * 4 + [429] * 2


async def test_two_nodes_share_the_failed_sign_in_limits(
    make_client: Callable[..., Any],
) -> None:
    """Guesses spread over a region's nodes count once."""
    limits = settings(
        burst_auth_per_ip=100,
        rate_signin_failures_per_address=NO_REFILL,
        burst_signin_failures_per_address=2,
    )
    cache = redis_cache()
    first, second = await make_client(limits, cache=cache), await make_client(limits, cache=cache)
    await sign_up(first, "region@example.com")
    guesses = [await login(node, "region@example.com", "wrong wrong") for node in (first, second)]
    assert guesses == [401, 401]
    assert await login(first, "region@example.com", "wrong wrong") == 429
    assert await login(second, "region@example.com", "wrong wrong") == 429


async def test_a_redis_outage_falls_back_to_the_nodes_own_limits_and_recovers(
    make_client: Callable[..., Any], capsys: pytest.CaptureFixture[str]
) -> None:
    """Redis cut: requests are served and limited per node, logged once and counted; Redis
    back: the shared buckets are used again."""
    forwarder = Forwarder(require_service(REDIS_URL))
    await forwarder.start()
    try:
        cache = f"{forwarder.url}?prefix=test-limits-{uuid.uuid4().hex[:12]}"
        client = await make_client(settings(rate_per_ip=NO_REFILL, burst_per_ip=3), cache=cache)
        node = node_of(client)
        assert (await client.get(DOC)).status_code == 404  # one token taken in Redis
        await forwarder.cut()
        during = [(await client.get(DOC)).status_code for _ in range(4)]
        assert during == [404, 404, 404, 429]  # the node's own, full bucket
        assert not node.buckets.healthy
        metrics = (await client.get("/metrics")).text
        assert 'breakwater_dependency_up{dependency="rate_limits"} 0.0' in metrics
        assert "breakwater_rate_limit_fallbacks_total 4.0" in metrics
        assert "rate_limits" in (await client.get("/readyz")).json()["degraded"]
        assert capsys.readouterr().out.count("rate_limits_local") == 1
        await forwarder.restore()
        node.buckets.breaker.probe_now()
        after = [(await client.get(DOC)).status_code for _ in range(3)]
        assert after == [404, 404, 429]  # Redis's bucket again, with its one token used
        assert (await client.get("/readyz")).json()["checks"]["rate_limits"] == "ok"
        assert "rate_limits_shared" in capsys.readouterr().out
    finally:
        await forwarder.aclose()
