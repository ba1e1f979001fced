"""Open the store at startup, or keep trying in the background while it is unreachable (I8).

A node whose store is down when it starts still starts: until the store opens, ``/readyz`` is
503 naming it, writes and reads get 503 ``store_unavailable`` with ``Retry-After`` (a store that
is not open answers ``StoreUnavailable`` to every call), and the first open that succeeds
migrates the schema and then starts whatever waits for the store (the realtime follower).
Only a network store's transient unavailability is waited out: a SQLite file that cannot be
opened, a schema written by a newer Breakwater (``StoreIncompatible``), and any other error (a bad
config, a node id that another process holds while the server answers) still stop the start,
where the operator sees them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from breakwater.core.errors import StoreUnavailable
from breakwater.obs.logging import get_logger
from breakwater.resilience import Backoff
from breakwater.storage.base import Store

_log = get_logger("breakwater.server")


class StoreOpener:
    """Opens ``store`` once, now or as soon as it becomes reachable, then calls ``on_open``."""

    def __init__(
        self,
        store: Store,
        on_open: Callable[[], Awaitable[None]],
        on_available: Callable[[bool], None],
        *,
        wait: bool,
        backoff: Backoff | None = None,
    ) -> None:
        self.store = store
        self.wait = wait
        """Whether an unavailable store is waited for (a database server) or fails the start."""
        self.on_open = on_open
        self.on_available = on_available
        self.backoff = backoff or Backoff(base=0.2, cap=5.0)
        self.opened = False
        self.problem = "not opened yet"
        """Why the store is not open (the last open's error), for ``/readyz``."""
        self._task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """Open the store now; while it is unavailable, keep trying in the background."""
        try:
            await self._open_once()
        except StoreUnavailable as error:
            if not (self.wait and error.transient):
                raise
            self._failed(error, first=True)
            self._task = asyncio.create_task(self._retry_forever(), name="bw-store-opener")

    async def aclose(self) -> None:
        """Stop trying (the node stops before its store ever opened)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _open_once(self) -> None:
        await self.store.open()
        self.opened = True
        self.problem = ""
        self.on_available(True)
        await self.on_open()

    def _failed(self, error: StoreUnavailable, *, first: bool = False) -> None:
        self.problem = f"not open: {error.detail}"
        self.on_available(False)
        event = "store_unavailable_at_start" if first else "store_open_retry_failed"
        _log.warning(event, error=error.type, detail=error.detail)

    async def _retry_forever(self) -> None:
        while not self.opened:
            await asyncio.sleep(self.backoff.next_delay())
            try:
                await self._open_once()
            except StoreUnavailable as error:
                self._failed(error)
            except Exception as error:  # e.g. the node id is held elsewhere: keep waiting
                self.problem = f"not open: {error}"
                _log.warning("store_open_retry_failed", error=type(error).__name__)
        _log.info("store_opened_late", attempts=self.backoff.attempts)
