"""Access tokens of an external identity provider, accepted through its JWKS: REST, push/pull and
realtime treat them as Breakwater's own; every forged, foreign or stale one is 401; the issuer's
key rotation is followed, and unknown ``kid`` values cannot make the node hammer the issuer."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
import websockets
from cryptography.hazmat.primitives import serialization

from tests.auth.conftest import FAST_HASH
from tests.auth.jwks_server import AUDIENCE, Issuer, external_issuer, new_key
from tests.realtime.clients import recv, subscribe
from tests.realtime.conftest import LiveNode

__all__ = ["external_issuer"]


def _config(issuer: Issuer, *, ttl: float = 600, min_refresh: float = 0) -> str:
    return (
        FAST_HASH
        + f"""
mode = "enforce"

[auth.external.acme]
issuer = "{issuer.url}"
audience = "{AUDIENCE}"
roles_claim = "https://acme.example/roles"
jwks_ttl = {ttl}
jwks_min_refresh = {min_refresh}

[auth.external.other]
issuer = "https://other.example"
audience = "{AUDIENCE}"
jwks_uri = "{issuer.url}/jwks"

[collections.notes]
owner = "owner"
rules = {{ read = "auth.uid == doc.owner", write = "auth.uid == doc.owner" }}
"""
    )


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


async def _assert_refused(node: httpx.AsyncClient, token: str) -> None:
    response = await node.get("/v1/auth/me", headers=_bearer(token))
    assert response.status_code == 401, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"] == "unauthorized"


@pytest.fixture
async def node(external_issuer: Issuer, make_client: Callable[..., Any]) -> httpx.AsyncClient:
    client: httpx.AsyncClient = await make_client(_config(external_issuer))
    return client


async def test_a_valid_token_is_a_namespaced_user_with_its_roles(
    external_issuer: Issuer, node: httpx.AsyncClient
) -> None:
    """RS256 and ES256 tokens verify; the uid is ``acme:<sub>``, roles come from the claim."""
    es = new_key("e1", "ES256")
    external_issuer.published.append(es)
    rs_token = external_issuer.token(
        external_issuer.published[0], **{"https://acme.example/roles": ["editor"]}
    )
    me = await node.get("/v1/auth/me", headers=_bearer(rs_token))
    assert me.status_code == 200, me.text
    assert me.json() == {
        "uid": "acme:user-1",
        "kind": "user",
        "anonymous": False,
        "roles": ["editor"],
        "mfa": False,
        "email_verified": False,  # an external caller's email is its issuer's business
    }
    es_me = await node.get("/v1/auth/me", headers=_bearer(external_issuer.token(es)))
    assert es_me.json()["uid"] == "acme:user-1"


async def test_two_issuers_subjects_never_collide(
    external_issuer: Issuer, node: httpx.AsyncClient
) -> None:
    """The same ``sub`` from another issuer is another user: it cannot read the first's note."""
    key = external_issuer.published[0]
    acme = _bearer(external_issuer.token(key))
    other = _bearer(external_issuer.token(key, iss="https://other.example"))
    put = await node.put("/v1/collections/notes/docs/n1", json={"t": 1}, headers=acme)
    assert put.status_code == 201 and put.json()["data"]["owner"] == "acme:user-1"
    assert (await node.get("/v1/auth/me", headers=other)).json()["uid"] == "other:user-1"
    assert (await node.get("/v1/collections/notes/docs/n1", headers=other)).status_code == 403


async def test_push_and_pull_work_with_an_external_token(
    external_issuer: Issuer, node: httpx.AsyncClient
) -> None:
    """The sync protocol sees the mapped uid: a push owns the document, a pull returns it."""
    headers = _bearer(external_issuer.token(external_issuer.published[0]))
    mutation = {"mutation_id": "m1", "collection": "notes", "id": "p1", "op": "set", "data": {}}
    push = await node.post("/v1/sync/push", json={"mutations": [mutation]}, headers=headers)
    assert push.status_code == 200 and push.json()["results"][0]["status"] == "applied", push.text
    pull = await node.get("/v1/sync/pull", headers=headers)
    assert pull.status_code == 200
    assert [c["data"]["owner"] for c in pull.json()["changes"]] == ["acme:user-1"]


