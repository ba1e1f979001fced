"""The JSON messages of the realtime stream, the same on WebSocket and SSE (docs/protocol.md).

Messages are built as text once and shared: a page of changes that many subscribers receive is
encoded once per collection filter, not once per subscriber.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from breakwater.core import codec
from breakwater.core.cursor import VersionVector
from breakwater.server.wire import change_json
from breakwater.storage.base import FeedEntry

PING = '{"type":"ping"}'
PONG = '{"type":"pong"}'
UNSUBSCRIBED = '{"type":"unsubscribed"}'


def encode_changes(entries: Sequence[FeedEntry]) -> list[bytes]:
    """Each change as compact JSON, in order (the same shape as in a pull response).

    The encodings are kept (recent changes, queued messages), so each is copied into an object
    of its own size: orjson's result sits in a buffer of at least 4 KiB (measured with orjson
    3.13), which for a kept 300-byte change is more than ten times its size.
    """
    return [memoryview(codec.dumps(change_json(entry))).tobytes() for entry in entries]


def changes(encoded: Sequence[bytes], cursor: str, stable: VersionVector) -> str:
    """A ``changes`` message from changes already encoded with :func:`encode_changes`."""
    return (
        b'{"type":"changes","changes":['
        + b",".join(encoded)
        + b'],"cursor":'
        + codec.dumps(cursor)
        + b',"stable":'
        + codec.dumps(stable)
        + b"}"
    ).decode()


def subscribed(collections: Sequence[str] | None, cursor: str) -> str:
    """The acknowledgement of a ``subscribe``: what the stream now follows and from where."""
    return codec.dumps(
        {"type": "subscribed", "collections": collections, "cursor": cursor}
    ).decode()


def reconnect(reason: str, cursor: str) -> str:
    """Tell the client to reconnect (to any node) and resume from ``cursor``."""
    return codec.dumps({"type": "reconnect", "reason": reason, "cursor": cursor}).decode()


def error(problem: dict[str, Any]) -> str:
    """An ``error`` message; the problem object is nested because it has a ``type`` of its own."""
    return codec.dumps({"type": "error", "error": problem}).decode()


def authenticated(expires: float | None) -> str:
    """The acknowledgement of an ``auth`` message: until when the new token is valid."""
    return codec.dumps({"type": "authenticated", "expires": expires}).decode()
