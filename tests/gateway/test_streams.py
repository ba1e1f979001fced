"""Long-lived requests through the gateway outlive the bound of ordinary ones: a long-poll and
an SSE stream silent for longer than ``request`` still get their answer."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import httpx
import pytest

from tests.gateway.conftest import TEST_TIMEOUTS, Region

pytestmark = pytest.mark.slow
SILENCE = TEST_TIMEOUTS.request + 2.0


async def test_a_long_poll_waits_past_the_request_bound(
    start_region: Callable[..., Region],
) -> None:
    """A pull with ``wait`` longer than the request bound answers 200 with the change written
    while it waited, from the node it waited on (HAProxy did not give up and send it again)."""
    region = start_region(2)
    async with httpx.AsyncClient(base_url=region.url, timeout=30) as http:
        cursor = (await http.get("/v1/sync/pull")).json()["cursor"]
        began = time.monotonic()
        poll = asyncio.ensure_future(
            http.get("/v1/sync/pull", params={"cursor": cursor, "wait": SILENCE + 5})
        )
        await asyncio.sleep(SILENCE)
        await http.put("/v1/collections/notes/docs/late", json={"v": 1})
        answer = await poll
    assert answer.status_code == 200
    assert [c["id"] for c in answer.json()["changes"]] == ["late"]
    assert time.monotonic() - began >= SILENCE
    assert region.gateway.stats()["BACKEND"]["wretr"] == "0"


async def test_an_sse_stream_stays_open_past_the_request_bound(
    start_region: Callable[..., Region],
) -> None:
    """An SSE stream silent for longer than the request bound still delivers a later change."""
    region = start_region(2)
    async with (
        httpx.AsyncClient(base_url=region.url, timeout=30) as http,
        http.stream("GET", "/v1/realtime/sse") as stream,
    ):
        assert stream.status_code == 200
        await asyncio.sleep(SILENCE)
        await http.put("/v1/collections/notes/docs/sse", json={"v": 1})
        async for line in stream.aiter_lines():
            if line.startswith("data:") and '"sse"' in line:
                changes = json.loads(line.removeprefix("data:"))["changes"]
                assert [c["id"] for c in changes] == ["sse"]
                return
    raise AssertionError("the stream ended without the change")
