"""The highest offered write rate a deployment sustains with p99 write→ack latency under a bound.

The search knows nothing of nodes or devices: it calls a *step runner*, an async callable that
offers a rate (mutations per second) for one bounded run and returns what it measured, so the
load test supplies real runs and the tests a fake capacity. A step *passes* when its p99 is
under the bound, no write went unacknowledged, and the acknowledged rate kept up with the
offered one (``keep_up``; below it the generator or the node fell behind).

From ``start`` the rate doubles while steps pass (up to ``ceiling``), or halves while they fail
(down to ``floor``); then the gap between the best passing rate and the lowest failing one is
bisected until the failing rate is within ``resolution`` of the passing one. Steps are bounded in
number (``max_steps``) and in time (``max_seconds``: a step that would end past it, judging by
the longest step so far, is not started). With a latency that only grows with the rate, the
result is never above the true maximum and, once ``resolved``, within ``resolution`` of it.
Whatever the steps measure, every rate tried after a failure is below it, so no passing step
above a failing one is ever reported (the search is monotone).

A step may say that the generator, not the node, limited it (``generator_bound``): then nothing
higher can be measured with this generator, the search stops (``"generator"``) and the report
says that its figure is the generator's limit, a lower bound of the node's.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Stopped = Literal["resolved", "ceiling", "floor", "steps", "time", "generator"]


@dataclass(frozen=True)
class StepResult:
    """What one step measured at ``offered`` mutations per second."""

    offered: float
    achieved: float
    p99_ms: float
    errors: int
    devices: int
    generator_bound: str | None = None


@dataclass(frozen=True)
class SearchSpec:
    """The bound to hold and the limits of the search."""

    bound_ms: float = 100.0
    start: float = 25.0
    floor: float = 1.0
    ceiling: float = 3200.0
    resolution: float = 0.1
    keep_up: float = 0.8
    max_steps: int = 12
    max_seconds: float = 900.0

    def passes(self, step: StepResult) -> bool:
        """Whether ``step`` held the bound with every write acknowledged and kept up."""
        return (
            step.p99_ms < self.bound_ms
            and step.errors == 0
            and step.achieved >= self.keep_up * step.offered
        )


@dataclass(frozen=True)
class Step:
    """One step of the search: what it measured and whether it passed."""

    result: StepResult
    passed: bool
    seconds: float


@dataclass
class SearchResult:
    """Every step in order, the best passing one (``None``: none passed) and why it stopped."""

    spec: SearchSpec
    steps: list[Step] = field(default_factory=list)
    stopped: Stopped = "steps"

    @property
    def best(self) -> StepResult | None:
        """The passing step with the highest offered rate."""
        passed = [step.result for step in self.steps if step.passed]
        return max(passed, key=lambda result: result.offered, default=None)

    def to_json(self) -> dict[str, Any]:
        """The report's ``find_max`` section."""
        best = self.best
        return {
            "bound_ms": self.spec.bound_ms,
            "max_mutations_per_s": best.achieved if best else None,
            "offered_per_s": best.offered if best else None,
            "p99_ms": best.p99_ms if best else None,
            "devices": best.devices if best else None,
            "stopped": self.stopped,
            "limited_by": "generator" if self.stopped == "generator" else "node",
            "search": asdict(self.spec),
            "steps": [{**asdict(s.result), "passed": s.passed, "seconds": s.seconds}
                      for s in self.steps],
        }  # fmt: skip


StepRunner = Callable[[float], Awaitable[StepResult]]


def _next_rate(
    spec: SearchSpec, rate: float, passing: float | None, failing: float | None
) -> float | Stopped:
    """The next rate to try, or why the search is over."""
    if failing is None:
        return "ceiling" if rate >= spec.ceiling else min(spec.ceiling, rate * 2)
    if passing is None:
        return "floor" if rate <= spec.floor else max(spec.floor, rate / 2)
    if failing <= passing * (1 + spec.resolution):
        return "resolved"
    return (passing + failing) / 2


async def find_max(
    run_step: StepRunner,
    spec: SearchSpec,
    *,
    on_step: Callable[[Step], None] = lambda _: None,
    clock: Callable[[], float] = time.monotonic,
) -> SearchResult:
    """Search with ``run_step`` for the highest rate that passes; ``on_step`` sees each step."""
    result = SearchResult(spec)
    began = clock()
    passing: float | None = None
    failing: float | None = None
    rate = spec.start
    while True:
        if len(result.steps) >= spec.max_steps:
            result.stopped = "steps"
            return result
        longest = max((step.seconds for step in result.steps), default=0.0)
        if clock() - began + longest > spec.max_seconds:
            result.stopped = "time"
            return result
        step_began = clock()
        measured = await run_step(rate)
        step = Step(measured, spec.passes(measured), round(clock() - step_began, 3))
        result.steps.append(step)
        on_step(step)
        if step.passed:
            passing = max(rate, passing or rate)
        else:
            failing = min(rate, failing or rate)
        if measured.generator_bound is not None:
            result.stopped = "generator"
            return result
        following = _next_rate(spec, rate, passing, failing)
        if isinstance(following, str):
            result.stopped = following
            return result
        rate = following
