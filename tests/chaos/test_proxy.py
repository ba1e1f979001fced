"""The chaos proxy on loopback: each fault does what it says, and faults switch at runtime."""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import AsyncIterator

import pytest

from breakwater.chaos.faults import (
    Bandwidth,
    Blackhole,
    Latency,
    Loss,
    Partition,
    ResetPeer,
    Slicer,
    SlowClose,
)
from breakwater.chaos.proxy import ChaosProxy
from tests.chaos.echo import EchoServer


@pytest.fixture
async def echo() -> AsyncIterator[EchoServer]:
    server = await EchoServer().start()
    yield server
    await server.aclose()


@pytest.fixture
async def proxy(echo: EchoServer) -> AsyncIterator[ChaosProxy]:
    async with ChaosProxy(("127.0.0.1", echo.port), rng=random.Random(7)) as chaos:
        yield chaos


async def connect(proxy: ChaosProxy) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", proxy.port)


async def round_trip(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, payload: bytes
) -> float:
    """Seconds from sending ``payload`` to reading all of it back."""
    started = time.monotonic()
    writer.write(payload)
    await writer.drain()
    assert await reader.readexactly(len(payload)) == payload
    return time.monotonic() - started


async def test_without_faults_bytes_pass_unchanged(proxy: ChaosProxy, echo: EchoServer) -> None:
    """No fault: a megabyte of random bytes comes back identical."""
    payload = os.urandom(1 << 20)
    reader, writer = await connect(proxy)
    await round_trip(reader, writer, payload)
    writer.close()
    assert echo.received == payload
    assert proxy.stats.bytes == {"upstream": len(payload), "downstream": len(payload)}


async def test_latency_adds_its_delay_each_way(proxy: ChaosProxy) -> None:
    """100 ms each way: every round trip takes at least 200 ms more than without the fault."""
    reader, writer = await connect(proxy)
    base = min([await round_trip(reader, writer, b"ping") for _ in range(5)])
    proxy.set_fault(Latency(ms=100))
    delayed = [await round_trip(reader, writer, b"ping") for _ in range(3)]
    assert all(0.2 <= d < 0.2 + base + 0.3 for d in delayed), delayed
    writer.close()


async def test_latency_in_one_direction_only(proxy: ChaosProxy) -> None:
    """Latency on ``downstream`` delays the round trip by one delay, not two."""
    reader, writer = await connect(proxy)
    proxy.set_fault(Latency(ms=150, direction="downstream"))
    took = await round_trip(reader, writer, b"x")
    assert 0.15 <= took < 0.29
    writer.close()


async def test_jitter_spreads_delays_within_its_bounds(proxy: ChaosProxy) -> None:
    """50 ± 40 ms downstream: delays vary, each within 10..90 ms (plus scheduling slack)."""
    reader, writer = await connect(proxy)
    proxy.set_fault(Latency(ms=50, jitter_ms=40, direction="downstream"))
    delays = [await round_trip(reader, writer, b"j") for _ in range(12)]
    assert all(0.01 <= d < 0.14 for d in delays), delays
    assert max(delays) - min(delays) > 0.02, delays
    writer.close()


async def test_latency_switches_off_on_an_open_connection(proxy: ChaosProxy) -> None:
    """Clearing latency makes the same connection fast again."""
    reader, writer = await connect(proxy)
    proxy.set_fault(Latency(ms=200))
    assert await round_trip(reader, writer, b"a") >= 0.4
    assert proxy.clear_fault("latency")
    assert await round_trip(reader, writer, b"b") < 0.2
    writer.close()


async def test_loss_delays_the_lost_share_by_a_retransmission(proxy: ChaosProxy) -> None:
    """100% loss downstream: every answer waits one retransmission; 0%: none does; the bytes
    arrive intact and in order either way."""
    reader, writer = await connect(proxy)
    proxy.set_fault(Loss(percent=100, retransmit_ms=150, direction="downstream"))
    lost = [await round_trip(reader, writer, b"l") for _ in range(3)]
    assert all(0.15 <= d < 0.29 for d in lost), lost
    proxy.set_fault(Loss(percent=0, retransmit_ms=150))
    kept = [await round_trip(reader, writer, b"k") for _ in range(3)]
    assert all(d < 0.1 for d in kept), kept
    writer.close()


