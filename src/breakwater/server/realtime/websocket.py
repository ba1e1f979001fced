"""``GET /v1/realtime``: the change stream over a WebSocket (JSON text frames).

The client sends ``subscribe``/``unsubscribe``/``auth``/``push``/``ping``/``pong``; the server
sends ``subscribed``, ``changes``, ``pushed``, ``ping``/``pong``, ``error`` and ``reconnect``
(docs/protocol.md). A ``push`` is applied as ``POST /v1/sync/push`` would apply it (ADR 0052).
permessage-deflate is negotiated by the server when the client offers it.

A WebSocket lives for hours, and every routing and middleware layer it passes through stays
suspended for as long, in every connection: each object kept per connection is memory, and one
more for the garbage collector to walk on every full collection, which stalls the whole node. So
a node served by its runner takes these upgrades over from its HTTP protocol
(:func:`handoff`) and serves them on a WebSocket protocol of its own
(:mod:`~breakwater.server.realtime.protocol`), outside the application. Under another ASGI
server (tests, or an app mounted elsewhere) the same endpoint is a plain ASGI handler placed in
front of the router (:class:`WebSocketEntry`).
"""

from __future__ import annotations

import functools
import struct
import time
from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from breakwater.auth.identity import Identity
from breakwater.core.errors import (
    BreakwaterError,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
    Unavailable,
)
from breakwater.obs.logging import get_logger
from breakwater.server import problems, pushes
from breakwater.server.access import client_ip, resolve
from breakwater.server.coalescing import CoalescingTransport
from breakwater.server.node import Node
from breakwater.server.realtime import messages
from breakwater.server.realtime.admission import Refused
from breakwater.server.realtime.fanout import Batch
from breakwater.server.realtime.protocol import Endpoint, RealtimeHandoff, RealtimeSocket
from breakwater.server.realtime.session import Disconnected, Session, never_now
from breakwater.server.security_headers import API_HEADERS

_log = get_logger("breakwater.realtime")
PATH = "/v1/realtime"
PUSH_PATH = "/v1/sync/push"
"""The path a ``push`` message counts as for the rate limits (what it stands for)."""
TRANSPORT = "websocket"
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_POLICY_VIOLATION = 1008
DISABLED = NotFound("the WebSocket transport is disabled on this node (realtime_transports)")


def text_frame(payload: bytes) -> bytes:
    """An unfragmented, unmasked WebSocket text frame (what a server sends, RFC 6455 5.2)."""
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x81, length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", 0x81, 126, length)
    else:
        header = struct.pack("!BBQ", 0x81, 127, length)
    return header + payload


class _DirectSocket:
    """A node's own WebSocket connection (:class:`RealtimeSocket`), for frames written
    without a task.

    A ``changes`` message is framed once and the same bytes go to every subscriber: no
    per-connection task wake-up, framing or ASGI call. Only while the connection is plainly
    open, uncompressed (permessage-deflate frames depend on each connection's compression
    state) and not paused by flow control; anything else goes the ASGI way. It needs the node's
    coalescing transport, whose immediate write keeps order with bytes still pending.
    """

    def __init__(self, socket: RealtimeSocket, transport: CoalescingTransport) -> None:
        self._socket = socket
        self._send_frame: Callable[[bytes], bool] = transport.write_now

    @classmethod
    def under(cls, send: Send) -> _DirectSocket | None:
        """The socket under ``send`` if it is the node's own, accepted and without
        compression (what the handshake settled never changes afterwards)."""
        socket = getattr(send, "__self__", None)
        if not isinstance(socket, RealtimeSocket) or not socket.accepted or socket.compressed:
            return None
        if not isinstance(socket.transport, CoalescingTransport):
            return None
        return cls(socket, socket.transport)

    def write(self, batch: Batch) -> bool:
        """Write ``batch``'s frame now; False if the connection is closing or paused."""
        socket = self._socket
        if socket.close_sent or socket.paused:
            return False
        frame = batch.frame
        if frame is None:
            frame = batch.frame = text_frame(batch.text.encode())
        return self._send_frame(frame)


class WebSocketOut:
    """Writes a session's messages as WebSocket text frames through the ASGI ``send``."""

    transport = TRANSPORT

    def __init__(self, send: Send) -> None:
        self._send = send
        direct = _DirectSocket.under(send)
        self.write_now: Callable[[Batch], bool] = never_now if direct is None else direct.write
        """A ``changes`` frame straight to the socket, if the connection allows it."""

    async def _write(self, text: str) -> int:
        message: Message = {"type": "websocket.send", "text": text}
        try:
            await self._send(message)
        except Exception as exc:
            # The socket raises SocketGone (uvicorn's, under another server, ClientDisconnected:
            # both OSErrors) or RuntimeError once it is gone; all mean the same here.
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


