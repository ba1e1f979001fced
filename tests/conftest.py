"""Shared fixtures: configs in a temporary directory, an in-process node, a store, a real server."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import settings

from breakwater.chaos.ports import free_port as free_port
from breakwater.config import Config, load_config
from breakwater.core.engine import Engine
from breakwater.core.hlc import HybridClock
from breakwater.server.app import create_app
from breakwater.storage.sqlite import SqliteStore

# No per-example deadline: on a loaded 2-core CI machine one example can take longer than
# Hypothesis's default 200 ms, which fails a correct property as "flaky" (seen in a full run).
settings.register_profile("breakwater", deadline=None)
settings.load_profile("breakwater")


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., Config]:
    """Build a Config whose data lives in this test's temporary directory."""

    def make(toml: str = "", **overrides: Any) -> Config:
        file = None
        if toml:
            file = tmp_path / "breakwater.toml"
            file.write_text(toml)
        config = load_config(file, env={}, overrides={"data": tmp_path / "data"})
        return replace(config, drain_grace=0.0, **overrides)

    return make


@pytest.fixture
async def make_client(
    make_config: Callable[..., Config],
) -> AsyncIterator[Callable[..., Any]]:
    """Start an in-process node (lifespan included) and return an httpx client for it."""
    stack = contextlib.AsyncExitStack()

    async def make(toml: str = "", **overrides: Any) -> httpx.AsyncClient:
        app = create_app(make_config(toml, **overrides))
        await stack.enter_async_context(app.router.lifespan_context(app))
        client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://node")
        client.app = app  # type: ignore[attr-defined]
        await stack.enter_async_context(client)
        return client

    async with stack:
        yield make


def origin_of(client: httpx.AsyncClient) -> str:
    """The origin an in-process node's writes get (its region and its store's incarnation)."""
    origin: str = client.app.state.node.store.origin  # type: ignore[attr-defined]
    return origin


@pytest.fixture
async def client(make_client: Callable[..., Any]) -> httpx.AsyncClient:
    """An in-process node with default settings."""
    result: httpx.AsyncClient = await make_client()
    return result


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    """An open SQLite store for region ``r1``."""
    sqlite_store = SqliteStore(tmp_path / "store.db", Engine("r1", HybridClock("n1")))
    await sqlite_store.open()
    yield sqlite_store
    await sqlite_store.aclose()


@dataclass
class ServerProcess:
    """A ``breakwater serve`` subprocess on loopback."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def kill(self) -> None:
        """SIGKILL the node (no drain, no flush) and reap it."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def terminate(self, timeout: float = 20) -> int:
        """SIGTERM the node and wait for it to exit; return its exit code."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)


def _wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        time.sleep(0.05)
    raise RuntimeError(f"server did not become healthy in {seconds}s:\n{log.read_text()}")


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start ``breakwater serve`` subprocesses; every one still running is killed at teardown."""
    started: list[ServerProcess] = []

    def start(data: Path | None = None, *args: str, port: int | None = None) -> ServerProcess:
        port = port or free_port()
        data = data or tmp_path / "data"
        log = tmp_path / f"server-{port}-{len(started)}.log"
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
            *args,
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("BREAKWATER_")}
        with log.open("ab") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        server = ServerProcess(f"http://127.0.0.1:{port}", process, log)
        started.append(server)
        _wait_healthy(server.url, process, log, 30)
        return server

    yield start
    for server in started:
        if server.process.poll() is None:
            server.kill()
