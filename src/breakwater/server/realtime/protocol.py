"""The WebSocket protocol of ``/v1/realtime`` connections: lean, because thousands stay idle.

uvicorn's WebSocket protocols keep, for every connection, an ``asyncio.Queue`` of received
messages and an ``asyncio.Event`` for flow control (five deques, about 4 KiB), the handshake's
request, response and headers, and a copy of the scope; the ASGI application around the realtime
endpoint keeps a coroutine per routing and middleware layer. A node with 10,000 idle subscribers
pays that 10,000 times in memory, and its garbage collector walks it (ADR 0053).

:class:`RealtimeSocket` takes the socket over from the node's HTTP protocol at the upgrade
(``slow_clients.GuardedHttpProtocol``) and speaks to the realtime endpoint through the same ASGI
``receive``/``send`` contract, with only what that endpoint uses. The WebSocket itself (the
handshake checks, permessage-deflate negotiation and compression, frame parsing, close and
ping/pong frames, size limits) is websockets' sans-I/O ``ServerProtocol``. What is received waits
in a list, and a future exists only while the endpoint waits for a message or for the socket to
drain. Like uvicorn, it reads one message ahead at most (reading pauses until the endpoint has
taken it), answers a close frame, closes after 10 s when its own close frame gets no answer, and
on server shutdown closes open connections with 1012.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any, cast

from starlette.types import Message, Receive, Scope, Send
from websockets.datastructures import Headers
from websockets.exceptions import InvalidState
from websockets.extensions.base import ServerExtensionFactory
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.server import ServerProtocol

from breakwater.obs.logging import get_logger

Endpoint = Callable[[Scope, Receive, Send], Awaitable[None]]
"""An ASGI application for WebSocket scopes."""

CLOSE_TIMEOUT = 10.0
"""How long a close frame we sent waits for the client's before the socket is closed."""
CLOSE_RESTART = 1012

_log = get_logger("breakwater.realtime")
_server_log = logging.getLogger("uvicorn.error")
"""Where uvicorn's WebSocket protocols log (handshake lines, websockets' debug frames): the
same lines, under the same name, as before the node served these sockets itself."""


class SocketGone(ConnectionError):
    """The client is gone: nothing more can be sent (uvicorn raises its own OSError too)."""


def deflate_extensions(enabled: bool) -> list[ServerExtensionFactory]:
    """permessage-deflate as uvicorn's protocols offer it (a 4 KiB window each way)."""
    if not enabled:
        return []
    return [
        ServerPerMessageDeflateFactory(
            server_max_window_bits=12,
            client_max_window_bits=12,
            compress_settings={"memLevel": 5},
        )
    ]


