"""Draining a node behind a real HAProxy under realtime load and pushes, end to end.

SIGTERM n2: its ``/readyz`` turns 503 and HAProxy takes it out of the pool, its WebSocket and
SSE subscribers are told to ``reconnect`` and land, through the gateway, on the other nodes, where
they resume from their cursors and miss nothing (I5); pushes through the gateway meanwhile all
succeed, and the node exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import threading
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus, WebSocketException

from tests.gateway.conftest import Region

pytestmark = pytest.mark.slow
SUBSCRIBERS = 12
Change = tuple[str, int]


class Subscriber:
    """A realtime client that follows ``reconnect`` through the gateway with its cursor."""

    def __init__(self, url: str) -> None:
        self.url = url.replace("http://", "ws://") + "/v1/realtime"
        self.cursor = ""
        self.received: list[Change] = []
        self.nodes: list[str] = []
        self.refused = 0
        self.connected = asyncio.Event()

    async def follow(self, expected: Callable[[], set[Change]], done: asyncio.Event) -> None:
        """Receive until ``done`` is set and every change of ``expected()`` arrived."""
        while not (done.is_set() and expected() <= set(self.received)):
            try:
                async with connect(self.url, open_timeout=10) as ws:
                    assert ws.response is not None
                    self.nodes.append(ws.response.headers.get("x-served-by", ""))
                    await ws.send(json.dumps({"type": "subscribe", "cursor": self.cursor}))
                    await self._read(ws, expected, done)
                # At once, not after protocol.md's random pause: the worst case for the
                # gateway, which still sends n2 new connections until its checks notice.
                continue
            except InvalidStatus:
                self.refused += 1
            except (OSError, WebSocketException):
                pass
            await asyncio.sleep(random.uniform(0.05, 0.3))

    async def _read(
        self, ws: ClientConnection, expected: Callable[[], set[Change]], done: asyncio.Event
    ) -> None:
        while not (done.is_set() and expected() <= set(self.received)):
            try:
                message: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 0.5))
            except TimeoutError:
                continue
            kind = message["type"]
            if kind == "subscribed":
                self.connected.set()
            elif kind == "ping":
                await ws.send(json.dumps({"type": "pong"}))
            elif kind == "changes":
                self.received += [(c["origin"], c["seq"]) for c in message["changes"]]
                self.cursor = message["cursor"]
            elif kind == "reconnect":
                assert message["cursor"] == self.cursor
                return


class SseSubscriber:
    """The same client over Server-Sent Events, resuming with ``Last-Event-ID``."""

    def __init__(self, url: str) -> None:
        self.url = url + "/v1/realtime/sse"
        self.cursor = ""
        self.received: list[Change] = []
        self.nodes: list[str] = []
        self.refused = 0
        self.connected = asyncio.Event()
        self.arrived = asyncio.Event()

    async def follow(self, expected: Callable[[], set[Change]], done: asyncio.Event) -> None:
        """Receive until ``done`` is set and every change of ``expected()`` arrived."""
        reading = asyncio.ensure_future(self._reconnecting())
        try:
            while not (done.is_set() and expected() <= set(self.received)):
                with contextlib.suppress(TimeoutError):  # a change arrived, or time to look
                    await asyncio.wait_for(self.arrived.wait(), 0.1)
                self.arrived.clear()
        finally:
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reading

    async def _reconnecting(self) -> None:
        async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=None)) as http:
            while True:
                headers = {"Last-Event-ID": self.cursor} if self.cursor else {}
                try:
                    async with http.stream("GET", self.url, headers=headers) as stream:
                        if stream.status_code == 200:
                            self.nodes.append(stream.headers.get("x-served-by", ""))
                            self.connected.set()
                            await self._read(stream)
                            continue  # at once, as the WebSocket subscriber does
                        self.refused += 1
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(random.uniform(0.05, 0.3))

    async def _read(self, stream: httpx.Response) -> None:
        event = ""
        async for line in stream.aiter_lines():
            if line.startswith("event:"):
                event = line.removeprefix("event:").strip()
            elif line.startswith("data:") and event == "changes":
                message = json.loads(line.removeprefix("data:"))
                self.received += [(c["origin"], c["seq"]) for c in message["changes"]]
                self.cursor = message["cursor"]
                self.arrived.set()
            elif line.startswith("data:") and event == "reconnect":
                assert json.loads(line.removeprefix("data:"))["cursor"] == self.cursor
                return


class Writer:
    """Pushes one new document at a time through the gateway, retrying as the SDK does."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.acked: set[Change] = set()
        self.failures = 0

    async def run(self, stop: asyncio.Event) -> None:
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as http:
            while not stop.is_set():
                mutation = {
                    "mutation_id": uuid.uuid4().hex,
                    "collection": "notes",
                    "id": uuid.uuid4().hex[:12],
                    "op": "set",
                    "data": {"v": len(self.acked)},
                }
                while True:
                    try:
                        response = await http.post("/v1/sync/push", json={"mutations": [mutation]})
                        if response.status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    self.failures += 1
                    await asyncio.sleep(0.1)
                (result,) = response.json()["results"]
                self.acked.add((result["origin"], result["seq"]))
                await asyncio.sleep(0.01)


