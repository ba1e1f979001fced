"""OWASP API4 (resource consumption) and API2 (authentication): rate limits, MFA, API keys,
and no secret in any log line."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pyotp
import pytest
import websockets

from tests.auth.conftest import FAST_HASH, RULES, sign_up
from tests.realtime.conftest import LiveNode


async def test_rate_limit_answers_429_with_retry_after_and_counts_it(
    make_client: Callable[..., Any],
) -> None:
    """Past the per-IP burst the node answers 429 problem+json with Retry-After, in metrics."""
    client: httpx.AsyncClient = await make_client(FAST_HASH + "rate_per_ip = 1\nburst_per_ip = 3\n")
    statuses = [(await client.get("/v1/collections/a/docs/x")).status_code for _ in range(5)]
    assert statuses[:3] == [404, 404, 404]
    limited = await client.get("/v1/collections/a/docs/x")
    assert limited.status_code == 429
    assert limited.headers["content-type"] == "application/problem+json"
    assert limited.json()["type"] == "rate_limited"
    assert int(limited.headers["retry-after"]) >= 1
    metrics = (await client.get("/metrics")).text
    assert 'breakwater_rate_limited_total{limit="ip"}' in metrics


async def test_login_attempts_are_limited_per_ip(make_client: Callable[..., Any]) -> None:
    """Password guessing hits the stricter auth bucket."""
    client: httpx.AsyncClient = await make_client(
        FAST_HASH + "rate_auth_per_ip = 1\nburst_auth_per_ip = 2\n"
    )
    body = {"email": "x@example.com", "password": "guess guess"}
    statuses = [(await client.post("/v1/auth/login", json=body)).status_code for _ in range(4)]
    assert statuses[:2] == [401, 401] and statuses[-1] == 429


async def test_per_user_limit_is_separate_from_the_ip_limit(
    make_client: Callable[..., Any],
) -> None:
    """A user over its own bucket is limited while another user from the same IP is not."""
    client: httpx.AsyncClient = await make_client(
        FAST_HASH + "rate_per_user = 1\nburst_per_user = 2\nburst_auth_per_ip = 100\n"
    )
    alice, bob = await sign_up(client, "a@example.com"), await sign_up(client, "b@example.com")
    url = "/v1/collections/a/docs/x"
    for _ in range(2):
        await client.get(url, headers=alice.headers)
    assert (await client.get(url, headers=alice.headers)).status_code == 429
    assert (await client.get(url, headers=bob.headers)).status_code == 404


async def test_realtime_connections_per_user_are_bounded(
    make_node: Callable[..., Awaitable[LiveNode]],
) -> None:
    """A user past ``max_realtime_per_user`` open streams is refused with 429."""
    live = await make_node(
        RULES.replace('mode = "enforce"', 'mode = "enforce"\nmax_realtime_per_user = 2')
    )
    async with httpx.AsyncClient(base_url=live.url) as http:
        user = await sign_up(http, "rt@example.com")
    url = f"{live.ws_url}/v1/realtime"
    async with (
        websockets.connect(url, additional_headers=user.headers),
        websockets.connect(url, additional_headers=user.headers),
    ):
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(url, additional_headers=user.headers):
                pass
        assert refused.value.response.status_code == 429
    # Closed connections give their slots back.
    async with websockets.connect(url, additional_headers=user.headers):
        pass


async def test_mfa_enrolment_then_login_needs_a_code(rules_node: httpx.AsyncClient) -> None:
    """Once TOTP is on, login needs a valid code (once) or a single-use recovery code."""
    user = await sign_up(rules_node, "mfa@example.com")
    secret = (await rules_node.post("/v1/auth/mfa/enroll", headers=user.headers)).json()["secret"]
    confirm = await rules_node.post(
        "/v1/auth/mfa/confirm", json={"code": pyotp.TOTP(secret).now()}, headers=user.headers
    )
    assert confirm.status_code == 200, confirm.text
    codes = confirm.json()["recovery_codes"]
    assert len(codes) == 10
    body = {"email": "mfa@example.com", "password": "correct horse"}
    missing = await rules_node.post("/v1/auth/login", json=body)
    assert missing.status_code == 401 and missing.json()["mfa_required"] is True
    replayed = await rules_node.post(
        "/v1/auth/login", json={**body, "otp": pyotp.TOTP(secret).now()}
    )
    assert replayed.status_code == 401  # the step was used by the confirmation
    recovered = await rules_node.post("/v1/auth/login", json={**body, "recovery_code": codes[0]})
    assert recovered.status_code == 200
    again = await rules_node.post("/v1/auth/login", json={**body, "recovery_code": codes[0]})
    assert again.status_code == 401
    me = await rules_node.get(
        "/v1/auth/me", headers={"Authorization": f"Bearer {recovered.json()['access_token']}"}
    )
    assert me.json()["mfa"] is True


async def test_roles_that_require_mfa_are_refused_without_it(
    make_client: Callable[..., Any],
) -> None:
    """A user whose role is in ``mfa_roles`` reaches no data until signed in with MFA."""
    client: httpx.AsyncClient = await make_client(FAST_HASH + 'mfa_roles = ["admin"]\n')
    user = await sign_up(client, "adm@example.com")
    node = client.app.state.node  # type: ignore[attr-defined]
    account = node.auth_store.account(user.uid)
    from dataclasses import replace

    node.auth_store.update_account(replace(account, roles=("admin",)))
    login = await client.post(
        "/v1/auth/login", json={"email": "adm@example.com", "password": "correct horse"}
    )
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    refused = await client.get("/v1/collections/a/docs/x", headers=headers)
    assert refused.status_code == 403 and refused.json()["mfa_required"] is True


async def test_api_keys_are_scoped_and_revocable(rules_node: httpx.AsyncClient) -> None:
    """A read-only key reads, cannot write, and is refused once revoked."""
    service = rules_node.app.state.node.auth  # type: ignore[attr-defined]
    secret, record = service.create_key("reporting", ["read:notes"])
    assert record.secret_hash not in secret and secret.split("_", 2)[2] not in record.secret_hash
    headers = {"Authorization": f"ApiKey {secret}"}
    owner = await sign_up(rules_node, "k@example.com")
    await rules_node.put("/v1/collections/notes/docs/n", json={"a": 1}, headers=owner.headers)
    assert (
        await rules_node.get("/v1/collections/notes/docs/n", headers=headers)
    ).status_code == 200
    write = await rules_node.put("/v1/collections/notes/docs/n", json={"a": 2}, headers=headers)
    assert write.status_code == 403
    service.store.revoke_key(record.key_id, 0)
    assert (
        await rules_node.get("/v1/collections/notes/docs/n", headers=headers)
    ).status_code == 401


async def test_no_secret_appears_in_any_log_line(
    rules_node: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Passwords, tokens and keys never reach the logs, whatever the outcome of the request."""
    caplog.set_level(logging.DEBUG)
    password = "very-secret-password-123"
    signup = await rules_node.post(
        "/v1/auth/signup", json={"email": "log@example.com", "password": password}
    )
    body = signup.json()
    access, refresh = body["access_token"], body["refresh_token"]
    headers = {"Authorization": f"Bearer {access}"}
    await rules_node.post(
        "/v1/auth/login", json={"email": "log@example.com", "password": "wrong-pw"}
    )
    await rules_node.post("/v1/auth/refresh", json={"refresh_token": refresh})
    await rules_node.post("/v1/auth/refresh", json={"refresh_token": refresh})  # reuse
    await rules_node.get("/v1/sync/pull", params={"access_token": access})
    await rules_node.get("/v1/collections/notes/docs/x", headers=headers)
    key, _ = rules_node.app.state.node.auth.create_key("k", ["admin"])  # type: ignore[attr-defined]
    await rules_node.get("/v1/collections/notes/docs/x", headers={"Authorization": f"ApiKey {key}"})
    await rules_node.get("/v1/collections/notes/docs/x", headers={"Authorization": "Bearer x.y.z"})
    captured = capsys.readouterr()
    # The test's own HTTP client logs the URLs it requests; only the node's lines count.
    node_records = [r for r in caplog.records if not r.name.startswith(("httpx", "httpcore"))]
    logs = "\n".join(r.getMessage() for r in node_records) + captured.out + captured.err
    assert "request" in logs  # the access log was captured at all
    for secret in (password, "wrong-pw", access, refresh, key, key.split("_", 2)[2]):
        assert secret not in logs


async def test_pushes_are_rate_limited_like_every_request(make_client: Callable[..., Any]) -> None:
    """POST /v1/sync/push (served by the direct route) passes the same limits."""
    client: httpx.AsyncClient = await make_client(FAST_HASH + "rate_per_ip = 1\nburst_per_ip = 2\n")
    body = {"mutations": [{"mutation_id": "m", "collection": "a", "id": "x", "op": "delete"}]}
    statuses = [(await client.post("/v1/sync/push", json=body)).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
