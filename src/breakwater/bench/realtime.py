"""``breakwater bench realtime``: fan-out latency, throughput and memory per connection.

For each number of subscribers, each run starts a fresh ``breakwater serve`` subprocess,
measures its resident memory, opens the WebSocket subscriptions from a separate client process
(:mod:`breakwater.bench._realtime_subscribers`) and measures memory again once they are idle,
then writes small documents at a fixed rate from this process, each stamped with its send
time. Reported per scenario, as medians over the runs: write-to-delivery latency (from the
writer sending the ``PUT`` to a subscriber receiving the change: it includes the durable
commit), deliveries per second (changes received, summed over subscribers, over the time it
took to deliver them), resident memory per idle connection, and the node's own commit-to-send
time (from its ``breakwater_realtime_notify_seconds`` histogram: the upper bound of the bucket
that holds the quantile). Before each run, the physical limit: one round of bare ``os.write``
calls to as many loopback sockets (:mod:`breakwater.bench._raw_sends`), and the p99 as a multiple
of it.

With ``--bus`` URLs (``redis://…``, ``nats://…``) each scenario also runs across two nodes: node
A and node B share one SQLite file and the bus, the writer writes to A and the subscribers are
on B, so every delivery crosses the broker. The same-node run on the in-process bus
(``memory://``) is always measured in the same run, as the reference.

Server, subscribers and writer share one machine: on a small one the client's CPU is part of
what limits the figures, which the report's ``machine`` section lets a reader judge.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from breakwater.bench._http import HttpConnection
from breakwater.bench._node import BenchNode, cpu_seconds, free_port, machine
from breakwater.bench._raw_sends import raw_send_round_ms
from breakwater.bench.descriptors import BenchStopped, require_descriptors
from breakwater.bench.stats import median, percentile
from breakwater.core import codec

SAMPLED = 50
"""Subscribers that time every change (the others only count them)."""
WRITERS = 4
"""Keep-alive connections the writer spreads its requests over (so the rate holds)."""
STALL_SECONDS = 60.0
"""How long the subscriber process may go without a progress line before the run stops."""
DRAIN_SECONDS = 15.0
"""How long after the last write the subscribers may take to receive everything."""


def notify_quantile(metrics_text: str, fraction: float) -> float | None:
    """The upper bound (ms) of the notify histogram bucket holding the ``fraction`` quantile."""
    counts: dict[float, float] = {}  # summed over workers, when the node has several
    for line in metrics_text.splitlines():
        if line.startswith("breakwater_realtime_notify_seconds_bucket{"):
            upper = float(line.split('le="', 1)[1].split('"', 1)[0])
            counts[upper] = counts.get(upper, 0.0) + float(line.rsplit(" ", 1)[1])
    buckets = sorted(counts.items())
    if not buckets or buckets[-1][1] == 0:
        return None
    total = buckets[-1][1]
    for upper, count in buckets:
        if count >= fraction * total:
            return upper * 1000
    return None


@dataclass
class Run:
    """One scenario, one run."""

    notify_p50_ms: float | None
    notify_p99_ms: float | None
    latencies_ms: list[float]
    deliveries: int
    expected: int
    delivery_seconds: float
    idle_kib_per_connection: float | None
    messages: int
    writes: int
    write_errors: int
    node_cpu_s: float = 0.0
    """CPU seconds the node used from the first write until every change was received."""
    subscribers_cpu_s: float = 0.0
    """The same for the subscribers' process (the load generator's share of the machine)."""
    raw_round_ms: float = 0.0
    """One round of bare writes to as many loopback sockets, in the same run (the floor)."""


MEMORY_BUS = "memory://"


def bus_label(bus: str) -> str:
    """How a report names a bus: its scheme, and whether the delivery crosses nodes."""
    scheme = bus.split("://", 1)[0]
    return "memory, same node" if bus == MEMORY_BUS else f"{scheme}, node A to node B"


@dataclass
class ScenarioResult:
    """Every run of one scenario, and their medians."""

    subscribers: int
    rate: float
    bus: str = MEMORY_BUS
    runs: list[Run] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Medians over the runs."""

        def med(values: list[float]) -> float:
            return round(median(values), 2)

        idle = [r.idle_kib_per_connection for r in self.runs if r.idle_kib_per_connection]
        return {
            "bus": bus_label(self.bus),
            "subscribers": self.subscribers,
            "writes_per_s": self.rate,
            "p50_ms": med([percentile(r.latencies_ms, 0.5) for r in self.runs]),
            "p99_ms": med([percentile(r.latencies_ms, 0.99) for r in self.runs]),
            "max_ms": med([max(r.latencies_ms, default=0.0) for r in self.runs]),
            "deliveries_per_s": round(
                median([r.deliveries / r.delivery_seconds for r in self.runs])
            ),
            "delivered_fraction": round(
                median([r.deliveries / r.expected if r.expected else 1.0 for r in self.runs]), 4
            ),
            "changes_per_message": med(
                [r.deliveries / r.messages if r.messages else 0.0 for r in self.runs]
            ),
            "idle_kib_per_connection": med(idle) if idle else None,
            "notify_p50_ms_at_most": _median_or_none([r.notify_p50_ms for r in self.runs]),
            "notify_p99_ms_at_most": _median_or_none([r.notify_p99_ms for r in self.runs]),
            "write_errors": sum(r.write_errors for r in self.runs),
            "node_cpu_us_per_delivery": med(
                [r.node_cpu_s * 1e6 / r.deliveries for r in self.runs if r.deliveries]
            ),
            "subscribers_cpu_us_per_delivery": med(
                [r.subscribers_cpu_s * 1e6 / r.deliveries for r in self.runs if r.deliveries]
            ),
            "raw_send_round_ms": med([r.raw_round_ms for r in self.runs]),
            "p99_per_raw_round": med(
                [percentile(r.latencies_ms, 0.99) / r.raw_round_ms for r in self.runs]
            ),
            "runs": [
                {
                    "p50_ms": round(percentile(r.latencies_ms, 0.5), 2),
                    "p99_ms": round(percentile(r.latencies_ms, 0.99), 2),
                    "max_ms": round(max(r.latencies_ms, default=0.0), 2),
                    "deliveries": r.deliveries,
                    "expected": r.expected,
                    "delivery_seconds": round(r.delivery_seconds, 2),
                    "idle_kib_per_connection": r.idle_kib_per_connection,
                    "messages": r.messages,
                    "node_cpu_s": round(r.node_cpu_s, 2),
                    "subscribers_cpu_s": round(r.subscribers_cpu_s, 2),
                    "raw_send_round_ms": round(r.raw_round_ms, 3),
                }
                for r in self.runs
            ],
        }


