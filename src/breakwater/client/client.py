"""``Client``: the SDK's entry point (docs/sdk.md).

    async with Client(endpoints=["https://eu.example.com"], db_path="app.db") as client:
        if client.auth.state.kind == "signed_out":
            await client.auth.sign_in("ann@example.com", "correct horse")
        todos = client.collection("todos")
        await todos.set("t1", {"title": "Buy milk"})   # durable on the device, queued
        async for items in todos.watch(order_by="title"):
            ...

Opening the client opens the device database and starts the background sync; closing it stops
the sync and closes the database. Nothing is lost by closing (or by the process dying): the
outbox is on disk and drains the next time a client opens the same ``db_path``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

from breakwater.client.change_signal import ChangeSignal
from breakwater.client.collection import Collection
from breakwater.client.endpoints import FAILOVER_TIMEOUT, EndpointPool
from breakwater.client.errors import ClientClosed
from breakwater.client.events import (
    AuthChanged,
    Event,
    Listener,
    MutationQueued,
    ResyncStarted,
    Status,
)
from breakwater.client.local_store import LocalStore, ServerDocument
from breakwater.client.node_api import HeadersProvider
from breakwater.client.outbox import OutboxEntry, Rejection
from breakwater.client.scope import sync_scope
from breakwater.client.session import Auth
from breakwater.client.status import StatusBoard
from breakwater.client.sync_loop import SyncLoop, SyncSettings
from breakwater.client.trace_context import add_trace_headers
from breakwater.client.transports import TRANSPORTS, LongPollTransport
from breakwater.client.upload_queue import UploadQueue
from breakwater.core import hlc as hlc_mod
from breakwater.core.limits import Limits
from breakwater.resilience.tasks import stop

DEFAULT_TRANSPORTS = ("websocket", "sse", "long_poll")

log = logging.getLogger("breakwater.client")


class Client:
    """An offline-first client of one Breakwater deployment.

    ``endpoints``: base URLs of nodes, gateways or regions, in order of preference.
    ``regions``: endpoints grouped by region (``{"eu": [...], "us": [...]}``), on top of
    ``endpoints``; more are learned from the deployment's ``GET /v1/regions``. The client
    starts in the nearest region, fails over, and returns home with hysteresis, probing the
    other regions every ``region_probe_interval`` seconds (docs/sdk.md#regions).
    ``db_path``: the device database (created if missing).
    ``headers``: replaces ``client.auth`` as the source of credentials: a callable (sync or
    async) giving the headers to send with every request, e.g. an API key. Without it, every
    request carries the access token of ``client.auth`` (sign-in, refresh, re-authentication).
    ``transports``: realtime transports to try, best first (``websocket``, ``sse``,
    ``long_poll``). ``sync=False`` opens the database only (no network). ``http_transport``
    replaces httpx's network transport (e.g. ``httpx.ASGITransport`` for an in-process node).
    ``request_timeout``: seconds a request may wait for an answer before the endpoint counts as
    failed (a long poll adds its wait; connecting has its own 5 s bound).
    ``failover_timeout``: the shorter bound when there is another region: a node silent
    to the request and to a health probe is left after about this long (or four times its
    usual latency, if longer; docs/sdk.md#regions, ADR 0038).
    ``sync_collections``: the collections this device pulls and follows in realtime (``None``:
    every one). Writes to other collections are still pushed; they stay in the local view until
    settled, then leave it (docs/sdk.md#scoped-sync).
    ``offer_after_restore``: when the node answers ``cursor_unknown`` (it was restored to an
    earlier point), write back the documents this device held that the node lost, as ordinary
    writes under this device's credentials (docs/sdk.md#restores).
    """

    def __init__(
        self,
        endpoints: Sequence[str],
        db_path: Path | str,
        *,
        headers: HeadersProvider | None = None,
        transports: Sequence[str] = DEFAULT_TRANSPORTS,
        push_batch: int = 500,
        pull_limit: int = 1000,
        poll_interval: float = 30.0,
        climb_back_after: float = 300.0,
        backoff_base: float = 0.2,
        backoff_cap: float = 30.0,
        breaker_failures: int = 3,
        breaker_reset: float = 5.0,
        long_poll_wait: float = 25.0,
        request_timeout: float = 30.0,
        sync_collections: Sequence[str] | None = None,
        offer_after_restore: bool = True,
        limits: Limits | None = None,
        sync: bool = True,
        http_transport: httpx.AsyncBaseTransport | None = None,
        physical_ms: Callable[[], int] = hlc_mod.system_ms,
        regions: Mapping[str, Sequence[str]] | None = None,
        region_probe_interval: float = 5.0,
        failover_timeout: float = FAILOVER_TIMEOUT,
    ) -> None:
        unknown = set(transports) - set(TRANSPORTS)
        if unknown:
            raise ValueError(f"unknown transports {sorted(unknown)}; use {sorted(TRANSPORTS)}")
        self._store = LocalStore(db_path, physical_ms)
        self._pool = EndpointPool(
            endpoints,
            breaker_failures,
            breaker_reset,
            regions=regions,
            failover_timeout=failover_timeout,
        )
        self._board = StatusBoard()
        self._signal = ChangeSignal()
        self._limits = limits or Limits()
        self._http: httpx.AsyncClient | None = None
        self.auth = Auth(self._store, self._pool, self._http_client, self._board.emit)
        """Sign-up, sign-in, anonymous accounts, sign-out (:class:`~.session.Auth`)."""
        self._headers: HeadersProvider = headers if headers is not None else self.auth
        self._board.on(self._on_auth_changed)
        self._transport_names = tuple(transports)
        self._long_poll_wait = long_poll_wait
        self._timeout = httpx.Timeout(request_timeout, connect=min(5.0, request_timeout))
        self._scope = sync_scope(sync_collections)
        self._settings = SyncSettings(
            push_batch,
            pull_limit,
            poll_interval,
            climb_back_after,
            backoff_base,
            backoff_cap,
            self._scope,
            offer_after_restore,
            region_probe_interval,
        )
        self._sync_enabled = sync
        self._http_transport = http_transport
        self._loop: SyncLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._open = False

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def open(self) -> None:
        """Open the device database and start syncing."""
        await self._store.open()
        self._open = True
        if self._sync_enabled and await self._store.follow(self._scope):
            log.info("the sync scope changed: full resync (the outbox is kept)")
            self._board.emit(ResyncStarted("scope"))
        await self.auth.restore()
        self._board.update(
            pending=self._store.backlog.pending, last_synced_at=self._store.last_synced_at
        )
        if self._sync_enabled:
            self._start_sync()

    def _http_client(self) -> httpx.AsyncClient:
        """The one HTTP client of sync, realtime and sign-in (made on first use)."""
        if not self._open:
            raise ClientClosed("the client is not open; use `async with Client(...)`")
        if self._http is None:
            self._http = httpx.AsyncClient(
                timeout=self._timeout,
                transport=self._http_transport,
                event_hooks={"request": [add_trace_headers]},
            )
        return self._http

    def _on_auth_changed(self, event: Event) -> None:
        """A sign-in may unblock writes refused for want of a token: sync now."""
        if isinstance(event, AuthChanged) and event.state.uid is not None:
            self.sync_now()

    def _start_sync(self) -> None:
        transports = [
            LongPollTransport(self._long_poll_wait) if name == "long_poll" else TRANSPORTS[name]()
            for name in self._transport_names
        ]
        self._loop = SyncLoop(
            self._store,
            self._pool,
            self._http_client(),
            self._board,
            transports,
            self._signal.changed,
            self._settings,
            self._headers,
        )
        self._task = asyncio.create_task(self._loop.run(), name="breakwater-sync")

    async def _stop_sync(self) -> None:
        # ``stop`` raises a cancellation of the caller (a pause given up on) where a suppressed
        # await would swallow it; the task stays ours until it has ended.
        await stop(self._task)
        self._task = None
        self._loop = None

    async def pause(self) -> None:
        """Stop all network traffic until :meth:`resume` (an offline mode: "sync on Wi-Fi only",
        a user's switch). Reads and writes go on locally. A push in flight is abandoned: the
        node may or may not have applied it, and the same entries are pushed again on resume
        (I2 makes that safe)."""
        if not self._open:
            raise ClientClosed("the client is not open; use `async with Client(...)`")
        await self._stop_sync()
        self._board.update(state="offline", transport=None)

    def resume(self) -> None:
        """Sync again after :meth:`pause`, at once (no-op when syncing or made with
        ``sync=False``)."""
        if not self._open:
            raise ClientClosed("the client is not open; use `async with Client(...)`")
        if self._sync_enabled and self._task is None:
            self._start_sync()

    @property
    def paused(self) -> bool:
        """No sync runs: :meth:`pause` was called, or the client was made with ``sync=False``."""
        return self._task is None

    async def aclose(self) -> None:
        """Stop syncing and close the database (pending writes stay queued on disk)."""
        if not self._open:
            return
        self._open = False
        await self._stop_sync()
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        await self._store.aclose()
        self._board.update(state="offline", transport=None)

    def upload_queue(self, **options: Any) -> UploadQueue:
        """The device's durable queue of file uploads (docs/sdk.md#files), sent with the
        client's credentials to its preferred endpoint (a tus upload lives on one node, so a
        queue does not move between endpoints). ``open()`` it before use."""
        endpoint = self._pool.choose() or self._pool.endpoints[0]
        return UploadQueue(
            self._store.path, self._http_client(), endpoint.url, self._headers, **options
        )

    def collection(self, name: str) -> Collection:
        """A collection of the local view; cheap, make as many as you like."""
        if not self._open:
            raise ClientClosed("the client is not open; use `async with Client(...)`")
        return Collection(name, self._store, self._signal, self._written, self._limits)

    def _written(self, entry: OutboxEntry) -> None:
        self._signal.changed([entry.collection])
        self._board.emit(MutationQueued(entry))
        self._board.update(pending=self._board.status.pending + 1)
        if self._loop is not None:
            self._loop.wake.set()

    # -- status ---------------------------------------------------------------------------

    @property
    def status(self) -> Status:
        """Connectivity, pending count, last error and last sync time, now."""
        return self._board.status

    @property
    def online(self) -> bool:
        """The last sync with an endpoint worked."""
        return self._board.status.state != "offline"

    @property
    def pending(self) -> int:
        """Local writes not yet acknowledged and stable."""
        return self._board.status.pending

    @property
    def sync_collections(self) -> tuple[str, ...] | None:
        """The collections this device pulls and follows, sorted (``None``: every one)."""
        return self._scope

    @property
    def device_id(self) -> str:
        """This install's id (the prefix of its mutation ids)."""
        return self._store.device_id

    def on(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` with every event; returns a function that removes it."""
        return self._board.on(listener)

    async def rejections(self) -> list[Rejection]:
        """Writes the server refused (they are rolled back locally), oldest first."""
        return await self._store.rejections()

    async def outbox(self) -> list[OutboxEntry]:
        """Writes not yet acknowledged and stable, in write order."""
        return await self._store.outbox()

    async def server_documents(self) -> list[ServerDocument]:
        """Every document as the server last sent it, without pending local writes on top
        (tombstones included, in key order): what the device knows the server holds."""
        return await self._store.server_documents()

    def sync_now(self) -> None:
        """Push and pull at once, cutting short a wait after a failure too: call it when the
        platform reports the network back (no-op without sync)."""
        if self._loop is not None:
            self._loop.retry_now.set()
            self._loop.pull_soon()

    async def refresh(self) -> bool:
        """Sync now ("pull to refresh") and return ``True`` once a sync round that began after
        the call has finished: every write made before the call pushed, the feed pulled to its
        end. Failed rounds are retried as usual, so bound the wait with ``asyncio.timeout``.
        ``False`` at once when no sync runs (paused, or ``sync=False``)."""
        loop = self._loop
        if loop is None:
            return False
        wanted = loop.rounds_started + 1
        self.sync_now()
        async with loop.synced:
            await loop.synced.wait_for(lambda: loop.rounds_done >= wanted)
        return True

    async def wait_synced(self) -> None:
        """Wait until the outbox is empty and the last sync succeeded (bound it with
        ``asyncio.timeout``)."""
        while True:
            if self._board.status.state == "online" and (
                (await self._store.queued_backlog()).pending == 0
            ):
                return
            if self._loop is not None:
                self._loop.wake.set()  # not retry_now: waiting must not defeat the backoff
            changed = asyncio.Event()

            def wake(_event: Event, changed: asyncio.Event = changed) -> None:
                changed.set()

            remove = self.on(wake)
            try:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.5):
                        await changed.wait()
            finally:
                remove()
