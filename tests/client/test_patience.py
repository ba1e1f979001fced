"""A request under the routing's patience (ADR 0038): given up when the node is silent, kept
when the node answers a health probe (slow, not gone)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from breakwater.client.errors import EndpointUnavailable
from breakwater.client.node_api import NodeApi

PATIENCE = 0.2


def node(*, answers_probe: bool, push_after: asyncio.Event | None = None) -> httpx.MockTransport:
    """A node whose push answers once ``push_after`` is set (never, without one), and whose
    ``/readyz`` answers at once or never."""
    probed = asyncio.Event()

    async def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/readyz":
            probed.set()
            if not answers_probe:
                await asyncio.Event().wait()
            return httpx.Response(200, json={"status": "ready"})
        await probed.wait()  # the push outlives half the patience: the probe goes out
        if push_after is None:
            await asyncio.Event().wait()
        else:
            await asyncio.sleep(PATIENCE)  # and outlives the patience too
            push_after.set()
        return httpx.Response(200, json={"results": [], "hlc": ""})

    return httpx.MockTransport(handle)


async def test_a_silent_node_is_given_up_after_the_patience() -> None:
    """Neither the push nor the probe is answered: EndpointUnavailable naming the wait."""
    async with httpx.AsyncClient(transport=node(answers_probe=False)) as http:
        api = NodeApi(http, "http://node", patience=lambda: PATIENCE)
        with pytest.raises(EndpointUnavailable) as caught:
            await api.push([])
    assert caught.value.extra["waited"] == PATIENCE


async def test_a_slow_request_to_a_live_node_is_kept_beyond_the_patience() -> None:
    """The node answers the probe: the push is awaited past the patience and answers."""
    answered = asyncio.Event()
    async with httpx.AsyncClient(transport=node(answers_probe=True, push_after=answered)) as http:
        api = NodeApi(http, "http://node", patience=lambda: PATIENCE)
        assert await api.push([]) == {"results": [], "hlc": ""}
    assert answered.is_set()
