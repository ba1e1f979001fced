"""A reconnect storm, as its own process: ``n`` WebSocket subscribers connect within ``spread``
seconds, each resuming from its own cursor, and read until they see the marker change.

Run by tests/process/test_realtime_load.py with the cursors as JSON on stdin; prints one JSON
report on stdout. Kept out of the test process so that the clients' CPU does not disturb the
test's latency probe, and built on the benchmark's lean client so that the node under test,
not the 2,000 clients, gets the CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

import orjson

from breakwater.bench._ws import HandshakeRefused, WsClient

MAX_ATTEMPTS = 20


class Subscriber:
    """One subscriber's state across its connections."""

    def __init__(self, after: int, cursor: str, report: dict[str, Any]) -> None:
        self.after = after
        self.cursor = cursor
        self.report = report
        self.seqs: list[int] = []
        self.done = asyncio.Event()
        self.reconnect = asyncio.Event()

    def on_message(self, client: WsClient, payload: bytes) -> None:
        """Answer pings, collect changes, stop at the marker."""
        message = orjson.loads(payload)
        kind = message["type"]
        if kind == "ping":
            client.send_text(b'{"type":"pong"}')
        elif kind == "changes":
            for change in message["changes"]:
                self.seqs.append(change["seq"])
                if change["collection"] == "control":
                    self.done.set()
            self.cursor = message["cursor"]
        elif kind == "reconnect":
            self.reconnect.set()


async def subscriber(
    url: tuple[str, int], sub: Subscriber, start_at: float, deadline: float
) -> None:
    """Connect at ``start_at``, resume from the cursor, read to the marker (reconnecting)."""
    report = sub.report
    await asyncio.sleep(max(0.0, start_at - time.monotonic()))
    began = time.monotonic()
    for _attempt in range(MAX_ATTEMPTS):
        try:
            client = await asyncio.wait_for(
                WsClient.connect(url[0], url[1], "/v1/realtime", sub.on_message), 30
            )
        except HandshakeRefused as refused:
            report["refused"] += 1
            await asyncio.sleep(refused.retry)
            continue
        except (TimeoutError, OSError) as error:
            report["errors"].append(repr(error))
            await asyncio.sleep(1)
            continue
        report["admitted"].append(time.monotonic() - report["started"])
        client.send_text(json.dumps({"type": "subscribe", "cursor": sub.cursor}).encode())
        sub.reconnect.clear()
        waits: list[asyncio.Future[Any]] = [
            asyncio.ensure_future(e.wait()) for e in (sub.done, sub.reconnect)
        ]
        waits.append(asyncio.ensure_future(client.closed))
        await asyncio.wait(
            waits, timeout=max(0.0, deadline - time.monotonic()), return_when="FIRST_COMPLETED"
        )
        for wait in waits:
            wait.cancel()
        client.close()
        if sub.done.is_set():
            seqs = sub.seqs
            report["done"].append(
                {
                    "complete": seqs == list(range(sub.after + 1, seqs[-1] + 1)),
                    "after": sub.after,
                    "received": len(seqs),
                    "seconds": time.monotonic() - began,
                }
            )
            return
        if time.monotonic() >= deadline:
            report["errors"].append("timed out")
            return
    report["errors"].append("gave up")


async def main() -> None:
    """Parse arguments, run every subscriber, print the report."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--spread", type=float, default=1.0)
    parser.add_argument("--seconds", type=float, default=120.0)
    args = parser.parse_args()
    cursors = json.loads(sys.stdin.read())  # [[after_seq, cursor], ...]
    now = time.monotonic()
    report: dict[str, Any] = {
        "started": now,
        "admitted": [],
        "done": [],
        "refused": 0,
        "errors": [],
    }
    deadline = now + args.seconds
    n = len(cursors)
    await asyncio.gather(
        *(
            subscriber(
                (args.host, args.port),
                Subscriber(after, cursor, report),
                now + args.spread * i / n,
                deadline,
            )
            for i, (after, cursor) in enumerate(cursors)
        )
    )
    report["seconds"] = time.monotonic() - now
    print(json.dumps(report))


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())
