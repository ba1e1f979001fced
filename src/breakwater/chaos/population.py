"""The plan of a population load test, without I/O: who writes, when each device connects,
heartbeats and writes, which worker process holds it, how long a step lasts, and when a result
is the generator's rather than the node's (ADR 0043).

A real app's population is mostly idle: every device holds a realtime subscription and sends a
heartbeat now and then, and a minority write occasionally. The plan is drawn from a seed, so a
run can be repeated, and it is plain data, so the tests check it without a node.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass


@dataclass(frozen=True)
class PopulationSpec:
    """``devices`` connected devices over ``workers`` processes; a ``writer_share`` of them
    write (together at the step's rate), the others only hold their subscription. Devices
    connect ``connect_rate`` per second (staggered, not all at once; below the node's default
    realtime admission rate of 200 per second, which refuses a faster stream with ``503``
    and ``Retry-After``) and each sends a
    heartbeat every ``heartbeat_s`` from its own phase."""

    devices: int = 10_000
    workers: int = 4
    writer_share: float = 0.1
    connect_rate: float = 150.0
    heartbeat_s: float = 15.0
    seed: int = 1

    def __post_init__(self) -> None:
        if self.devices < 1 or self.workers < 1:
            raise ValueError("a population needs at least one device and one worker")
        if not 0 < self.writer_share <= 1:
            raise ValueError("writer_share must be in (0, 1]")
        if self.connect_rate <= 0 or self.heartbeat_s <= 0:
            raise ValueError("connect_rate and heartbeat_s must be positive")

    @property
    def writers(self) -> int:
        """Devices that write: at least one."""
        return max(1, round(self.devices * self.writer_share))


@dataclass(frozen=True)
class DevicePlan:
    """One device: its index, whether it writes, when it connects (seconds from the start)
    and the phase of its heartbeat within ``heartbeat_s``."""

    index: int
    writer: bool
    connect_at: float
    heartbeat_phase: float


def device_mix(spec: PopulationSpec) -> list[bool]:
    """Whether each device writes: ``spec.writers`` of them, spread evenly over the indices
    (so over the connection order and over the workers, not bunched at the start)."""
    writers = spec.writers
    return [(i * writers) // spec.devices != ((i + 1) * writers) // spec.devices
            for i in range(spec.devices)]  # fmt: skip


def plan_devices(spec: PopulationSpec) -> list[DevicePlan]:
    """Every device's plan: connections one every ``1/connect_rate`` s, heartbeat phases drawn
    uniformly from the seed so that heartbeats do not arrive in bursts."""
    rng = random.Random(spec.seed)
    return [
        DevicePlan(i, writer, i / spec.connect_rate, rng.uniform(0, spec.heartbeat_s))
        for i, writer in enumerate(device_mix(spec))
    ]


def assign_workers(plans: list[DevicePlan], workers: int) -> list[list[DevicePlan]]:
    """Deal the devices to ``workers`` processes, writers first and then the idle ones, round
    robin: equal counts and equal shares of writers (each within one; dealing in index order
    alone would put every writer on one worker when their spacing is a multiple of
    ``workers``). Each worker keeps its devices in connection order, staggered over the whole
    connect phase."""
    ordered = sorted(plans, key=lambda plan: not plan.writer)
    return [sorted(ordered[w::workers], key=lambda plan: plan.index) for w in range(workers)]


def write_times(rate: float, seconds: float, rng: random.Random) -> list[float]:
    """Open-loop write times over ``seconds`` at ``rate`` per second on average: a Poisson
    process, so that writes do not wait for earlier ones (a slow node cannot slow the offer)."""
    times: list[float] = []
    if rate <= 0:
        return times
    at = rng.expovariate(rate)
    while at < seconds:
        times.append(at)
        at += rng.expovariate(rate)
    return times


@dataclass(frozen=True)
class StepPlan:
    """How long a step lasts: at least ``min_s`` and long enough for ``samples`` writes after
    the ``warmup_s`` (so that the p99 rests on ``samples / 100`` writes above it), at most
    ``max_s``."""

    samples: int = 2000
    min_s: float = 10.0
    max_s: float = 120.0
    warmup_s: float = 3.0

    def seconds(self, rate: float) -> float:
        """Seconds of load (warm-up included) for a step at ``rate`` writes per second."""
        measured = math.ceil(self.samples / max(rate, 1e-9))
        return min(self.max_s, max(self.min_s, self.warmup_s + measured))


@dataclass(frozen=True)
class GeneratorLimits:
    """When the generator, not the node, limits a step: a worker process busy for more than
    ``worker_cpu`` of a core, or writes leaving later than scheduled (p99 of the lag) by more
    than ``lag_share`` of the latency bound while that lag could explain the step's verdict
    (a step whose p99 less the lag still exceeds the bound failed by the node's doing)."""

    worker_cpu: float = 0.85
    lag_share: float = 0.2

    def verdict(
        self, worker_cpu: list[float], lag_p99_ms: float, p99_ms: float, bound_ms: float
    ) -> str | None:
        """Why the step was limited by the generator, or ``None`` when it was not. Each of
        ``worker_cpu`` is a worker's CPU seconds per second of the step."""
        busiest = max(worker_cpu, default=0.0)
        if busiest > self.worker_cpu:
            return f"a worker used {busiest:.0%} of a core"
        if lag_p99_ms > self.lag_share * bound_ms and p99_ms - lag_p99_ms < bound_ms:
            return f"writes left {lag_p99_ms:.1f} ms late (p99)"
        return None
