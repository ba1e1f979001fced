"""A sync paused while it moves to another endpoint stops (its realtime ladder of the endpoint
it leaves may take seconds to close: a WebSocket's closing handshake with a stalled node).

The sync used to wait for that ladder inside ``suppress(CancelledError)``, which swallowed the
pause's own cancellation: the sync ran on unseen, and ``pause()`` waited for it for good."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from breakwater.client import Client
from breakwater.client.transports import TRANSPORTS, StreamContext
from breakwater.client.transports.websocket import WebSocketTransport

pytestmark = pytest.mark.timeout(30)


class SlowToClose(WebSocketTransport):
    """Realtime that never hears of changes and takes until ``release`` to close."""

    closing = asyncio.Event()
    release = asyncio.Event()
    started = 0

    async def listen(self, context: StreamContext) -> None:
        type(self).started += 1
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            type(self).closing.set()
            await type(self).release.wait()
            raise


def nodes_that_answer_only_readyz(request: httpx.Request) -> httpx.Response:
    """Both regions look healthy to probes; every sync request fails (a refused connection)."""
    if request.url.path == "/readyz":
        return httpx.Response(200, json={"status": "ready"})
    raise httpx.ConnectError("refused", request=request)


async def test_a_sync_paused_while_it_switches_endpoints_stops(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    SlowToClose.closing = asyncio.Event()
    SlowToClose.release = asyncio.Event()
    SlowToClose.started = 0
    monkeypatch.setitem(TRANSPORTS, "websocket", SlowToClose)
    phone = Client(
        ["http://a", "http://b"],
        tmp_path / "phone.db",
        http_transport=httpx.MockTransport(nodes_that_answer_only_readyz),
        transports=("websocket",),
        regions={"east": ["http://a"], "west": ["http://b"]},
    )
    async with phone:
        # The first endpoint's sync fails, the other region is healthy: the sync moves there
        # and stops the first endpoint's realtime, which is slow to close.
        async with asyncio.timeout(10):
            await SlowToClose.closing.wait()
        pausing = asyncio.create_task(phone.pause())
        await asyncio.sleep(0.1)  # the pause's cancellation reaches the waiting sync
        SlowToClose.release.set()
        async with asyncio.timeout(5):
            await pausing
        assert phone.paused
        # Stopped where the pause found it: realtime was never started on the other endpoint.
        assert SlowToClose.started == 1


class SlowToStopSync:
    """A sync loop that takes until ``release`` to wind down once cancelled."""

    winding_down = asyncio.Event()
    release = asyncio.Event()

    def __init__(self, *args: object) -> None:
        pass

    async def run(self) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            type(self).winding_down.set()
            await type(self).release.wait()
            raise


async def test_a_pause_cancelled_while_the_sync_winds_down_is_cancelled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The app gives up on a pause (its own timeout): the cancellation reaches the app, where
    a suppressed wait for the sync used to swallow it and return as if paused."""
    SlowToStopSync.winding_down = asyncio.Event()
    SlowToStopSync.release = asyncio.Event()
    monkeypatch.setattr("breakwater.client.client.SyncLoop", SlowToStopSync)
    phone = Client(["http://a"], tmp_path / "phone.db")
    async with phone:
        pausing = asyncio.create_task(phone.pause())
        async with asyncio.timeout(5):
            await SlowToStopSync.winding_down.wait()
        pausing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await pausing
        assert not phone.paused  # the sync has not ended yet, and is still the client's
        SlowToStopSync.release.set()
    assert phone.paused