async def test_bandwidth_cap_bounds_throughput(proxy: ChaosProxy, echo: EchoServer) -> None:
    """400 KB/s upstream: 200 KB take at least about half a second and all arrive."""
    rate = 400_000
    proxy.set_fault(Bandwidth(bytes_per_second=rate, direction="upstream"))
    payload = os.urandom(200_000)
    reader, writer = await connect(proxy)
    took = await round_trip(reader, writer, payload)
    assert took >= len(payload) / rate * 0.9
    assert len(payload) / took <= rate * 1.1
    writer.close()


async def test_blackhole_accepts_and_never_answers(proxy: ChaosProxy, echo: EchoServer) -> None:
    """Blackhole: the connection opens, the request vanishes, the read times out."""
    proxy.set_fault(Blackhole())
    reader, writer = await connect(proxy)
    writer.write(b"hello?")
    await writer.drain()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(1), 0.5)
    assert echo.received == b""
    assert proxy.stats.dropped["upstream"] == 6
    writer.close()


async def test_blackhole_downstream_lets_the_request_through(
    proxy: ChaosProxy, echo: EchoServer
) -> None:
    """A downstream blackhole: the server gets the request, the client never gets the answer."""
    proxy.set_fault(Blackhole(direction="downstream"))
    reader, writer = await connect(proxy)
    writer.write(b"applied")
    await writer.drain()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(1), 0.5)
    assert echo.received == b"applied"
    writer.close()


async def test_a_stream_that_lost_bytes_is_reset_when_the_blackhole_lifts(
    proxy: ChaosProxy, echo: EchoServer
) -> None:
    """TCP never delivers a stream with a hole: what follows dropped bytes never reaches the
    client; the connection is reset as the blackhole lifts."""
    reader, writer = await connect(proxy)
    await round_trip(reader, writer, b"before")
    proxy.set_fault(Blackhole(direction="downstream"))
    writer.write(b"lost")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(1), 0.3)
    assert proxy.stats.dropped["downstream"] == 4
    proxy.clear_fault("blackhole")
    assert proxy.stats.resets == 1
    writer.write(b"after")
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(1024), 2)
    assert echo.received == b"beforelost"
    writer.close()


async def test_a_blackhole_that_dropped_nothing_leaves_the_connection_open(
    proxy: ChaosProxy,
) -> None:
    """An idle connection through a blackhole lost nothing: it works once the blackhole lifts,
    and so does the direction a one-way blackhole did not cover."""
    reader, writer = await connect(proxy)
    await round_trip(reader, writer, b"before")
    proxy.set_fault(Blackhole(direction="downstream"))
    proxy.set_fault(Blackhole(direction="upstream"))  # replaces it: downstream lost nothing
    proxy.heal()
    await round_trip(reader, writer, b"after")
    assert proxy.stats.resets == 0
    writer.close()


async def test_reset_peer_resets_open_connections(proxy: ChaosProxy) -> None:
    """Switching reset_peer on resets a connection that is open: the client sees a reset."""
    reader, writer = await connect(proxy)
    await round_trip(reader, writer, b"ok")
    proxy.set_fault(ResetPeer())
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(1), 2)
    assert proxy.stats.resets == 1


async def test_reset_peer_after_a_delay(proxy: ChaosProxy) -> None:
    """reset_peer after 300 ms: a new connection works at first, then is reset."""
    proxy.set_fault(ResetPeer(after_ms=300))
    reader, writer = await connect(proxy)
    await round_trip(reader, writer, b"early")
    started = time.monotonic()
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(1), 2)
    assert time.monotonic() - started >= 0.2


async def test_slow_close_delays_the_close(echo: EchoServer) -> None:
    """The server closes after answering; the client sees the end only ``delay_ms`` later."""
    echo.close_after = 3
    async with ChaosProxy(("127.0.0.1", echo.port)) as proxy:
        proxy.set_fault(SlowClose(delay_ms=400))
        reader, writer = await connect(proxy)
        await round_trip(reader, writer, b"bye")
        started = time.monotonic()
        assert await asyncio.wait_for(reader.read(1), 2) == b""
        assert time.monotonic() - started >= 0.35
        writer.close()


