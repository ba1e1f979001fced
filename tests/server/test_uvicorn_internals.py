"""The parts of uvicorn that are not its public API and that the node relies on.

An upgrade that changes one of them would break every node, or worse, quietly turn a fast path
off (the direct WebSocket writer falls back to the ASGI path when the attributes it reads are
missing). These tests fail first and say what moved. pyproject.toml bounds uvicorn to the minor
versions checked here; to allow a newer one, install it, run this file, adapt the code it names.

- server/coalescing.py subclasses ``HttpToolsProtocol`` and hands it a wrapped transport in
  ``connection_made``: uvicorn must build the protocol as ``(config, server_state, app_state,
  _loop)``, keep ``self.loop``, and write responses through the transport it was given.
- server/slow_clients.py subclasses that protocol again: it overrides the parser callbacks
  ``on_message_begin``, ``on_headers_complete``, ``on_body``, ``on_message_complete`` and
  ``handle_websocket_upgrade``, and reads ``client``, ``cycle`` (``response_started``,
  ``response_complete``, ``waiting_for_100_continue``) and ``flow.read_paused``.
- server/socket_bodies.py (a base of that protocol) reads ``scope``, ``headers`` and
  ``root_path`` in ``on_headers_complete``, after uvicorn's own, to pick tus PATCHes; keeps
  their body out of ``cycle.body``; pauses and resumes ``flow``; answers ``Expect:
  100-continue`` through ``waiting_for_100_continue``; sets ``cycle.keep_alive``; and, once a
  thread has moved the rest of a body into a file, replaces ``parser`` with a new httptools
  parser (with uvicorn's ``lenient_data_after_close``) and ends the message with
  ``on_message_complete``.
- server/slow_clients.py takes ``/v1/realtime`` upgrades over in ``handle_websocket_upgrade``
  (realtime/protocol.py serves them): it reads ``url``, ``root_path``, ``scope`` (``method``,
  ``headers``; uvicorn leaves the path out of an upgrade's scope), ``connections`` and
  ``server_state.connections``, and uvicorn must call ``shutdown()`` on what is in the latter.
- server/runner.py overrides ``Server.handle_exit`` and ``Server.shutdown`` and reads
  ``force_exit`` and ``_captured_signals``.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import socket
import tempfile
from importlib.metadata import requires, version
from typing import Any, cast

import uvicorn
from packaging.requirements import Requirement
from starlette.types import Receive, Scope, Send
from uvicorn.server import ServerState

from breakwater.config import Config
from breakwater.server.coalescing import CoalescingHttpToolsProtocol, CoalescingTransport
from breakwater.server.slow_clients import guarded_protocol
from breakwater.server.socket_bodies import HIGH_WATER, socket_body_of

UVICORN = version("uvicorn")


def moved(what: str) -> str:
    """The failure message: what changed, and where the node depends on it."""
    return f"uvicorn {UVICORN}: {what} changed; see this file's docstring before upgrading"


class Transport:
    """An asyncio transport that records what is written to it."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8080)}.get(
            name, default
        )


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    """An ASGI app answering ``hello`` in a head and a body message."""
    headers = [(b"content-length", b"5")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"hello"})


def test_uvicorn_is_bounded_to_the_versions_checked_here() -> None:
    """pyproject.toml gives uvicorn an upper bound, and the installed version is inside it."""
    declared = [Requirement(line) for line in requires("breakwater-server") or []]
    (uvicorn_requirement,) = [r for r in declared if r.name == "uvicorn" and not r.marker]
    assert any(spec.operator == "<" for spec in uvicorn_requirement.specifier)
    assert uvicorn_requirement.specifier.contains(UVICORN)


def test_the_server_keeps_what_the_draining_runner_overrides() -> None:
    """``handle_exit(sig, frame)``, ``shutdown(sockets)``, ``force_exit``, ``_captured_signals``."""
    server = uvicorn.Server(uvicorn.Config(hello))
    assert list(inspect.signature(server.handle_exit).parameters) == ["sig", "frame"], moved(
        "Server.handle_exit's signature"
    )
    assert list(inspect.signature(server.shutdown).parameters) == ["sockets"], moved(
        "Server.shutdown's signature"
    )
    assert server.force_exit is False, moved("Server.force_exit")
    assert server._captured_signals == [], moved("Server._captured_signals")


