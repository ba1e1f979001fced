"""Serving one node with uvicorn, and draining it on SIGTERM or SIGINT.

On the first signal the node turns ``/readyz`` to 503 at once, keeps serving for
``drain_grace`` so that balancers notice, then stops accepting connections, lets in-flight
requests finish within ``drain_timeout`` and closes the store, which flushes the writer.
A second signal stops at once.
"""

from __future__ import annotations

import socket
import threading
from types import FrameType

import uvicorn

from breakwater.config import Config
from breakwater.obs.logging import get_logger
from breakwater.server.app import create_app
from breakwater.server.node import Node

_log = get_logger("breakwater.server")


class _DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, node: Node, grace_s: float) -> None:
        super().__init__(config)
        self.node = node
        self.grace_s = grace_s
        self._signals = 0

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._signals += 1
        if self._signals > 1 or self.grace_s <= 0:
            super().handle_exit(sig, frame)
            return
        self.node.start_draining()
        _log.info("draining", signal=sig, grace_s=self.grace_s)
        timer = threading.Timer(self.grace_s, super().handle_exit, args=(sig, frame))
        timer.daemon = True
        timer.start()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await super().shutdown(sockets)
        if not self.force_exit:
            # A clean drain exits 0 instead of re-raising the signal (uvicorn's default).
            self._captured_signals.clear()


def serve(config: Config) -> None:
    """Run a node in the foreground until it is signalled."""
    app = create_app(config)
    uv_config = uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        loop="uvloop",
        http="httptools",
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=max(int(config.drain_timeout), 1),
        server_header=False,
    )
    _DrainingServer(uv_config, app.state.node, config.drain_grace).run()
