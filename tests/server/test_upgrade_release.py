"""A WebSocket upgrade hands the per-address slot's release over without the HTTP protocol:
the protocol (its parser, buffers and events, about 4 KiB) is not kept alive for as long as the
WebSocket lives, and the slot is still given back when the socket closes."""

from __future__ import annotations

import asyncio
import gc
import weakref
from typing import Any

import uvicorn
from uvicorn.server import ServerState

from breakwater.config import Config
from breakwater.server.slow_clients import guarded_protocol
from tests.server.test_uvicorn_internals import Transport, hello

UPGRADE = (
    b"GET /v1/realtime HTTP/1.1\r\nHost: node\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


class SwitchingTransport(Transport):
    """A transport whose protocol can be replaced, as a real one's."""

    protocol: Any = None

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def get_protocol(self) -> Any:
        return self.protocol


async def test_an_upgraded_connection_keeps_its_slot_but_not_the_http_protocol() -> None:
    """After the upgrade the HTTP protocol can be freed; the socket's end frees the slot."""
    guarded = guarded_protocol(Config(max_connections_per_address=1))
    config = uvicorn.Config(
        hello, http=guarded, ws="websockets-sansio", log_config=None, access_log=False
    )
    config.load()
    protocol = guarded(config, ServerState(), {}, asyncio.get_running_loop())
    real = SwitchingTransport()
    protocol.connection_made(real)  # type: ignore[arg-type]
    addresses = protocol.addresses
    assert addresses is not None
    protocol.data_received(UPGRADE)
    wrapper = real.protocol
    assert wrapper is not None and wrapper is not protocol
    gone = weakref.ref(protocol)
    del protocol
    gc.collect()
    assert gone() is None, "the WebSocket keeps the HTTP protocol alive"
    assert not addresses.admit("127.0.0.1"), "the WebSocket gave its slot back too early"
    wrapper.connection_lost(None)
    assert addresses.admit("127.0.0.1")
    await asyncio.sleep(0)
