"""The subscribers of ``breakwater bench realtime``, as a process of their own.

``python -m breakwater.bench._realtime_subscribers --port P --n N`` opens ``N`` WebSocket
subscriptions, prints ``{"ready": ...}`` once every one is acknowledged, then follows commands
on stdin, one per line: ``measure`` starts counting (and resets) and says so with a line,
``report`` prints what was counted since, as one JSON line, ``exit`` closes everything. A few
*sampled* subscribers parse every message to time each change (its ``data.t`` is the writer's
scheduled send time); the others only count changes, to keep the client's CPU per message
small; they are spread evenly over the connection order.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from typing import Any

import orjson

from breakwater.bench._ws import HandshakeRefused, WsClient
from breakwater.bench.descriptors import require_descriptors

PATH = "/v1/realtime"
PING = b'{"type":"ping"}'
PONG = b'{"type":"pong"}'
SUBSCRIBED = b'"type":"subscribed"'
CHANGE_MARK = b'"mutation_id"'
PROGRESS_EVERY = 500
"""Connections between two progress lines while connecting."""
ACK_WAIT = 120.0
"""Seconds to wait, once every connection is open, for every subscription's acknowledgement."""


def _say(line: dict[str, Any]) -> None:
    """One JSON line to the benchmark (progress while connecting, then the readiness)."""
    print(json.dumps(line), flush=True)


class Counters:
    """What every subscriber saw since the last ``measure``."""

    def __init__(self, subscribers: int) -> None:
        self.changes = 0
        self.messages = 0
        self.latencies: list[float] = []
        self.acks = 0
        self.subscribers = subscribers
        self.all_acknowledged = asyncio.Event()

    def acknowledged(self) -> None:
        """One more subscription is acknowledged."""
        self.acks += 1
        if self.acks >= self.subscribers:
            self.all_acknowledged.set()


def _handler(counters: Counters, sampled: bool) -> Any:
    # Once acknowledged, a counting subscriber stops looking for the acknowledgement: at
    # 10,000 subscribers that scan of every message was a third of the process's own time.
    waiting = True

    def on_message(client: WsClient, payload: bytes) -> None:
        nonlocal waiting
        if payload == PING:
            client.send_text(PONG)
            return
        counters.messages += 1
        if sampled:
            now = time.time()
            message = orjson.loads(payload)
            if message["type"] == "changes":
                for change in message["changes"]:
                    counters.changes += 1
                    data = change.get("data") or {}
                    if "t" in data:
                        counters.latencies.append(now - data["t"])
            elif message["type"] == "subscribed":
                counters.acknowledged()
        elif waiting and SUBSCRIBED in payload:
            waiting = False
            counters.acknowledged()
        else:
            counters.changes += payload.count(CHANGE_MARK)

    return on_message


async def _open(
    port: int, index: int, counters: Counters, sampled: bool, deflate: bool, cursor: str
) -> WsClient:
    for _ in range(50):
        try:
            client = await WsClient.connect(
                "127.0.0.1", port, PATH, _handler(counters, sampled), deflate
            )
        except HandshakeRefused as refused:
            await asyncio.sleep(refused.retry)
            continue
        client.send_text(b'{"type":"subscribe","cursor":"%s"}' % cursor.encode())
        return client
    raise RuntimeError(f"subscriber {index} was refused 50 times")


async def main() -> None:
    """Connect, then obey stdin."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--sample", type=int, default=50)
    parser.add_argument("--connect-rate", type=float, default=400.0)
    parser.add_argument("--deflate", action="store_true")
    parser.add_argument("--cursor", default="", help="where every subscription starts")
    args = parser.parse_args()
    require_descriptors(args.n, "the subscriber process")
    counters = Counters(args.n)
    started = time.monotonic()
    pending = []
    # Sampled subscribers are spread over the connection order, which is the order the node
    # sends in: the first ones opened would see only the start of every send pass.
    every = max(1, args.n // max(1, args.sample))
    for index in range(args.n):
        sampled = index % every == 0 and index // every < args.sample
        pending.append(
            asyncio.ensure_future(
                _open(args.port, index, counters, sampled, args.deflate, args.cursor)
            )
        )
        await asyncio.sleep(1 / args.connect_rate)
        if index % PROGRESS_EVERY == PROGRESS_EVERY - 1:
            _say({"connecting": index + 1, "acknowledged": counters.acks})
    clients = await asyncio.gather(*pending)
    waited = 0.0
    while not counters.all_acknowledged.is_set() and waited < ACK_WAIT:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(counters.all_acknowledged.wait(), 2.0)
        waited += 2.0
        _say({"connecting": args.n, "acknowledged": counters.acks})
    _say({"ready": counters.acks, "seconds": time.monotonic() - started})
    reader = asyncio.StreamReader()
    await asyncio.get_running_loop().connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
    )
    measured_at = time.monotonic()
    while True:
        command = (await reader.readline()).decode().strip()
        if command == "measure":
            counters.changes = counters.messages = 0
            counters.latencies = []
            measured_at = time.monotonic()
            _say({"measuring": True})  # the writer starts only now: no change counted before
        elif command == "report":
            report = {
                "changes": counters.changes,
                "messages": counters.messages,
                "latencies": counters.latencies,
                "seconds": time.monotonic() - measured_at,
                "open": sum(1 for c in clients if not c.closed.done()),
            }
            print(json.dumps(report), flush=True)
        else:
            for client in clients:
                client.close()
            return


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())
