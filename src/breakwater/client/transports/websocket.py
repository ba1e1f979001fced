"""Realtime over a WebSocket (``GET /v1/realtime``), with the ``websockets`` library.

With :class:`Credentials` the connection stays authenticated in place: when the token is due for
refresh (or was refreshed by a request), the new token goes over the open socket as an ``auth``
message (docs/protocol.md#realtime-and-token-expiry). An upgrade refused with 401, or a socket
closed with 4401, renews the token and reconnects at once from the device's cursor.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidMessage,
    InvalidStatus,
)
from websockets.frames import Frame

from breakwater.client.errors import EndpointUnavailable, TransportRefused, error_for_problem
from breakwater.client.node_api import Credentials, auth_headers
from breakwater.client.trace_context import trace_headers
from breakwater.client.transports.base import (
    StreamContext,
    bearer_of,
    brings_changes,
    refused_for_token,
    token_change,
)
from breakwater.core import codec
from breakwater.core.errors import Unauthorized
from breakwater.resilience.tasks import stop

CLOSE_UNAUTHORIZED = 4401
CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})


class WithoutSecrets(logging.LoggerAdapter[logging.Logger]):
    """websockets' connection logger, minus what would show a credential at ``debug``: the
    value of a credential header of the handshake, and every frame's payload (the ``auth``
    message carries a token), which is logged as its type and size only."""

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        if args and msg in ("> %s: %s", "< %s: %s"):
            if str(args[0]).lower() in CREDENTIAL_HEADERS:
                args = (args[0], "[redacted]", *args[2:])
        elif args and isinstance(args[0], Frame):
            frame = args[0]
            args = (f"{frame.opcode.name} [{len(frame.data)} bytes]", *args[1:])
        super().log(level, msg, *args, **kwargs)


_LOG = WithoutSecrets(logging.getLogger("websockets.client"))


class WebSocketTransport:
    """Subscribe to the device's collections from its cursor and wake the sync loop."""

    name = "websocket"
    connection_class: type[ClientConnection] = ClientConnection
    """The socket's connection class (``breakwater bench sdk`` swaps in one that counts)."""

    def __init__(self) -> None:
        self.connections = 0
        """Connections opened (a re-authentication in place opens none)."""
        self.reauthenticated = 0
        """``authenticated`` answers received on open connections."""

    async def listen(self, context: StreamContext) -> None:
        url = "ws" + context.base_url.removeprefix("http") + "/v1/realtime"
        headers = await auth_headers(context.headers)
        try:
            async with connect(
                url,
                additional_headers={**headers, **trace_headers()},
                open_timeout=10,
                logger=_LOG,
                create_connection=self.connection_class,
            ) as ws:
                self.connections += 1
                renewing = None
                if isinstance(context.headers, Credentials):
                    renewing = asyncio.create_task(
                        self._keep_authenticated(ws, context.headers, bearer_of(headers))
                    )
                try:
                    await self._follow(ws, context)
                finally:
                    await stop(renewing)
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status == 401:
                raise await refused_for_token(context, headers) from exc
            if status >= 500 or status == 429:
                raise EndpointUnavailable(f"WebSocket refused with {status}") from exc
            raise TransportRefused(f"WebSocket upgrade refused with {status}") from exc
        except InvalidMessage as exc:
            if isinstance(exc.__cause__, EOFError | OSError):
                # Closed before any answer: nothing there speaks HTTP (a dead node behind a
                # proxy), not a refusal of WebSocket, so the device fails over.
                raise EndpointUnavailable(f"WebSocket: closed during the handshake: {exc}") from exc
            raise TransportRefused(f"WebSocket handshake failed: {exc}") from exc
        except InvalidHandshake as exc:
            raise TransportRefused(f"WebSocket handshake failed: {exc}") from exc
        except Unauthorized as exc:  # the token expired on the open socket (error, then 4401)
            raise await refused_for_token(context, headers) from exc
        except ConnectionClosed as exc:
            if exc.rcvd is not None and exc.rcvd.code == CLOSE_UNAUTHORIZED:
                raise await refused_for_token(context, headers) from exc
            return
        except (OSError, TimeoutError) as exc:
            raise EndpointUnavailable(f"WebSocket: {type(exc).__name__}: {exc}") from exc

    async def _follow(self, ws: ClientConnection, context: StreamContext) -> None:
        subscribe: dict[str, object] = {"type": "subscribe", "cursor": context.cursor()}
        if context.collections is not None:
            subscribe["collections"] = list(context.collections)
        await ws.send(codec.dumps(subscribe).decode())
        socket = context.socket
        if socket is None:
            await self._read(ws, context, None)
            return
        socket.attach(ws.send)
        try:
            await self._read(ws, context, context.heard)
        finally:
            socket.detach()

    async def _read(
        self,
        ws: ClientConnection,
        context: StreamContext,
        heard: Callable[[str], object] | None,
    ) -> None:
        """Handle the node's messages until the stream ends; with ``heard`` (the socket
        carries pushes) a notice of changes never holds up the reading of a push's answer.

        A stream silent for ``idle_timeout`` ends with ``TimeoutError`` (at most a quarter
        later: one deadline moved at most four times per period, not a timeout per message)."""
        idle = context.idle_timeout
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(idle) as deadline:
            while True:
                raw = await ws.recv()
                now = loop.time()
                if (deadline.when() or now) - now < idle:
                    deadline.reschedule(now + idle * 1.25)
                message = codec.loads(raw)
                kind = message.get("type")
                if kind == "ping":
                    await ws.send('{"type":"pong"}')
                elif kind == "changes" and brings_changes(message, context.cursor()):
                    if heard is not None:
                        heard(message["cursor"])
                    else:
                        deadline.reschedule(None)  # waiting for the pull is not silence
                        await context.notify(message["cursor"])
                        deadline.reschedule(loop.time() + idle)
                elif kind == "pushed" and context.socket is not None:
                    context.socket.answered(message)
                elif kind == "authenticated":
                    self.reauthenticated += 1
                elif kind == "error":
                    problem = message.get("error", {})
                    raise error_for_problem(int(problem.get("status", 400)), problem)
                elif kind == "reconnect":
                    return

    async def _keep_authenticated(
        self, ws: ClientConnection, credentials: Credentials, token: str | None
    ) -> None:
        """Send each new token over the open socket before the old one expires."""
        while True:
            token = await token_change(credentials, token)
            if token is None:  # signed out: the node closes the socket when the token expires
                return
            await ws.send(codec.dumps({"type": "auth", "token": token}).decode())
