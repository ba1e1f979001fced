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
- raises ``CursorGone`` when the node cannot honour the cursor (``cursor_expired``,
  ``cursor_unknown``);
- raises :class:`TokenRenewed` when the stream must be reopened with a new access token (an
  SSE stream after a refresh, a stream refused or closed with 401/4401 after a refresh);
- raises ``Unauthorized`` when refused and the credentials have no new token (signed out).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Protocol

import httpx

from breakwater.client.node_api import Credentials, HeadersProvider
from breakwater.client.socket_push import SocketPush
from breakwater.core import cursor as cursor_mod
from breakwater.core.errors import Unauthorized

RENEWAL_RETRY_SECONDS = 1.0
"""Pause before asking again when a due refresh could not be made (the node unreachable)."""


class TokenRenewed(Exception):
    """The stream must reconnect at once with the new access token (nothing is lost: it
    resumes from the device's cursor)."""


@dataclass(frozen=True)
class StreamContext:
    """What a transport needs: where, as whom, from which cursor, and whom to tell.

    ``collections`` is the device's scope (:mod:`breakwater.client.scope`): the stream asks the
    node for these collections only (``None``: every collection)."""

    base_url: str
    http: httpx.AsyncClient
    headers: HeadersProvider | None
    cursor: Callable[[], str]
    notify: Callable[[str], Awaitable[None]]
    idle_timeout: float = 45.0
    collections: tuple[str, ...] | None = None
    socket: SocketPush | None = None
    """Where a WebSocket transport lends its open socket for pushes (None: it does not)."""
    heard: Callable[[str], object] | None = None
    """Given with ``socket``: how a transport whose socket carries pushes tells of changes up to
    a cursor without waiting (``notify`` waits until they are pulled, and the answer to a push
    may be the next message on the same socket). The sync loop pulls them when due."""


def brings_changes(message: Mapping[str, Any], local_cursor: str) -> bool:
    """Whether a ``changes`` message holds changes the device has not pulled yet. A message
    without changes only moves the cursor past changes the subscription's filter skipped: the
    node sends none to a scoped device, so there is nothing to pull for it."""
    return bool(message.get("changes")) and is_ahead(str(message["cursor"]), local_cursor)


def is_ahead(message_cursor: str, local_cursor: str) -> bool:
    """Whether a stream message's cursor covers changes the device has not pulled yet."""
    local = _vector(local_cursor)
    return any(local.get(o, 0) < s for o, s in _vector(message_cursor).items())


@functools.lru_cache(maxsize=16)
def _vector(cursor: str) -> Mapping[str, int]:
    """A cursor's vector, read-only: the sync loop compares the same few cursors (its own,
    the stream's last) after every message and every push, and decoding one (base64, JSON,
    validation) costs more than the comparison."""
    return MappingProxyType(cursor_mod.decode(cursor))


def bearer_of(headers: Mapping[str, str]) -> str | None:
    """The access token in ``headers``, if any."""
    value = headers.get("Authorization", "")
    return value.removeprefix("Bearer ") if value.startswith("Bearer ") else None


async def token_change(credentials: Credentials, used: str | None) -> str | None:
    """Wait until the credentials hold a token other than ``used``; return it (``None``: the
    device signed out)."""
    while True:
        await credentials.next_renewal()
        token = await credentials.access_token()
        if token != used:
            return token
        await asyncio.sleep(RENEWAL_RETRY_SECONDS)


async def refused_for_token(context: StreamContext, used: Mapping[str, str]) -> BaseException:
    """The error for a stream refused with 401 or closed with 4401: :class:`TokenRenewed`
    when the credentials now have a new token, ``Unauthorized`` when not."""
    if isinstance(context.headers, Credentials) and await context.headers.renew(used):
        return TokenRenewed()
    return Unauthorized("the realtime stream was refused: no valid access token")


class Transport(Protocol):
    """A way to learn about new changes as they commit."""

    name: str

    async def listen(self, context: StreamContext) -> None:
        """Follow the stream until it ends (see the module docstring for the error contract)."""
        ...