@pytest.mark.parametrize("transport", [Subscriber, SseSubscriber], ids=["websocket", "sse"])
async def test_a_drained_nodes_subscribers_resume_on_other_nodes_missing_nothing(
    start_region: Callable[..., Region],
    region_store: str | None,
    transport: type[Subscriber | SseSubscriber],
) -> None:
    """Every subscriber ends on n1 or n3 with every acknowledged change exactly once, in
    order; no push fails; n2 leaves HAProxy's pool and exits 0."""
    region = start_region(3, store=region_store)
    writer = Writer(region.url)
    subscribers = [transport(region.url) for _ in range(SUBSCRIBERS)]
    stop_writing, done = asyncio.Event(), asyncio.Event()
    following = [asyncio.ensure_future(s.follow(lambda: writer.acked, done)) for s in subscribers]
    await asyncio.wait_for(asyncio.gather(*(s.connected.wait() for s in subscribers)), 30)
    on_n2 = [s for s in subscribers if s.nodes == ["n2"]]
    assert len(on_n2) == SUBSCRIBERS // 3, [s.nodes for s in subscribers]
    writing = asyncio.ensure_future(writer.run(stop_writing))
    await asyncio.sleep(1.0)
    before_drain = len(writer.acked)
    exit_codes: list[int] = []
    stopper = threading.Thread(target=lambda: exit_codes.append(region.nodes["n2"].terminate()))
    stopper.start()
    await asyncio.to_thread(region.wait_state, "n2", "DOWN")
    await asyncio.to_thread(stopper.join)
    gone = len(writer.acked)
    for _ in range(150):  # writes after n2 is gone: a few, however slow the machine
        if len(writer.acked) >= gone + 10:
            break
        await asyncio.sleep(0.1)
    stop_writing.set()
    await writing
    done.set()
    await asyncio.wait_for(asyncio.gather(*following), 30)

    assert exit_codes == [0]
    assert writer.failures == 0
    assert before_drain > 0 and gone + 10 <= len(writer.acked), "writes stopped around the drain"
    for subscriber in subscribers:
        assert subscriber.nodes[-1] in ("n1", "n3"), subscriber.nodes
        assert len(subscriber.received) == len(set(subscriber.received)), "a change came twice"
        assert writer.acked <= set(subscriber.received), "a change was missed"
        seqs = [seq for _, seq in subscriber.received]
        assert seqs == sorted(seqs), "changes arrived out of order"
    for subscriber in on_n2:
        assert len(subscriber.nodes) >= 2, "a subscriber of n2 was never moved"
    assert sum(s.refused for s in subscribers) == 0
