"""``breakwater bench realtime``: fan-out latency, throughput and memory per connection.

For each number of subscribers, each run starts a fresh ``breakwater serve`` subprocess,
measures its resident memory, opens the WebSocket subscriptions from a separate client process
(:mod:`breakwater.bench._realtime_subscribers`) and measures memory again once they are idle,
then writes small documents at a fixed rate from this process (open loop: a slow answer
delays no later write), each stamped with its scheduled send time. Reported per scenario, as
medians over the runs: write-to-delivery latency (from the write's scheduled send to a
subscriber receiving the change: it includes the durable commit and any wait for the server),
deliveries per second (changes received, summed over subscribers, over the time it
took to deliver them), resident memory per idle connection, and the node's own commit-to-send
time (from its ``breakwater_realtime_notify_seconds`` histogram: the upper bound of the bucket
that holds the quantile). Before each run, the physical limit: one round of bare ``os.write``
calls to as many loopback sockets (:mod:`breakwater.bench._raw_sends`), and the p99 as a multiple
of it. After the node, the floor of the same work (:mod:`breakwater.bench._fanout_floor`): the
same writes at the same rate to a minimal fan-out server with no store, no app and no auth,
received by the same subscriber process, so the node's p99 can be read against what any node
could do on this machine.
The subscriber process's CPU is reported beside both, and a run where it was near a full core is
flagged as generator-bound: its latency then measures the load generator as much as the server.

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
from breakwater.chaos.population import GeneratorLimits
from breakwater.core import codec

SAMPLED = 50
"""Subscribers that time every change (the others only count them)."""
MAX_WRITERS = 256
"""Writes the writer keeps in flight at most, each on a keep-alive connection of its own."""
STALL_SECONDS = 60.0
"""How long the subscriber process may go without a progress line before the run stops."""
DRAIN_SECONDS = 15.0
"""How long after the last write the subscribers may take to receive everything."""
GENERATOR_CPU = GeneratorLimits().worker_cpu
"""A subscriber process busier than this share of a core limits the run (as in ``loadtest``)."""


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
class Measured:
    """What the subscribers received of one stream of writes to one server, and the CPU the
    server and the subscriber process used from the first write until the last delivery."""

    latencies_ms: list[float]
    deliveries: int
    expected: int
    messages: int
    writes: int
    write_errors: int
    write_seconds: float
    """From the first write sent to the last answered: well above the schedule's, the server
    answered more slowly than the writes came (they wait in its queue, and their latency
    counts the wait)."""
    seconds: float
    server_cpu_s: float
    subscribers_cpu_s: float

    @property
    def p99_ms(self) -> float:
        """The p99 write-to-delivery latency."""
        return percentile(self.latencies_ms, 0.99)

    @property
    def subscribers_cpu(self) -> float:
        """The subscriber process's CPU seconds per second (its share of a core)."""
        return self.subscribers_cpu_s / self.seconds if self.seconds else 0.0

    def generator_bound(self) -> str | None:
        """Why the subscriber process (the load generator) limited this measurement, or
        ``None``: near a full core, it reads the messages later than they arrive."""
        if self.subscribers_cpu > GENERATOR_CPU:
            return f"the subscriber process used {self.subscribers_cpu:.0%} of a core"
        return None

    def figures(self) -> dict[str, Any]:
        """This measurement alone, for a run's row of the report."""
        return {
            "p50_ms": round(percentile(self.latencies_ms, 0.5), 2),
            "p99_ms": round(self.p99_ms, 2),
            "max_ms": round(max(self.latencies_ms, default=0.0), 2),
            "deliveries": self.deliveries,
            "expected": self.expected,
            "writes_per_s_achieved": round(self.writes / self.write_seconds, 1),
            "delivery_seconds": round(self.seconds, 2),
            "messages": self.messages,
            "server_cpu_s": round(self.server_cpu_s, 2),
            "subscribers_cpu_s": round(self.subscribers_cpu_s, 2),
            "generator_bound": self.generator_bound(),
        }


@dataclass
class Run:
    """One scenario, one run: the node's measurement and the floor's, in the same run."""

    node: Measured
    floor: Measured
    """The same writes fanned out by the floor server to the same subscribers, in the same run."""
    raw_round_ms: float
    """One round of bare writes to as many loopback sockets, in the same run."""
    notify_p50_ms: float | None
    notify_p99_ms: float | None
    idle_kib_per_connection: float | None


