"""A sync stopped while a pulled page commits (pause, going offline): the page commits in the
store's thread either way, so its listeners are told of it, or a checker rebuilding the
device's copy from PageApplied events (and the app's live queries) would miss a page the device
holds."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from breakwater.client import Client, Event, PageApplied
from breakwater.client.local_store import LocalStore, PageResult


async def test_a_page_committing_while_the_sync_is_paused_is_still_told(
    tmp_path: Path, make_client: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    node: httpx.AsyncClient = await make_client()
    assert (await node.put("/v1/collections/todos/docs/a", json={"v": 1})).status_code == 201
    committed, release = threading.Event(), threading.Event()
    original = LocalStore._apply_page

    def slow_apply(self: LocalStore, *args: Any, **kwargs: Any) -> PageResult:
        result = original(self, *args, **kwargs)
        if result.documents:
            committed.set()
            release.wait(10)  # the page is in the device's database; the thread is not done
        return result

    monkeypatch.setattr(LocalStore, "_apply_page", slow_apply)
    phone = Client(
        ["http://node"],
        tmp_path / "phone.db",
        http_transport=httpx.ASGITransport(app=node.app),  # type: ignore[attr-defined]
        transports=("long_poll",),
    )
    events: list[Event] = []
    told = asyncio.Event()

    def listen(event: Event) -> None:
        events.append(event)
        if isinstance(event, PageApplied):
            told.set()

    phone.on(listen)
    async with phone:
        assert await asyncio.to_thread(committed.wait, 10)
        await phone.pause()  # cancels the sync while the page's thread is still running
        release.set()
        async with asyncio.timeout(10):
            await told.wait()
    [page] = [e for e in events if isinstance(e, PageApplied)]
    assert page.documents == {("todos", "a"): {"v": 1}}
