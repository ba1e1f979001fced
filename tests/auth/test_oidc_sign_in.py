"""Sign-in with a real OpenID Connect provider (authorization code + PKCE, as a mobile app does
it): accounts created and linked safely, and every replayed or mismatched step refused."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.auth.conftest import FAST_HASH, User, sign_up
from tests.auth.oidc_support import (
    CLIENT_ID,
    REDIRECT_URI,
    Provider,
    browser_sign_in,
    challenge,
    new_verifier,
    oidc_provider,
    token_response,
)

__all__ = ["oidc_provider"]


def _config(issuer: str) -> str:
    """Two providers on the one test issuer: ``local`` never links by email, ``trusting`` links
    an existing account when the provider says the email is verified."""
    return (
        FAST_HASH
        + f"""
mode = "enforce"

[auth.oidc.providers.local]
issuer = "{issuer}"
client_id = "{CLIENT_ID}"
redirect_uris = ["{REDIRECT_URI}"]

[auth.oidc.providers.trusting]
issuer = "{issuer}"
client_id = "{CLIENT_ID}"
redirect_uris = ["{REDIRECT_URI}"]
link_verified_email = true

[auth.oidc.providers.confidential]
issuer = "{issuer}"
client_id = "confidential-app"
client_secret = "test-client-secret-not-a-real-one"
redirect_uris = ["{REDIRECT_URI}"]

[auth.oidc.providers.wrong_secret]
issuer = "{issuer}"
client_id = "confidential-app"
client_secret = "not-the-secret"
redirect_uris = ["{REDIRECT_URI}"]

[auth.external.local]
issuer = "{issuer}"
audience = "{CLIENT_ID}"

[collections.notes]
owner = "owner"
rules = {{ read = "auth.uid == doc.owner", write = "auth.uid == doc.owner" }}
"""
    )


@pytest.fixture
async def node(oidc_provider: Provider, make_client: Callable[..., Any]) -> httpx.AsyncClient:
    client: httpx.AsyncClient = await make_client(_config(oidc_provider.issuer))
    return client


async def _start(node: httpx.AsyncClient, provider: str, verifier: str) -> dict[str, Any]:
    response = await node.post(
        f"/v1/auth/oidc/{provider}/start",
        json={"redirect_uri": REDIRECT_URI, "code_challenge": challenge(verifier)},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _callback_body(node: httpx.AsyncClient, login: str, provider: str) -> dict[str, str]:
    """Start, sign in at the provider, and the body the app would post back."""
    verifier = new_verifier()
    started = await _start(node, provider, verifier)
    returned = await browser_sign_in(started["authorize_url"], login)
    assert returned["state"] == started["state"]
    return {
        "state": returned["state"],
        "code": returned["code"],
        "code_verifier": verifier,
        "redirect_uri": REDIRECT_URI,
    }


async def _sign_in(node: httpx.AsyncClient, login: str, provider: str = "local") -> httpx.Response:
    body = await _callback_body(node, login, provider)
    return await node.post(f"/v1/auth/oidc/{provider}/callback", json=body)


def _user(response: httpx.Response) -> User:
    assert response.status_code == 200, response.text
    body = response.json()
    return User(body["uid"], body["access_token"], body["refresh_token"])


def _refused(response: httpx.Response, status: int = 401) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_first_sign_in_creates_an_account_and_the_next_one_finds_it(
    node: httpx.AsyncClient,
) -> None:
    """End to end: the provider's code becomes a Breakwater session whose token works under the
    rules; signing in again (a new flow) lands in the same account."""
    first = _user(await _sign_in(node, "carol@example.com"))
    me = await node.get("/v1/auth/me", headers=first.headers)
    assert me.json()["uid"] == first.uid and me.json()["anonymous"] is False
    put = await node.put("/v1/collections/notes/docs/n1", json={"t": 1}, headers=first.headers)
    assert put.status_code == 201 and put.json()["data"]["owner"] == first.uid
    again = _user(await _sign_in(node, "carol@example.com"))
    assert again.uid == first.uid
    linked = await node.get("/v1/auth/oidc/identities", headers=again.headers)
    assert [i["provider"] for i in linked.json()["identities"]] == ["local"]
    refreshed = await node.post("/v1/auth/refresh", json={"refresh_token": again.refresh})
    assert refreshed.status_code == 200


async def test_an_existing_email_account_is_not_taken_over_without_the_policy(
    node: httpx.AsyncClient,
) -> None:
    """A provider user with the email of a password account gets 409 ``account_exists`` where
    linking by email is off, and no account or link is created."""
    owner = await sign_up(node, "dave@example.com")
    refused = await _sign_in(node, "dave@example.com", "local")
    _refused(refused, 409)
    assert refused.json()["type"] == "account_exists"
    linked = await node.get("/v1/auth/oidc/identities", headers=owner.headers)
    assert linked.json()["identities"] == []


async def test_a_verified_email_links_where_the_policy_allows_it(node: httpx.AsyncClient) -> None:
    """With ``link_verified_email`` the provider's verified email signs in to that account."""
    owner = await sign_up(node, "erin@example.com")
    signed_in = _user(await _sign_in(node, "erin@example.com", "trusting"))
    assert signed_in.uid == owner.uid


