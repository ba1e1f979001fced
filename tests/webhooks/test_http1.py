"""The deliveries' HTTP/1.1 client against scripted servers: keep-alive, stale connections,
answers it must not reuse, garbage, and TLS."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from breakwater.server.webhooks._http1 import Http1Client, ProtocolError
from tests.services import require_program

Answer = Callable[[int], bytes]
"""The bytes a scripted server writes for its n-th request (b"" closes without answering)."""


class Scripted:
    """A server on loopback that answers each request with the script's bytes."""

    def __init__(self, answer: Answer, tls: ssl.SSLContext | None = None) -> None:
        self.answer = answer
        self.tls = tls
        self.requests = 0
        self.connections = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]

    async def aclose(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._handlers:
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                await reader.readexactly(length)
                self.requests += 1
                reply = self.answer(self.requests)
                if not reply:
                    break
                writer.write(reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._handlers.discard(task)
            writer.close()


Serve = Callable[..., Awaitable["Scripted"]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start scripted servers; all are stopped after the test."""
    started: list[Scripted] = []

    async def make(answer: Answer, tls: ssl.SSLContext | None = None) -> Scripted:
        server = Scripted(answer, tls)
        await server.start()
        started.append(server)
        return server

    yield make
    for server in started:
        await server.aclose()


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


async def test_a_kept_alive_connection_serves_many_deliveries(
    serve: Serve,
) -> None:
    """Ten posts to one receiver use one connection (the answer's body is read and dropped)."""
    server = await serve(lambda n: OK)
    client = Http1Client()
    for _ in range(10):
        assert await client.post(f"http://127.0.0.1:{server.port}/h", {}, b"{}") == 200
    await client.aclose()
    assert (server.requests, server.connections) == (10, 1)


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n",
    ],
    ids=["chunked", "connection-close", "http-1.0", "large-body"],
)
async def test_an_answer_it_cannot_reuse_closes_the_connection(serve: Serve, answer: bytes) -> None:
    """Chunked, close, HTTP/1.0 or a large body: the status counts, the next post reconnects."""
    server = await serve(lambda n: answer)
    client = Http1Client()
    for _ in range(2):
        assert await client.post(f"http://127.0.0.1:{server.port}/", {}, b"{}") == 200
    await client.aclose()
    assert server.connections == 2


async def test_a_204_keeps_the_connection(serve: Serve) -> None:
    """A 204 has no body by definition, so the connection is kept without a length."""
    server = await serve(lambda n: b"HTTP/1.1 204 No Content\r\n\r\n")
    client = Http1Client()
    for _ in range(3):
        assert await client.post(f"http://127.0.0.1:{server.port}/", {}, b"{}") == 204
    await client.aclose()
    assert server.connections == 1


async def test_a_kept_connection_the_receiver_closed_is_replaced(
    serve: Serve,
) -> None:
    """The receiver drops an idle connection: the next post reconnects and succeeds."""
    server = await serve(lambda n: b"" if n == 2 else OK)
    client = Http1Client()
    assert await client.post(f"http://127.0.0.1:{server.port}/", {}, b"{}") == 200
    assert await client.post(f"http://127.0.0.1:{server.port}/", {}, b"{}") == 200
    await client.aclose()
    assert server.connections == 2


async def test_an_answer_that_is_not_http_is_a_protocol_error(
    serve: Serve,
) -> None:
    """Garbage instead of a status line is an error, not a status."""
    server = await serve(lambda n: b"SSH-2.0-OpenSSH\r\n\r\n")
    client = Http1Client()
    with pytest.raises(ProtocolError):
        await client.post(f"http://127.0.0.1:{server.port}/", {}, b"{}")
    await client.aclose()


def _certificate(folder: Path) -> tuple[Path, Path]:
    require_program("openssl")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


async def test_https_verifies_the_receiver_and_refuses_an_untrusted_one(
    serve: Serve, tmp_path: Path
) -> None:
    """Over TLS a trusted certificate delivers; the system's trust refuses a self-signed one."""
    cert, key = await asyncio.to_thread(_certificate, tmp_path)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    server = await serve(lambda n: OK, tls)
    trusting = Http1Client(ssl.create_default_context(cafile=str(cert)))
    assert await trusting.post(f"https://localhost:{server.port}/", {}, b"{}") == 200
    await trusting.aclose()
    default = Http1Client()
    with pytest.raises(ssl.SSLCertVerificationError):
        await default.post(f"https://localhost:{server.port}/", {}, b"{}")
    await default.aclose()
