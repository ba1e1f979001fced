"""The Python SDK's external identity: OpenID Connect sign-in (PKCE kept on the device) against a
real provider, and an app's own provider tokens as credentials, renewed after a 401."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from breakwater.client import Client, ExternalToken
from breakwater.client.external_token import expiry_of
from tests.auth.conftest import FAST_HASH
from tests.auth.jwks_server import AUDIENCE, Issuer, external_issuer
from tests.auth.oidc_support import (
    CLIENT_ID,
    REDIRECT_URI,
    Provider,
    browser_sign_in,
    oidc_provider,
)

__all__ = ["external_issuer", "oidc_provider"]

NOTES = """
[collections.notes]
owner = "owner"
rules = { read = "auth.uid == doc.owner", write = "auth.uid == doc.owner" }
"""


def _device(path: Path, node: httpx.AsyncClient, **options: Any) -> Client:
    return Client(
        ["http://node"],
        path,
        http_transport=httpx.ASGITransport(app=node.app),  # type: ignore[attr-defined]
        transports=("long_poll",),
        backoff_cap=0.5,
        **options,
    )


async def test_sign_in_with_oidc_signs_the_device_in(
    tmp_path: Path, oidc_provider: Provider, make_client: Callable[..., Any]
) -> None:
    """start_oidc → the browser → sign_in_with_oidc: the device is signed in, its writes sync
    under the owner rule, and a second device signing in the same way is the same user."""
    node: httpx.AsyncClient = await make_client(
        FAST_HASH
        + f"""
mode = "enforce"
[auth.oidc.providers.local]
issuer = "{oidc_provider.issuer}"
client_id = "{CLIENT_ID}"
redirect_uris = ["{REDIRECT_URI}"]
"""
        + NOTES
    )
    uids = []
    for name in ("phone", "tablet"):
        async with _device(tmp_path / f"{name}.db", node) as device:
            started = await device.auth.start_oidc("local", REDIRECT_URI)
            assert len(started.code_verifier) >= 43
            assert started.code_verifier not in started.authorize_url
            returned = await browser_sign_in(started.authorize_url, "sdk@example.com")
            state = await device.auth.sign_in_with_oidc(
                "local", returned["code"], started.code_verifier, REDIRECT_URI, started.state
            )
            assert state.kind == "signed_in"
            await device.collection("notes").set(name, {"by": name})
            async with asyncio.timeout(20):
                await device.wait_synced()
            uids.append(state.uid)
    assert uids[0] == uids[1]


async def test_an_external_token_callback_is_asked_again_after_a_401(
    tmp_path: Path, external_issuer: Issuer, make_client: Callable[..., Any]
) -> None:
    """The first token has expired: the node refuses it, the SDK asks the callback with
    ``force_refresh=True`` and the write goes through as ``acme:<sub>``."""
    node: httpx.AsyncClient = await make_client(
        FAST_HASH
        + f"""
mode = "enforce"
[auth.external.acme]
issuer = "{external_issuer.url}"
audience = "{AUDIENCE}"
"""
        + NOTES
    )
    key = external_issuer.published[0]
    now = int(time.time())
    stale = external_issuer.token(key, iat=now - 4000, exp=now - 3600)
    asked: list[bool] = []

    async def get_token(force_refresh: bool) -> str:
        asked.append(force_refresh)
        return external_issuer.token(key) if force_refresh else stale

    async with _device(tmp_path / "d.db", node, headers=ExternalToken(get_token)) as device:
        await device.collection("notes").set("n1", {"t": 1})
        async with asyncio.timeout(20):
            await device.wait_synced()
    assert True in asked
    stored = await node.get(
        "/v1/collections/notes/docs/n1",
        headers={"Authorization": f"Bearer {external_issuer.token(key)}"},
    )
    assert stored.json()["data"] == {"t": 1, "owner": "acme:user-1"}


def test_expiry_is_read_from_a_jwt_and_nothing_else() -> None:
    """``exp`` of a JWT; None for anything that is not one."""
    assert expiry_of("e30.eyJleHAiOjEyM30.sig") == 123.0
    assert expiry_of("opaque-token") is None
    assert expiry_of("e30.eyJleHAiOnRydWV9.x") is None  # {"exp": true}
