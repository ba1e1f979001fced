"""``GET /v1/realtime``: the change stream over a WebSocket (JSON text frames).

The client sends ``subscribe``/``unsubscribe``/``ping``/``pong``; the server sends
``subscribed``, ``changes``, ``ping``/``pong``, ``error`` and ``reconnect`` (docs/protocol.md).
permessage-deflate is negotiated by the server (uvicorn's ``websockets`` protocol) when the
client offers it.

The endpoint is a plain ASGI handler placed in front of the router (:class:`WebSocketEntry`)
rather than a routed endpoint: a WebSocket lives for hours, and every routing and middleware
layer it passes through stays suspended for as long, in every connection. Each object kept per
connection is one more for the garbage collector to walk on every full collection, and those
walks stall the whole node; skipping the layers halves what a connection keeps.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from breakwater.core.errors import BreakwaterError, NotFound
from breakwater.server import problems
from breakwater.server.node import Node
from breakwater.server.realtime import messages
from breakwater.server.realtime.admission import Refused
from breakwater.server.realtime.fanout import Batch
from breakwater.server.realtime.session import Disconnected, Session

PATH = "/v1/realtime"
TRANSPORT = "websocket"
CLOSE_TRY_AGAIN_LATER = 1013
DISABLED = NotFound("the WebSocket transport is disabled on this node (realtime_transports)")


class WebSocketOut:
    """Writes a session's messages as WebSocket text frames through the ASGI ``send``."""

    transport = TRANSPORT

    def __init__(self, send: Send) -> None:
        self._send = send

    async def _write(self, text: str) -> int:
        message: Message = {"type": "websocket.send", "text": text}
        try:
            await self._send(message)
        except Exception as exc:
            # uvicorn raises ClientDisconnected (an OSError) or RuntimeError once the socket is
            # gone; both mean the same here.
            raise Disconnected from exc
        return len(text)

    async def send_changes(self, batch: Batch) -> int:
        """One ``changes`` frame (the text is shared with every subscriber of the page)."""
        return await self._write(batch.text)

    async def send_message(self, kind: str, text: str) -> int:
        """One frame; the type is inside the JSON."""
        return await self._write(text)

    async def send_heartbeat(self) -> int:
        """A ``ping`` frame the client answers with ``pong``."""
        return await self._write(messages.PING)

    async def close(self, code: int) -> None:
        """Send the close frame (the reader then sees the disconnect)."""
        try:
            await self._send({"type": "websocket.close", "code": code})
        except Exception as exc:
            raise Disconnected from exc


async def _send_problem(
    scope: Scope,
    receive: Receive,
    send: Send,
    error: BreakwaterError,
    headers: dict[str, str] | None = None,
) -> None:
    """Refuse before the upgrade with an HTTP problem answer (or close 1013 if none is possible)."""
    if "websocket.http.response" in scope.get("extensions", {}):
        response = problems.error_response(error, headers=headers)
        await response(scope, receive, send)  # sent as websocket.http.response.*
    else:
        await send({"type": "websocket.close", "code": CLOSE_TRY_AGAIN_LATER})


async def _refuse(scope: Scope, receive: Receive, send: Send, refused: Refused) -> None:
    """Refuse before the upgrade: an HTTP 503 problem with Retry-After (or 1013)."""
    await _send_problem(scope, receive, send, refused, {"Retry-After": str(refused.retry_after)})


async def serve_websocket(node: Node, scope: Scope, receive: Receive, send: Send) -> None:
    """Serve one WebSocket client until it leaves, times out, or the node drains."""
    if (await receive())["type"] != "websocket.connect":
        return
    if TRANSPORT not in node.config.enabled_realtime_transports:
        await _send_problem(scope, receive, send, DISABLED)
        return
    hub = node.realtime
    try:
        await hub.admission.admit(TRANSPORT)
    except Refused as refused:
        await _refuse(scope, receive, send, refused)
        return
    try:
        await send({"type": "websocket.accept"})
        session = Session(hub, WebSocketOut(send), expects_heartbeats=True)

        async def read() -> None:
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    return
                session.receive(message.get("text"))

        await session.run(read)
    finally:
        hub.admission.release()


class WebSocketEntry:
    """ASGI middleware that serves :data:`PATH` WebSockets itself and passes the rest on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == PATH:
            await serve_websocket(scope["app"].state.node, scope, receive, send)
        else:
            await self.app(scope, receive, send)