async def test_realtime_accepts_an_external_token(
    external_issuer: Issuer, make_node: Callable[..., Awaitable[LiveNode]]
) -> None:
    """A WebSocket opened with the token streams the user's own changes."""
    live = await make_node(_config(external_issuer))
    headers = _bearer(external_issuer.token(external_issuer.published[0]))
    async with websockets.connect(f"{live.ws_url}/v1/realtime", additional_headers=headers) as ws:
        await subscribe(ws, ["notes"])
        async with httpx.AsyncClient(base_url=live.url) as http:
            put = await http.put("/v1/collections/notes/docs/r1", json={"t": 1}, headers=headers)
            assert put.status_code == 201
        message: dict[str, Any] = {}
        while not message.get("changes"):
            message = await recv(ws)
        assert message["changes"][0]["data"] == {"t": 1, "owner": "acme:user-1"}


def _forgeries(issuer: Issuer) -> dict[str, str]:
    """Tokens that must all be refused, by what is wrong with them."""
    key = issuer.published[0]
    rs512 = new_key("k512", "RS512")
    issuer.published.append(rs512)  # published, but RS512 is not on the allow-list
    stranger = new_key("k1")  # the same kid, another key: a forged signature
    now = int(time.time())
    claims = {"iss": issuer.url, "aud": AUDIENCE, "sub": "user-1", "iat": now, "exp": now + 300}
    pem = key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": key.kid}).encode())
    body = _b64(json.dumps(claims).encode())
    confused = hmac.new(pem, f"{head}.{body}".encode(), hashlib.sha256).digest()
    none_head = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": key.kid}).encode())
    return {
        "unknown issuer": issuer.token(key, iss="https://evil.example"),
        "wrong audience": issuer.token(key, aud="https://someone-else.example"),
        "expired": issuer.token(key, iat=now - 4000, exp=now - 3600),
        "unlisted algorithm": issuer.token(rs512),
        "alg none": f"{none_head}.{body}.",
        "HS256 keyed with the public key": f"{head}.{body}.{_b64(confused)}",
        "forged signature": issuer.token(stranger),
        "unpublished kid": issuer.token(new_key("k-unknown")),
        "no sub": issuer.token(key, sub=""),
    }


async def test_every_forged_foreign_or_stale_token_is_refused(
    external_issuer: Issuer, node: httpx.AsyncClient
) -> None:
    """Each is 401 problem+json, on /me and on a data route alike."""
    for what, token in _forgeries(external_issuer).items():
        await _assert_refused(node, token)
        put = await node.put("/v1/collections/notes/docs/f", json={}, headers=_bearer(token))
        assert put.status_code == 401, what


async def test_a_key_rotation_is_followed(
    external_issuer: Issuer, make_client: Callable[..., Any]
) -> None:
    """A new kid is fetched on first sight; once the issuer drops the old key and the cached
    set expires, tokens signed with the old key are refused."""
    node: httpx.AsyncClient = await make_client(_config(external_issuer, ttl=1))
    old = external_issuer.published[0]
    assert (await node.get("/v1/auth/me", headers=_bearer(external_issuer.token(old)))).is_success
    new = new_key("k2")
    external_issuer.published.append(new)
    assert (await node.get("/v1/auth/me", headers=_bearer(external_issuer.token(new)))).is_success
    external_issuer.published.remove(old)
    await asyncio.sleep(1.2)
    await _assert_refused(node, external_issuer.token(old))
    assert (await node.get("/v1/auth/me", headers=_bearer(external_issuer.token(new)))).is_success


@pytest.mark.parametrize(("min_refresh", "fetches"), [(60, 1), (0, 21)])
async def test_unknown_kids_cannot_flood_the_issuer(
    external_issuer: Issuer, make_client: Callable[..., Any], min_refresh: float, fetches: int
) -> None:
    """Within ``jwks_min_refresh`` the node fetches the key set once, however many tokens with
    made-up kids arrive; without the limit (0) each of them costs the issuer a fetch."""
    node: httpx.AsyncClient = await make_client(_config(external_issuer, min_refresh=min_refresh))
    key = external_issuer.published[0]
    assert (await node.get("/v1/auth/me", headers=_bearer(external_issuer.token(key)))).is_success
    for index in range(20):
        forged = new_key(f"made-up-{index}", "ES256")
        await _assert_refused(node, external_issuer.token(forged))
    assert external_issuer.jwks_requests == fetches
