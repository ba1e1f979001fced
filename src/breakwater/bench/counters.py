"""``breakwater bench counters``: the cost of one increment as a field's history grows.

Increments one field of one document through the engine and the SQLite store (no HTTP), and
times increments after 1, 10,000 and 100,000 earlier ones of the same field (``largest`` scales
the last two), in one run: a counter whose state grew with its history would cost more at each
checkpoint; a folded one costs the same (docs/adr/0019-compact-counters.md). Each timed write
is a batch of ``BATCH`` increments in one group commit, so the figure is the store's cost per
increment, not one fsync.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from breakwater.bench._node import machine
from breakwater.bench.stats import median, percentile
from breakwater.core import codec
from breakwater.core.engine import Engine
from breakwater.core.hlc import HybridClock
from breakwater.core.mutation import Mutation
from breakwater.storage.sqlite import SqliteStore

BATCH = 100
LOAD_BATCH = 500


class _Counter:
    """Sends increments of one field, each with a fresh mutation id."""

    def __init__(self, store: SqliteStore) -> None:
        self.store = store
        self.sent = 0

    async def increment(self, count: int) -> None:
        first = self.sent
        self.sent += count
        await self.store.apply(
            [
                Mutation(f"i{n}", "counters", "hot", "increment", {"n": 1})
                for n in range(first, self.sent)
            ]
        )

    async def state_bytes(self) -> int:
        doc = await self.store.get("counters", "hot")
        if doc is None or doc.data != {"n": self.sent}:
            raise RuntimeError(f"the counter reads {doc and doc.data}, not {self.sent}")
        return len(codec.dumps(doc.state))


def checkpoints(largest: int) -> tuple[int, ...]:
    """How many earlier increments each measurement follows."""
    return (1, largest // 10, largest)


async def _one_run(
    samples: int, largest: int, progress: Callable[[str], None]
) -> list[dict[str, Any]]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="bw-bench-counters-") as tmp:
        store = SqliteStore(Path(tmp) / "store.db", Engine("bench", HybridClock("bench")))
        await store.open()
        try:
            counter = _Counter(store)
            for checkpoint in checkpoints(largest):
                progress(f"incrementing to {checkpoint:,}")
                while counter.sent < checkpoint:
                    await counter.increment(min(LOAD_BATCH, checkpoint - counter.sent))
                earlier = counter.sent
                timings = []
                for _ in range(samples):
                    started = time.perf_counter()
                    await counter.increment(BATCH)
                    timings.append((time.perf_counter() - started) / BATCH)
                rows.append(
                    {
                        "earlier_increments": earlier,
                        "us_per_increment": median(timings) * 1e6,
                        "p99_us_per_increment": percentile(timings, 0.99) * 1e6,
                        "state_bytes": await counter.state_bytes(),
                    }
                )
        finally:
            await store.aclose()
    return rows


def _medians(runs: Sequence[list[dict[str, Any]]], largest: int) -> list[dict[str, Any]]:
    result = []
    for index, checkpoint in enumerate(checkpoints(largest)):
        rows = [run[index] for run in runs]
        result.append(
            {
                "earlier_increments": checkpoint,
                "us_per_increment": round(median([r["us_per_increment"] for r in rows]), 1),
                "p99_us_per_increment": round(median([r["p99_us_per_increment"] for r in rows]), 1),
                "state_bytes": max(r["state_bytes"] for r in rows),
            }
        )
    return result


async def run(
    runs: int,
    samples: int,
    largest: int = 100_000,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """``runs`` runs of the checkpoints; medians per checkpoint and last over first."""
    all_runs = []
    for index in range(runs):
        progress(f"run {index + 1} of {runs}")
        all_runs.append(await _one_run(samples, largest, progress))
    rows = _medians(all_runs, largest)
    return {
        "benchmark": "counters",
        "batch": BATCH,
        "samples": samples,
        "runs": runs,
        "machine": machine(),
        "results": rows,
        "last_over_first": round(rows[-1]["us_per_increment"] / rows[0]["us_per_increment"], 2),
        "target_last_over_first": 1.5,
    }