async def test_slicer_delivers_the_same_bytes_in_small_pieces(
    proxy: ChaosProxy, echo: EchoServer
) -> None:
    """Slicer 7 ± 3 bytes upstream: the server reads many small pieces that add up to the data."""
    proxy.set_fault(Slicer(size_bytes=7, variation_bytes=3, delay_ms=1, direction="upstream"))
    payload = os.urandom(2000)
    reader, writer = await connect(proxy)
    await round_trip(reader, writer, payload)
    writer.close()
    assert echo.received == payload
    assert len(echo.chunks) > 50
    assert max(len(chunk) for chunk in echo.chunks) <= 64  # a few pieces may coalesce


async def test_partition_holds_bytes_until_it_heals(proxy: ChaosProxy, echo: EchoServer) -> None:
    """Partition upstream: the request does not reach the server; after healing, it does."""
    reader, writer = await connect(proxy)
    await round_trip(reader, writer, b"before")
    proxy.set_fault(Partition(direction="upstream"))
    writer.write(b"during")
    await writer.drain()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(1), 0.4)
    assert echo.received == b"before"
    proxy.heal()
    assert await asyncio.wait_for(reader.readexactly(6), 2) == b"during"
    writer.close()


async def test_partition_keeps_new_connections_from_the_upstream(
    proxy: ChaosProxy, echo: EchoServer
) -> None:
    """A new connection during a partition never reaches the upstream until the link heals."""
    proxy.set_fault(Partition())
    reader, writer = await connect(proxy)
    writer.write(b"hi")
    await asyncio.sleep(0.3)
    assert echo.connections == 0
    proxy.clear_fault("partition")
    assert await asyncio.wait_for(reader.readexactly(2), 2) == b"hi"
    assert echo.connections == 1
    writer.close()


async def test_partition_downstream_only(proxy: ChaosProxy, echo: EchoServer) -> None:
    """Partition downstream: the server gets the request, the answer waits for the heal."""
    reader, writer = await connect(proxy)
    await round_trip(reader, writer, b"warm")
    proxy.set_fault(Partition(direction="downstream"))
    writer.write(b"q")
    await writer.drain()
    await asyncio.sleep(0.3)
    assert echo.received == b"warmq"
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(1), 0.2)
    proxy.heal()
    assert await asyncio.wait_for(reader.readexactly(1), 2) == b"q"
    writer.close()


async def test_upstream_down_resets_the_client() -> None:
    """Nothing listens upstream: the client's connection is reset, the proxy keeps serving."""
    echo = await EchoServer().start()
    port = echo.port
    await echo.aclose()
    async with ChaosProxy(("127.0.0.1", port)) as proxy:
        reader, writer = await connect(proxy)
        writer.write(b"anyone?")
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(reader.read(1), 12)
        assert proxy.stats.open == 0


async def test_close_drops_open_connections(echo: EchoServer) -> None:
    """aclose ends open connections (with a reset) and stops listening."""
    proxy = ChaosProxy(("127.0.0.1", echo.port))
    await proxy.start()
    port = proxy.port
    reader, writer = await connect(proxy)
    await round_trip(reader, writer, b"x")
    await proxy.aclose()
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(1), 2)
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)


async def test_blackhole_and_bandwidth_switch_on_an_open_connection(
    proxy: ChaosProxy, echo: EchoServer
) -> None:
    """Faults switched on mid-connection act at once, and the connection works after healing
    (one that lost bytes to a blackhole is reset instead: see above)."""
    reader, writer = await connect(proxy)
    await round_trip(reader, writer, b"a")
    proxy.set_fault(Bandwidth(bytes_per_second=100_000, direction="downstream"))
    took = await round_trip(reader, writer, os.urandom(30_000))
    assert took >= 0.25
    proxy.heal()
    assert await round_trip(reader, writer, b"c") < 0.2
    proxy.set_fault(Blackhole(direction="downstream"))
    writer.write(b"b")
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(1), 0.3)
    assert echo.received.endswith(b"cb")
    writer.close()
