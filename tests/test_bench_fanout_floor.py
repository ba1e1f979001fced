"""bench realtime's fan-out floor: every subscriber gets every change once, in order, with the
changes that wait for a pass merged into one message (it must do the work it stands for)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from breakwater.bench._fanout_floor import Fanout, FloorServer, encode_change
from breakwater.bench._http import HttpConnection
from breakwater.bench._ws import WsClient
from breakwater.bench.realtime import Measured


def _payload(frame: bytes) -> dict[str, Any]:
    """The JSON of a server's text frame."""
    length = frame[1] & 0x7F
    offset = {126: 4, 127: 10}.get(length, 2)
    message: dict[str, Any] = orjson.loads(frame[offset:])
    return message


class _Inbox:
    """A subscriber's received messages, decoded."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.received = asyncio.Event()

    def write(self, frame: bytes) -> None:
        self.messages.append(_payload(frame))
        self.received.set()

    @property
    def seqs(self) -> list[int]:
        return [change["seq"] for message in self.messages for change in message["changes"]]


def _change(fanout: Fanout, index: int) -> bytes:
    return encode_change(len(fanout.changes) + 1, b"bench", b"w%d" % index, b'{"i":%d}' % index)


async def test_every_subscriber_gets_every_change_once_in_order() -> None:
    fanout = Fanout(chunk=2)
    inboxes = [_Inbox() for _ in range(5)]
    for inbox in inboxes:
        fanout.subscribe(inbox.write)
    for index in range(7):
        fanout.publish(_change(fanout, index))
        await fanout.send_pass()
    for inbox in inboxes:
        assert inbox.seqs == list(range(1, 8))
        assert [m["changes"][0]["data"] for m in inbox.messages] == [{"i": i} for i in range(7)]


async def test_changes_waiting_for_a_pass_leave_as_one_message_framed_once() -> None:
    fanout = Fanout()
    frames: list[bytes] = []
    for _ in range(3):
        fanout.subscribe(frames.append)
    for index in range(4):
        fanout.publish(_change(fanout, index))
    await fanout.send_pass()
    assert len(frames) == 3 and all(frame is frames[0] for frame in frames)
    message = _payload(frames[0])
    assert message["type"] == "changes" and len(message["changes"]) == 4


async def test_a_change_made_during_a_pass_joins_it_for_the_subscribers_not_yet_visited() -> None:
    fanout = Fanout(chunk=1)
    first, second = _Inbox(), _Inbox()

    def write_then_publish(frame: bytes) -> None:
        first.write(frame)
        if len(fanout.changes) == 1:
            fanout.publish(_change(fanout, 1))  # arrives while the pass goes on

    fanout.subscribe(write_then_publish)
    fanout.subscribe(second.write)
    fanout.publish(_change(fanout, 0))
    await fanout.send_pass()
    assert second.seqs == [1, 2] and len(second.messages) == 1
    assert first.seqs == [1]
    await fanout.send_pass()
    assert first.seqs == [1, 2] and second.seqs == [1, 2]


async def test_a_busy_subscriber_waits_and_then_gets_what_it_lacks_in_one_message() -> None:
    fanout = Fanout()
    slow, quick = _Inbox(), _Inbox()
    waiting = fanout.subscribe(slow.write)
    fanout.subscribe(quick.write)
    waiting.busy = True  # its socket still holds an earlier message
    for index in range(2):
        fanout.publish(_change(fanout, index))
        await fanout.send_pass()
    assert slow.messages == [] and quick.seqs == [1, 2]
    sender = asyncio.create_task(fanout.run())
    try:
        fanout.ready(waiting)  # its socket drained: that alone starts a pass
        async with asyncio.timeout(5):
            await slow.received.wait()
    finally:
        sender.cancel()
    assert slow.seqs == [1, 2] and len(slow.messages) == 1


async def test_a_subscriber_starts_at_the_position_it_subscribed_at() -> None:
    fanout = Fanout()
    fanout.publish(_change(fanout, 0))
    late = _Inbox()
    fanout.subscribe(late.write)
    fanout.publish(_change(fanout, 1))
    await fanout.send_pass()
    assert late.seqs == [2]


async def test_over_sockets_each_subscriber_receives_each_put_once_in_order() -> None:
    """The writer's PUTs and the bench's own WebSocket client, through the floor server."""
    received: list[list[int]] = [[] for _ in range(4)]
    subscribed: list[int] = []
    all_subscribed, all_received = asyncio.Event(), asyncio.Event()

    def handler(index: int) -> Any:
        def on_message(_client: WsClient, payload: bytes) -> None:
            message = orjson.loads(payload)
            if message["type"] == "subscribed":
                subscribed.append(index)
            else:
                received[index].extend(c["data"]["i"] for c in message["changes"])
            if len(subscribed) == len(received):
                all_subscribed.set()
            if all(len(got) >= 30 for got in received):
                all_received.set()

        return on_message

    async with FloorServer() as floor:
        clients = [
            await WsClient.connect("127.0.0.1", floor.port, "/v1/realtime", handler(index))
            for index in range(len(received))
        ]
        for client in clients:
            client.send_text(b'{"type":"subscribe","cursor":""}')
        async with asyncio.timeout(10):
            await all_subscribed.wait()
        async with HttpConnection("127.0.0.1", floor.port) as http:
            for index in range(30):
                status, _ = await http.request(
                    "PUT", f"/v1/collections/bench/docs/w{index}", b'{"i":%d}' % index
                )
                assert status == 200
        async with asyncio.timeout(10):
            await all_received.wait()
        for client in clients:
            client.close()
    assert received == [list(range(30))] * len(received)


def _measured(subscribers_cpu_s: float) -> Measured:
    return Measured([1.0], 1, 1, 1, 1, 0, 1.0, 2.0, 0.5, subscribers_cpu_s)


def test_a_subscriber_process_near_a_full_core_flags_the_run_as_generator_bound() -> None:
    assert _measured(1.9).generator_bound() == "the subscriber process used 95% of a core"
    assert _measured(1.0).generator_bound() is None
