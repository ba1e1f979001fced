"""The standby-promotion drill: a region's database fails over while a node takes pushes.

One drill starts a private PostgreSQL primary and its streaming standby (synchronous or not,
:mod:`breakwater.chaos.engines`) and one ``breakwater serve`` node whose store URL lists both
hosts. ``writers`` clients push one mutation at a time, each retried with the same mutation id
until it is acknowledged, as the SDK does. After ``warmup_s`` the primary's machine is lost
(every server process SIGKILLed, the data folder removed); ``promote_after_s`` later the standby
is promoted (``pg_ctl promote``, the operator's or the failover tool's part); the writers go on
for ``settle_s``. Then the node's whole feed is read and held against every acknowledgement:
what was acknowledged and is missing (the RPO), what was applied twice, which seqs were skipped
and which were given to another change than the one acknowledged with them.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx

from breakwater.chaos.engines import PostgresEngine
from breakwater.chaos.processes import NodeProcess
from breakwater.chaos.runner import free_port

StandbyMode = Literal["sync", "async"]
STANDBY_MODES: tuple[StandbyMode, ...] = ("sync", "async")
RETRY_PAUSE_S = 0.02
"""Between two tries of one push: the resolution of the failover times measured."""
FEED_PAGE = 1000


@dataclass(frozen=True)
class DrillPlan:
    """How one drill runs."""

    standby: StandbyMode = "sync"
    writers: int = 8
    warmup_s: float = 4.0
    promote_after_s: float = 1.0
    settle_s: float = 4.0
    request_timeout_s: float = 2.0


@dataclass(frozen=True)
class DrillResult:
    """What one drill measured; times in seconds, ``None`` if no write was acknowledged after
    the promotion."""

    standby: StandbyMode
    pushes_per_s: float
    """Acknowledged pushes a second before the primary was lost (after a one-second ramp)."""
    death_to_write_s: float | None
    promotion_to_write_s: float | None
    acknowledged: int
    lost: int
    applied_twice: int
    seqs_skipped: int
    seqs_reused: int
    retried: int
    """Tries that failed (503 or a connection error) and were repeated."""

    def to_json(self) -> dict[str, Any]:
        """The result as a JSON object."""
        return asdict(self)


@dataclass
class _Load:
    """The writers: each acknowledgement with its seq, when the try that got it was sent and
    when it arrived (monotonic)."""

    http: httpx.AsyncClient
    acks: dict[str, tuple[int, float, float]] = field(default_factory=dict)
    retried: int = 0
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    async def writer(self, name: str) -> None:
        index = 0
        while not self.stopping.is_set():
            mutation_id = f"{name}-{index}"
            index += 1
            while not self.stopping.is_set():
                sent = time.monotonic()
                seq = await self._push(mutation_id)
                if seq is not None:
                    self.acks[mutation_id] = (seq, sent, time.monotonic())
                    break
                self.retried += 1
                await asyncio.sleep(RETRY_PAUSE_S)

    async def _push(self, mutation_id: str) -> int | None:
        """The seq the push was acknowledged with, or ``None`` if it must be tried again."""
        mutation = {"mutation_id": mutation_id, "collection": "drill", "id": mutation_id}
        body = {"client_id": "drill", "mutations": [{**mutation, "op": "set", "data": {"n": 1}}]}
        try:
            response = await self.http.post("/v1/sync/push", json=body)
        except httpx.HTTPError:
            return None
        if response.status_code != 200:
            return None
        [result] = response.json()["results"]
        return int(result["seq"]) if result["status"] in ("applied", "duplicate") else None


async def run_drill(plan: DrillPlan, work: Path) -> DrillResult:
    """Run one drill with its engines, node and logs under ``work``; stops all it started."""
    primary = PostgresEngine(
        free_port(),
        work / "primary.log",
        synchronous_standby="standby" if plan.standby == "sync" else None,
    )
    standby = PostgresEngine(free_port(), work / "standby.log", name="standby", upstream=primary)
    hosts = f"127.0.0.1:{primary.port},127.0.0.1:{standby.port}"
    store = f"postgresql://postgres@{hosts}/postgres?timeout={plan.request_timeout_s:g}"
    node = NodeProcess(
        "n1",
        free_port(),
        work / "data",
        log=work / "n1.log",
        args=["--log-level", "warning", "--store", store],
    )
    try:
        await primary.start()
        await standby.start()
        await node.start()
        async with httpx.AsyncClient(base_url=node.url, timeout=plan.request_timeout_s) as http:
            load = _Load(http)
            writers = [asyncio.create_task(load.writer(f"w{i}")) for i in range(plan.writers)]
            started = time.monotonic()
            await asyncio.sleep(plan.warmup_s)
            killed = time.monotonic()
            await primary.kill(wipe=True)
            dead = time.monotonic()
            await asyncio.sleep(plan.promote_after_s)
            await standby.promote()
            promoted = time.monotonic()
            await asyncio.sleep(plan.settle_s)
            load.stopping.set()
            await asyncio.gather(*writers)
            feed = await _feed(http)
    finally:
        await node.stop()
        await standby.aclose()
        await primary.aclose()
    return _judge(plan, load, feed, started=started, killed=killed, dead=dead, promoted=promoted)


async def _feed(http: httpx.AsyncClient) -> list[tuple[str, int]]:
    """The node's whole feed as ``(mutation id, seq)`` in feed order."""
    entries: list[tuple[str, int]] = []
    cursor = ""
    while True:
        response = await http.get("/v1/sync/pull", params={"cursor": cursor, "limit": FEED_PAGE})
        response.raise_for_status()
        page = response.json()
        entries += [(change["mutation_id"], change["seq"]) for change in page["changes"]]
        cursor = page["cursor"]
        if not page["has_more"]:
            return entries


def _judge(
    plan: DrillPlan,
    load: _Load,
    feed: list[tuple[str, int]],
    *,
    started: float,
    killed: float,
    dead: float,
    promoted: float,
) -> DrillResult:
    """Hold the feed against the acknowledgements. The first write after the loss is the
    first acknowledgement of a try sent once every process of the old primary had exited:
    one sent before may have committed there, an instant before the SIGKILL."""
    in_feed = dict(feed)
    by_seq = {seq: mutation_id for mutation_id, seq in feed}
    seqs = [seq for _, seq in feed]
    after = [at for _, sent, at in load.acks.values() if sent >= dead]
    steady = [at for _, _, at in load.acks.values() if started + 1.0 <= at < killed]
    first = min(after) if after else None
    return DrillResult(
        standby=plan.standby,
        pushes_per_s=len(steady) / max(killed - started - 1.0, 1e-9),
        death_to_write_s=None if first is None else first - killed,
        promotion_to_write_s=None if first is None else max(0.0, first - promoted),
        acknowledged=len(load.acks),
        lost=sum(mutation_id not in in_feed for mutation_id in load.acks),
        applied_twice=len(feed) - len(in_feed),
        seqs_skipped=(max(seqs) - len(set(seqs))) if seqs else 0,
        # An acknowledged seq that now names another change: the write it named was lost and
        # the promoted standby numbered a new change with it (an asynchronous standby's risk).
        seqs_reused=sum(
            by_seq.get(seq, mutation_id) != mutation_id
            for mutation_id, (seq, _, _) in load.acks.items()
        ),
        retried=load.retried,
    )
