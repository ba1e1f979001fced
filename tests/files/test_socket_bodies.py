"""tus PATCH bodies read from the socket by a thread (server/socket_bodies.py, ADR 0055).

Real sockets against a running node (uvloop, plain TCP), with bodies larger than what the
parser delivers before the endpoint reads (so a thread reads the rest): cuts at random points
resume to the exact bytes, the connection goes on after a body (also with the next request
sent right behind it), refused bodies (460, 413) leave nothing, a stalled body is answered 408.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import random
import socket
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from breakwater.server.socket_bodies import HIGH_WATER
from tests.conftest import ServerProcess
from tests.files.conftest import metadata, sha256

pytestmark = pytest.mark.slow
TUS = {"Tus-Resumable": "1.0.0"}
MIB = 1 << 20
BOUND = 20.0
"""How long a socket read may wait before the test fails (a bound, not a measurement)."""


def _node(start_server: Callable[..., ServerProcess], tmp_path: Path) -> ServerProcess:
    config = tmp_path / "node.toml"
    config.write_text("body_timeout = 1.0\n")
    return start_server(None, "--config", str(config))


def _create(node: ServerProcess, length: int) -> str:
    answer = httpx.post(
        f"{node.url}/v1/uploads",
        headers={**TUS, "Upload-Length": str(length), "Upload-Metadata": metadata(collection="p")},
    )
    assert answer.status_code == 201, answer.text
    return str(answer.headers["Location"])


def _offset(node: ServerProcess, location: str) -> int:
    return int(httpx.head(f"{node.url}{location}", headers=TUS).headers["Upload-Offset"])


def _connect(node: ServerProcess) -> socket.socket:
    port = int(node.url.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port), timeout=BOUND)
    sock.settimeout(BOUND)
    return sock


def _head(location: str, offset: int, length: int, extra: str = "") -> bytes:
    return (
        f"PATCH {location} HTTP/1.1\r\nHost: node\r\nTus-Resumable: 1.0.0\r\n"
        f"Upload-Offset: {offset}\r\nContent-Type: application/offset+octet-stream\r\n"
        f"Content-Length: {length}\r\n{extra}\r\n"
    ).encode()


def _answer(sock: socket.socket) -> tuple[int, dict[str, str]]:
    """One response without a body (tus PATCH and HEAD answers have none) or a short one."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(65536)
        assert chunk, f"closed after {received!r}"
        received += chunk
    head, _, rest = received.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        rest += sock.recv(65536)
    return int(lines[0].split()[1]), headers


def _read_to_close(sock: socket.socket) -> bytes:
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    return received


def _wait_offset(node: ServerProcess, location: str, expected: int) -> int:
    deadline = time.monotonic() + BOUND
    offset = _offset(node, location)
    while offset != expected and time.monotonic() < deadline:
        time.sleep(0.05)
        offset = _offset(node, location)
    return offset


def test_an_upload_cut_at_random_points_and_resumed_is_exact(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """PATCHes that each send part of their body and drop the connection keep every byte
    that arrived; the last PATCH completes the file with the exact SHA-256."""
    node = _node(start_server, tmp_path)
    rng = random.Random(23)
    data = rng.randbytes(12 * MIB)
    location = _create(node, len(data))
    offset = 0
    for _ in range(4):
        cut = offset + rng.randrange(HIGH_WATER + 1, 3 * MIB)
        with _connect(node) as sock:
            sock.sendall(_head(location, offset, len(data) - offset) + data[offset:cut])
            time.sleep(0.2)
        assert _wait_offset(node, location, cut) == cut
        offset = cut
    with _connect(node) as sock:
        sock.sendall(_head(location, offset, len(data) - offset) + data[offset:])
        status, headers = _answer(sock)
    assert status == 204
    assert headers["breakwater-file"] == sha256(data)
    assert httpx.get(f"{node.url}/v1/files/{sha256(data)}").content == data


def test_the_connection_goes_on_after_a_body_even_with_the_next_request_behind_it(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """After a PATCH body read by a thread the same connection answers the next request;
    a request sent in the same write as the body's end is not taken for body bytes; a body
    answered 409 without being read is skipped as before."""
    node = _node(start_server, tmp_path)
    data = random.Random(7).randbytes(8 * MIB)
    location = _create(node, len(data))
    half = 4 * MIB
    head_request = f"HEAD {location} HTTP/1.1\r\nHost: node\r\nTus-Resumable: 1.0.0\r\n\r\n"
    with _connect(node) as sock:
        sock.sendall(_head(location, 1, half) + data[:half])
        assert _answer(sock)[0] == 409
        sock.sendall(_head(location, 0, half) + data[:half] + head_request.encode())
        status, headers = _answer(sock)
        assert (status, headers["upload-offset"]) == (204, str(half))
        status, headers = _answer(sock)
        assert (status, headers["upload-offset"]) == (200, str(half))
        sock.sendall(_head(location, half, half) + data[half:])
        status, headers = _answer(sock)
        assert status == 204
        assert headers["breakwater-file"] == sha256(data)


def test_a_refused_checksum_or_size_leaves_nothing(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """A 4 MiB body with a wrong ``Upload-Checksum`` is 460 and one past ``Upload-Length``
    is 413; neither leaves a byte, and the upload then completes."""
    node = _node(start_server, tmp_path)
    data = random.Random(5).randbytes(4 * MIB)
    location = _create(node, len(data))
    wrong = base64.b64encode(hashlib.sha1(b"other").digest()).decode()
    with _connect(node) as sock:
        sock.sendall(_head(location, 0, len(data), f"Upload-Checksum: sha1 {wrong}\r\n") + data)
        assert _answer(sock)[0] == 460
    assert _offset(node, location) == 0
    too_long = data + b"x" * MIB
    with _connect(node) as sock:
        sock.sendall(_head(location, 0, len(too_long)))
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(too_long)
        assert _read_to_close(sock).startswith(b"HTTP/1.1 413 ")
    assert _offset(node, location) == 0
    assert httpx.patch(
        f"{node.url}{location}",
        content=data,
        headers={**TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
    ).headers["Breakwater-File"] == sha256(data)


def test_a_stalled_body_is_answered_408_and_keeps_what_arrived(
    start_server: Callable[..., ServerProcess], tmp_path: Path
) -> None:
    """A client that stops sending mid-body for longer than ``body_timeout`` is answered 408
    and closed; the bytes it sent are the upload's offset."""
    node = _node(start_server, tmp_path)
    data = random.Random(3).randbytes(4 * MIB)
    location = _create(node, len(data))
    sent = 2 * MIB
    with _connect(node) as sock:
        sock.sendall(_head(location, 0, len(data)) + data[:sent])
        assert _read_to_close(sock).startswith(b"HTTP/1.1 408 ")
    assert _wait_offset(node, location, sent) == sent
