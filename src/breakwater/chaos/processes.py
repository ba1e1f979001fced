"""Process faults: ``breakwater serve`` nodes that a scenario starts, kills, pauses and restarts.

Every signal goes to the one process this object started, by its PID (never by name), so a
supervisor can share the machine with anything else. A node keeps its port, data and arguments
across restarts, so clients and proxies in front of it find it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

from breakwater.core.errors import BreakwaterError


class NodeFailed(BreakwaterError):
    """The node exited or did not become ready in time; the detail ends with its log's tail."""

    type = "node_failed"


class NodeProcess:
    """One ``breakwater serve`` subprocess on loopback.

    ``env`` adds ``BREAKWATER_*`` settings (the caller's own ``BREAKWATER_*`` variables are not
    inherited, so a node runs exactly what the scenario says); ``log`` collects its output.
    """

    def __init__(
        self,
        name: str,
        port: int,
        data: Path,
        *,
        log: Path,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.data = data
        self.log = log
        self.args = list(args)
        self.env = dict(env or {})
        self.paused = False
        self._process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        """The node's base URL."""
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The PID of the running process, if any."""
        return self._process.pid if self.running and self._process else None

    @property
    def running(self) -> bool:
        """Whether the process was started and has not exited (a paused node is running)."""
        return self._process is not None and self._process.returncode is None

    def command(self) -> list[str]:
        """The command line of the node."""
        return [
            sys.executable,
            "-m",
            "breakwater",
            "serve",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--data",
            str(self.data),
            "--node",
            self.name,
            "--drain-grace",
            "0",
            *self.args,
        ]

    async def start(self, ready_timeout: float = 30.0) -> None:
        """Start the node and return once ``/readyz`` answers 200."""
        if self.running:
            raise RuntimeError(f"node {self.name} is already running")
        env = {k: v for k, v in os.environ.items() if not k.startswith("BREAKWATER_")}
        env.update(self.env)
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self._process = await asyncio.create_subprocess_exec(
                *self.command(), stdout=out, stderr=subprocess.STDOUT, env=env
            )
        self.paused = False
        await self.wait_ready(ready_timeout)

    async def wait_ready(self, seconds: float) -> None:
        """Return once ``/readyz`` answers 200; :class:`NodeFailed` if it exits or times out."""
        deadline = time.monotonic() + seconds
        async with httpx.AsyncClient(base_url=self.url, timeout=1.0) as http:
            while time.monotonic() < deadline:
                if not self.running:
                    raise NodeFailed(f"node {self.name} exited:\n{self.log_tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get("/readyz")).status_code == 200:
                        return
                await asyncio.sleep(0.05)
        raise NodeFailed(f"node {self.name} not ready in {seconds:g}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the node's output."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def _signal(self, signum: int) -> None:
        if self._process is None or not self.running:
            raise RuntimeError(f"node {self.name} is not running")
        self._process.send_signal(signum)

    async def kill(self) -> None:
        """SIGKILL: no drain, no flush; acknowledged writes must survive (I1)."""
        self._signal(signal.SIGKILL)
        assert self._process is not None
        await self._process.wait()
        self.paused = False

    def pause(self) -> None:
        """SIGSTOP: the process freezes with its sockets and locks held."""
        self._signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        self._signal(signal.SIGCONT)
        self.paused = False

    async def restart(self, ready_timeout: float = 30.0) -> None:
        """Kill the node if it runs, then start it again on the same port and data."""
        if self.running:
            await self.kill()
        await self.start(ready_timeout)

    async def stop(self, grace: float = 20.0) -> int | None:
        """SIGTERM (after SIGCONT if paused), SIGKILL after ``grace`` seconds; the exit code."""
        if self._process is None or not self.running:
            return self._process.returncode if self._process else None
        if self.paused:
            self.resume()
        self._signal(signal.SIGTERM)
        try:
            return await asyncio.wait_for(self._process.wait(), grace)
        except TimeoutError:
            self._process.kill()
            return await self._process.wait()
