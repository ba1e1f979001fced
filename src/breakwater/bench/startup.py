"""``breakwater bench startup``: time from spawning ``breakwater serve`` to a healthy node.

Ready means ``/readyz`` answers 200. The floor measured in the same run is a bare
``python -c pass``: what any Python server pays.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from breakwater.bench._node import BenchNode, free_port, machine
from breakwater.bench.stats import median


def _one_start(data: Path) -> float:
    started = time.perf_counter()
    node = BenchNode(data, free_port(), "warning")
    try:
        asyncio.run(node.wait_ready())
        return time.perf_counter() - started
    finally:
        node.stop()


def _bare_python() -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", "pass"], check=True)
    return time.perf_counter() - started


def run(runs: int, progress: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Start a node ``runs`` times (first on an empty data directory) and time each."""
    starts, bare = [], []
    with tempfile.TemporaryDirectory(prefix="bw-bench-startup-") as tmp:
        for index in range(runs):
            progress(f"start {index + 1}/{runs}")
            starts.append(_one_start(Path(tmp) / "data"))
            bare.append(_bare_python())
    return {
        "benchmark": "startup",
        "runs": runs,
        "machine": machine(),
        "seconds_to_healthy_median": round(median(starts), 3),
        "seconds_to_healthy_max": round(max(starts), 3),
        "bare_python_median": round(median(bare), 3),
    }
