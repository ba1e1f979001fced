"""A signing-key rotation at a real OpenID Connect provider (``oidc-provider``), followed by a
running node: the new key first in the JWKS, old tokens valid until the old key is removed,
then refused; the JWKS is fetched on an unknown kid, not on every request, and made-up kids
cannot make the node fetch it again and again."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from tests.auth.conftest import FAST_HASH
from tests.auth.oidc_support import (
    CLIENT_ID,
    REDIRECT_URI,
    Provider,
    browser_sign_in,
    challenge,
    new_verifier,
    run_provider,
    token_response,
)
from tests.conftest import free_port

TTL = 10.0
"""Seconds the node keeps a fetched JWKS (``jwks_ttl``)."""
MIN_REFRESH = 5.0
"""Seconds between fetches caused by unknown kids at most (``jwks_min_refresh``)."""


def private_jwk(kid: str) -> dict[str, Any]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(key))
    return jwk | {"kid": kid, "use": "sig", "alg": "RS256"}


def key_set(path: Path, *keys: dict[str, Any]) -> Path:
    path.write_text(json.dumps({"keys": list(keys)}))
    return path


def config(issuer: str) -> str:
    return (
        FAST_HASH
        + f"""
mode = "enforce"
# Forty requests to /v1/auth/me in a row: past the default auth limit on a fast machine.
rate_auth_per_ip = 1000.0
burst_auth_per_ip = 1000

[auth.oidc.providers.local]
issuer = "{issuer}"
client_id = "{CLIENT_ID}"
redirect_uris = ["{REDIRECT_URI}"]
jwks_ttl = {TTL}
jwks_min_refresh = {MIN_REFRESH}

[auth.external.local]
issuer = "{issuer}"
audience = "{CLIENT_ID}"
jwks_ttl = {TTL}
jwks_min_refresh = {MIN_REFRESH}
"""
    )


async def sign_in(
    node: httpx.AsyncClient, provider: Provider, login: str
) -> tuple[httpx.Response, str]:
    """A Breakwater sign-in through the provider (the node verifies its ID token), and an ID
    token the app got for itself in a second flow (to use as a bearer)."""
    verifier = new_verifier()
    start = {"redirect_uri": REDIRECT_URI, "code_challenge": challenge(verifier)}
    started = (await node.post("/v1/auth/oidc/local/start", json=start)).json()
    returned = await browser_sign_in(started["authorize_url"], login)
    callback = await node.post(
        "/v1/auth/oidc/local/callback",
        json={
            "state": returned["state"],
            "code": returned["code"],
            "code_verifier": verifier,
            "redirect_uri": REDIRECT_URI,
        },
    )
    verifier = new_verifier()
    start = {"redirect_uri": REDIRECT_URI, "code_challenge": challenge(verifier)}
    started = (await node.post("/v1/auth/oidc/local/start", json=start)).json()
    returned = await browser_sign_in(started["authorize_url"], login)
    tokens = await token_response(provider.issuer, returned["code"], verifier)
    return callback, str(tokens["id_token"])


async def me(node: httpx.AsyncClient, token: str) -> int:
    answer = await node.get("/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    return answer.status_code


async def jwks_requests(provider: Provider) -> int:
    async with httpx.AsyncClient(timeout=5) as http:
        count: int = (await http.get(f"{provider.issuer}/_test/jwks_requests")).json()["count"]
    return count


async def published_kids(provider: Provider) -> list[str]:
    async with httpx.AsyncClient(timeout=5) as http:
        keys = (await http.get(f"{provider.issuer}/jwks")).json()["keys"]
    return [key["kid"] for key in keys]


async def test_a_key_rotation_at_a_real_provider_is_followed_without_a_restart(
    tmp_path: Path, make_client: Callable[..., Any]
) -> None:
    """old → [new, old] → [new]: each phase's tokens work at once; the old key's tokens keep
    working while it is published and are refused once it is gone and the cached set expired;
    forty requests, twenty of them with made-up kids, cost the provider at most one JWKS fetch
    per ``jwks_min_refresh``."""
    port = free_port()
    old, new = private_jwk("key-2026-old"), private_jwk("key-2026-new")
    stranger = private_jwk("made-up")
    with run_provider(port, key_set(tmp_path / "old.json", old)) as provider:
        node: httpx.AsyncClient = await make_client(config(provider.issuer))
        signed_in, old_token = await sign_in(node, provider, "ada@example.com")
        assert signed_in.status_code == 200, signed_in.text
        assert jwt.get_unverified_header(old_token)["kid"] == "key-2026-old"
        assert await me(node, old_token) == 200
    # The node fetched the set at this sign-in; an unknown kid makes it fetch again only once
    # jwks_min_refresh has passed since (on a fast machine the provider restarts sooner).
    await asyncio.sleep(MIN_REFRESH)

    with run_provider(port, key_set(tmp_path / "both.json", new, old)) as provider:
        assert await published_kids(provider) == ["key-2026-new", "key-2026-old"]
        signed_in, new_token = await sign_in(node, provider, "ada@example.com")
        assert signed_in.status_code == 200, signed_in.text
        assert jwt.get_unverified_header(new_token)["kid"] == "key-2026-new"
        assert await me(node, new_token) == 200
        assert await me(node, old_token) == 200
        before = await jwks_requests(provider)
        assert before >= 1  # the new kid made the node fetch the set
        started = time.monotonic()
        for _ in range(20):
            assert await me(node, new_token) == 200
        signer = jwt.PyJWK(stranger).key
        for index in range(20):
            forged = jwt.encode(
                {"iss": provider.issuer, "aud": CLIENT_ID, "sub": "eve", "exp": time.time() + 60},
                signer,
                algorithm="RS256",
                headers={"kid": f"made-up-{index}"},
            )
            assert await me(node, forged) == 401
        # At most one fetch per jwks_min_refresh (and none in most runs): not one per request.
        bound = 1 + int((time.monotonic() - started) / MIN_REFRESH)
        assert await jwks_requests(provider) - before <= bound

    with run_provider(port, key_set(tmp_path / "new.json", new)) as provider:
        assert await published_kids(provider) == ["key-2026-new"]
        await asyncio.sleep(TTL + 0.5)  # the node's cached set (with the old key) expires
        assert await me(node, old_token) == 401
        assert await me(node, new_token) == 200
        signed_in, _ = await sign_in(node, provider, "ada@example.com")
        assert signed_in.status_code == 200, signed_in.text