class RealtimeSocket(asyncio.Protocol):
    """One WebSocket connection, from the upgrade request to the closed socket."""

    __slots__ = (
        "_close_timer",
        "_connections",
        "_drained",
        "_fragment_kind",
        "_fragments",
        "_inbox",
        "_loop",
        "_on_lost",
        "_read_paused",
        "_request_line",
        "_response",
        "_task",
        "_waiter",
        "accepted",
        "close_sent",
        "conn",
        "disconnected",
        "paused",
        "responded",
        "transport",
    )

    def __init__(
        self,
        *,
        connections: set[Any],
        max_size: int,
        deflate: bool,
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        self._connections = connections
        self._on_lost = on_lost
        self._loop = asyncio.get_running_loop()
        self.conn = ServerProtocol(
            extensions=deflate_extensions(deflate), max_size=max_size, logger=_server_log
        )
        self.transport: asyncio.Transport | None = None
        self._inbox: list[Message] = []
        self._waiter: asyncio.Future[None] | None = None
        self._drained: asyncio.Future[None] | None = None
        self._fragments: list[bytes] | None = None
        """A fragmented message's frames so far (rare: clients send small messages whole)."""
        self._fragment_kind = Opcode.TEXT
        self._close_timer: asyncio.TimerHandle | None = None
        self._response: Response | None = None
        self._request_line = ""
        """Who asked for what, for the handshake's log line (until it is answered)."""
        self._task: asyncio.Task[None] | None = None
        """The endpoint's task (the event loop keeps only a weak reference to it)."""
        self._read_paused = False
        self.accepted = False
        """The handshake answered 101 (the endpoint sent ``websocket.accept``)."""
        self.responded = False
        """The handshake was answered with anything else: an HTTP response, a refusal."""
        self.close_sent = False
        self.disconnected = False
        self.paused = False
        """The transport's buffer is over its high-water mark (flow control)."""

    # the upgrade ----------------------------------------------------------------------------------

    def start(self, request: bytes, scope: dict[str, Any], endpoint: Endpoint) -> None:
        """Check the upgrade ``request`` (its raw bytes) and run ``endpoint`` for ``scope``."""
        conn = self.conn
        conn.receive_data(request)
        events = conn.events_received()
        if not events or not isinstance(events[0], Request):
            # websockets could not read it (over its limits): its own answer, or a 400.
            self.responded = self.close_sent = True
            output = b"".join(conn.data_to_send())
            if not output:
                output = conn.reject(
                    HTTPStatus.BAD_REQUEST, "Failed to open a WebSocket.\n"
                ).serialize()
            if self.transport is not None:
                self.transport.write(output)
                self.transport.close()
            return
        response = conn.accept(events[0])
        if response.status_code != HTTPStatus.SWITCHING_PROTOCOLS:
            self._answer(response)
            return
        self._response = response
        self._request_line = request_line(scope)
        self._inbox.append({"type": "websocket.connect"})
        # The endpoint's coroutine alone holds the scope: it may let go of it once it has used it.
        self._task = self._loop.create_task(self._run(endpoint(scope, self.receive, self.send)))

    async def _run(self, serving: Awaitable[None]) -> None:
        try:
            await serving
        except SocketGone:
            pass
        except Exception:
            _log.exception("realtime_socket_failed")
            if not self.accepted and not self.responded:
                self._answer(self.conn.reject(HTTPStatus.INTERNAL_SERVER_ERROR, ""))
        if self._close_timer is None and self.transport is not None:
            self.transport.close()

    def _log_answer(self, status: object) -> None:
        if self._request_line:
            _server_log.info("%s %s", self._request_line, status)
            self._request_line = ""

    def _answer(self, response: Response) -> None:
        """Answer the upgrade with ``response`` (not 101) and close."""
        self._log_answer(response.status_code)
        self.responded = True
        self.close_sent = True
        self._response = None
        self.conn.send_response(response)
        self._flush()
        if self.transport is not None:
            self.transport.close()

    # the ASGI side --------------------------------------------------------------------------------

    async def receive(self) -> Message:
        """The next message from the client; ``websocket.disconnect`` once it is gone."""
        while not self._inbox:
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        message = self._inbox.pop(0)
        if self._read_paused and not self._inbox and self.transport is not None:
            self._read_paused = False
            self.transport.resume_reading()
        return message

    async def send(self, message: Message) -> None:
        """Send an ASGI WebSocket message (accept, send, close, or an HTTP refusal)."""
        while self.paused and not self.disconnected:
            self._drained = self._loop.create_future()
            try:
                await self._drained
            finally:
                self._drained = None
        if self.disconnected:
            raise SocketGone
        kind = message["type"]
        if not self.accepted and not self.responded:
            self._handshake(kind, message)
        elif self.accepted and not self.close_sent:
            self._stream(kind, message)
        elif kind != "websocket.close":
            raise RuntimeError(f"unexpected ASGI message {kind!r} on a closed WebSocket")

    def _handshake(self, kind: str, message: Message) -> None:
        response = self._response
        if response is None:  # pragma: no cover - an answer always leaves `responded` set
            raise RuntimeError("no handshake to answer")
        if kind == "websocket.accept":
            self.accepted = True
            self._response = None
            self._log_answer("[accepted]")
            for name, value in message.get("headers", ()):
                response.headers[name.decode("latin-1")] = value.decode("latin-1")
            self.conn.send_response(response)
            self._flush()
        elif kind == "websocket.close":
            self._push({"type": "websocket.disconnect", "code": 1006})
            self._answer(self.conn.reject(HTTPStatus.FORBIDDEN, ""))
        elif kind == "websocket.http.response.start":
            headers = Headers(
                (name.decode("latin-1"), value.decode("latin-1"))
                for name, value in message.get("headers", ())
            )
            headers.setdefault("Connection", "close")
            status = int(message["status"])
            self._response = Response(status, HTTPStatus(status).phrase, headers, b"")
        elif kind == "websocket.http.response.body" and response.status_code != 101:
            body = response.body + message.get("body", b"")
            if message.get("more_body", False):
                self._response = Response(
                    response.status_code, response.reason_phrase, response.headers, body
                )
                return
            response.headers.setdefault("Content-Length", str(len(body)))
            self._push({"type": "websocket.disconnect", "code": 1006})
            self._answer(
                Response(response.status_code, response.reason_phrase, response.headers, body)
            )
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} before the handshake")

    def _stream(self, kind: str, message: Message) -> None:
        conn = self.conn
        try:
            if kind == "websocket.send":
                text = message.get("text")
                if text is not None:
                    conn.send_text(text.encode())
                else:
                    conn.send_binary(message.get("bytes") or b"")
            elif kind == "websocket.close":
                conn.send_close(message.get("code", 1000), message.get("reason") or "")
                self.close_sent = True
                self._resume_reading()
                self._close_timer = self._loop.call_later(CLOSE_TIMEOUT, self._close_transport)
            else:
                raise RuntimeError(f"unexpected ASGI message {kind!r} on an open WebSocket")
        except InvalidState as exc:
            raise SocketGone from exc
        self._flush()

    @property
    def compressed(self) -> bool:
        """permessage-deflate was negotiated (frames then depend on the connection's state)."""
        return bool(self.conn.extensions)

    # asyncio.Protocol -----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self._connections.add(self)

    def data_received(self, data: bytes) -> None:
        conn = self.conn
        conn.receive_data(data)
        for event in conn.events_received():
            if isinstance(event, Frame):
                self._frame(event)
        if conn.parser_exc is not None:
            # Too large, malformed, bad UTF-8: websockets queued the close frame (1009, 1002,
            # 1007…); the endpoint sees the disconnect.
            closing = conn.close_sent
            self._push({"type": "websocket.disconnect", "code": closing.code if closing else 1002})
            self.close_sent = True
            self._flush()
            self._close_transport()
            return
        self._flush()  # pongs and the answer to a close frame

    def _frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            if frame.fin:
                self._message(opcode, bytes(frame.data))
            else:
                self._fragments = [bytes(frame.data)]
                self._fragment_kind = opcode
        elif opcode is Opcode.CONT and self._fragments is not None:
            self._fragments.append(bytes(frame.data))
            if frame.fin:
                data = b"".join(self._fragments)
                self._fragments = None
                self._message(self._fragment_kind, data)
        elif opcode is Opcode.CLOSE:
            if self.close_sent:
                self._close_transport()  # the client answered our close frame
                return
            received = self.conn.close_rcvd
            self._push(
                {
                    "type": "websocket.disconnect",
                    "code": received.code if received is not None else 1005,
                    "reason": received.reason if received is not None else "",
                }
            )
            self.close_sent = True
            self._flush()  # our answering close frame
            self._close_transport()

    def _message(self, opcode: Opcode, data: bytes) -> None:
        if self.close_sent:
            return  # past our close frame: read on only for the client's answer
        if opcode is Opcode.TEXT:
            self._push({"type": "websocket.receive", "text": data.decode()})
        else:
            self._push({"type": "websocket.receive", "bytes": data})
        if not self._read_paused and self.transport is not None:
            self._read_paused = True
            self.transport.pause_reading()

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._wake_sender()

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._connections.discard(self)
        if self._on_lost is not None:
            self._on_lost()
            self._on_lost = None
        if self._close_timer is not None:
            self._close_timer.cancel()
            self._close_timer = None
        self.disconnected = True
        self._push({"type": "websocket.disconnect", "code": 1005 if self.accepted else 1006})
        self._wake_sender()

    def shutdown(self) -> None:
        """The server stops (uvicorn calls this for every connection it tracks)."""
        if self.accepted and not self.close_sent:
            self._push({"type": "websocket.disconnect", "code": CLOSE_RESTART})
            with contextlib.suppress(InvalidState):
                self.conn.send_close(CLOSE_RESTART)
            self.close_sent = True
            self._flush()
        elif not self.accepted and not self.responded:
            self.responded = True
            self.conn.send_response(self.conn.reject(HTTPStatus.SERVICE_UNAVAILABLE, ""))
            self._flush()
        self._close_transport()

    # helpers --------------------------------------------------------------------------------------

    def _push(self, message: Message) -> None:
        self._inbox.append(message)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake_sender(self) -> None:
        drained = self._drained
        if drained is not None and not drained.done():
            drained.set_result(None)

    def _resume_reading(self) -> None:
        if self._read_paused and self.transport is not None:
            self._read_paused = False
            self.transport.resume_reading()

    def _flush(self) -> None:
        output = self.conn.data_to_send()
        if output and self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(output))

    def _close_transport(self) -> None:
        self._close_timer = None
        if self.transport is not None:
            self.transport.close()


