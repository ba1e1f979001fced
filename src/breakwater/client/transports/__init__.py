"""Realtime transports, best first: WebSocket, Server-Sent Events, long-poll."""

from breakwater.client.transports.base import StreamContext, Transport
from breakwater.client.transports.ladder import TransportLadder
from breakwater.client.transports.long_poll import LongPollTransport
from breakwater.client.transports.sse import SseTransport
from breakwater.client.transports.websocket import WebSocketTransport

TRANSPORTS: dict[str, type[WebSocketTransport | SseTransport | LongPollTransport]] = {
    "websocket": WebSocketTransport,
    "sse": SseTransport,
    "long_poll": LongPollTransport,
}

__all__ = [
    "TRANSPORTS",
    "LongPollTransport",
    "SseTransport",
    "StreamContext",
    "Transport",
    "TransportLadder",
    "WebSocketTransport",
]
