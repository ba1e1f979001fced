"""Garbage collection: unreferenced files go after the grace period, referenced ones stay."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.files import tus
from tests.files.conftest import sha256


@pytest.fixture
async def client(make_client: Callable[..., Any], files_store: str) -> httpx.AsyncClient:
    """An open-mode node whose files go to each backend (grace: one hour)."""
    node: httpx.AsyncClient = await make_client(files_store=files_store, files_gc_grace=3600.0)
    return node


async def test_only_unreferenced_files_past_the_grace_period_are_deleted(
    client: httpx.AsyncClient,
) -> None:
    """A referenced file and a young one stay; an old unreferenced one goes."""
    files = client.app.state.node.files  # type: ignore[attr-defined]
    kept = await tus.upload(client, b"referenced")
    orphan = await tus.upload(client, b"orphan")
    await client.put("/v1/collections/photos/docs/p1", json={"img": {"$file": kept}})
    now = files.clock()
    files.clock = lambda: now + 7200
    young = await tus.upload(client, b"young")
    report = await files.collect_garbage()
    assert (report.deleted, report.kept) == (1, 2)
    assert (await client.get(f"/v1/files/{orphan}")).status_code == 404
    assert (await client.get(f"/v1/files/{kept}")).content == b"referenced"
    assert (await client.get(f"/v1/files/{young}")).content == b"young"
    assert young == sha256(b"young")


async def test_an_abandoned_upload_expires(client: httpx.AsyncClient) -> None:
    """An unfinished upload past its lifetime is removed; its HEAD is then 404."""
    files = client.app.state.node.files  # type: ignore[attr-defined]
    location = (await tus.create(client, 100)).headers["Location"]
    await tus.patch(client, location, 0, b"x" * 10)
    now = files.uploads.clock()
    files.uploads.clock = lambda: now + 2 * 86400
    report = await files.collect_garbage()
    assert report.expired_uploads == 1
    assert (await client.head(location, headers=tus.TUS)).status_code == 404