def request_line(scope: Scope) -> str:
    """``client - "WebSocket path?query"``, as uvicorn logs a WebSocket handshake."""
    client = scope.get("client")
    target = scope["raw_path"].decode("latin-1")
    if scope.get("query_string"):
        target += "?" + scope["query_string"].decode("ascii", "replace")
    address = f"{client[0]}:{client[1]}" if client else ""
    quoted = target.replace('"', "%22")
    return f'{address} - "WebSocket {quoted}"'


def websocket_scope(http: dict[str, Any]) -> dict[str, Any]:
    """The ASGI scope of a WebSocket, from the HTTP scope of its upgrade request."""
    return {
        "type": "websocket",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": http.get("http_version", "1.1"),
        "scheme": "wss" if http.get("scheme") == "https" else "ws",
        "server": http.get("server"),
        "client": http.get("client"),
        "root_path": http.get("root_path", ""),
        "path": http["path"],
        "raw_path": http.get("raw_path"),
        "query_string": http.get("query_string", b""),
        "headers": http["headers"],
        "subprotocols": [],
        "state": {},
        "extensions": {"websocket.http.response": {}},
    }


class RealtimeHandoff:
    """Takes the upgrades of one path over from the HTTP protocol (see the module)."""

    def __init__(self, path: str, endpoint: Endpoint, *, max_size: int, deflate: bool) -> None:
        self.path = path
        self.endpoint = endpoint
        self.max_size = max_size
        self.deflate = deflate

    def wants(self, scope: dict[str, Any]) -> bool:
        """Whether this upgrade is one this handoff serves."""
        return bool(scope["path"] == self.path)

    def take(
        self,
        transport: asyncio.Transport,
        scope: dict[str, Any],
        request: bytes,
        connections: set[Any],
        on_lost: Callable[[], None] | None,
    ) -> None:
        """Serve the socket under ``transport`` from its upgrade ``request`` (raw bytes) on;
        ``connections`` is the server's set of open connections (shut down on exit)."""
        socket = RealtimeSocket(
            connections=connections, max_size=self.max_size, deflate=self.deflate, on_lost=on_lost
        )
        socket.connection_made(transport)
        transport.set_protocol(socket)
        socket.start(request, websocket_scope(scope), self.endpoint)
