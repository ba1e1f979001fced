"""``breakwater bench startup``: time from spawning ``breakwater serve`` to a healthy node.

The floor measured in the same run is a bare ``python -c pass``: what any Python server pays.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from breakwater.bench.push import _free_port, machine
from breakwater.bench.stats import median


def _until_healthy(port: int, process: subprocess.Popen[bytes], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"breakwater serve exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.01)
    raise RuntimeError("breakwater serve did not become healthy")


def _one_start(data: Path) -> float:
    port = _free_port()
    started = time.perf_counter()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "breakwater",
            "serve",
            "--port",
            str(port),
            "--data",
            str(data),
            "--drain-grace",
            "0",
            "--log-level",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _until_healthy(port, process)
        return time.perf_counter() - started
    finally:
        process.terminate()
        process.wait(timeout=20)


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
