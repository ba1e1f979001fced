"""Serving one node with uvicorn, and draining it on SIGTERM or SIGINT.

On the first signal the node turns ``/readyz`` to 503 at once, tells every realtime client to
reconnect elsewhere (refusing new ones), keeps serving for ``drain_grace`` so that balancers
notice, then stops accepting connections, lets in-flight requests finish within
``drain_timeout`` and closes the store, which flushes the writer. A second signal stops at once.
"""

from __future__ import annotations

import signal
import socket
import threading
from types import FrameType

import uvicorn
from fastapi import FastAPI

from breakwater.config import Config
from breakwater.obs.logging import get_logger
from breakwater.server.app import create_app
from breakwater.server.gc_policy import CollectorPolicy
from breakwater.server.node import Node
from breakwater.server.realtime import websocket as realtime_websocket
from breakwater.server.slow_clients import guarded_protocol
from breakwater.server.workers import WorkerRole

_log = get_logger("breakwater.server")
REALTIME_GOODBYE_SECONDS = 2.0
"""How long realtime clients get to read their ``reconnect`` before they are dropped."""
CLIENT_MESSAGE_BYTES = 64 * 1024
"""Largest WebSocket message a client may send (subscribe messages are a few KiB at most)."""


class _DrainingServer(uvicorn.Server):
    def __init__(
        self, config: uvicorn.Config, node: Node, grace_s: float, *, worker: bool = False
    ) -> None:
        super().__init__(config)
        self.node = node
        self.grace_s = grace_s
        self.worker = worker
        self._signals = 0

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.worker and sig == signal.SIGINT:
            return  # a terminal's Ctrl-C; the supervisor turns it into our SIGTERM
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
        # Realtime connections never finish on their own: tell each client to reconnect
        # elsewhere and close it before uvicorn waits for connections (it would close
        # WebSockets without a word, and wait for SSE streams until drain_timeout).
        self.node.start_draining()
        if not self.force_exit:
            seconds = min(
                REALTIME_GOODBYE_SECONDS, max(self.config.timeout_graceful_shutdown or 0, 0.1)
            )
            dropped = await self.node.realtime.drain(seconds)
            _log.info("realtime_drained", dropped=dropped)
        await super().shutdown(sockets)
        if not self.force_exit:
            # A clean drain exits 0 instead of re-raising the signal (uvicorn's default).
            self._captured_signals.clear()


def uvicorn_config(app: FastAPI, config: Config) -> uvicorn.Config:
    """How uvicorn serves a node (also used by tests that serve a node in-process)."""
    return uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        loop="uvloop",
        # /v1/realtime upgrades go to the node's own WebSocket protocol; any other to
        # uvicorn's, through the app.
        http=guarded_protocol(
            config,
            realtime_websocket.handoff(app.state.node, max_size=CLIENT_MESSAGE_BYTES, deflate=True),
        ),
        ws="websockets-sansio",
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=max(int(config.drain_timeout), 1),
        server_header=False,
        # Forwarding headers are honoured only from auth.trusted_proxies, by access.client_ip:
        # uvicorn's own handling would believe any loopback peer (its default allow-list).
        proxy_headers=False,
        # Heartbeats are the application's (JSON ping/pong every realtime_heartbeat), so that
        # browsers, which cannot see protocol pings, can detect a dead node too.
        ws_ping_interval=None,
        ws_ping_timeout=None,
        ws_max_size=CLIENT_MESSAGE_BYTES,
        ws_per_message_deflate=True,
    )


def serve(
    config: Config, sockets: list[socket.socket] | None = None, role: WorkerRole | None = None
) -> None:
    """Run a node (or, with ``role``, one worker of it on ``sockets``) until it is signalled."""
    app = create_app(config, role=role)
    node: Node = app.state.node
    collector = CollectorPolicy()
    node.realtime.collector = collector
    server = _DrainingServer(
        uvicorn_config(app, config), node, config.drain_grace, worker=role is not None
    )
    collector.freeze_startup()
    server.run(sockets=sockets)
