"""The load generator of ``bench replication --cluster``: paced pushes of one mutation each, in a
process of its own (``python -m breakwater.bench._lag_writer SPEC``, ``SPEC`` a JSON object).

Open loop: write ``i`` is due at ``start + i / rate`` whatever the answers before it took, and
goes out on an idle keep-alive connection to its region's node (a new connection opens when all
are busy), so a slow answer delays no later write. Raw HTTP/1.1 (:mod:`breakwater.bench._http`)
keeps the generator's CPU small next to the nodes' it loads. Several processes split one
schedule (write ``i`` belongs to process ``i % processes``). The report, one JSON object on
stdout, holds each acknowledged write's id, region and ``CLOCK_MONOTONIC`` time of acknowledgement
(one clock for every process of the machine), each push's round trip (the local write path: a
floor under the replication lag, whose every change is applied by one more write), how late the
sends were against the schedule, and the process's CPU seconds. A push whose reused keep-alive
connection turns out closed by the node is sent once more on a new
connection: each write has its own mutation id, so a resend never applies twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from breakwater.bench._http import HttpConnection
from breakwater.bench.stats import percentile
from breakwater.core import codec

MAX_CONNECTIONS_PER_REGION = 256
"""Bounds the connections a stalled region can make the generator open."""
TIMEOUT_S = 10.0


@dataclass
class _Writer:
    targets: dict[str, tuple[str, int]]
    prefix: str
    idle: dict[str, list[HttpConnection]] = field(default_factory=dict)
    opened: dict[str, int] = field(default_factory=dict)
    acked: list[tuple[str, str, float]] = field(default_factory=list)
    late_ms: list[float] = field(default_factory=list)
    ack_ms: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    """Failed writes by HTTP status or exception name."""
    resent: int = 0
    """Writes sent again on a new connection after a reused one was found closed."""

    def _failed(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1

    async def _connection(self, region: str) -> tuple[HttpConnection, bool] | None:
        """An idle connection (``True``: reused) or a new one; ``None`` past the bound."""
        idle = self.idle.setdefault(region, [])
        if idle:
            return idle.pop(), True
        return await self._open(region)

    async def _open(self, region: str) -> tuple[HttpConnection, bool] | None:
        if self.opened.get(region, 0) >= MAX_CONNECTIONS_PER_REGION:
            return None
        self.opened[region] = self.opened.get(region, 0) + 1
        return await HttpConnection(*self.targets[region]).__aenter__(), False

    async def _push(self, region: str, body: bytes) -> tuple[int, bytes, HttpConnection] | None:
        """The push's status and answer, and the connection to keep; ``None``: no connection
        left. A reused connection the node closed meanwhile gets one resend on a new one."""
        got = await self._connection(region)
        while got is not None:
            connection, reused = got
            try:
                status, answer = await asyncio.wait_for(
                    connection.request("POST", "/v1/sync/push", body), TIMEOUT_S
                )
            except (asyncio.IncompleteReadError, ConnectionResetError, BrokenPipeError):
                if not reused:  # a new connection's failure is the node's answer
                    raise
                with contextlib.suppress(OSError):
                    await connection.__aexit__()
                self.resent += 1
                got = await self._open(region)
                continue
            return status, answer, connection
        return None

    async def one(self, region: str, number: int, due: float) -> None:
        """Push write ``number`` to ``region`` and stamp its acknowledgement."""
        sent = time.monotonic()
        self.late_ms.append((sent - due) * 1000)
        doc_id = f"{self.prefix}-{region}-{number}"
        mutation = {"mutation_id": doc_id, "collection": "lag", "id": doc_id, "op": "set"}
        body = codec.dumps({"mutations": [{**mutation, "data": {"at": region}}]})
        try:
            pushed = await self._push(region, body)
        except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
            self._failed(type(exc).__name__)  # the connection goes with its unfinished request
            return
        if pushed is None:
            self._failed("no connection left")
            return
        status, answer, connection = pushed
        now = time.monotonic()
        self.idle[region].append(connection)
        if status == 200 and codec.loads(answer)["results"][0]["status"] != "rejected":
            self.acked.append((doc_id, region, now))
            self.ack_ms.append((now - sent) * 1000)
        else:
            self._failed(str(status))

    async def close(self) -> None:
        for connections in self.idle.values():
            for connection in connections:
                await connection.__aexit__()


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    """Write ``spec``'s share of the schedule; the report."""
    targets = {name: (host, int(port)) for name, (host, port) in spec["targets"].items()}
    regions = sorted(targets)
    rate, seconds = float(spec["rate"]), float(spec["seconds"])
    index, processes = int(spec.get("index", 0)), int(spec.get("processes", 1))
    writer = _Writer(targets, str(spec["prefix"]))
    start = float(spec.get("start", time.monotonic()))
    cpu_before = os.times()
    pending: set[asyncio.Task[None]] = set()
    number = index
    while number / rate < seconds:
        due = start + number / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(writer.one(regions[number % len(regions)], number, due))
        pending.add(task)
        task.add_done_callback(pending.discard)
        number += processes
    sent_by = time.monotonic()
    await asyncio.gather(*pending)
    await writer.close()
    cpu_after = os.times()
    cpu = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
    return {
        "sent": len(writer.late_ms),
        "acked": writer.acked,
        "errors": writer.errors,
        "resent": writer.resent,
        "send_seconds": sent_by - start,
        "late_p99_ms": percentile(writer.late_ms, 0.99),
        "late_max_ms": max(writer.late_ms, default=0.0),
        "ack_ms": writer.ack_ms,
        "connections": sum(writer.opened.values()),
        "cpu_seconds": cpu,
    }


def main() -> None:
    report = asyncio.run(run(json.loads(sys.argv[1])))
    sys.stdout.write(json.dumps(report))


if __name__ == "__main__":
    main()
