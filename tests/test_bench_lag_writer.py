"""The lag generator resends a push once on a new connection when the node closed the reused one."""

from __future__ import annotations

import asyncio
import time

from breakwater.bench._lag_writer import _Writer
from breakwater.core import codec

ANSWER = codec.dumps({"results": [{"status": "applied"}]})


async def _answer_once_and_close(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """A node that answers one push per connection, then closes it (as at keep-alive expiry)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    await reader.readexactly(length)
    writer.write(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        + f"Content-Length: {len(ANSWER)}\r\n\r\n".encode()
        + ANSWER
    )
    await writer.drain()
    writer.close()
    await writer.wait_closed()


async def test_a_push_on_a_connection_the_node_closed_is_resent_once_and_acknowledged() -> None:
    """The second push finds its kept-alive connection closed: it goes again on a new one."""
    server = await asyncio.start_server(_answer_once_and_close, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    writer = _Writer({"eu": ("127.0.0.1", port)}, "t")
    try:
        await writer.one("eu", 0, time.monotonic())
        await writer.one("eu", 1, time.monotonic())
    finally:
        await writer.close()
        server.close()
        await server.wait_closed()
    assert [doc_id for doc_id, _, _ in writer.acked] == ["t-eu-0", "t-eu-1"]
    assert writer.errors == {}
    assert writer.resent == 1
