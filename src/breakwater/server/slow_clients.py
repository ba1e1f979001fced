"""Read deadlines and a per-address connection cap: slow or greedy clients are cut off.

uvicorn applies no timeout while it reads a request: a client that sends its headers one byte a
second, or promises a ``Content-Length`` it never sends, holds its connection (and the node's
memory and descriptors) for as long as it likes. :class:`GuardedHttpProtocol` is the node's
HTTP protocol with two per-connection deadlines and a cap:

- headers: from the connection's start, and from a request's first byte, its headers must be
  complete within ``header_timeout``;
- body: while a request body is being read, the client must send something every
  ``body_timeout`` (an idle time, so a large upload on a slow link is fine). The deadline waits
  while the node itself holds the body back (flow control, ``Expect: 100-continue``);
- cap: at most ``max_connections_per_address`` open connections per peer address. A trusted
  proxy (``auth.trusted_proxies``) is exempt: its connections carry many clients, and the
  connection is counted before any header names the client behind it.

A missed deadline is answered ``408`` (problem+json) when no response has started, and the
connection is closed. Responses are never timed: a realtime stream (SSE, or a WebSocket, which
leaves this protocol at its upgrade) lives as long as it is used.
"""

from __future__ import annotations

import asyncio
import functools
import urllib.parse
from collections import Counter
from collections.abc import Callable
from typing import Any, Protocol, cast

import httptools

from breakwater.auth.settings import proxy_networks, within
from breakwater.config import Config
from breakwater.core import codec
from breakwater.server.problems import PROBLEM_JSON
from breakwater.server.socket_bodies import MAX_BODIES, BodySlots, SocketBodyProtocol

_TIMEOUT_BODY = codec.dumps(
    {
        "type": "request_timeout",
        "title": "Request timeout",
        "status": 408,
        "detail": "the request was not received in time",
    }
)
REQUEST_TIMEOUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: "
    + PROBLEM_JSON.encode()
    + b"\r\ncontent-length: "
    + str(len(_TIMEOUT_BODY)).encode()
    + b"\r\nconnection: close\r\n\r\n"
    + _TIMEOUT_BODY
)


class AddressCap:
    """Counts open connections per peer address; refuses one past ``limit`` (0: no cap)."""

    def __init__(self, limit: int, exempt: Callable[[str], bool]) -> None:
        self.limit = limit
        self.exempt = exempt
        self._open: Counter[str] = Counter()

    def admit(self, address: str) -> bool:
        """Count a new connection from ``address``; False (not counted) past the cap."""
        if self.limit <= 0 or self.exempt(address):
            return True
        if self._open[address] >= self.limit:
            return False
        self._open[address] += 1
        return True

    def release(self, address: str) -> None:
        """A connection :meth:`admit` counted has closed."""
        if self._open[address] <= 1:
            self._open.pop(address, None)
        else:
            self._open[address] -= 1


class WebSocketHandoff(Protocol):
    """Serves some WebSocket upgrades with a protocol of its own instead of uvicorn's."""

    def wants(self, scope: dict[str, Any]) -> bool:
        """Whether the upgrade of ``scope`` (the HTTP request's) is one to take."""

    def take(
        self,
        transport: asyncio.Transport,
        scope: dict[str, Any],
        request: bytes,
        connections: set[Any],
        on_lost: Callable[[], None] | None,
    ) -> None:
        """Take the socket over: ``request`` is the upgrade request's head, ``connections``
        the server's open connections, ``on_lost`` (if any) is called once it closes."""


class _ReleaseWhenLost(asyncio.Protocol):
    """Forwards to the protocol that took the socket over, and calls ``on_lost`` at its end."""

    def __init__(self, protocol: asyncio.Protocol, on_lost: Callable[[], None]) -> None:
        self.protocol = protocol
        self.on_lost = on_lost

    def data_received(self, data: bytes) -> None:
        self.protocol.data_received(data)

    def eof_received(self) -> bool | None:
        return self.protocol.eof_received()

    def pause_writing(self) -> None:
        self.protocol.pause_writing()

    def resume_writing(self) -> None:
        self.protocol.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self.on_lost()
        self.protocol.connection_lost(exc)


