"""Fixtures for SDK tests against real ``breakwater serve`` subprocesses."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from breakwater.client import Client, Event, Status


@pytest.fixture
async def make_device(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """Open SDK clients on their own databases; all are closed at teardown."""
    stack = contextlib.AsyncExitStack()

    async def make(url: str | list[str], name: str = "device", **options: Any) -> Client:
        options.setdefault("backoff_cap", 1.0)
        options.setdefault("breaker_reset", 0.5)
        urls = [url] if isinstance(url, str) else url
        client = Client(urls, tmp_path / f"{name}.db", **options)
        return await stack.enter_async_context(client)

    async with stack:
        yield make


def record_events(client: Client) -> list[Event]:
    """Every event ``client`` emits from now on."""
    events: list[Event] = []
    client.on(events.append)
    return events


def server_doc(url: str, collection: str, doc_id: str) -> dict[str, Any] | None:
    """A document as the node shows it (``None`` when missing)."""
    response = httpx.get(f"{url}/v1/collections/{collection}/docs/{doc_id}")
    return None if response.status_code == 404 else response.json()


def feed(url: str) -> list[dict[str, Any]]:
    """Every change in the node's feed."""
    changes: list[dict[str, Any]] = []
    cursor = ""
    while True:
        page = httpx.get(f"{url}/v1/sync/pull", params={"cursor": cursor, "limit": 1000}).json()
        changes += page["changes"]
        cursor = page["cursor"]
        if not page["has_more"]:
            return changes


async def wait_status(client: Client, predicate: Callable[[Status], bool], seconds: float) -> None:
    """Wait until ``predicate(client.status)`` holds (checked at each event)."""
    reached = asyncio.Event()

    def check(_event: Event) -> None:
        if predicate(client.status):
            reached.set()

    remove = client.on(check)
    try:
        if not predicate(client.status):
            async with asyncio.timeout(seconds):
                await reached.wait()
    finally:
        remove()