async def test_the_http_protocol_answers_through_the_coalescing_transport() -> None:
    """uvicorn builds our protocol subclass as it builds its own, and the response it writes
    reaches the socket as one write: head and body coalesced."""
    config = uvicorn.Config(
        hello, http=CoalescingHttpToolsProtocol, log_config=None, access_log=False
    )
    config.load()
    loop = asyncio.get_running_loop()
    protocol = CoalescingHttpToolsProtocol(config, ServerState(), {}, loop)
    assert protocol.loop is loop, moved("HttpToolsProtocol.loop")
    real = Transport()
    protocol.connection_made(real)  # type: ignore[arg-type]
    assert isinstance(protocol.transport, CoalescingTransport), moved(
        "HttpToolsProtocol.connection_made"
    )
    protocol.data_received(b"GET / HTTP/1.1\r\nHost: node\r\n\r\n")
    for _ in range(100):
        if real.writes:
            break
        await asyncio.sleep(0.01)
    protocol.connection_lost(None)
    assert len(real.writes) == 1, moved("how HttpToolsProtocol writes a response")
    assert real.writes[0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert real.writes[0].endswith(b"\r\n\r\nhello")


class RecordingHandoff:
    """A WebSocket handoff that takes every upgrade and records what it was given."""

    def __init__(self) -> None:
        self.taken: list[tuple[dict[str, Any], bytes, set[Any]]] = []

    def wants(self, scope: dict[str, Any]) -> bool:
        return True

    def take(
        self,
        transport: asyncio.Transport,
        scope: dict[str, Any],
        request: bytes,
        connections: set[Any],
        on_lost: Any,
    ) -> None:
        self.taken.append((scope, request, connections))


async def test_the_guarded_protocol_hands_a_websocket_upgrade_over() -> None:
    """uvicorn calls ``handle_websocket_upgrade`` on an upgrade request, with the URL, method
    and headers the handoff rebuilds the request and its scope from, and the server's set of
    connections (which the handoff's protocol joins, so that shutdown closes it)."""
    handoff = RecordingHandoff()
    guarded = guarded_protocol(Config(), handoff)
    config = uvicorn.Config(hello, http=guarded, log_config=None, access_log=False)
    config.load()
    state = ServerState()
    protocol = guarded(config, state, {}, asyncio.get_running_loop())
    protocol.connection_made(Transport())  # type: ignore[arg-type]
    protocol.data_received(
        b"GET /v1/realtime?access_token=t HTTP/1.1\r\nHost: node\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    assert len(handoff.taken) == 1, moved("HttpToolsProtocol.handle_websocket_upgrade")
    scope, request, connections = handoff.taken[0]
    assert scope["path"] == "/v1/realtime", moved("HttpToolsProtocol.url")
    assert scope["query_string"] == b"access_token=t", moved("HttpToolsProtocol.url")
    assert (b"upgrade", b"websocket") in scope["headers"], moved("the upgrade's scope headers")
    assert request.startswith(b"GET /v1/realtime?access_token=t HTTP/1.1\r\n")
    assert request.endswith(b"sec-websocket-version: 13\r\n\r\n")
    assert connections is state.connections, moved("HttpToolsProtocol.server_state")
    assert protocol not in state.connections, moved("HttpToolsProtocol.connections")


async def test_the_guarded_protocol_is_called_at_each_step_of_a_request() -> None:
    """uvicorn still calls the parser callbacks the read deadlines hang on, with the state they
    read: armed at the connection's start, re-armed for the body, disarmed once it is read."""
    guarded = guarded_protocol(Config())
    config = uvicorn.Config(hello, http=guarded, log_config=None, access_log=False)
    config.load()
    loop = asyncio.get_running_loop()
    protocol = guarded(config, ServerState(), {}, loop)
    real = Transport()
    protocol.connection_made(real)  # type: ignore[arg-type]
    assert protocol.client == ("127.0.0.1", 40000), moved("HttpToolsProtocol.client")
    assert protocol._deadline is not None, moved("connection_made")
    protocol.data_received(b"POST / HTTP/1.1\r\nHost: node\r\nContent-Length: 4\r\n\r\nab")
    body_deadline = protocol._deadline
    assert body_deadline is not None
    assert body_deadline.when() - loop.time() > Config().header_timeout, moved(
        "on_headers_complete or on_body"
    )
    cycle = protocol.cycle
    for name in ("response_started", "response_complete", "waiting_for_100_continue"):
        assert hasattr(cycle, name), moved(f"RequestResponseCycle.{name}")
    assert protocol.flow.read_paused is False, moved("FlowControl.read_paused")
    protocol.data_received(b"cd")
    assert protocol._deadline is None, moved("on_message_complete")
    protocol.connection_lost(None)
    assert callable(getattr(protocol, "handle_websocket_upgrade", None)), moved(
        "HttpToolsProtocol.handle_websocket_upgrade"
    )


class SocketTransport(Transport):
    """A :class:`Transport` over one end of a socket pair (what a thread reads a body from)."""

    def __init__(self, sock: socket.socket) -> None:
        super().__init__()
        self.sock = sock
        self.reading = True

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.sock if name == "socket" else super().get_extra_info(name, default)


async def test_a_tus_patch_body_is_read_by_a_thread_and_the_next_request_parsed() -> None:
    """After uvicorn's ``on_headers_complete`` the scope, headers and root path name a tus
    PATCH; the parser's body bytes stay out of ``cycle.body``; when the body is moved into a
    file, the transport stops reading, a thread moves the rest from the socket, the message
    ends as the parser would end it, and a new parser reads the connection's next request."""
    answer = asyncio.Event()

    async def answer_when_told(scope: Scope, receive: Receive, send: Send) -> None:
        await answer.wait()
        await hello(scope, receive, send)

    guarded = guarded_protocol(Config())
    config = uvicorn.Config(answer_when_told, http=guarded, log_config=None, access_log=False)
    config.load()
    protocol = guarded(config, ServerState(), {}, asyncio.get_running_loop())
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    real = SocketTransport(ours)
    protocol.connection_made(real)  # type: ignore[arg-type]
    size = 3 * HIGH_WATER
    protocol.data_received(
        b"PATCH /v1/uploads/abc HTTP/1.1\r\nHost: node\r\nTus-Resumable: 1.0.0\r\n"
        b"Content-Type: application/offset+octet-stream\r\nExpect: 100-continue\r\n"
        b"Content-Length: " + str(size).encode() + b"\r\n\r\n" + b"a" * 1000
    )
    body = socket_body_of(cast(dict[str, Any], protocol.scope))
    assert body is not None, moved("on_headers_complete's scope, headers or root_path")
    cycle = protocol.cycle
    assert cycle.body == bytearray(), moved("HttpToolsProtocol.on_body's cycle.body")
    assert cycle.waiting_for_100_continue is True, moved("RequestResponseCycle 100-continue")
    loop = asyncio.get_running_loop()
    held_written = asyncio.Event()

    def written(total: int) -> None:
        if total == 1000:
            loop.call_soon_threadsafe(held_written.set)

    with tempfile.TemporaryFile() as target:
        moving = asyncio.create_task(body.into_file(target.fileno(), 0, written))
        await held_written.wait()
        assert cycle.waiting_for_100_continue is False
        assert protocol.flow.read_paused is True and real.reading is False, moved("FlowControl")
        await asyncio.to_thread(theirs.sendall, b"b" * (size - 1000))
        assert await moving == size
        assert os.pread(target.fileno(), size + 1, 0) == b"a" * 1000 + b"b" * (size - 1000)
    assert cycle.more_body is False, moved("on_message_complete's cycle.more_body")
    assert protocol.flow.read_paused is False and real.reading is True
    assert protocol.body_slots is not None and protocol.body_slots.taken == 0
    body.end()
    assert cycle.keep_alive is True, moved("RequestResponseCycle.keep_alive")
    answer.set()
    for _ in range(100):
        if cycle.response_complete:
            break
        await asyncio.sleep(0.01)
    first_parser = protocol.parser
    protocol.data_received(b"GET / HTTP/1.1\r\nHost: node\r\n\r\n")
    assert protocol.parser is first_parser
    assert protocol.scope["method"] == "GET" and protocol.scope["path"] == "/", moved(
        "HttpToolsProtocol.parser"
    )
    assert protocol.cycle is not cycle
    protocol.connection_lost(None)
    ours.close()
    theirs.close()