async def _refuse(scope: Scope, receive: Receive, send: Send, refused: BreakwaterError) -> None:
    """Refuse before the upgrade: an HTTP problem (503/429 with Retry-After, 401, 403).

    Without the ASGI response extension, the close code says the same: 1013 for a transient
    refusal, 1008 for a credential or access refusal.
    """
    if "websocket.http.response" in scope.get("extensions", {}):
        headers = dict(API_HEADERS)  # not under SecurityHeaders, which leaves WebSockets be
        if isinstance(refused, Refused):
            headers["Retry-After"] = str(refused.retry_after)
        response = problems.error_response(refused, headers=headers)
        await response(scope, receive, send)  # sent as websocket.http.response.*
    else:
        code = CLOSE_TRY_AGAIN_LATER if refused.transient else CLOSE_POLICY_VIOLATION
        await send({"type": "websocket.close", "code": code})


async def serve_websocket(node: Node, scope: Scope, receive: Receive, send: Send) -> None:
    """Serve one WebSocket client until it leaves, times out, or the node drains."""
    if (await receive())["type"] != "websocket.connect":
        return
    if TRANSPORT not in node.config.enabled_realtime_transports:
        await _refuse(scope, receive, send, DISABLED)
        return
    foreign_page = node.origins.refusal(scope)
    if foreign_page is not None:
        await _refuse(scope, receive, send, foreign_page)
        return
    hub = node.realtime
    resolved = await resolve(node, scope, allow_query_token=True)
    identity = resolved if isinstance(resolved, Identity) else None
    try:
        if isinstance(resolved, BreakwaterError):
            raise resolved
        node.policy.admit_caller(identity)
        await node.limiter.check(
            identity, client_ip(scope, node.limiter.trusted), scope.get("path", "")
        )
        hub.claim_user_slot(identity)
    except BreakwaterError as error:
        await _refuse(scope, receive, send, error)
        return
    try:
        await hub.admission.admit(TRANSPORT)
    except Refused as refused:
        hub.release_user_slot(identity)
        await _refuse(scope, receive, send, refused)
        return
    ip = client_ip(scope, node.limiter.trusted)
    # The scope (headers, query) is of no more use: not kept for the connection's lifetime.
    del scope, resolved
    try:
        await send({"type": "websocket.accept"})
        session = Session(
            hub,
            WebSocketOut(send),
            expects_heartbeats=True,
            policy=node.policy,
            identity=identity,
            authenticate=node.verifier.verify_cached,
        )

        async def push(request_id: int, body: dict[str, Any], size: int) -> str:
            return await answer_push(node, session.identity, ip, request_id, body, size)

        session.push = push

        async def read() -> None:
            while True:
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    return
                session.receive(message.get("text"))

        await session.run(read)
    finally:
        hub.admission.release()
        hub.release_user_slot(identity)


def handoff(node: Node, *, max_size: int, deflate: bool) -> RealtimeHandoff:
    """What takes a node's :data:`PATH` upgrades over from its HTTP protocol."""

    # A partial, not a coroutine around serve_websocket: its frame would keep the scope.
    entry: Endpoint = functools.partial(serve_websocket, node)
    endpoint = entry
    if node.tracing is not None:
        from breakwater.server.trace_requests import TraceRequests

        endpoint = TraceRequests(entry, tracing=node.tracing)
    return RealtimeHandoff(PATH, endpoint, max_size=max_size, deflate=deflate)


async def answer_push(
    node: Node,
    identity: Identity | None,
    ip: str,
    request_id: int,
    body: dict[str, Any],
    size: int,
) -> str:
    """The ``pushed`` answer to a ``push`` message: applied as ``POST /v1/sync/push`` would
    (the same rate limits, body limit, admission and write path), answered compactly."""
    try:
        if identity is not None and identity.expires is not None and time.time() > identity.expires:
            raise Unauthorized("the access token expired; renew it (auth) and push again")
        await node.limiter.check(identity, ip, PUSH_PATH)
        pushes.admit(node, identity)
        limit = node.config.limits.max_body_bytes
        if size > limit:
            raise PayloadTooLarge(f"the push is {size} bytes; the limit is {limit}", limit=limit)
        return pushes.compact_answer(node, request_id, await pushes.push(node, identity, body))
    except BreakwaterError as error:
        return pushes.refused_answer(request_id, error)
    except Exception:
        # As an HTTP push's unexpected failure would: logged, and answered as one to retry.
        _log.exception("websocket_push_failed")
        return pushes.refused_answer(request_id, Unavailable("the push failed; retry it"))


class WebSocketEntry:
    """ASGI middleware that serves :data:`PATH` WebSockets itself and passes the rest on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == PATH:
            await serve_websocket(scope["app"].state.node, scope, receive, send)
        else:
            await self.app(scope, receive, send)
