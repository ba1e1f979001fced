"""One worker process of ``breakwater loadtest --device wire``: protocol-level devices.

``python -m breakwater.bench._population_worker --port P`` reads its devices from the first
line of stdin (JSON: ``{"devices": [[index, writer, connect_at, heartbeat_phase], ...],
"heartbeat_s": H, "seed": S, "pool": K}``), connects them on their schedule, printing
``{"connected": n, "subscribed": m}`` lines, then ``{"ready": m}``. Then it follows commands,
one JSON line each: ``{"step": {"rate": R, "seconds": T, "warmup": W}}`` writes at ``R`` per
second for ``T`` s and prints what it measured; ``{"exit": true}`` closes everything.

A device is what the wire protocol needs of a phone and nothing more (no local database): a
WebSocket subscribed to the device's own collection, answering the node's ``ping`` and sending
its own every ``H`` s from its phase, and, for writers, one-mutation pushes. The pushes share a
pool of at most ``K`` keep-alive connections per worker, opened as needed (ten thousand phones
each with an idle HTTP connection beside its WebSocket would double the node's sockets for
nothing); a write's latency
runs from its *scheduled* time to its acknowledgement, so a generator running late shows as lag
(reported) instead of hiding in the figure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import sys
import time
from collections.abc import Callable
from typing import Any

from breakwater.bench._http import HttpConnection
from breakwater.bench._ws import HandshakeRefused, WsClient
from breakwater.bench.descriptors import require_descriptors
from breakwater.chaos.population import write_times

PATH = "/v1/realtime"
PING = b'{"type":"ping"}'
PONG = b'{"type":"pong"}'
SUBSCRIBED = b'"type":"subscribed"'
CHANGE_MARK = b'"mutation_id"'
DRAIN_S = 15.0
"""Seconds a step waits after its last write for the outstanding acknowledgements."""


def _say(line: dict[str, Any]) -> None:
    print(json.dumps(line), flush=True)


class Devices:
    """The worker's connected devices and what they received."""

    def __init__(self, port: int, heartbeat_s: float) -> None:
        self.port = port
        self.heartbeat_s = heartbeat_s
        self.clients: list[WsClient] = []
        self.subscribed = 0
        self.changes = 0
        self.retries = 0

    def _on_message(self, client: WsClient, payload: bytes) -> None:
        if payload == PING:
            client.send_text(PONG)
        elif SUBSCRIBED in payload:
            self.subscribed += 1
        else:
            self.changes += payload.count(CHANGE_MARK)

    async def connect(self, index: int, heartbeat_phase: float) -> None:
        """Open device ``index``'s subscription and start its heartbeat."""
        for attempt in range(50):
            try:
                client = await WsClient.connect("127.0.0.1", self.port, PATH, self._on_message)
                break
            except HandshakeRefused as refused:
                await asyncio.sleep(refused.retry)
            except OSError:
                # A node busy accepting thousands may drop a handshake: reconnect after a
                # growing, jittered pause, as a phone would.
                self.retries += 1
                await asyncio.sleep(random.uniform(0.5, 1.0) * min(8, 2**attempt))
        else:
            raise RuntimeError(f"device {index} was refused 50 times")
        client.send_text(b'{"type":"subscribe","collections":["u%d"],"cursor":""}' % index)
        self.clients.append(client)
        loop = asyncio.get_running_loop()

        def beat() -> None:
            if not client.closed.done():
                client.send_text(PING)
                loop.call_later(self.heartbeat_s, beat)

        loop.call_later(heartbeat_phase, beat)


class Pool:
    """Keep-alive push connections, opened as writes need them up to ``limit``: a write waits
    for one only when ``limit`` are busy, so a slow node does not turn the open-loop offer
    into a closed loop unnoticed (the wait shows as lag)."""

    def __init__(self, port: int, limit: int) -> None:
        self.port = port
        self.limit = limit
        self.opened = 0
        self._idle: asyncio.Queue[HttpConnection] = asyncio.Queue()

    async def get(self) -> HttpConnection:
        """An idle connection, a new one below the limit, or the next one released."""
        if self._idle.empty() and self.opened < self.limit:
            self.opened += 1
            try:
                return await HttpConnection("127.0.0.1", self.port).__aenter__()
            except OSError:
                self.opened -= 1
                raise
        return await self._idle.get()

    def put(self, conn: HttpConnection) -> None:
        """Release ``conn`` for the next write."""
        self._idle.put_nowait(conn)

    async def aclose(self) -> None:
        """Close the idle connections (every one, once the writes are over)."""
        while not self._idle.empty():
            with contextlib.suppress(OSError):
                await self._idle.get_nowait().__aexit__(None, None, None)


