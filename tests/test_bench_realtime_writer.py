"""bench realtime's writer is open loop: a slow server gets more writes in flight instead of a
lower rate, and each write carries its scheduled send time, so waiting counts in latency."""

from __future__ import annotations

import asyncio

import orjson

from breakwater.bench.realtime import _write_at_rate


class _SlowServer:
    """Answers each PUT 200 after ``delay`` seconds; keeps the bodies and the most requests it
    held at once."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.bodies: list[dict[str, float]] = []
        self.in_flight = 0
        self.most_in_flight = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                break
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            self.bodies.append(orjson.loads(await reader.readexactly(length)))
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            await asyncio.sleep(self.delay)
            self.in_flight -= 1
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        writer.close()


async def test_a_slow_server_gets_more_writes_in_flight_not_a_lower_rate() -> None:
    slow = _SlowServer(delay=0.3)
    server = await asyncio.start_server(slow.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        writes, errors = await _write_at_rate(port, 50, 1.0)
    finally:
        server.close()
        await server.wait_closed()
    assert (writes, errors) == (50, 0)
    # 0.3 s per answer at 50 writes/s: about 15 in flight (a closed loop on 4 connections: 4).
    assert slow.most_in_flight > 8
    stamps = {int(body["i"]): body["t"] for body in slow.bodies}
    assert sorted(stamps) == list(range(50))
    for index, stamp in stamps.items():  # the schedule, not the moment a connection was free
        assert abs(stamp - stamps[0] - index / 50) < 1e-6
