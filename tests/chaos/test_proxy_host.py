"""Many proxies in one process: the spec file they are read from, and proxies started from it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from breakwater.chaos.proxy_host import ProxySpec, read_specs, started, write_specs
from breakwater.core.errors import ValidationError
from tests.chaos.echo import EchoServer


@pytest.fixture
async def echo() -> AsyncIterator[EchoServer]:
    server = await EchoServer().start()
    yield server
    await server.aclose()


def test_specs_round_trip_and_mistakes_are_named(tmp_path: Path) -> None:
    """What write_specs writes, read_specs reads back; a bad file names what is wrong."""
    path = tmp_path / "proxies.json"
    specs = {"a": ProxySpec(("127.0.0.1", 9000), ("127.0.0.1", 8080))}
    write_specs(path, specs)
    assert read_specs(path) == specs
    for body, words in (
        ('{"proxies": {}}', "non-empty object 'proxies'"),
        ('{"proxies": {"a": 1}}', "proxies.a must be an object"),
        ('{"proxies": {"a": {"listen": "x", "upstream": "h:1"}}}', "proxies.a.listen = 'x'"),
        ('{"proxies": {"a": {"listen": "h:1", "upstream": "h:99999"}}}', "proxies.a.upstream"),
    ):
        path.write_text(body)
        with pytest.raises(ValidationError, match=words):
            read_specs(path)


async def test_every_proxy_of_the_spec_forwards(echo: EchoServer) -> None:
    """Two proxies started together both reach the upstream, each on its own port."""
    upstream = ("127.0.0.1", echo.port)
    specs = {name: ProxySpec(("127.0.0.1", 0), upstream) for name in ("one", "two")}
    async with started(specs) as proxies:
        assert set(proxies) == {"one", "two"}
        for proxy in proxies.values():
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            writer.write(b"ping")
            await writer.drain()
            assert await asyncio.wait_for(reader.readexactly(4), 5) == b"ping"
            writer.close()