def _median_or_none(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(median(known), 2) if known else None


class Subscribers:
    """The subscriber process, driven line by line."""

    def __init__(self, port: int, count: int, deflate: bool, cursor: str) -> None:
        command = [
            sys.executable,
            "-m",
            "breakwater.bench._realtime_subscribers",
            "--port",
            str(port),
            "--n",
            str(count),
            "--sample",
            str(min(SAMPLED, count)),
            "--cursor",
            cursor,
        ]
        if deflate:
            command.append("--deflate")
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    async def line(self, seconds: float) -> dict[str, Any]:
        """The next JSON line the process prints."""
        assert self.process.stdout is not None
        text = await asyncio.wait_for(asyncio.to_thread(self.process.stdout.readline), seconds)
        if not text:
            raise RuntimeError("the subscriber process exited")
        result: dict[str, Any] = json.loads(text)
        return result

    def command(self, text: str) -> None:
        """Send one command."""
        assert self.process.stdin is not None
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()

    def cpu_seconds(self) -> float:
        """CPU time the subscribers' process has used so far."""
        return cpu_seconds(Path(f"/proc/{self.process.pid}"))

    def stop(self) -> None:
        """Tell it to exit, and make sure it did (by its PID)."""
        with contextlib.suppress(OSError, ValueError):
            self.command("exit")
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


async def _write_at_rate(port: int, rate: float, seconds: float) -> tuple[int, int]:
    """PUT small documents stamped with their send time at ``rate`` per second."""
    errors = 0
    count = int(rate * seconds)
    pad = "x" * 64
    connections = [HttpConnection("127.0.0.1", port) for _ in range(WRITERS)]
    for connection in connections:
        await connection.__aenter__()
    locks = [asyncio.Lock() for _ in connections]
    started = time.perf_counter()

    async def one(index: int) -> None:
        nonlocal errors
        slot = index % WRITERS
        async with locks[slot]:
            body = codec.dumps({"t": time.time(), "i": index, "pad": pad})
            status, _ = await connections[slot].request(
                "PUT", f"/v1/collections/bench/docs/w{index}", body
            )
            if status not in (200, 201):
                errors += 1

    tasks = []
    try:
        for index in range(count):
            delay = started + index / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(one(index)))
        await asyncio.gather(*tasks)
    finally:
        for connection in connections:
            await connection.__aexit__(None, None, None)
    return count, errors


