"""Realtime fixtures: a node served by uvicorn in the test's event loop, on a loopback port."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

import pytest
import uvicorn
from fastapi import FastAPI

from breakwater.config import Config
from breakwater.server.app import create_app
from breakwater.server.node import Node
from breakwater.server.runner import uvicorn_config
from tests.conftest import free_port


@dataclass
class LiveNode:
    """A node listening on loopback, with its app and state at hand."""

    url: str
    ws_url: str
    app: FastAPI
    server: uvicorn.Server

    @property
    def node(self) -> Node:
        """The node's shared state."""
        node: Node = self.app.state.node
        return node


@pytest.fixture
async def make_node(
    make_config: Callable[..., Config],
) -> AsyncIterator[Callable[..., Awaitable[LiveNode]]]:
    """Serve nodes with uvicorn (real sockets, the runner's settings); stop them at teardown."""
    running: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []

    async def make(toml: str = "", **overrides: Any) -> LiveNode:
        port = free_port()
        config = make_config(toml, port=port, **overrides)
        app = create_app(config)
        server = uvicorn.Server(uvicorn_config(app, config))
        task = asyncio.create_task(server.serve())
        running.append((server, task))
        for _ in range(200):
            if server.started:
                break
            if task.done():
                task.result()
            await asyncio.sleep(0.025)
        else:
            raise RuntimeError("the node did not start within 5 s")
        return LiveNode(f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}", app, server)

    yield make
    for server, _ in running:
        node: Node = cast(FastAPI, server.config.app).state.node
        await node.realtime.drain(2.0)
        server.should_exit = True
    for server, task in running:
        try:
            await asyncio.wait_for(task, 15)
        except TimeoutError:
            server.force_exit = True
            await asyncio.wait_for(task, 5)


@pytest.fixture
async def live(make_node: Callable[..., Awaitable[LiveNode]]) -> LiveNode:
    """A node with default settings."""
    return await make_node()