async def test_an_unverified_email_never_links_even_where_the_policy_allows_it(
    node: httpx.AsyncClient,
) -> None:
    """The provider does not vouch for the email: a separate account without that email."""
    owner = await sign_up(node, "frank@example.com")
    other = _user(await _sign_in(node, "frank@example.com+unverified", "trusting"))
    assert other.uid != owner.uid
    login = await node.post(
        "/v1/auth/login", json={"email": "frank@example.com", "password": "correct horse"}
    )
    assert login.json()["uid"] == owner.uid


async def test_a_signed_in_user_links_a_provider_explicitly(node: httpx.AsyncClient) -> None:
    """Linking from inside the account is always allowed; later provider sign-ins land there;
    a second account cannot link the same identity (409 ``identity_taken``)."""
    owner = await sign_up(node, "gina@example.com")
    body = await _callback_body(node, "gina@example.com", "local")
    linked = await node.post("/v1/auth/oidc/local/link", json=body, headers=owner.headers)
    assert linked.status_code == 200, linked.text
    assert [i["provider"] for i in linked.json()["identities"]] == ["local"]
    assert _user(await _sign_in(node, "gina@example.com")).uid == owner.uid
    intruder = await sign_up(node, "harry@example.com")
    body = await _callback_body(node, "gina@example.com", "local")
    taken = await node.post("/v1/auth/oidc/local/link", json=body, headers=intruder.headers)
    _refused(taken, 409)
    assert taken.json()["type"] == "identity_taken"


async def test_a_wrong_pkce_verifier_is_refused(node: httpx.AsyncClient) -> None:
    """A stolen code is useless without the app's verifier: the provider refuses, so do we."""
    body = await _callback_body(node, "ivan@example.com", "local")
    body["code_verifier"] = new_verifier()
    refused = await node.post("/v1/auth/oidc/local/callback", json=body)
    _refused(refused)
    assert "invalid_grant" in refused.json()["detail"]


async def test_a_replayed_or_unknown_state_is_refused(node: httpx.AsyncClient) -> None:
    """A state is spent by its first callback: a replay (same state, same or a new code) and
    a made-up state are 401, and a flow for one provider cannot finish at another."""
    body = await _callback_body(node, "judy@example.com", "local")
    _user(await node.post("/v1/auth/oidc/local/callback", json=body))
    _refused(await node.post("/v1/auth/oidc/local/callback", json=body))
    fresh = await _callback_body(node, "judy@example.com", "local")
    _refused(
        await node.post("/v1/auth/oidc/local/callback", json={**fresh, "state": body["state"]})
    )
    elsewhere = await _callback_body(node, "judy@example.com", "local")
    _refused(await node.post("/v1/auth/oidc/trusting/callback", json=elsewhere))
    mixed_up = await _callback_body(node, "judy@example.com", "local")
    mixed_up["iss"] = "https://evil.example"  # RFC 9207: the answer of another provider
    _refused(await node.post("/v1/auth/oidc/local/callback", json=mixed_up))


