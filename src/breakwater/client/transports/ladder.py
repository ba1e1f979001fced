"""Transport fallback: WebSocket, then SSE, then long-poll, and climbing back up later.

The ladder runs the best transport that works. A transport the endpoint refuses (an upgrade
answered 4xx, a proxy that strips it, a stream that is not an event stream) drops the ladder one
rung; ``climb_back_after`` seconds on a lower rung, it tries the rung above again, so a client
that fell back because of a flaky proxy returns to WebSocket once it works. An unreachable
endpoint is not a reason to fall back: the ladder waits (backoff with full jitter) and retries
the same rung, and tells the sync loop (``on_unavailable``), whose failover picks another
endpoint: a device that only listens (no writes to push) notices a lost region at once, not at
its next poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence

from breakwater.client.errors import EndpointUnavailable, TransportRefused
from breakwater.client.node_api import Credentials
from breakwater.client.transports.base import StreamContext, TokenRenewed, Transport
from breakwater.core.errors import BreakwaterError, CursorGone, Unauthorized
from breakwater.resilience import Backoff

log = logging.getLogger("breakwater.client")


class TransportLadder:
    """Runs the transports of ``transports`` (best first) against one endpoint, forever."""

    def __init__(
        self,
        transports: Sequence[Transport],
        climb_back_after: float = 300.0,
        on_transport: Callable[[str | None], None] = lambda name: None,
        on_expired: Callable[[], None] = lambda: None,
        on_unavailable: Callable[[], None] = lambda: None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not transports:
            raise ValueError("at least one transport is needed")
        self.transports = list(transports)
        self.climb_back_after = climb_back_after
        self.level = 0
        self._fell_at = 0.0
        self._on_transport = on_transport
        self._on_expired = on_expired
        self._on_unavailable = on_unavailable
        self._sleep = sleep
        self._clock = clock
        self._backoff = Backoff(base=0.5, cap=15.0)

    @property
    def current(self) -> str:
        """The name of the rung in use."""
        return self.transports[self.level].name

    async def run(self, context: StreamContext) -> None:
        """Keep one transport listening; never returns (cancel it to stop)."""
        while True:
            transport = self.transports[self.level]
            self._on_transport(transport.name)
            try:
                if self.level == 0:
                    await transport.listen(context)
                else:
                    remaining = self.climb_back_after - (self._clock() - self._fell_at)
                    try:
                        async with asyncio.timeout(max(remaining, 0.001)):
                            await transport.listen(context)
                    except TimeoutError:
                        self.level -= 1  # climb back up and try the better transport again
                        continue
                self._backoff.reset()
                await self._sleep(0.5 + random.random() * 2.5)  # protocol: spread reconnects
            except TokenRenewed:
                # Reconnect with the new token now; the short random pause only keeps a node
                # that refuses every token from being hammered.
                await self._sleep(random.random() * 0.2)
            except TransportRefused:
                if self.level + 1 < len(self.transports):
                    self.level += 1
                    self._fell_at = self._clock()
                else:
                    await self._sleep(self._backoff.next_delay())
            except CursorGone:
                self._on_expired()
                await self._sleep(self._backoff.next_delay())
            except Unauthorized:
                await self._wait_for_credentials(context)
            except EndpointUnavailable as exc:
                self._on_transport(None)
                self._on_unavailable()
                await self._sleep(exc.retry_after or self._backoff.next_delay())
            except BreakwaterError:
                await self._sleep(self._backoff.next_delay())
            except Exception:
                # A malformed message must not end realtime for good; the pull loop is unaffected.
                log.warning("realtime transport %s failed", transport.name, exc_info=True)
                await self._sleep(self._backoff.next_delay())

    async def _wait_for_credentials(self, context: StreamContext) -> None:
        """Refused for want of a valid token (signed out): wait for a sign-in, or back off."""
        delay = self._backoff.next_delay()
        if not isinstance(context.headers, Credentials):
            await self._sleep(delay)
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await context.headers.next_renewal()
