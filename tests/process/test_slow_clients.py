"""Slow and greedy clients are cut off; long-lived streams are not.

Real sockets against a running node with short deadlines: headers sent a byte at a time, a
body shorter than its ``Content-Length`` and a silent connection are answered 408 and closed;
connections past the per-address cap are closed at once while other addresses (and the
connections already open) are served; SSE and WebSocket streams outlive every deadline.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Generator
from contextlib import ExitStack, closing
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from tests.conftest import ServerProcess

pytestmark = pytest.mark.slow
DEADLINE = 1.0
CAP = 4
BOUND = 15.0
"""How long a socket read may wait before the test fails (a bound, not a measurement)."""


def _node(
    start_server: Callable[..., ServerProcess], tmp_path: Path, workers: str = "1"
) -> ServerProcess:
    config = tmp_path / "node.toml"
    config.write_text(
        f"header_timeout = {DEADLINE}\nbody_timeout = {DEADLINE}\n"
        f"max_connections_per_address = {CAP}\n"
        "realtime_heartbeat = 0.5\nrealtime_timeout = 30\n"
    )
    return start_server(None, "--config", str(config), "--workers", workers)


def _open(server: ServerProcess, source: str = "127.0.0.1") -> socket.socket:
    port = int(server.url.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port), timeout=BOUND, source_address=(source, 0))
    sock.settimeout(BOUND)
    return sock


def _read_to_close(sock: socket.socket) -> bytes:
    """Everything the node sends until it closes the connection."""
    received = b""
    while chunk := sock.recv(4096):
        received += chunk
    return received


def _trickle(sock: socket.socket, data: bytes) -> tuple[bytes, int]:
    """Send ``data`` a byte every 0.2 s until the node closes the connection: what it
    answered (nothing when the close came as a reset, which discards it) and the bytes sent."""
    for sent, byte in enumerate(data):
        try:
            sock.sendall(bytes([byte]))
            sock.settimeout(0.2)
            answer = sock.recv(4096)
        except TimeoutError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            return b"", sent
        sock.settimeout(BOUND)
        try:
            return answer + _read_to_close(sock), sent + 1
        except ConnectionResetError:
            return answer, sent + 1
    sock.settimeout(BOUND)
    return _read_to_close(sock), len(data)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_headers_sent_a_byte_at_a_time_are_cut_off(
    start_server: Callable[..., ServerProcess], tmp_path: Path, workers: str
) -> None:
    """A slowloris request is closed long before it completes, answered 408 (unless a byte
    in flight as the node closes makes the close a reset, which discards the answer)."""
    server = _node(start_server, tmp_path, workers)
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 200 + b"\r\n\r\n"
    with closing(_open(server)) as sock:
        answer, sent = _trickle(sock, request)
    assert sent < len(request) / 2, sent
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408 "), answer
    assert not answer or b'"type":"request_timeout"' in answer


def test_a_silent_connection_is_closed(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """A connection that never sends a byte is answered 408 and closed."""
    server = _node(start_server, tmp_path)
    with closing(_open(server)) as sock:
        assert _read_to_close(sock).startswith(b"HTTP/1.1 408 ")


def test_a_body_shorter_than_its_content_length_is_cut_off(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """A push that stops sending its promised body is answered 408 and closed."""
    server = _node(start_server, tmp_path)
    with closing(_open(server)) as sock:
        sock.sendall(
            b"POST /v1/sync/push HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
            b'content-length: 1000\r\n\r\n{"client_id": '
        )
        assert _read_to_close(sock).startswith(b"HTTP/1.1 408 ")


def test_connections_past_the_cap_are_closed_while_others_are_served(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """The cap's worth of connections stay served; one more from that address is closed at
    once; another address is served; a closed connection frees its slot."""
    server = _node(start_server, tmp_path)
    with ExitStack() as stack:
        held = [stack.enter_context(closing(_open(server))) for _ in range(CAP)]
        with closing(_open(server)) as refused:
            assert _read_to_close(refused) == b""
        with httpx.Client(transport=httpx.HTTPTransport(local_address="127.0.0.2")) as other:
            assert other.get(f"{server.url}/healthz").status_code == 200
        held[0].sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert _read_to_close(held[0]).startswith(b"HTTP/1.1 200 ")
    for _ in range(CAP):  # every slot is free again once its connection closed
        with httpx.Client() as http:
            assert http.get(f"{server.url}/healthz").status_code == 200


def _sse_events(server: ServerProcess) -> Generator[bytes, None, None]:
    with (
        httpx.Client(timeout=BOUND) as http,
        http.stream("GET", f"{server.url}/v1/realtime/sse") as stream,
    ):
        assert stream.status_code == 200
        yield from stream.iter_bytes()


def test_realtime_streams_outlive_every_deadline(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """An SSE stream keeps delivering, and an idle WebSocket keeps answering, well past the
    header and body deadlines."""
    server = _node(start_server, tmp_path)
    ws_url = server.url.replace("http", "ws", 1) + "/v1/realtime"
    with connect(ws_url) as websocket:
        events = _sse_events(server)
        started = time.monotonic()
        while time.monotonic() - started < 3 * DEADLINE:
            assert next(events)
        events.close()
        websocket.send(json.dumps({"type": "subscribe", "collections": ["notes"]}))
        kinds: list[str] = []
        while "subscribed" not in kinds and len(kinds) < 100:  # pings came meanwhile
            kinds.append(json.loads(websocket.recv(timeout=BOUND))["type"])
        assert "subscribed" in kinds


def _admitted(server: ServerProcess) -> bool:
    """Whether a new connection from loopback is served (not closed at once)."""
    with closing(_open(server)) as sock:
        try:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return _read_to_close(sock).startswith(b"HTTP/1.1 200 ")
        except (ConnectionResetError, BrokenPipeError):
            return False


def test_a_websocket_holds_its_slot_until_it_closes(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """WebSockets (which leave the HTTP protocol at their upgrade) count against the cap
    while open, and give their slots back when they close."""
    server = _node(start_server, tmp_path)
    ws_url = server.url.replace("http", "ws", 1) + "/v1/realtime"
    with ExitStack() as stack:
        for _ in range(CAP):
            stack.enter_context(connect(ws_url))
        assert not _admitted(server)
    deadline = time.monotonic() + BOUND  # the node sees the closes a moment after the client
    while not _admitted(server):
        assert time.monotonic() < deadline, "the WebSockets' slots were never given back"
    with ExitStack() as stack:
        for _ in range(CAP):
            stack.enter_context(connect(ws_url))