MEMORY_BUS = "memory://"


def bus_label(bus: str) -> str:
    """How a report names a bus: its scheme, and whether the delivery crosses nodes."""
    scheme = bus.split("://", 1)[0]
    return "memory, same node" if bus == MEMORY_BUS else f"{scheme}, node A to node B"


def _med(values: list[float]) -> float:
    return round(median(values), 2)


def _stream_summary(measured: list[Measured]) -> dict[str, Any]:
    """Medians over the runs of what every server's measurement has."""
    return {
        "p50_ms": _med([percentile(m.latencies_ms, 0.5) for m in measured]),
        "p99_ms": _med([m.p99_ms for m in measured]),
        "max_ms": _med([max(m.latencies_ms, default=0.0) for m in measured]),
        "deliveries_per_s": round(median([m.deliveries / m.seconds for m in measured])),
        "delivered_fraction": round(
            median([m.deliveries / m.expected if m.expected else 1.0 for m in measured]), 4
        ),
        "changes_per_message": _med(
            [m.deliveries / m.messages if m.messages else 0.0 for m in measured]
        ),
        "write_errors": sum(m.write_errors for m in measured),
        "writes_per_s_achieved": _med([m.writes / m.write_seconds for m in measured]),
        "subscribers_cpu_us_per_delivery": _med(
            [m.subscribers_cpu_s * 1e6 / m.deliveries for m in measured if m.deliveries]
        ),
        "subscribers_cpu": _med([m.subscribers_cpu for m in measured]),
        "generator_bound": next(
            (bound for m in measured if (bound := m.generator_bound()) is not None), None
        ),
    }