class Writes:
    """One step's writes: scheduled, sent over the pool, timed."""

    def __init__(self, pool: Pool, warmup: float) -> None:
        self.pool = pool
        self.warmup = warmup
        self.latencies_ms: list[float] = []
        self.lags_ms: list[float] = []
        self.acked = 0
        self.errors = 0

    async def write(self, device: int, number: int, scheduled: float, offset: float) -> None:
        """Push one mutation of ``device``'s note; time it from ``scheduled``."""
        body = (
            b'{"client_id":"d%d","mutations":[{"mutation_id":"d%d-%d","collection":"u%d",'
            b'"id":"note","op":"set","data":{"n":%d}}]}' % (device, device, number, device, number)
        )
        try:
            conn = await self.pool.get()
        except OSError:
            self.errors += offset >= self.warmup
            return
        sent = time.monotonic()
        ok = False
        try:
            # A keep-alive connection the node closed while idle fails at once: the push is
            # sent again on a fresh one, as a phone would (the mutation id makes that safe).
            for _ in range(2):
                try:
                    status, answer = await conn.request("POST", "/v1/sync/push", body)
                except (OSError, asyncio.IncompleteReadError, ValueError):
                    conn = await _reopen(conn)
                    continue
                ok = status == 200 and b'"rejected"' not in answer
                break
        finally:
            self.pool.put(conn)
        done = time.monotonic()
        if offset < self.warmup:
            return
        if ok:
            self.acked += 1
            self.latencies_ms.append(round((done - scheduled) * 1000, 3))
            self.lags_ms.append(round((sent - scheduled) * 1000, 3))
        else:
            self.errors += 1


async def _reopen(conn: HttpConnection) -> HttpConnection:
    """A fresh connection in place of ``conn`` (``conn`` itself if the node refuses one: the
    next write tries again)."""
    with contextlib.suppress(OSError):
        await conn.__aexit__(None, None, None)
    try:
        return await HttpConnection(conn.host, conn.port).__aenter__()
    except OSError:
        return conn


async def run_step(
    writers: list[int],
    pool: Pool,
    step: dict[str, float],
    rng: random.Random,
    numbers: Callable[[], int],
) -> dict[str, Any]:
    """Write at ``step["rate"]`` for ``step["seconds"]``, open-loop; what was measured."""
    writes = Writes(pool, step["warmup"])
    began = time.monotonic()
    pending: set[asyncio.Task[None]] = set()
    if writers:
        for offset in write_times(step["rate"], step["seconds"], rng):
            delay = began + offset - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.ensure_future(
                writes.write(rng.choice(writers), numbers(), began + offset, offset)
            )
            pending.add(task)
            task.add_done_callback(pending.discard)
    rest = began + step["seconds"] - time.monotonic()
    if rest > 0:
        await asyncio.sleep(rest)
    if pending:
        _, late = await asyncio.wait(pending, timeout=DRAIN_S)
        for task in late:
            task.cancel()
        writes.errors += len(late)
    return {
        "latencies_ms": writes.latencies_ms,
        "lags_ms": writes.lags_ms,
        "acked": writes.acked,
        "errors": writes.errors,
    }


async def main() -> None:
    """Connect on schedule, then obey stdin."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    reader = asyncio.StreamReader(limit=2**26)
    await asyncio.get_running_loop().connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
    )
    setup = json.loads(await reader.readline())
    plans: list[list[Any]] = setup["devices"]
    require_descriptors(len(plans) + setup["pool"], "a load test worker")
    devices = Devices(args.port, setup["heartbeat_s"])
    began = time.monotonic()
    opening = []
    for index, _writer, connect_at, phase in plans:
        delay = began + connect_at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        opening.append(asyncio.ensure_future(devices.connect(index, phase)))
        if len(opening) % 100 == 0:
            _say({"connected": len(devices.clients), "subscribed": devices.subscribed})
    await asyncio.gather(*opening)
    for _ in range(120):
        if devices.subscribed >= len(plans):
            break
        _say({"connected": len(devices.clients), "subscribed": devices.subscribed})
        await asyncio.sleep(0.5)
    pool = Pool(args.port, setup["pool"])
    _say(
        {"ready": devices.subscribed, "connected": len(devices.clients), "retries": devices.retries}
    )
    writers = [index for index, writer, _, _ in plans if writer]
    rng = random.Random(setup["seed"])
    count = iter(range(1, 1 << 62))
    while True:
        line = await reader.readline()
        command: dict[str, Any] = json.loads(line) if line.strip() else {}
        if "step" not in command:
            break
        changes_before = devices.changes
        result = await run_step(writers, pool, command["step"], rng, lambda: next(count))
        result["changes"] = devices.changes - changes_before
        result["open"] = sum(1 for c in devices.clients if not c.closed.done())
        _say(result)
    for client in devices.clients:
        client.close()
    await pool.aclose()


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())
