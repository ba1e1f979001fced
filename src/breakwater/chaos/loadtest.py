"""``breakwater loadtest``: many simulated devices against real nodes, measured second by second.

The devices are the same SDK clients as in scenarios (:class:`~.sdk_device.SdkDevice`), but
they reach the nodes directly (no proxy in the path) and nothing is broken. Every write is in the
history, from the app's call to the node's acknowledgement, so the figures come from it: per
second, acknowledged mutations, write latency percentiles and errors; over the run, the
sustained rate and the latency distribution. With ``store="postgresql"`` the nodes share a
private PostgreSQL started for the run (:mod:`~.engines`). :func:`run_find_max` repeats bounded
runs at offered rates chosen by :func:`~.maxrate.find_max`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from breakwater.chaos.device import Device
from breakwater.chaos.history import History, Recorder
from breakwater.chaos.maxrate import SearchSpec, Step, StepResult, StepRunner, find_max
from breakwater.chaos.runner import Cluster, device_loop, fresh_run_dir, open_devices
from breakwater.chaos.scenario import Bounds, DeviceSpec, EngineSpec, NodeSpec, Scenario
from breakwater.core import codec


@dataclass(frozen=True)
class LoadSpec:
    """What to run: ``devices`` devices acting every ``interval`` seconds on average, each on
    its own collections (``workload="scoped"``) or all on the same ones (``"shared"``, every
    write synced to every device; :class:`~breakwater.chaos.device.Workload`), against
    ``nodes`` nodes on one SQLite file or one private PostgreSQL (``store``). The figures skip
    the first ``warmup_s`` seconds (default: 2, or a fifth of a shorter run), while 50 devices
    opening at once still pull and connect."""

    nodes: int = 1
    devices: int = 50
    duration: float = 30.0
    interval: float = 0.5
    seed: int = 1
    request_timeout_s: float = 5.0
    workload: Literal["scoped", "shared"] = "scoped"
    store: Literal["sqlite", "postgresql"] = "sqlite"
    warmup_s: float | None = None

    @property
    def warmup(self) -> float:
        """Seconds at the start left out of the summary."""
        return min(2.0, self.duration / 5) if self.warmup_s is None else self.warmup_s


def _percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile: the smallest value with ``fraction`` of all at or below it."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


def timeline(history: History, duration: float, bucket_s: float = 1.0) -> list[dict[str, Any]]:
    """Per ``bucket_s`` of completion time: acknowledged mutations, push latencies, errors."""
    buckets = max(1, int(duration / bucket_s + 0.999))
    acked = [0] * buckets
    errors = [0] * buckets
    latencies: list[list[float]] = [[] for _ in range(buckets)]
    for op in history.operations:
        # A write never acknowledged counts as an error when it was made.
        at = op.invoked_at if op.completed_at is None else op.completed_at
        index = min(buckets - 1, max(0, int(at / bucket_s)))
        if op.outcome != "ok":
            errors[index] += 1
        if op.kind == "push" and op.completed_at is not None:
            latencies[index].append((op.completed_at - op.invoked_at) * 1000)
            acked[index] += sum(op.acknowledged(m.mutation_id) for m in op.mutations)
    return [
        {
            "t": round(i * bucket_s, 3),
            "acked_per_s": acked[i] / bucket_s,
            "p50_ms": round(_percentile(latencies[i], 0.50), 2),
            "p99_ms": round(_percentile(latencies[i], 0.99), 2),
            "errors": errors[i],
        }
        for i in range(buckets)
    ]


def summary(history: History, spec: LoadSpec, warmup_s: float) -> dict[str, Any]:
    """Figures over the run after ``warmup_s``: sustained rate, latency, errors."""
    pushes = [op for op in history.operations if op.kind == "push" and op.invoked_at >= warmup_s]
    latencies = [
        (op.completed_at - op.invoked_at) * 1000 for op in pushes if op.completed_at is not None
    ]
    acked = sum(op.acknowledged(m.mutation_id) for op in pushes for m in op.mutations)
    seconds = max(1e-9, spec.duration - warmup_s)
    return {
        "mutations_per_s": round(acked / seconds, 1),
        "pushes": len(pushes),
        "push_p50_ms": round(_percentile(latencies, 0.50), 2),
        "push_p99_ms": round(_percentile(latencies, 0.99), 2),
        "push_max_ms": round(max(latencies, default=0.0), 2),
        "errors": sum(op.outcome != "ok" for op in pushes),
        "measured_s": round(seconds, 3),
    }


async def run_load(
    spec: LoadSpec, out: Path, progress: Callable[[str], None] = lambda _: None
) -> dict[str, Any]:
    """Run the load and return the report (also written to ``out/report.json``)."""
    await asyncio.to_thread(fresh_run_dir, out)
    scenario = Scenario(
        name="loadtest",
        duration=spec.duration,
        nodes=tuple(NodeSpec(f"n{i + 1}") for i in range(spec.nodes)),
        devices=DeviceSpec(
            count=spec.devices,
            interval=spec.interval,
            mix={"note": 0.5, "counter": 0.5, "read": 0.0},
            sync_interval=spec.duration + 1,  # no polling: the SDK syncs on writes and notices
        ),
        bounds=Bounds(request_timeout_s=spec.request_timeout_s),
        seed=spec.seed,
        engines=EngineSpec(store=spec.store),
    )
    cluster = Cluster(scenario, out)
    devices: list[Device] = []
    with (out / "history.jsonl").open("wb") as history_file:
        try:
            progress(f"starting {spec.nodes} node(s)")
            await cluster.start()
            recorder = Recorder({"loadtest": spec.__dict__}, history_file)
            rng = random.Random(spec.seed)
            endpoints = [(name, node.url) for name, node in cluster.nodes.items()]
            scoped = spec.workload == "scoped"
            devices = await open_devices(scenario, endpoints, recorder, out, rng, scoped)
            recorder.start_clock()
            stop_at = time.monotonic() + spec.duration
            loops = asyncio.gather(
                *(device_loop(d, scenario, random.Random(rng.random()), stop_at) for d in devices)
            )
            while not loops.done():
                await asyncio.wait([loops], timeout=1.0)
                pushes = [op for op in recorder.history.operations if op.kind == "push"]
                progress(
                    f"{recorder.now():.0f}/{spec.duration:g} s, {len(pushes)} pushes, "
                    f"{sum(op.outcome != 'ok' for op in pushes)} errors"
                )
            await loops
            progress("waiting for the last writes to be acknowledged")
            await asyncio.gather(*(device.sync() for device in devices))
        finally:
            for device in devices:
                await device.aclose()
            await cluster.aclose()
    history = recorder.history
    report = {
        "spec": spec.__dict__,
        "summary": summary(history, spec, warmup_s=spec.warmup),
        "timeline": timeline(history, spec.duration),
    }
    (out / "report.json").write_bytes(codec.dumps(report) + b"\n")
    (out / "plot.html").write_text(render_html(report), encoding="utf-8")
    return report


def step_runner(
    base: LoadSpec, out: Path, progress: Callable[[str], None] = lambda _: None
) -> StepRunner:
    """Steps for :func:`~.maxrate.find_max`: each a run of ``base`` at the offered rate (its
    devices' interval set to match), with its outputs in ``out/steps/NN-RATE``."""
    numbers = itertools.count(1)

    async def run_step(rate: float) -> StepResult:
        spec = dataclasses.replace(base, interval=base.devices / rate)
        report = await run_load(spec, out / "steps" / f"{next(numbers):02d}-{rate:g}", progress)
        figures = report["summary"]
        return StepResult(
            offered=round(rate, 3),
            achieved=figures["mutations_per_s"],
            p99_ms=figures["push_p99_ms"],
            errors=figures["errors"],
            devices=spec.devices,
        )

    return run_step


async def run_find_max(
    base: LoadSpec,
    search: SearchSpec,
    out: Path,
    progress: Callable[[str], None] = lambda _: None,
    on_step: Callable[[Step], None] = lambda _: None,
) -> dict[str, Any]:
    """Search for the highest rate ``base``'s deployment sustains under ``search``'s p99 bound;
    the report (also written to ``out/report.json``) with every step's figures."""
    await asyncio.to_thread(out.mkdir, parents=True, exist_ok=True)
    result = await find_max(step_runner(base, out, progress), search, on_step=on_step)
    spec = {key: value for key, value in base.__dict__.items() if key != "interval"}
    report = {"spec": spec, "find_max": result.to_json()}
    (out / "report.json").write_bytes(codec.dumps(report) + b"\n")
    return report


def _polyline(points: list[tuple[float, float]], width: int, height: int, top: float) -> str:
    if not points:
        return ""
    right = max(x for x, _ in points) or 1.0
    scale = top or 1.0
    return " ".join(
        f"{40 + x / right * (width - 50):.1f},{height - 20 - y / scale * (height - 30):.1f}"
        for x, y in points
    )


def _chart(title: str, series: dict[str, list[tuple[float, float]]]) -> str:
    width, height = 720, 200
    top = max((y for points in series.values() for _, y in points), default=0.0)
    colours = ["#1f77b4", "#d62728", "#2ca02c"]
    lines = [
        f'<polyline fill="none" stroke="{colours[i % 3]}" stroke-width="1.5" '
        f'points="{_polyline(points, width, height, top)}"/>'
        for i, points in enumerate(series.values())
    ]
    legend = " ".join(
        f'<span style="color:{colours[i % 3]}">{name}</span>' for i, name in enumerate(series)
    )
    return (
        f"<h2>{title}</h2><p>{legend} (max {top:g})</p>"
        f'<svg width="{width}" height="{height}" style="border:1px solid #ccc">'
        f'<line x1="40" y1="{height - 20}" x2="{width - 10}" y2="{height - 20}" stroke="#999"/>'
        f'<line x1="40" y1="10" x2="40" y2="{height - 20}" stroke="#999"/>'
        f"{''.join(lines)}</svg>"
    )


def render_html(report: dict[str, Any]) -> str:
    """A self-contained HTML page plotting throughput, latency percentiles and errors over time."""
    rows = report["timeline"]

    def series(key: str) -> list[tuple[float, float]]:
        return [(row["t"], row[key]) for row in rows]

    summary_rows = "".join(
        f"<tr><td>{key}</td><td>{value}</td></tr>" for key, value in report["summary"].items()
    )
    return (
        "<!doctype html><meta charset='utf-8'><title>breakwater loadtest</title>"
        "<body style='font-family:sans-serif'>"
        f"<h1>breakwater loadtest</h1><p>{report['spec']}</p><table>{summary_rows}</table>"
        + _chart("acknowledged mutations per second", {"acked/s": series("acked_per_s")})
        + _chart("push latency (ms)", {"p50": series("p50_ms"), "p99": series("p99_ms")})
        + _chart("errors per second", {"errors": series("errors")})
        + "</body>"
    )
