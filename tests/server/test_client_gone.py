"""A client that goes away in the middle of its body costs one quiet log line: nothing is
written, nothing is logged as the node's failure (a reset phone used to leave a traceback)."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

HALF_A_PUSH = b'{"mutations": [{"mutation_id": "m1", "collection": "t", "id": "a", "op": "set"'


async def _send_half_then_vanish(app: Any, method: str, path: str) -> list[dict[str, Any]]:
    """Run one request through the app whose client disconnects after half its body."""
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": HALF_A_PUSH, "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"node"), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    await app(scope, receive, send)
    return sent


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/sync/push"),  # a direct route
        ("PUT", "/v1/collections/t/docs/a"),  # a direct route
        ("POST", "/v1/auth/login"),  # a routed endpoint
    ],
)
async def test_a_client_gone_mid_body_is_a_quiet_line_and_changes_nothing(
    client: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    method: str,
    path: str,
) -> None:
    caplog.set_level(logging.INFO)
    sent = await _send_half_then_vanish(client.app, method, path)  # type: ignore[attr-defined]
    captured = capsys.readouterr()
    events = " ".join(r.getMessage() for r in caplog.records) + captured.out + captured.err
    assert "unhandled_error" not in events
    assert "client_disconnected" in events
    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert [m["status"] for m in starts] == [499]
    assert (await client.get("/v1/collections/t/docs/a")).status_code == 404
    assert (await client.get("/healthz")).status_code == 200