def _with_prefix(bus: str) -> str:
    """A broker URL with a prefix of its own, so concurrent benchmarks keep apart."""
    return f"{bus}{'&' if '?' in bus else '?'}prefix=bench-{uuid.uuid4().hex[:12]}"


async def _start_nodes(
    data: Path, bus: str, workers: int, settings: Mapping[str, str]
) -> tuple[BenchNode, BenchNode]:
    """The writer's node and the subscribers' node, both ready: one node on the memory bus,
    else two nodes on one SQLite file and the broker ``bus`` (started one after the other, so
    that only the first creates the store)."""
    if bus == MEMORY_BUS:
        node = BenchNode(data, free_port(), "warning", workers, settings=settings)
        await node.wait_ready()
        return node, node
    bus = _with_prefix(bus)
    started: list[BenchNode] = []
    try:
        for name in ("node-a", "node-b"):
            args = ["--node", name, "--bus", bus]
            started.append(BenchNode(data, free_port(), "warning", workers, args, settings))
            await started[-1].wait_ready()
    except BaseException:
        for node in started:
            node.stop()
        raise
    return started[0], started[1]


class LineSource(Protocol):
    """Where the subscriber process's JSON lines come from (:class:`Subscribers`)."""

    async def line(self, seconds: float) -> dict[str, Any]:
        """The next line, or ``TimeoutError`` after ``seconds``."""


async def wait_ready(subscribers: LineSource, count: int, progress: Callable[[str], None]) -> None:
    """Follow the subscriber process's progress lines until it says it is ready; stop with a
    :class:`BenchStopped` naming how far it got when a line is late or not everyone is ready."""
    while True:
        try:
            line = await subscribers.line(STALL_SECONDS)
        except (TimeoutError, RuntimeError) as stalled:
            raise BenchStopped(
                f"the subscribers stopped making progress (no news for {STALL_SECONDS:g} s while"
                f" connecting {count:,}): the machine is likely out of CPU or sockets"
            ) from stalled
        if "ready" in line:
            if line["ready"] != count:
                raise BenchStopped(
                    f"only {line['ready']:,} of {count:,} subscriptions were acknowledged"
                    f" in {line['seconds']:.0f} s"
                )
            return
        progress(
            f"{count} subscribers: {line['connecting']:,} connecting,"
            f" {line['acknowledged']:,} subscribed"
        )


