"""``breakwater loadtest --device wire``: thousands of protocol-level devices over worker
processes against one node, with the find-max search (ADR 0043).

The plan (:mod:`breakwater.chaos.population`) deals the devices to ``workers`` processes
(:mod:`~._population_worker`, each with its own event loop); this module starts the node (or
is given its port and PID), starts the workers, waits until every device is subscribed, and
runs the search (:func:`breakwater.chaos.maxrate.find_max`) with steps sized by the
:class:`~breakwater.chaos.population.StepPlan`. Beside every step's figures it reads the
node's CPU from ``/proc`` of its PID (workers included) and the generator's from ``/proc`` of
each worker, and applies the generator-bound rule, so a figure the generator limited says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from breakwater.bench._node import BenchNode, cpu_seconds, free_port, machine
from breakwater.bench.stats import percentile
from breakwater.chaos.maxrate import SearchSpec, Step, StepResult, find_max
from breakwater.chaos.population import (
    GeneratorLimits,
    PopulationSpec,
    StepPlan,
    assign_workers,
    plan_devices,
)
from breakwater.chaos.search_plot import search_svg
from breakwater.core import codec

READY_TIMEOUT_S = 600.0
"""At most this long for every device to connect and subscribe."""


@dataclass(frozen=True)
class Target:
    """The node under load: its port and PID (``None``: start one for the run)."""

    port: int | None = None
    pid: int | None = None
    pool: int = 256
    """Keep-alive push connections per worker, at most."""


@dataclass
class Progress:
    """Callbacks for the CLI's progress display."""

    connecting: Callable[[int, int], None] = lambda _connected, _subscribed: None
    step: Callable[[str], None] = lambda _text: None
    stepped: Callable[[Step], None] = lambda _step: None


@dataclass
class _Worker:
    process: asyncio.subprocess.Process
    devices: int
    writers: int
    subscribed: int = 0
    connected: int = 0
    retries: int = 0

    @property
    def proc(self) -> Path:
        return Path(f"/proc/{self.process.pid}")

    async def read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = await self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"load test worker {self.process.pid} exited")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def send(self, command: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command).encode() + b"\n")


@dataclass
class _Details:
    """What a step measured beside the search's figures."""

    steps: list[dict[str, Any]] = field(default_factory=list)


async def _start_workers(spec: PopulationSpec, port: int, pool: int) -> list[_Worker]:
    workers: list[_Worker] = []
    for dealt in assign_workers(plan_devices(spec), spec.workers):
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "breakwater.bench._population_worker",
            "--port",
            str(port),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=2**26,
        )
        worker = _Worker(process, len(dealt), sum(p.writer for p in dealt))
        worker.send(
            {
                "devices": [[p.index, p.writer, p.connect_at, p.heartbeat_phase] for p in dealt],
                "heartbeat_s": spec.heartbeat_s,
                "seed": spec.seed * 1000 + len(workers),
                "pool": pool,
            }
        )
        workers.append(worker)
    return workers


async def _wait_ready(workers: list[_Worker], progress: Progress) -> None:
    async def follow(worker: _Worker) -> None:
        while True:
            line = await worker.read()
            worker.connected = line.get("connected", worker.connected)
            worker.subscribed = line.get("subscribed", worker.subscribed)
            if "ready" in line:
                worker.subscribed = line["ready"]
                worker.retries = line["retries"]
                return
            progress.connecting(
                sum(w.connected for w in workers), sum(w.subscribed for w in workers)
            )

    async with asyncio.timeout(READY_TIMEOUT_S):
        await asyncio.gather(*(follow(worker) for worker in workers))
    progress.connecting(sum(w.connected for w in workers), sum(w.subscribed for w in workers))


def step_figures(
    rate: float,
    seconds: float,
    warmup: float,
    answers: list[dict[str, Any]],
    cpu: dict[str, Any],
    devices: int,
    bound_ms: float,
    limits: GeneratorLimits,
) -> tuple[StepResult, dict[str, Any]]:
    """The search's figures of one step and the details beside them, from the workers'
    answers and the CPU seconds per second of the node, of each worker and of this process
    (the runner: the generator is the workers and the runner)."""
    latencies = [ms for answer in answers for ms in answer["latencies_ms"]]
    lags = [ms for answer in answers for ms in answer["lags_ms"]]
    acked = sum(answer["acked"] for answer in answers)
    errors = sum(answer["errors"] for answer in answers)
    lag_p99 = percentile(lags, 0.99) if lags else 0.0
    p99 = percentile(latencies, 0.99) if latencies else 0.0
    verdict = limits.verdict(cpu["workers"], lag_p99, p99, bound_ms)
    result = StepResult(
        offered=round(rate, 3),
        achieved=round(acked / max(1e-9, seconds - warmup), 1),
        p99_ms=round(p99, 2),
        errors=errors,
        devices=devices,
        generator_bound=verdict,
    )
    details = {
        "offered": result.offered,
        "seconds": seconds,
        "samples": len(latencies),
        "p50_ms": round(percentile(latencies, 0.50), 2) if latencies else 0.0,
        "lag_p99_ms": round(lag_p99, 2),
        "changes_received": sum(answer["changes"] for answer in answers),
        "open_subscriptions": sum(answer["open"] for answer in answers),
        "node_cpu": round(cpu["node"], 3),
        "generator_cpu": round(sum(cpu["workers"]) + cpu["runner"], 3),
        "runner_cpu": round(cpu["runner"], 3),
        "worker_cpu": [round(c, 3) for c in cpu["workers"]],
        "generator_bound": verdict,
    }
    return result, details