class GuardedHttpProtocol(SocketBodyProtocol):
    """The node's HTTP protocol: read deadlines and the per-address cap (see the module)."""

    header_timeout = 10.0
    body_timeout = 30.0
    addresses: AddressCap | None = None
    websocket_handoff: WebSocketHandoff | None = None
    _deadline: asyncio.TimerHandle | None = None
    _counted: str | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        peer = self.client[0] if self.client else None
        if self.addresses is not None and peer is not None:
            if not self.addresses.admit(peer):
                self.transport.close()
                return
            self._counted = peer
        self._arm(self.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self._release()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm(self.header_timeout)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._arm(self.body_timeout)

    def on_body(self, body: bytes) -> None:
        super().on_body(body)
        self._arm(self.body_timeout)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm()

    def handle_websocket_upgrade(self) -> None:
        self._disarm()
        release: Callable[[], None] | None = None
        if self._counted is not None and self.addresses is not None:
            # The WebSocket protocol owns the socket now; its end frees the address's slot.
            # The release is handed over without this protocol (its parser, buffers and
            # events), which would otherwise live as long as the WebSocket.
            release = functools.partial(self.addresses.release, self._counted)
            self._counted = None
        handoff = self.websocket_handoff
        scope = self._upgrade_scope() if handoff is not None else None
        if handoff is not None and scope is not None and handoff.wants(scope):
            self.connections.discard(self)
            handoff.take(
                self.transport,
                scope,
                self._upgrade_request(),
                self.server_state.connections,
                release,
            )
            return
        super().handle_websocket_upgrade()
        if release is not None:
            taken_over = cast(asyncio.Protocol, self.transport.get_protocol())
            self.transport.set_protocol(_ReleaseWhenLost(taken_over, release))

    def _upgrade_scope(self) -> dict[str, Any] | None:
        """The upgrade request's scope with its path and query, which uvicorn leaves out of an
        upgrade's (its WebSocket protocols parse the request again); None if the URL is bad."""
        try:
            parsed = httptools.parse_url(self.url)
            path = parsed.path.decode("ascii")
        except (httptools.HttpParserInvalidURLError, UnicodeDecodeError):
            return None
        scope = cast(dict[str, Any], self.scope)
        scope["path"] = self.root_path + (urllib.parse.unquote(path) if "%" in path else path)
        scope["raw_path"] = self.root_path.encode("ascii") + parsed.path
        scope["query_string"] = parsed.query or b""
        return scope

    def _upgrade_request(self) -> bytes:
        """The upgrade request's head again, as uvicorn rebuilds it for its WebSocket
        protocols (the WebSocket library checks the handshake from it)."""
        output = [self.scope["method"].encode(), b" ", self.url, b" HTTP/1.1\r\n"]
        for name, value in self.scope["headers"]:
            output += [name, b": ", value, b"\r\n"]
        output.append(b"\r\n")
        return b"".join(output)

    def body_stalled(self) -> None:
        """A body read by a thread (socket_bodies.py) missed ``body_timeout``."""
        self._timed_out()

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._deadline_passed, seconds)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _release(self) -> None:
        if self._counted is not None and self.addresses is not None:
            self.addresses.release(self._counted)
            self._counted = None

    def _deadline_passed(self, seconds: float) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        waiting_on_us = self.flow.read_paused or (
            cycle is not None and cycle.waiting_for_100_continue
        )
        if waiting_on_us:
            self._arm(seconds)
            return
        self._timed_out()

    def _timed_out(self) -> None:
        cycle = self.cycle
        if cycle is None or not cycle.response_started or cycle.response_complete:
            self.transport.write(REQUEST_TIMEOUT)
        self.transport.close()


def guarded_protocol(
    config: Config, websocket_handoff: WebSocketHandoff | None = None
) -> type[GuardedHttpProtocol]:
    """The protocol class a node's uvicorn serves with: ``config``'s deadlines, and one
    per-address cap and one count of thread-read upload bodies shared by this process's
    connections; ``websocket_handoff`` serves the WebSocket upgrades it wants."""
    networks = proxy_networks(config.auth.trusted_proxies)

    def trusted(address: str) -> bool:
        return within(address, networks)

    return type(
        "GuardedHttpProtocol",
        (GuardedHttpProtocol,),
        {
            "header_timeout": config.header_timeout,
            "body_timeout": config.body_timeout,
            "addresses": AddressCap(config.max_connections_per_address, trusted),
            "body_slots": BodySlots(MAX_BODIES),
            "websocket_handoff": websocket_handoff,
        },
    )
