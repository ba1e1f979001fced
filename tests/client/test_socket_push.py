"""Pushing over the realtime WebSocket, and over HTTP when the socket drops mid-push."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from breakwater.client import MutationsAcknowledged
from breakwater.client.socket_push import SocketGone, SocketPush
from breakwater.core.errors import Forbidden
from tests.client.conftest import feed, record_events, wait_status
from tests.client.cut_proxy import CutProxy
from tests.client.test_write_cost import RecordingTransport
from tests.conftest import ServerProcess

pytestmark = pytest.mark.slow


async def test_a_push_cut_off_mid_answer_is_pushed_again_over_http_once(
    start_server: Callable[..., ServerProcess], make_device: Callable[..., Any]
) -> None:
    """The node applied the push but the socket dropped before its answer: the device pushes
    the same mutation over HTTP, the node answers ``duplicate``, the write settles, and the
    feed holds it once."""
    server = start_server()
    proxy = CutProxy(int(server.url.rsplit(":", 1)[1]), on_cut=lambda: None, socket=True)
    await proxy.start()
    try:
        wire = RecordingTransport()
        phone = await make_device(
            f"http://127.0.0.1:{proxy.port}",
            "phone",
            transports=("websocket",),
            http_transport=wire,
        )
        await wait_status(phone, lambda s: s.transport == "websocket", 30)
        await wait_status(phone, lambda s: s.state == "online", 30)
        await asyncio.sleep(0.3)
        events = record_events(phone)
        wire.requests.clear()
        proxy.armed = True
        await phone.collection("todos").set("t1", {"title": "milk"})
        async with asyncio.timeout(30):
            await proxy.cut.wait()
        await wait_status(phone, lambda s: s.pending == 0, 30)
    finally:
        await proxy.aclose()
    assert "POST /v1/sync/push" in wire.requests
    acks = [e for e in events if isinstance(e, MutationsAcknowledged)]
    assert [e.duplicates for e in acks] == [frozenset({acks[0].entries[0].mutation_id})]
    assert [c["id"] for c in feed(server.url)] == ["t1"]


async def test_without_a_socket_a_push_is_refused_for_http() -> None:
    """No socket open: the caller is told to push over HTTP."""
    with pytest.raises(SocketGone):
        await SocketPush().push([{"mutation_id": "m1"}], 1.0)


async def test_a_socket_that_closes_before_the_answer_fails_the_waiting_push() -> None:
    """A push waiting when the socket closes fails with SocketGone, not a hang."""
    socket = SocketPush()
    sent = asyncio.Event()

    async def send(text: str) -> None:
        sent.set()

    socket.attach(send)
    waiting = asyncio.create_task(socket.push([{"mutation_id": "m1"}], 30.0))
    await sent.wait()
    socket.detach()
    with pytest.raises(SocketGone):
        await waiting


async def test_a_send_that_hangs_fails_the_push_within_its_time() -> None:
    """A socket whose send does not complete (closing: ``websockets`` waits for the close)
    fails the push with SocketGone after the push's time, so it goes over HTTP."""
    socket = SocketPush()

    async def send(text: str) -> None:
        await asyncio.Event().wait()

    socket.attach(send)
    async with asyncio.timeout(5):
        with pytest.raises(SocketGone):
            await socket.push([{"mutation_id": "m1"}], 0.05)
    assert not socket.waiting


async def test_a_refused_push_raises_the_problems_error() -> None:
    """A ``pushed`` answer with a problem raises the error the HTTP answer would."""
    socket = SocketPush()

    async def send(text: str) -> None:
        problem = {"type": "forbidden", "status": 403, "title": "Forbidden", "detail": "no"}
        socket.answered({"type": "pushed", "id": 1, "error": problem})

    socket.attach(send)
    with pytest.raises(Forbidden):
        await socket.push([{"mutation_id": "m1"}], 5.0)


async def test_the_compact_answer_is_expanded_in_the_mutations_order() -> None:
    """Results get their mutation ids by position, the answer's origin and ``applied``."""
    socket = SocketPush()

    async def send(text: str) -> None:
        socket.answered(
            {
                "type": "pushed",
                "id": 1,
                "origin": "r1",
                "results": [
                    {"seq": 4, "version": "v", "hlc": "h"},
                    {"status": "duplicate", "origin": "r2", "seq": 9},
                ],
                "hlc": "now",
                "stable": {"r1": 4},
                "derive": True,
            }
        )

    socket.attach(send)
    answer = await socket.push([{"mutation_id": "a"}, {"mutation_id": "b"}], 5.0)
    assert answer["results"] == [
        {
            "status": "applied",
            "origin": "r1",
            "seq": 4,
            "version": "v",
            "hlc": "h",
            "mutation_id": "a",
        },
        {"status": "duplicate", "origin": "r2", "seq": 9, "mutation_id": "b"},
    ]
    assert answer["derive"] is True and answer["stable"] == {"r1": 4}