async def _one_run(
    count: int,
    rate: float,
    seconds: float,
    deflate: bool,
    progress: Callable[[str], None],
    workers: int = 1,
    bus: str = MEMORY_BUS,
    settings: Mapping[str, str] | None = None,
) -> Run:
    progress(f"{count} subscribers: a round of bare socket writes")
    raw_round = raw_send_round_ms(count)
    with tempfile.TemporaryDirectory(prefix="bw-bench-rt-") as tmp:
        writer, node = await _start_nodes(Path(tmp) / "data", bus, workers, settings or {})
        subscribers: Subscribers | None = None
        try:
            await _write_at_rate(writer.port, 50, 0.5)  # warm up the write and fan-out paths
            await asyncio.sleep(1.5)  # the reader's node has followed the warm-up writes
            async with HttpConnection("127.0.0.1", node.port) as http:
                _, body = await http.request("GET", "/v1/sync/pull?limit=1000")
            head = codec.loads(body)["cursor"]  # subscribers start here: no replay
            await asyncio.sleep(0.5)
            before = node.rss_bytes()
            progress(f"{count} subscribers: connecting")
            subscribers = Subscribers(node.port, count, deflate, head)
            await wait_ready(subscribers, count, progress)
            await asyncio.sleep(2)
            idle = (node.rss_bytes() - before) / count / 1024 if count >= 100 else None
            progress(f"{count} subscribers: {rate:g} writes/s for {seconds:g} s")
            subscribers.command("measure")
            measured = time.perf_counter()
            node_cpu, subscribers_cpu = node.cpu_seconds(), subscribers.cpu_seconds()
            writes, errors = await _write_at_rate(writer.port, rate, seconds)
            expected = writes * count
            report: dict[str, Any] = {}
            deadline = time.perf_counter() + DRAIN_SECONDS
            while True:
                subscribers.command("report")
                report = await subscribers.line(30)
                if report["changes"] >= expected or time.perf_counter() > deadline:
                    break
                await asyncio.sleep(0.1)
            node_cpu = node.cpu_seconds() - node_cpu
            subscribers_cpu = subscribers.cpu_seconds() - subscribers_cpu
            async with HttpConnection("127.0.0.1", node.port) as http:
                _, metrics = await http.request("GET", "/metrics")
            text = metrics.decode()
            return Run(
                notify_p50_ms=notify_quantile(text, 0.5),
                notify_p99_ms=notify_quantile(text, 0.99),
                latencies_ms=[latency * 1000 for latency in report["latencies"]],
                deliveries=report["changes"],
                expected=expected,
                delivery_seconds=time.perf_counter() - measured,
                idle_kib_per_connection=round(idle, 1) if idle is not None else None,
                messages=report["messages"],
                writes=writes,
                write_errors=errors,
                node_cpu_s=node_cpu,
                subscribers_cpu_s=subscribers_cpu,
                raw_round_ms=raw_round,
            )
        finally:
            if subscribers is not None:
                subscribers.stop()
            node.stop()
            if writer is not node:
                writer.stop()


async def run(
    counts: list[int],
    rate: float,
    seconds: float,
    runs: int,
    deflate: bool = False,
    progress: Callable[[str], None] = lambda _: None,
    workers: int = 1,
    buses: list[str] | None = None,
    settings: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Every scenario (each bus with each subscriber count) ``runs`` times, interleaved, on
    nodes of ``workers`` processes; the report as a JSON-ready dict. The memory bus is always
    among the buses (the reference)."""
    # The node and the subscriber process each hold one socket per subscriber (and inherit the
    # soft limit raised here); a scale past the machine's limit stops before anything starts.
    require_descriptors(max(counts), "a node serving the subscribers")
    buses = [MEMORY_BUS] + [bus for bus in buses or [] if bus != MEMORY_BUS]
    results = [ScenarioResult(count, rate, bus) for bus in buses for count in counts]
    for run_index, result in itertools.product(range(runs), results):
        prefix = f"run {run_index + 1}/{runs}, {bus_label(result.bus)}"

        def step(text: str, prefix: str = prefix) -> None:
            progress(f"{prefix}: {text}")

        result.runs.append(
            await _one_run(
                result.subscribers, rate, seconds, deflate, step, workers, result.bus, settings
            )
        )
    return {
        "benchmark": "realtime",
        "writes_per_s": rate,
        "seconds": seconds,
        "runs": runs,
        "deflate": deflate,
        "workers": workers,
        "settings": dict(settings or {}),
        "sampled_subscribers": SAMPLED,
        "machine": machine() | {"load_average": os.getloadavg()},
        "results": [r.summary() for r in results],
    }