async def _step(
    workers: list[_Worker],
    node_cpu: Callable[[], float],
    rate: float,
    plan: StepPlan,
    spec: PopulationSpec,
    search: SearchSpec,
    limits: GeneratorLimits,
    progress: Progress,
    details: _Details,
) -> StepResult:
    seconds = plan.seconds(rate)
    writers = sum(w.writers for w in workers)
    node_before = node_cpu()
    workers_before = [cpu_seconds(w.proc) for w in workers]
    runner_before = time.process_time()
    began = time.monotonic()
    for worker in workers:
        share = rate * worker.writers / writers
        worker.send({"step": {"rate": share, "seconds": seconds, "warmup": plan.warmup_s}})
    gathering = asyncio.ensure_future(asyncio.gather(*(w.read() for w in workers)))
    while not gathering.done():
        await asyncio.wait([gathering], timeout=1.0)
        elapsed = time.monotonic() - began
        node = (node_cpu() - node_before) / max(elapsed, 1e-9)
        generator = sum(
            cpu_seconds(w.proc) - b for w, b in zip(workers, workers_before, strict=True)
        )
        progress.step(
            f"{rate:g}/s: {min(elapsed, seconds):.0f}/{seconds:g} s, node CPU {node:.0%},"
            f" generator CPU {generator / max(elapsed, 1e-9):.0%}"
        )
    answers = gathering.result()
    elapsed = time.monotonic() - began
    cpu = {
        "node": (node_cpu() - node_before) / elapsed,
        "runner": (time.process_time() - runner_before) / elapsed,
        "workers": [
            (cpu_seconds(w.proc) - b) / elapsed
            for w, b in zip(workers, workers_before, strict=True)
        ],
    }
    result, detail = step_figures(
        rate, seconds, plan.warmup_s, answers, cpu, spec.devices, search.bound_ms, limits
    )
    details.steps.append(detail)
    return result


def _node_cpu(pid: int) -> Callable[[], float]:
    """CPU seconds of process ``pid`` and its children (a node's workers)."""

    def read() -> float:
        total = cpu_seconds(Path(f"/proc/{pid}"))
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    total += cpu_seconds(stat.parent)
        return total

    return read


async def run_population(
    spec: PopulationSpec,
    search: SearchSpec,
    plan: StepPlan,
    out: Path,
    target: Target = Target(),
    limits: GeneratorLimits = GeneratorLimits(),
    progress: Progress = Progress(),
) -> dict[str, Any]:
    """Connect the population, search, and return the report (also ``out/report.json``,
    with the search's plot in ``out/search.svg``)."""
    await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
    node: BenchNode | None = None
    workers: list[_Worker] = []
    with tempfile.TemporaryDirectory(prefix="breakwater-loadtest-") as tmp:
        try:
            if target.port is None:
                # Every device holds a realtime connection: the default cap (10,000) would
                # measure itself at that scale.
                cap = {"BREAKWATER_MAX_REALTIME_CONNECTIONS": str(spec.devices + 1000)}
                node = BenchNode(Path(tmp) / "data", free_port(), "warning", settings=cap)
                await node.wait_ready(60)
            port = target.port if node is None else node.port
            pid = target.pid if node is None else node.process.pid
            if port is None or pid is None:
                raise ValueError("a given node needs its port and its PID, to read its CPU")
            progress.step(f"connecting {spec.devices:,} devices over {spec.workers} workers")
            connect_began = time.monotonic()
            workers = await _start_workers(spec, port, target.pool)
            await _wait_ready(workers, progress)
            connect_s = time.monotonic() - connect_began
            subscribed = sum(w.subscribed for w in workers)
            details = _Details()
            node_cpu = _node_cpu(pid)

            async def run_step(rate: float) -> StepResult:
                return await _step(
                    workers, node_cpu, rate, plan, spec, search, limits, progress, details
                )

            result = await find_max(run_step, search, on_step=progress.stepped)
        finally:
            for worker in workers:
                with contextlib.suppress(OSError, ValueError):
                    worker.send({"exit": True})
            for worker in workers:
                try:
                    await asyncio.wait_for(worker.process.wait(), 30)
                except TimeoutError:
                    worker.process.kill()
                    await worker.process.wait()
            if node is not None:
                await asyncio.to_thread(node.stop)
    search_report = result.to_json()
    report = {
        "spec": {**asdict(spec), "step_plan": asdict(plan), "pool": target.pool},
        "machine": {**machine(), "load_average": os.getloadavg()},
        "connected": {
            "subscribed": subscribed,
            "seconds": round(connect_s, 1),
            "reconnects": sum(w.retries for w in workers),
        },
        "find_max": search_report,
        "steps": details.steps,
    }
    (out / "report.json").write_bytes(codec.dumps(report) + b"\n")
    title = f"find-max: {spec.devices:,} wire devices, p99 bound {search.bound_ms:g} ms"
    (out / "search.svg").write_text(search_svg(search_report, title), encoding="utf-8")
    return report
