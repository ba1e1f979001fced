"""The SDK's libraries log no credential, even at ``debug``.

A device signs up, streams over a WebSocket and re-authenticates it in place (an ``auth``
message) while every logger of the app's process records at ``debug``: httpx, httpcore and
websockets lines are there, and neither the password nor any token is in them.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from breakwater.client import Client
from breakwater.client.transports import WebSocketTransport
from tests.client.test_auth_session import wait_for
from tests.conftest import ServerProcess

pytestmark = pytest.mark.slow
PASSWORD = "correct-horse-battery-5521"
JWT = re.compile(r"eyJ[\w-]*\.[\w-]+\.[\w-]+")
CONFIG = """
realtime_heartbeat = 1.0

[auth]
mode = "enforce"
access_ttl = 3
password_memory_kib = 64
password_time_cost = 1
rate_auth_per_ip = 0
"""


def _websocket_of(device: Client) -> WebSocketTransport:
    transport = device._loop._transports[0]  # type: ignore[union-attr]
    assert isinstance(transport, WebSocketTransport)
    return transport


async def test_no_credential_in_any_sdk_log_line(
    start_server: Callable[..., ServerProcess],
    make_device: Callable[..., Any],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Sign-up, a WebSocket stream and an in-place re-authentication log no secret."""
    config = tmp_path / "node.toml"
    config.write_text(CONFIG)
    server = start_server(None, "--config", str(config))
    caplog.set_level(logging.DEBUG)
    device: Client = await make_device(server.url, "phone", transports=("websocket",))
    await device.auth.sign_up("logs@example.com", PASSWORD)
    socket = _websocket_of(device)

    async def reauthenticated() -> bool:
        return socket.reauthenticated >= 1

    await wait_for(reauthenticated, 30)
    headers = await device.auth()
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert PASSWORD not in text
    assert headers["Authorization"].split()[1] not in text
    assert not JWT.search(text), JWT.search(text)
    loggers = {record.name.split(".")[0] for record in caplog.records}
    assert {"httpx", "httpcore", "websockets"} <= loggers, loggers
    assert "> authorization: [redacted]" in text.lower()
    assert "> TEXT [" in text  # frames: type and size only