@dataclass
class ScenarioResult:
    """Every run of one scenario, and their medians."""

    subscribers: int
    rate: float
    bus: str = MEMORY_BUS
    runs: list[Run] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Medians over the runs; the floor's figures under ``floor``."""
        nodes = [r.node for r in self.runs]
        floors = [r.floor for r in self.runs]
        idle = [r.idle_kib_per_connection for r in self.runs if r.idle_kib_per_connection]
        return {
            "bus": bus_label(self.bus),
            "subscribers": self.subscribers,
            "writes_per_s": self.rate,
            **_stream_summary(nodes),
            "idle_kib_per_connection": _med(idle) if idle else None,
            "notify_p50_ms_at_most": _median_or_none([r.notify_p50_ms for r in self.runs]),
            "notify_p99_ms_at_most": _median_or_none([r.notify_p99_ms for r in self.runs]),
            "node_cpu_us_per_delivery": _med(
                [n.server_cpu_s * 1e6 / n.deliveries for n in nodes if n.deliveries]
            ),
            "raw_send_round_ms": _med([r.raw_round_ms for r in self.runs]),
            "p99_per_raw_round": _med([r.node.p99_ms / r.raw_round_ms for r in self.runs]),
            "floor": {
                **_stream_summary(floors),
                "floor_cpu_us_per_delivery": _med(
                    [f.server_cpu_s * 1e6 / f.deliveries for f in floors if f.deliveries]
                ),
                "p99_per_raw_round": _med([r.floor.p99_ms / r.raw_round_ms for r in self.runs]),
            },
            "node_p99_per_floor_p99": _med(
                [r.node.p99_ms / r.floor.p99_ms for r in self.runs if r.floor.p99_ms]
            ),
            "runs": [
                {
                    **r.node.figures(),
                    "idle_kib_per_connection": r.idle_kib_per_connection,
                    "raw_send_round_ms": round(r.raw_round_ms, 3),
                    "floor": r.floor.figures(),
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
    """PUT small documents at ``rate`` per second, open loop: each write leaves at its time on
    an idle connection (a new one when none is idle), stamped with that time, so a slow server
    neither lowers the rate nor hides the wait in its latency. Past :data:`MAX_WRITERS` writes
    in flight they queue, and ``write_seconds`` shows it."""
    errors = 0
    count = int(rate * seconds)
    pad = "x" * 64
    idle: list[HttpConnection] = []
    opened: list[HttpConnection] = []
    in_flight = asyncio.Semaphore(MAX_WRITERS)
    started, wall = time.perf_counter(), time.time()

    async def one(index: int) -> None:
        nonlocal errors
        async with in_flight:
            if idle:
                connection = idle.pop()
            else:
                connection = await HttpConnection("127.0.0.1", port).__aenter__()
                opened.append(connection)
            body = codec.dumps({"t": wall + index / rate, "i": index, "pad": pad})
            status, _ = await connection.request(
                "PUT", f"/v1/collections/bench/docs/w{index}", body
            )
            idle.append(connection)
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
        for connection in opened:
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


async def _measure(
    subscribers: Subscribers,
    port: int,
    server_cpu: Callable[[], float],
    count: int,
    rate: float,
    seconds: float,
) -> Measured:
    """Write at ``rate`` to ``port`` for ``seconds`` and wait until the ``count`` subscribers
    received every change (at most :data:`DRAIN_SECONDS` more); what they saw."""
    subscribers.command("measure")
    await subscribers.line(30)  # counting has started: a first write cannot be reset away
    started = time.perf_counter()
    server_before, subscribers_before = server_cpu(), subscribers.cpu_seconds()
    writes, errors = await _write_at_rate(port, rate, seconds)
    writing = time.perf_counter() - started
    expected = writes * count
    deadline = time.perf_counter() + DRAIN_SECONDS
    while True:
        subscribers.command("report")
        report = await subscribers.line(30)
        if report["changes"] >= expected or time.perf_counter() > deadline:
            break
        await asyncio.sleep(0.1)
    return Measured(
        latencies_ms=[latency * 1000 for latency in report["latencies"]],
        deliveries=report["changes"],
        expected=expected,
        messages=report["messages"],
        writes=writes,
        write_errors=errors,
        write_seconds=writing,
        seconds=time.perf_counter() - started,
        server_cpu_s=server_cpu() - server_before,
        subscribers_cpu_s=subscribers.cpu_seconds() - subscribers_before,
    )


class FloorProcess:
    """The fan-out floor (:mod:`breakwater.bench._fanout_floor`) as a process of its own, like
    the node, stopped by its PID."""

    def __init__(self, connections: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "breakwater.bench._fanout_floor", str(connections)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    async def port(self) -> int:
        """The port it listens on, once it does."""
        assert self.process.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(self.process.stdout.readline), 30)
        if not line.strip():
            raise RuntimeError(f"the fan-out floor exited with {self.process.poll()}")
        return int(line)

    def cpu_seconds(self) -> float:
        """CPU time it has used so far."""
        return cpu_seconds(Path(f"/proc/{self.process.pid}"))

    def stop(self) -> None:
        """Close its stdin (its cue to exit) and make sure it did."""
        assert self.process.stdin is not None
        with contextlib.suppress(OSError):
            self.process.stdin.close()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


async def _floor_run(
    count: int, rate: float, seconds: float, progress: Callable[[str], None]
) -> Measured:
    """The same writes, rate and subscriber process as the node's run, served by the floor."""
    progress(f"{count} subscribers: floor: connecting")
    floor = FloorProcess(count)
    subscribers: Subscribers | None = None
    try:
        port = await floor.port()
        subscribers = Subscribers(port, count, False, "")
        await wait_ready(subscribers, count, progress)
        await asyncio.sleep(2)
        progress(f"{count} subscribers: floor: writing {rate:g}/s for {seconds:g} s")
        return await _measure(subscribers, port, floor.cpu_seconds, count, rate, seconds)
    finally:
        if subscribers is not None:
            subscribers.stop()
        floor.stop()


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
            measured = await _measure(
                subscribers, writer.port, node.cpu_seconds, count, rate, seconds
            )
            async with HttpConnection("127.0.0.1", node.port) as http:
                _, metrics = await http.request("GET", "/metrics")
            text = metrics.decode()
        finally:
            if subscribers is not None:
                subscribers.stop()
            node.stop()
            if writer is not node:
                writer.stop()
    # After the node (its machine to itself while measured): the same work, fanned out by the floor.
    floor = await _floor_run(count, rate, seconds, progress)
    return Run(
        node=measured,
        floor=floor,
        raw_round_ms=raw_round,
        notify_p50_ms=notify_quantile(text, 0.5),
        notify_p99_ms=notify_quantile(text, 0.99),
        idle_kib_per_connection=round(idle, 1) if idle is not None else None,
    )


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
