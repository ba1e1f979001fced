"""A ``breakwater serve`` subprocess for benchmarks, and the facts of the machine."""

from __future__ import annotations

import asyncio
import os
import platform
import sqlite3
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from breakwater.bench._http import HttpConnection
from breakwater.chaos.ports import free_port as free_port


class BenchNode:
    """A ``breakwater serve`` subprocess for one run, stopped by its PID."""

    def __init__(
        self,
        data: Path,
        port: int,
        log_level: str,
        workers: int = 1,
        extra_args: Sequence[str] = (),
        settings: Mapping[str, str] | None = None,
    ) -> None:
        command = [
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
            log_level,
            "--workers",
            str(workers),
            *extra_args,
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("BREAKWATER_")}
        # Every load client comes from one address: the per-IP and per-user limits and the
        # per-address connection cap would measure themselves, not the node (bench auth
        # measures the auth paths on their own).
        env.update(BREAKWATER_AUTH_RATE_PER_IP="0", BREAKWATER_AUTH_RATE_PER_USER="0")
        env.update(BREAKWATER_MAX_CONNECTIONS_PER_ADDRESS="0")
        env.update(settings or {})
        self.port = port
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
        )

    async def wait_ready(self, seconds: float = 30, interval: float = 0.02) -> None:
        """Return once ``/readyz`` answers 200; raise if the node exits or takes too long.
        A node that is not ready when this raises (or is cancelled) is stopped: nobody else
        holds it yet."""
        try:
            await self._poll_ready(seconds, interval)
        except BaseException:
            self.stop()
            raise

    async def _poll_ready(self, seconds: float, interval: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"breakwater serve exited with {self.process.returncode}")
            try:
                async with HttpConnection("127.0.0.1", self.port) as conn:
                    status, _ = await conn.request("GET", "/readyz")
                if status == 200:
                    return
            except OSError:
                pass
            await asyncio.sleep(interval)
        raise RuntimeError("breakwater serve did not become ready")

    def _processes(self) -> list[Path]:
        """The ``/proc`` folders of the node: the process and, with workers, its children."""
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                pid = int(stat.parent.name)
                parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue  # a process that ended while we looked
            if pid == self.process.pid or parent == self.process.pid:
                found.append(stat.parent)
        return found

    def rss_bytes(self) -> int:
        """Resident memory of the node, workers included."""
        total = 0
        for folder in self._processes():
            try:
                for line in (folder / "status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
            except (OSError, ValueError, IndexError):
                continue
        return total

    def cpu_seconds(self) -> float:
        """CPU time (user and system) the node has used so far, workers included."""
        return sum(cpu_seconds(folder) for folder in self._processes())

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not exited within 20 s."""
        stop_process(self.process, 20)


def stop_process(process: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM ``process`` (by its PID), then SIGKILL if it has not exited within ``grace`` s."""
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def cpu_seconds(folder: Path) -> float:
    """User and system CPU seconds of the process whose ``/proc`` folder is ``folder``
    (0 once it has ended)."""
    try:
        fields = (folder / "stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # Fields 14 and 15 of proc(5), counted from 1 with the pid and the name before ")".
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
    }