async def test_the_redirect_uri_must_be_allowed_and_the_same(node: httpx.AsyncClient) -> None:
    """An unlisted redirect URI cannot start a flow; a callback naming another is refused."""
    start = await node.post(
        "/v1/auth/oidc/local/start",
        json={"redirect_uri": "https://evil.example/cb", "code_challenge": challenge("x" * 43)},
    )
    _refused(start, 400)
    body = await _callback_body(node, "kim@example.com", "local")
    _refused(
        await node.post(
            "/v1/auth/oidc/local/callback", json={**body, "redirect_uri": "com.example.app:/x"}
        )
    )


async def test_bad_input_is_a_clear_4xx(node: httpx.AsyncClient) -> None:
    """Unknown providers are 404; malformed fields 400; nothing is created."""
    _refused(await node.post("/v1/auth/oidc/local/start", json={}), 400)
    start = await node.post(
        "/v1/auth/oidc/nobody/start",
        json={"redirect_uri": REDIRECT_URI, "code_challenge": challenge("x" * 43)},
    )
    _refused(start, 404)
    short = {"state": "s", "code": "c", "code_verifier": "short", "redirect_uri": REDIRECT_URI}
    _refused(await node.post("/v1/auth/oidc/local/callback", json=short), 400)
    _refused(await node.post("/v1/auth/oidc/local/callback", content=b"[1]"), 400)


async def test_the_providers_id_token_works_as_an_external_token(
    oidc_provider: Provider, node: httpx.AsyncClient
) -> None:
    """``[auth.oidc.providers.confidential]
    issuer = "{issuer}"
    client_id = "confidential-app"
    client_secret = "test-client-secret-not-a-real-one"
    redirect_uris = ["{REDIRECT_URI}"]

    [auth.oidc.providers.wrong_secret]
    issuer = "{issuer}"
    client_id = "confidential-app"
    client_secret = "not-the-secret"
    redirect_uris = ["{REDIRECT_URI}"]

    [auth.external.local]`` trusts the provider's own tokens through its discovery and
        JWKS: the bearer is ``local:<sub>``, and rules see that uid."""
    verifier = new_verifier()
    started = await _start(node, "local", verifier)
    returned = await browser_sign_in(started["authorize_url"], "lena@example.com")
    tokens = await token_response(oidc_provider.issuer, returned["code"], verifier)
    bearer = {"Authorization": f"Bearer {tokens['id_token']}"}
    me = await node.get("/v1/auth/me", headers=bearer)
    assert me.status_code == 200, me.text
    assert me.json()["uid"] == "local:lena@example.com"
    put = await node.put("/v1/collections/notes/docs/x1", json={"t": 1}, headers=bearer)
    assert put.status_code == 201 and put.json()["data"]["owner"] == me.json()["uid"]


async def test_a_confidential_client_sends_its_secret(node: httpx.AsyncClient) -> None:
    """With ``client_secret`` the exchange authenticates the client; a wrong secret is 401."""
    _user(await _sign_in(node, "olga@example.com", "confidential"))
    refused = await _sign_in(node, "olga@example.com", "wrong_secret")
    _refused(refused)
    assert "invalid_client" in refused.json()["detail"]


async def test_no_secret_of_the_flow_reaches_the_logs(
    node: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """At debug, the node logs neither the state, the code, the verifier, the client secret
    nor the tokens it answers (the test's own browser requests are left out)."""
    caplog.set_level(logging.DEBUG)
    verifier = new_verifier()
    started = await _start(node, "confidential", verifier)
    node_logs = caplog.text + capsys.readouterr().out
    returned = await browser_sign_in(started["authorize_url"], "pia@example.com")
    caplog.clear()
    capsys.readouterr()
    body = {**returned, "code_verifier": verifier, "redirect_uri": REDIRECT_URI}
    session = _user(await node.post("/v1/auth/oidc/confidential/callback", json=body))
    node_logs += caplog.text + capsys.readouterr().out
    assert "/v1/auth/oidc/confidential/callback" in node_logs  # the logs were captured
    secrets = [started["state"], returned["code"], verifier, session.access, session.refresh]
    for secret in [*secrets, "test-client-secret-not-a-real-one"]:
        assert secret not in node_logs
