"""Fixtures for webhook tests: a receiver on loopback, and a node that may call it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from tests.webhooks.receiver import Receiver

# Loopback receivers need private targets allowed; short timeouts and backoff keep tests quick.
FAST = {
    "webhook_allow_private": True,
    "webhook_timeout": 0.3,
    "webhook_backoff_base": 0.02,
    "webhook_backoff_cap": 0.1,
}


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A receiver that answers 200 until a test switches its mode."""
    running = Receiver()
    await running.start()
    yield running
    await running.aclose()


def admin_headers(client: httpx.AsyncClient) -> dict[str, str]:
    """An admin API key's header for an in-process node."""
    secret = client.app.state.node.auth.create_key("ops", ["admin"])[0]  # type: ignore[attr-defined]
    return {"Authorization": f"ApiKey {secret}"}


async def subscribe(
    client: httpx.AsyncClient, headers: dict[str, str], url: str, **fields: Any
) -> dict[str, Any]:
    """Create a subscription through the admin API; its record with the secret."""
    response = await client.post("/v1/admin/webhooks", json={"url": url, **fields}, headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


MakeClient = Callable[..., Any]


async def caught_up(node: Any) -> None:
    """Wait (up to 30 s) until every subscription's durable cursor covers the store's head."""
    head = await node.store.head()
    async with asyncio.timeout(30):
        for subscription in await node.webhooks.store.subscriptions():
            while True:
                cursor = await node.webhooks.store.cursor(subscription.sub_id)
                if cursor is not None and all(cursor.get(o, 0) >= s for o, s in head.items()):
                    break
                await asyncio.sleep(0.05)
