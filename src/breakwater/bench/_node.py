"""A ``breakwater serve`` subprocess for benchmarks, and the facts of the machine."""

from __future__ import annotations

import asyncio
import os
import platform
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from breakwater.bench._http import HttpConnection


class BenchNode:
    """A ``breakwater serve`` subprocess for one run, stopped by its PID."""

    def __init__(
        self, data: Path, port: int, log_level: str, extra_args: Sequence[str] = ()
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
            *extra_args,
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("BREAKWATER_")}
        self.port = port
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
        )

    async def wait_ready(self, seconds: float = 30, interval: float = 0.02) -> None:
        """Return once ``/readyz`` answers 200; raise if the node exits or takes too long."""
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

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not exited within 20 s."""
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def free_port() -> int:
    """A loopback TCP port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
    }
