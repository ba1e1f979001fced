"""Fixtures for auth tests: a node with access rules, and helpers to sign users in."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.auth.backends import AUTH_BACKENDS
from tests.storage.backends import drop_schema, postgres_url

# Cheap argon2 parameters keep the tests fast; the OWASP defaults are what nodes use.
FAST_HASH = """
[auth]
password_memory_kib = 64
password_time_cost = 1
"""

RULES = (
    FAST_HASH
    + """
mode = "enforce"

[collections.notes]
owner = "owner"
rules.read = "auth.uid == doc.owner || (has(doc.public) && doc.public == true)"
rules.write = "auth.uid == doc.owner"

[collections.open]
rules = { read = "true", write = "true" }
"""
)


@dataclass
class User:
    """A signed-in user: uid, tokens and the headers that carry the access token."""

    uid: str
    access: str
    refresh: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access}"}


async def sign_up(client: httpx.AsyncClient, email: str, password: str = "correct horse") -> User:
    """Create an account and return its session."""
    response = await client.post("/v1/auth/signup", json={"email": email, "password": password})
    assert response.status_code == 201, response.text
    body = response.json()
    return User(body["uid"], body["access_token"], body["refresh_token"])


@pytest.fixture
async def rules_node(make_client: Callable[..., Any]) -> httpx.AsyncClient:
    """A node in enforce mode with an owner-only ``notes`` collection and an ``open`` one."""
    client: httpx.AsyncClient = await make_client(RULES)
    return client


@pytest.fixture(params=AUTH_BACKENDS)
async def auth_node(
    request: pytest.FixtureRequest, make_client: Callable[..., Any]
) -> AsyncIterator[httpx.AsyncClient]:
    """The :func:`rules_node` over each auth store: SQLite beside a SQLite document store, and
    PostgreSQL (chosen automatically) beside a PostgreSQL one."""
    if request.param == "sqlite":
        yield await make_client(RULES)
        return
    url, schema = postgres_url()
    yield await make_client(RULES, store=url)
    await drop_schema(schema)


__all__ = ["make_node"]
from tests.realtime.conftest import make_node  # noqa: E402  (live uvicorn nodes for realtime)
