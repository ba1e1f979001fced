"""Client lifecycle: opening, closing while offline, input checked before anything is queued."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from breakwater.client import Client, ClientClosed
from breakwater.core.errors import ValidationError
from tests.conftest import free_port


async def test_close_while_offline_returns_promptly_and_keeps_the_outbox(tmp_path: Path) -> None:
    """With every endpoint down and a write pending, closing takes no backoff-long wait."""
    client = Client([f"http://127.0.0.1:{free_port()}"], tmp_path / "d.db", breaker_reset=30)
    await client.open()
    await client.collection("todos").set("t1", {"a": 1})
    await asyncio.sleep(0.3)
    async with asyncio.timeout(2):
        await client.aclose()
    async with Client(["http://unused"], tmp_path / "d.db", sync=False) as again:
        assert len(await again.outbox()) == 1


async def test_bad_writes_are_refused_locally_and_never_queued(tmp_path: Path) -> None:
    """Bad ids, non-object data and non-numeric increments raise at once; the outbox is empty."""
    async with Client(["http://unused"], tmp_path / "d.db", sync=False) as client:
        todos = client.collection("todos")
        with pytest.raises(ValidationError):
            await todos.set("bad id with spaces", {"a": 1})
        with pytest.raises(ValidationError):
            await todos.set("t1", ["not", "an", "object"])  # type: ignore[arg-type]
        with pytest.raises(ValidationError):
            await todos.increment("t1", {"n": "one"})  # type: ignore[dict-item]
        with pytest.raises(ValidationError):
            client.collection("9bad")
        assert await client.outbox() == []


async def test_collection_of_a_closed_client_is_refused(tmp_path: Path) -> None:
    """Using a client that is not open says so."""
    client = Client(["http://unused"], tmp_path / "d.db", sync=False)
    with pytest.raises(ClientClosed):
        client.collection("todos")
