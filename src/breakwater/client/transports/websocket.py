"""Realtime over a WebSocket (``GET /v1/realtime``), with the ``websockets`` library."""

from __future__ import annotations

import asyncio

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from breakwater.client.errors import EndpointUnavailable, TransportRefused, error_for_problem
from breakwater.client.node_api import auth_headers
from breakwater.client.transports.base import StreamContext, is_ahead
from breakwater.core import codec


class WebSocketTransport:
    """Subscribe to every collection from the device's cursor and wake the sync loop."""

    name = "websocket"

    async def listen(self, context: StreamContext) -> None:
        url = "ws" + context.base_url.removeprefix("http") + "/v1/realtime"
        headers = await auth_headers(context.headers)
        try:
            async with connect(url, additional_headers=headers, open_timeout=10) as ws:
                await ws.send(
                    codec.dumps({"type": "subscribe", "cursor": context.cursor()}).decode()
                )
                while True:
                    async with asyncio.timeout(context.idle_timeout):
                        raw = await ws.recv()
                    message = codec.loads(raw)
                    kind = message.get("type")
                    if kind == "ping":
                        await ws.send('{"type":"pong"}')
                    elif kind == "changes" and is_ahead(message["cursor"], context.cursor()):
                        await context.notify(message["cursor"])
                    elif kind == "error":
                        problem = message.get("error", {})
                        raise error_for_problem(int(problem.get("status", 400)), problem)
                    elif kind == "reconnect":
                        return
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status >= 500 or status == 429:
                raise EndpointUnavailable(f"WebSocket refused with {status}") from exc
            raise TransportRefused(f"WebSocket upgrade refused with {status}") from exc
        except InvalidHandshake as exc:
            raise TransportRefused(f"WebSocket handshake failed: {exc}") from exc
        except ConnectionClosed:
            return
        except (OSError, TimeoutError) as exc:
            raise EndpointUnavailable(f"WebSocket: {type(exc).__name__}: {exc}") from exc
