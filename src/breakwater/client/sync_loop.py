"""The background sync: push the outbox, pull the feed, then wait for a local write or a change.

One iteration on the chosen endpoint:

1. push unsent outbox entries in batches: over the realtime WebSocket when it is open (a
   ``push`` message), else, or when it drops before the answer, ``POST /v1/sync/push``
   (:mod:`.socket_push`); acknowledged entries keep
   their ``(origin, seq)`` and stay queued; rejected ones leave the outbox and roll back;
   a ``clock_skew`` refusal corrects the device clock, re-stamps and pushes again; an
   acknowledgement that carries the document's state and follows the cursor without a gap is
   taken in as its pull would be (so a stable write settles at once) and told as a page
   (:class:`PageApplied`), like a pulled one;
2. when a pull is due, pull pages (``GET /v1/sync/pull``, with states, of the device's scope)
   until ``has_more`` is false; each page commits with its cursor, and entries acknowledged,
   stable and pulled (or behind the cursor: out of scope, they never arrive) leave the outbox;
   ``cursor_expired`` and ``cursor_unknown`` start a full resync that keeps the outbox.
   A pull is due on the first round, after a failure, at ``poll_interval``, on ``sync_now``,
   when realtime heard of changes past the cursor, and while the outbox holds entries (not yet
   stable, or not taken in): a round that only pushed writes it settled pulls nothing, and the
   realtime echo of the device's own change is behind the cursor already (no pull);
3. wait until a local write or the realtime ladder wakes it (or ``poll_interval`` passes).

A push refused as unavailable (a node whose store refuses writes) still lets the pull run, so
other devices' changes keep arriving while the device's own writes wait.

Failures mark the endpoint in the pool (circuit breaker, failover) and wait with exponential
backoff and full jitter before the next iteration. With another region in the pool, every
request of the loop waits at most the pool's ``patience`` (a silent region fails over in about a
second, ADR 0038).

Region routing (docs/protocol.md#region-routing-every-sdk): before the first choice every
endpoint is probed once (a new device starts in the nearest region); a prober task probes the
other regions every ``region_probe_interval`` and re-reads the directory (``GET /v1/regions``)
every ``ttl``, and wakes the loop when the pool has a better region to move to. Switching to an
endpoint costs no round trip before the push: a probe answer younger than
``region_probe_interval`` stands for its health check, and the new endpoint's directory is read
beside the first sync (ADR 0049).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import httpx

from breakwater.client.endpoints import Endpoint, EndpointPool
from breakwater.client.errors import EndpointUnavailable, is_permanent_input_error
from breakwater.client.events import (
    MutationRejected,
    MutationsAcknowledged,
    PageApplied,
    ResyncStarted,
    SyncProgress,
)
from breakwater.client.local_store import Backlog, LocalStore, PageResult
from breakwater.client.node_api import HeadersProvider, NodeApi
from breakwater.client.outbox import OutboxEntry
from breakwater.client.scope import Scope, scope_param
from breakwater.client.socket_push import SocketGone, SocketPush
from breakwater.client.status import StatusBoard
from breakwater.client.transports import StreamContext, Transport, TransportLadder
from breakwater.client.transports.base import is_ahead
from breakwater.core.errors import (
    BreakwaterError,
    ClockSkew,
    CursorGone,
    CursorUnknown,
    Forbidden,
    PayloadTooLarge,
    Unauthorized,
)
from breakwater.resilience import Backoff
from breakwater.resilience.tasks import stop

log = logging.getLogger("breakwater.client")

MAX_RESTAMPS_PER_PUSH = 3
SOCKET_PUSH_TIMEOUT = 10.0
"""Seconds a push over the socket waits for its answer when nothing else bounds it."""
DEFAULT_DIRECTORY_TTL = 30.0


@dataclass(frozen=True)
class SyncSettings:
    """Tuning knobs of the sync loop (the Client's keyword arguments); ``collections`` is the
    scope pulls and streams ask for (``None``: every collection)."""

    push_batch: int = 500
    pull_limit: int = 1000
    poll_interval: float = 30.0
    climb_back_after: float = 300.0
    backoff_base: float = 0.2
    backoff_cap: float = 30.0
    collections: Scope = None
    offer_after_restore: bool = True
    region_probe_interval: float = 5.0
    probe_timeout: float = 2.0


class SyncLoop:
    """Runs until cancelled; owns the endpoint pool, the transport ladder and the status."""

    def __init__(
        self,
        store: LocalStore,
        pool: EndpointPool,
        http: httpx.AsyncClient,
        board: StatusBoard,
        transports: Sequence[Transport],
        on_changed: Callable[[frozenset[str]], None],
        settings: SyncSettings,
        headers: HeadersProvider | None = None,
    ) -> None:
        self.store = store
        self.pool = pool
        self.http = http
        self.board = board
        self.settings = settings
        self.headers = headers
        self.wake = asyncio.Event()
        self.retry_now = asyncio.Event()
        self.synced = asyncio.Condition()
        self.rounds_started = 0
        self.rounds_done = 0
        """Sync rounds begun, and the number of the last that finished (both from 1)."""
        self._on_changed = on_changed
        self._transports = list(transports)
        self._backoff = Backoff(settings.backoff_base, settings.backoff_cap)
        self._ladder_task: asyncio.Task[None] | None = None
        self._prober_task: asyncio.Task[None] | None = None
        self._directory_task: asyncio.Task[None] | None = None
        self._directory_ttl = DEFAULT_DIRECTORY_TTL
        self._directory_read_at = -math.inf
        self._endpoint: Endpoint | None = None
        self._push_batch = settings.push_batch
        self._pull_due = True
        self._heard = ""
        """The newest cursor realtime reported (a pull is due while it is ahead)."""
        self._socket = SocketPush()
        """The realtime WebSocket of the endpoint in use, when open: pushes go there."""
        self._pushing = False
        """Whether a round is pushing (realtime notices then do not wake the loop)."""

    # -- the loop -------------------------------------------------------------------------

    async def run(self) -> None:
        """Sync forever (cancel the task to stop)."""
        try:
            if len(list(self.pool.regions())) > 1:
                await self._probe(self.pool.unmeasured())
            self._prober_task = asyncio.create_task(self._probe_regions())
            while True:
                endpoint = self.pool.choose()
                if endpoint is None:
                    self.board.update(state="offline")
                    if await self._backoff_sleep(max(self.pool.retry_in(), 0.05)):
                        self.pool.probe_now()  # sync_now: the app says the network is back
                    continue
                api = NodeApi(
                    self.http, endpoint.url, self.headers, partial(self.pool.patience, endpoint)
                )
                self.wake.clear()
                # Cleared before the attempt, not before the wait after it: a sync_now that
                # arrives while a request hangs on a dead link cuts the following wait short.
                self.retry_now.clear()
                switching = endpoint is not self._endpoint
                try:
                    if switching:
                        # Health before switching (a draining or unready node answers 503),
                        # unless a probe just said so; then a failure of the first round on
                        # it counts as the failed check (opens its breaker at once).
                        if not self.pool.vouched_for(endpoint, self.settings.region_probe_interval):
                            self.pool.succeeded(endpoint, await api.ready())
                            switching = False
                        await self._use(endpoint)
                    await self._sync_once(api)
                except (EndpointUnavailable, httpx.HTTPError) as exc:
                    self._pull_due = True
                    if isinstance(exc, EndpointUnavailable) and exc.extra.get("problem") in (
                        "region_standby",
                    ):
                        self.pool.region_states[endpoint.region] = "standby"
                    # Fail over at the first timeout or refusal when another region is known
                    # healthy: a breaker's threshold of failures costs a timeout each.
                    trip = switching or self.pool.healthy_elsewhere(endpoint)
                    waited = getattr(exc, "extra", {}).get("waited")
                    self.pool.failed(endpoint, health_check=trip, waited=waited)
                    self.board.update(state="offline", last_error=str(exc))
                    if self.pool.current is None and self.pool.has_alternative():
                        continue  # fail over now: the next endpoint has not failed
                    delay = getattr(exc, "retry_after", None) or self._backoff.next_delay()
                    await self._backoff_sleep(delay)
                    continue
                except Exception as exc:
                    self._pull_due = True
                    # A refusal the loop cannot act on (e.g. 401 before the token hook has a
                    # token) or a malformed answer: report it, back off, never stop syncing.
                    log.warning(
                        "sync failed: %s", exc, exc_info=not isinstance(exc, BreakwaterError)
                    )
                    self.board.update(last_error=f"{type(exc).__name__}: {exc}")
                    await self._backoff_sleep(self._backoff.next_delay())
                    continue
                self.pool.succeeded(endpoint, api.last_latency)
                self._backoff.reset()
                await self._sleep_or_wake(self.settings.poll_interval)
        finally:
            for task in (self._ladder_task, self._prober_task, self._directory_task):
                if task is not None:
                    task.cancel()  # all at once: a second cancellation below leaves none running
            await self._stop_ladder()
            await stop(self._prober_task)
            await stop(self._directory_task)

    # -- region routing -------------------------------------------------------------------

    async def _probe(self, endpoints: Sequence[Endpoint]) -> None:
        """``GET /readyz`` on each of ``endpoints`` at once, each bounded by
        ``probe_timeout``: successes feed latency and streaks, failures the breakers."""

        async def probe(endpoint: Endpoint) -> None:
            if not endpoint.breaker.allow():
                return
            try:
                async with asyncio.timeout(self.settings.probe_timeout):
                    latency = await NodeApi(self.http, endpoint.url).ready()
            except (EndpointUnavailable, httpx.HTTPError, TimeoutError, BreakwaterError):
                self.pool.failed(endpoint)
                return
            except Exception:
                # Not a failure a probe expects (on uvloop, a reset as the connection is made
                # surfaces from inside httpx as an AttributeError): still a failed probe, and
                # the prober must go on, or the device never moves back to its region.
                log.warning("region probe of %s failed", endpoint.url, exc_info=True)
                self.pool.failed(endpoint)
                return
            self.pool.succeeded(endpoint, latency)

        await asyncio.gather(*(probe(endpoint) for endpoint in endpoints))

    async def _probe_regions(self) -> None:
        """Probe the other regions and re-read the directory, forever; wake the loop when
        the pool would move (home again after a failover, or a region that became nearer)."""
        while True:
            await asyncio.sleep(self.settings.region_probe_interval)
            endpoint = self._endpoint
            loop = asyncio.get_running_loop()
            if endpoint is not None and loop.time() - self._directory_read_at > self._directory_ttl:
                await self._learn(NodeApi(self.http, endpoint.url))
            await self._probe(self.pool.to_probe())
            if self.pool.better_region() is not None:
                self.wake.set()

    def _read_directory(self, endpoint: Endpoint) -> None:
        """Re-read the region directory from ``endpoint`` beside the sync, not before it: a
        device failing over pushes to its new region at once (the directory only refines
        routing; the prober re-reads it every ``ttl`` anyway)."""
        if self._directory_task is not None:
            self._directory_task.cancel()  # of the endpoint left: its answer is not needed
        self._directory_task = asyncio.create_task(self._learn(NodeApi(self.http, endpoint.url)))

    async def _learn(self, api: NodeApi) -> None:
        """Read the deployment's region directory from ``api``'s node (older nodes lack it:
        then the app's configuration is all the SDK knows)."""
        self._directory_read_at = asyncio.get_running_loop().time()
        try:
            async with asyncio.timeout(self.settings.probe_timeout):
                directory = await api.regions()
        except (EndpointUnavailable, httpx.HTTPError, TimeoutError, BreakwaterError) as exc:
            log.debug("no region directory from %s: %s", api.base_url, exc)
            return
        except Exception:  # as in a probe: the prober that reads it must go on
            log.warning("reading the region directory from %s failed", api.base_url, exc_info=True)
            return
        ttl = directory.get("ttl")
        if isinstance(ttl, int | float) and ttl > 0:
            self._directory_ttl = float(ttl)
        added = self.pool.learn(directory)
        if added:
            log.info("learned endpoints %s", [e.url for e in added])

    async def _sleep_or_wake(self, seconds: float) -> None:
        """Wait up to ``seconds`` for a local write or a realtime notice (a pull is due when
        the wait ran out: the fallback when realtime missed something)."""
        try:
            async with asyncio.timeout(seconds):
                await self.wake.wait()
        except TimeoutError:
            self._pull_due = True

    def pull_soon(self) -> None:
        """Make the next round pull (``sync_now``, ``refresh``) and start it."""
        self._pull_due = True
        self.wake.set()

    async def _backoff_sleep(self, seconds: float) -> bool:
        """Wait after a failure; whether ``sync_now`` cut the wait short. New local writes do
        not, ``sync_now`` does (the app calls it when the OS reports the network back), also
        one made during the attempt that failed."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.retry_now.wait()
                return True
        return False

    async def _use(self, endpoint: Endpoint) -> None:
        """Switch to ``endpoint``: re-push unstable acks (I2 makes it safe), restart realtime."""
        if await self.store.use_endpoint(endpoint.url):
            log.info("now on %s: pushing unsettled acknowledged writes again", endpoint.url)
        self._endpoint = endpoint
        self._pull_due = True
        self._read_directory(endpoint)
        await self._stop_ladder()
        self.board.update(endpoint=endpoint.url)
        ladder = TransportLadder(
            self._transports,
            self.settings.climb_back_after,
            on_transport=lambda name: self.board.update(transport=name),
            on_expired=self.pull_soon,
            on_unavailable=self.pull_soon,  # the stream's node failed: check it (failover)
        )
        self._socket = SocketPush()
        context = StreamContext(
            endpoint.url,
            self.http,
            self.headers,
            lambda: self.store.cursor,
            self._notified,
            collections=self.settings.collections,
            socket=self._socket,
            heard=self._heard_of,
        )
        self._ladder_task = asyncio.create_task(ladder.run(context))

    async def _stop_ladder(self) -> None:
        """Stop realtime and wait until it has: also from :meth:`_use`, where a cancellation
        of this sync (``pause``, ``aclose``) must end it, not be taken for the ladder's."""
        await stop(self._ladder_task)
        self._ladder_task = None

    async def _notified(self, cursor: str) -> None:
        """A transport saw changes up to ``cursor``: tell the loop (:meth:`_heard_of`) and wait
        until they are pulled (SSE and long-poll read on only then)."""
        if not self._heard_of(cursor):
            return
        async with self.synced:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.poll_interval):
                    await self.synced.wait_for(lambda: not is_ahead(cursor, self.store.cursor))

    def _heard_of(self, cursor: str) -> bool:
        """Realtime saw changes up to ``cursor``: note it and wake the loop, without waiting
        (the WebSocket that carries pushes calls this directly); whether they were news.

        Nothing is done for a cursor the device holds already (the echo of its own change
        after the push answer was recorded), and while a round pushes the loop is not woken:
        that round decides after the push whether a pull is due (the echo of the device's own
        change, which usually arrives before the push's answer, is covered by then), and a
        notice would only cost another round."""
        if not is_ahead(cursor, self.store.cursor):
            return False
        self._heard = cursor
        if not self._pushing:
            self.wake.set()
        return True

    async def _sync_once(self, api: NodeApi) -> None:
        self.rounds_started += 1
        this_round = self.rounds_started
        backlog = self.store.backlog
        if backlog.pending or self.board.status.state == "offline":
            # A pull on a realtime notice while online is not shown as "syncing" (no flicker).
            self.board.update(state="syncing", pending=backlog.pending)
        push_failed: EndpointUnavailable | None = None
        self._pushing = True
        try:
            if backlog.unsent:
                await self._push_all(api)
                backlog = self.store.backlog
        except EndpointUnavailable as exc:
            push_failed = exc  # a node that refuses writes may still serve reads (I8): pull
            self._pull_due = True
        finally:
            self._pushing = False
        if self._pull_wanted(backlog):
            self._pull_due = False
            await self._pull_all(api)
            backlog = self.store.backlog
        if push_failed is not None:
            raise push_failed
        self.board.update(
            state="syncing" if backlog.unsent else "online",
            pending=backlog.pending,
            last_error=None,
            last_synced_at=self.store.last_synced_at,
        )
        if backlog.unsent or (self._heard and is_ahead(self._heard, self.store.cursor)):
            # Written, or heard of, while this iteration ran: go again at once.
            self.wake.set()
        async with self.synced:
            self.rounds_done = this_round
            self.synced.notify_all()

    def _pull_wanted(self, backlog: Backlog) -> bool:
        """Whether this round pulls: see the module docstring."""
        heard = bool(self._heard) and is_ahead(self._heard, self.store.cursor)
        return self._pull_due or heard or backlog.acknowledged > 0

    # -- push -----------------------------------------------------------------------------

    async def _push_all(self, api: NodeApi) -> None:
        restamps = 0
        while True:
            batch = await self.store.unsent(self._push_batch)
            if not batch:
                return
            try:
                answer = await self._push(api, [e.to_wire() for e in batch])
            except ClockSkew as exc:
                restamps += 1
                if restamps > MAX_RESTAMPS_PER_PUSH:
                    raise EndpointUnavailable(f"clock skew persists: {exc.detail}") from exc
                count = await self.store.restamp(str(exc.extra["hlc"]))
                log.info("clock skew: re-stamped %d pending mutations", count)
                continue
            except PayloadTooLarge as exc:
                if "index" not in exc.extra and self._push_batch > 1:
                    self._push_batch = max(1, self._push_batch // 2)
                    continue
                await self._reject(batch, exc)
                continue
            except Forbidden as exc:
                if not isinstance(exc.extra.get("index"), int):
                    raise  # the push as a whole (e.g. MFA required): the writes stay queued
                # A mutation on a collection the user may not write: re-sending never helps.
                await self._reject(batch, exc)
                continue
            except BreakwaterError as exc:
                if not is_permanent_input_error(exc):
                    raise
                await self._reject(batch, exc)
                continue
            await self._record(answer, batch, api.base_url)
            if len(batch) < self._push_batch:
                return  # the outbox is pushed; the round's end sees writes made meanwhile

    async def _push(self, api: NodeApi, mutations: list[dict[str, Any]]) -> dict[str, Any]:
        """Push over the open realtime WebSocket, or over HTTP when there is none or it gives
        no answer (the same mutation ids: a repeat is applied once). A push the socket's
        token no longer covers goes over HTTP too, where a 401 renews the token and retries."""
        if self._socket.open:
            patience = self.pool.patience(self._endpoint) if self._endpoint else None
            timeout = patience or self.http.timeout.read or SOCKET_PUSH_TIMEOUT
            try:
                return await self._socket.push(mutations, timeout)
            except (SocketGone, Unauthorized) as exc:
                log.info("push over HTTP: %s", exc)
        return await api.push(mutations)

    async def _reject(self, batch: Sequence[Any], exc: BreakwaterError) -> None:
        """A whole push was refused for input: reject the mutation it names (or the first)."""
        index = exc.extra.get("index")
        entry = batch[index if isinstance(index, int) and 0 <= index < len(batch) else 0]
        await self._rejected([(entry.mutation_id, exc.to_problem())])

    async def _record(
        self, answer: dict[str, Any], batch: Sequence[OutboxEntry], endpoint: str
    ) -> None:
        acks: list[tuple[str, str, int]] = []
        duplicates: set[str] = set()
        refused: list[tuple[str, dict[str, Any]]] = []
        for result in answer["results"]:
            if result["status"] in ("applied", "duplicate"):
                acks.append((result["mutation_id"], result["origin"], int(result["seq"])))
                if result["status"] == "duplicate":
                    duplicates.add(result["mutation_id"])
            else:
                refused.append((result["mutation_id"], result["error"]))
        if answer.get("hlc"):
            self.store.clock.observe(answer["hlc"])
        if acks:
            # Told before the device records it, so that a sync stopped in between (pause,
            # close) cannot hide an acknowledgement the node gave.
            pushed = {entry.mutation_id: entry for entry in batch}
            entries = tuple(
                dataclasses.replace(pushed[mid], origin=origin, seq=seq)
                for mid, origin, seq in acks
                if mid in pushed
            )
            self.board.emit(MutationsAcknowledged(entries, frozenset(duplicates), endpoint))
        states = {r["mutation_id"]: r["state"] for r in answer["results"] if "state" in r}
        derive = frozenset(
            r["mutation_id"]
            for r in answer["results"]
            if answer.get("derive") and r["status"] == "applied" and "state" not in r
        )
        stable = answer.get("stable")
        await self.store.record_acks(
            acks,
            states,
            stable if isinstance(stable, dict) else None,
            derive,
            committed=self._page_committed,
        )
        if refused:
            await self._rejected(refused)

    async def _rejected(self, refused: list[tuple[str, dict[str, Any]]]) -> None:
        rejections = await self.store.reject(refused)
        self._on_changed(frozenset(r.collection for r in rejections))
        for rejection in rejections:
            self.board.emit(MutationRejected(rejection))

    # -- pull -----------------------------------------------------------------------------

    def _page_committed(self, result: PageResult | None) -> None:
        """Tell the listeners of a page that committed (``None``: nothing was taken in): a
        store call that commits a page (pulled, or taken from a push answer) calls this once
        it has, on the loop.

        The page commits in the store's thread even when this sync is stopped meanwhile
        (pause, close): its listeners are told when it commits, not only if this task lives to
        see it, or live queries and PageApplied would miss a committed page (and the chaos
        checker would judge the device's copy against a cursor it never heard of)."""
        if result is None:
            return
        self.board.emit(PageApplied(result.cursor, result.documents, result.resynced))
        if result.collections:
            self._on_changed(result.collections)

    async def _pull_all(self, api: NodeApi) -> None:
        changes = pages = 0
        while True:
            try:
                page = await api.pull(
                    self.store.cursor,
                    self.settings.pull_limit,
                    collections=scope_param(self.settings.collections),
                )
            except CursorGone as gone:
                log.warning("%s: full resync (the outbox is kept)", gone.type)
                restored = isinstance(gone, CursorUnknown) and self.settings.offer_after_restore
                await self.store.begin_resync(offer=restored)
                self.board.emit(ResyncStarted(gone.type))
                continue
            has_more = bool(page["has_more"])
            await self.store.apply_page(
                page["changes"],
                page["cursor"],
                page.get("stable", {}),
                done=not has_more,
                committed=self._page_committed,
            )
            if page.get("hlc"):
                self.store.clock.observe(page["hlc"])
            changes += len(page["changes"])
            pages += 1
            if page["changes"] or has_more:
                self.board.emit(SyncProgress(changes, pages, has_more))
            if not has_more:
                return
