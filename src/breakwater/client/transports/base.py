"""The realtime transport seam: one method that follows the change stream of one endpoint.

A transport only tells the sync loop that the feed moved past the device's cursor; the sync
loop then pulls the changes with their replicated states (the stream's changes carry documents
but not states, and the device needs states to rebase its pending writes exactly as a node
would). So every transport delivers every change: the pull is gap-free from the stored cursor.

Contract of :meth:`Transport.listen`:

- returns when the stream ended normally (the node asked the client to reconnect, or closed);
- raises :class:`TransportRefused` when the endpoint works but refuses this transport (the
  ladder then falls back to the next one);
- raises :class:`EndpointUnavailable` when the endpoint cannot be reached or is overloaded;
- raises ``CursorExpired`` when the cursor is behind the retention horizon.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

import httpx

from breakwater.client.node_api import HeadersProvider
from breakwater.core import cursor as cursor_mod


@dataclass(frozen=True)
class StreamContext:
    """What a transport needs: where, as whom, from which cursor, and whom to tell."""

    base_url: str
    http: httpx.AsyncClient
    headers: HeadersProvider | None
    cursor: Callable[[], str]
    notify: Callable[[str], Awaitable[None]]
    idle_timeout: float = 45.0


def is_ahead(message_cursor: str, local_cursor: str) -> bool:
    """Whether a stream message's cursor covers changes the device has not pulled yet."""
    local = cursor_mod.decode(local_cursor)
    return any(
        not cursor_mod.covers(local, o, s) for o, s in cursor_mod.decode(message_cursor).items()
    )


class Transport(Protocol):
    """A way to learn about new changes as they commit."""

    name: str

    async def listen(self, context: StreamContext) -> None:
        """Follow the stream until it ends (see the module docstring for the error contract)."""
        ...
