"""Two nodes over one PostgreSQL database share accounts, API keys and refresh-token families."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.auth.conftest import FAST_HASH, sign_up
from tests.storage.backends import drop_schema, postgres_url


@pytest.fixture
async def two_nodes(
    tmp_path: Path, make_client: Callable[..., Any]
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """Nodes A and B: one database, their own data directories, one signing-key file."""
    url, schema = postgres_url()
    toml = FAST_HASH + f'signing_keys_file = "{tmp_path / "shared-keys.json"}"\n'
    nodes = []
    for name in ("a", "b"):
        nodes.append(await make_client(toml, store=url, node=name, data=tmp_path / name))
    yield nodes[0], nodes[1]
    await drop_schema(schema)


async def test_a_user_signed_up_on_one_node_signs_in_and_refreshes_on_the_other(
    two_nodes: tuple[httpx.AsyncClient, httpx.AsyncClient], tmp_path: Path
) -> None:
    """Sign up on A; B knows the email, signs the user in with the same uid, and rotates A's
    refresh token; A's access token is accepted by B."""
    a, b = two_nodes
    user = await sign_up(a, "shared@example.com")
    taken = await b.post(
        "/v1/auth/signup", json={"email": "shared@example.com", "password": "another one"}
    )
    assert taken.status_code == 409 and taken.json()["type"] == "email_taken"
    login = await b.post(
        "/v1/auth/login", json={"email": "shared@example.com", "password": "correct horse"}
    )
    assert login.status_code == 200 and login.json()["uid"] == user.uid
    rotated = await b.post("/v1/auth/refresh", json={"refresh_token": user.refresh})
    assert rotated.status_code == 200 and rotated.json()["uid"] == user.uid
    assert (await b.get("/v1/collections/notes/docs", headers=user.headers)).status_code == 200
    assert not (tmp_path / "a" / "auth.db").exists() and not (tmp_path / "b" / "auth.db").exists()


async def test_a_refresh_token_reused_across_nodes_revokes_its_family(
    two_nodes: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    """Refresh on A, replay the spent token on B: reuse there too, and A's new token dies."""
    a, b = two_nodes
    user = await sign_up(a, "victim@example.com")
    first = await a.post("/v1/auth/refresh", json={"refresh_token": user.refresh})
    assert first.status_code == 200
    replay = await b.post("/v1/auth/refresh", json={"refresh_token": user.refresh})
    assert replay.status_code == 401 and "already used" in replay.json()["detail"]
    after = await a.post("/v1/auth/refresh", json={"refresh_token": first.json()["refresh_token"]})
    assert after.status_code == 401


async def test_an_api_key_made_on_one_node_works_on_the_other_until_revoked_there(
    two_nodes: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    """A key created through node A's service authenticates on B; revoked on B, A refuses it."""
    a, b = two_nodes
    service_a = a.app.state.node.auth  # type: ignore[attr-defined]
    service_b = b.app.state.node.auth  # type: ignore[attr-defined]
    key, record = service_a.create_key("ops", ["read:*"])
    headers = {"Authorization": f"ApiKey {key}"}
    assert (await b.get("/v1/collections/notes/docs", headers=headers)).status_code == 200
    assert service_b.store.revoke_key(record.key_id, 1)
    refused = await a.get("/v1/collections/notes/docs", headers=headers)
    assert refused.status_code == 401
