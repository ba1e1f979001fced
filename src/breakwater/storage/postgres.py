"""The PostgreSQL store (``postgresql://``): asyncpg, pooled, ``synchronous_commit=on``.

One writer task per node drains whatever requests queued while the previous commit ran and
applies them in one transaction (group commit: many requests, one WAL flush). Every group
commit, of every node on the database, writes under the lock of the one row of ``feed_head``; it
numbers its feed entries after the head it finds there and commits before the next group can
read it (a group read without the lock takes the lock in its one write statement, and writes only
if no row it read changed since, numbered after the head it then finds,
:mod:`breakwater.storage._pg_batch`). So
local positions (``lsn``) and every origin's seqs are allocated in commit order, a reader never
sees a position before a smaller one commits (I3), and two nodes never merge into the same
document from stale reads. docs/adr/0005-postgres-gap-free-feed.md has the reasoning and the
measurements.

URL query parameters (removed before connecting): ``schema`` (default ``breakwater``),
``pool_size`` (default 8) and ``timeout`` (seconds to connect or run one statement, default 10).
Every asyncpg, network or server error becomes :class:`StoreUnavailable`; the pool replaces its
connections after one, so the store recovers by itself when the server is back.

The URL may list several hosts (``postgresql://u@h1:5432,h2:5432/db``, a primary and its
standbys): every connection goes to the one that accepts writes (``target_session_attrs`` is
``read-write`` unless the URL asks for ``primary``), each host tried within ``timeout`` and the
last one that worked first (:mod:`._pg_hosts`), so after a standby is promoted the next
connection finds it, and a server that turned read-only makes the store unavailable instead of
serving from it (:meth:`PostgresStore.ping`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from breakwater.core import codec
from breakwater.core.cursor import VersionVector
from breakwater.core.engine import Change, Engine, MutationResult, StoredDoc
from breakwater.core.errors import ConfigError, CursorExpired, StoreUnavailable
from breakwater.core.mutation import Mutation
from breakwater.core.query import Query, Visible
from breakwater.storage import _pg_schema, _replica, redact_url
from breakwater.storage._pg_batch import Connection, PgWriteBatch
from breakwater.storage._pg_hosts import HostRotation, parse_hosts
from breakwater.storage._pg_query import index_sql, query_sql
from breakwater.storage._phases import mark_phase
from breakwater.storage._rows import (
    DOC_COLUMNS,
    SUMMARY_COLUMNS,
    PageBuilder,
    conflict_of,
    doc_from_row,
    feed_entry,
    feed_page,
    summary_from_row,
)
from breakwater.storage.base import (
    CommitPhases,
    CompactionReport,
    DocSummaries,
    FeedEntry,
    FeedPage,
    Lease,
    QueryPage,
    RecordedConflict,
    Repair,
    ReplicaApplied,
)
from breakwater.storage.hooks import NO_HOOKS, StoreHooks

T = TypeVar("T")
_STOP = object()
DB_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
    TimeoutError,
)
"""What a call into asyncpg may raise when the server, the network or the query fails."""


DEFAULT_SCHEMA = "breakwater"
DEFAULT_POOL_SIZE = 8
DEFAULT_TIMEOUT = 10.0
WRITABLE_TARGETS = ("read-write", "primary")
"""The ``target_session_attrs`` a store accepts: it writes, so it must never settle on a standby."""


@dataclass(frozen=True, slots=True)
class PostgresSettings:
    """Where and how to connect, parsed from the store URL."""

    dsn: str
    schema: str = DEFAULT_SCHEMA
    pool_size: int = DEFAULT_POOL_SIZE
    timeout: float = DEFAULT_TIMEOUT

    @classmethod
    def from_url(cls, url: str) -> PostgresSettings:
        """Split Breakwater's own query parameters off ``url``; a bad one is a ConfigError."""
        parts = urlsplit(url)
        ours: dict[str, str] = {}
        theirs: list[tuple[str, str]] = []
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            if key in ("schema", "pool_size", "timeout"):
                ours[key] = value
            else:
                theirs.append((key, value))
        shown = redact_url(url)
        targets = [value for key, value in theirs if key == "target_session_attrs"]
        if not targets:
            theirs.append(("target_session_attrs", "read-write"))
        elif any(target not in WRITABLE_TARGETS for target in targets):
            raise ConfigError(
                f"store URL {shown!r}: target_session_attrs={targets[-1]!r} could connect to a"
                f" standby; the store writes, so it must be one of {list(WRITABLE_TARGETS)}"
            )
        dsn = urlunsplit(parts._replace(query=urlencode(theirs)))
        try:
            parse_hosts(parts.netloc)
        except ValueError:
            raise ConfigError(f"store URL {shown!r}: a host's port is not a number") from None
        schema = ours.get("schema", DEFAULT_SCHEMA)
        if (
            not schema
            or len(schema) > 63
            or not (schema.isascii() and schema.replace("_", "a").isalnum())
        ):
            raise ConfigError(f"store URL {shown!r}: schema={schema!r} must be a plain name")
        try:
            pool_size = int(ours.get("pool_size", DEFAULT_POOL_SIZE))
            timeout = float(ours.get("timeout", DEFAULT_TIMEOUT))
        except ValueError:
            raise ConfigError(
                f"store URL {shown!r}: pool_size must be an integer and timeout a number"
            ) from None
        if not 1 <= pool_size <= 1000 or not 0 < timeout <= 3600:
            raise ConfigError(
                f"store URL {shown!r}: pool_size must be 1..1000 and timeout 0..3600 seconds"
            )
        return cls(dsn, schema, pool_size, timeout)

    def host_rotation(self) -> HostRotation:
        """A connector over the URL's hosts, each tried within ``timeout`` (:mod:`._pg_hosts`)."""
        return HostRotation(parse_hosts(urlsplit(self.dsn).netloc))


@dataclass(slots=True)
class _WriteRequest:
    mutations: Sequence[Mutation]
    future: asyncio.Future[list[MutationResult]]
    phases: CommitPhases | None = None


class Optimism:
    """Whether the next group should be tried without the lock (see :mod:`._pg_batch`).

    Alone on a database, a node's optimistic groups never find the head moved, and save two
    round trips each. Next to other busy nodes most of them would (four in five, measured with
    two nodes pushing batches), and each such try wastes a read and a merge before the group is
    redone under the lock. So the store keeps a moving average of stale tries and goes straight
    to the lock while it is above ``threshold``, trying one group in ``probe_every`` to notice
    when the other writers have gone quiet.
    """

    def __init__(self, threshold: float = 0.5, weight: float = 0.2, probe_every: int = 16) -> None:
        self.threshold = threshold
        self.weight = weight
        self.probe_every = probe_every
        self.stale_rate = 0.0
        self._skipped = 0

    def worth_trying(self) -> bool:
        """Whether to try the next group without the lock."""
        if self.stale_rate < self.threshold or self._skipped + 1 >= self.probe_every:
            self._skipped = 0
            return True
        self._skipped += 1
        return False

    def record(self, *, stale: bool) -> None:
        """The outcome of a try: ``stale`` when the head had moved and the group was redone."""
        self.stale_rate += self.weight * ((1.0 if stale else 0.0) - self.stale_rate)


class PostgresStore:
    """A :class:`~breakwater.storage.base.Store` in one PostgreSQL schema."""

    def __init__(
        self,
        url: str,
        engine: Engine,
        *,
        max_batch: int = 2000,
        hooks: StoreHooks = NO_HOOKS,
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        self.settings = PostgresSettings.from_url(url)
        self.url = redact_url(url)
        self._hosts = self.settings.host_rotation()
        self.engine = engine
        self.hooks = hooks
        self._max_batch = max_batch
        self._clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._pool: asyncpg.Pool | None = None
        self._node_lock: asyncpg.Connection | None = None
        self._claiming = asyncio.Lock()
        self._writer: asyncio.Task[None] | None = None
        self._optimism = Optimism()
        self._closed = False
        self._available: bool | None = None

    # lifecycle -------------------------------------------------------------------------------

    def _server_settings(self) -> dict[str, str]:
        return {
            "synchronous_commit": "on",
            "search_path": _pg_schema.quote_ident(self.settings.schema),
            "application_name": f"breakwater {self.engine.clock.node}",
        }

    async def open(self, *, restored: bool = False) -> None:
        """Connect, migrate, create the configured indexes, claim the node id, start writing."""
        try:
            conn = await self._connect()
            try:
                if restored:
                    await _pg_schema.require_existing(conn, self.settings.schema)
                await _pg_schema.migrate(conn, self.settings.schema)
                async with conn.transaction():
                    await _pg_schema.lock_schema(conn, self.settings.schema)
                    for config in self.engine.collections.values():
                        for name in config.indexes:
                            await conn.execute(index_sql(config.name, name))
                    self.engine.incarnate(await _pg_schema.incarnate(conn, restored))
                # A restarted node must never stamp behind what it already wrote, even if the
                # wall clock went back while it was down.
                newest = await conn.fetchval("SELECT MAX(hlc) FROM origins")
            finally:
                await conn.close()
            if newest:
                self.engine.clock.observe(newest)
            self._pool = await asyncpg.create_pool(
                self.settings.dsn,
                min_size=1,
                max_size=self.settings.pool_size,
                timeout=self.settings.timeout,
                command_timeout=self.settings.timeout,
                server_settings=self._server_settings(),
                reset=_keep_session,
                connect=self._hosts.connect,
            )
            await self._claim_node_id()
        except DB_ERRORS as exc:
            await self._release()
            raise StoreUnavailable(f"cannot open PostgreSQL store {self.url}: {exc}") from exc
        except BaseException:
            await self._release()
            raise
        self._writer = asyncio.create_task(self._writer_loop(), name="bw-pg-writer")

    async def _connect(self) -> asyncpg.Connection:
        return await self._hosts.connect(
            self.settings.dsn,
            timeout=self.settings.timeout,
            command_timeout=self.settings.timeout,
            server_settings=self._server_settings(),
        )

    async def _claim_node_id(self) -> None:
        """Hold a session lock on this node id; refuse to serve while another process has it.

        Two processes with one node id would stamp equal HLCs, which the merge must never see.
        The lock lives as long as its connection; after the connection is lost (a restart of
        the server, a network cut) it is claimed again before the next write.
        """
        if self._node_lock is not None and not self._node_lock.is_closed():
            return
        async with self._claiming:  # the writer and a readiness check may both get here
            if self._node_lock is not None and not self._node_lock.is_closed():
                return
            if self._node_lock is not None:
                self._node_lock.terminate()
                self._node_lock = None
            conn = await self._connect()
            key = f"breakwater-node:{self.settings.schema}:{self.engine.clock.node}"
            try:
                claimed = await conn.fetchval(
                    "SELECT pg_try_advisory_lock(hashtextextended($1, 0))", key
                )
            except BaseException:
                conn.terminate()
                raise
            if not claimed:
                conn.terminate()
                raise ConfigError(
                    f"node id {self.engine.clock.node!r} is already serving on store"
                    f" {self.url}; give every node its own node id (--node, BREAKWATER_NODE)"
                )
            self._node_lock = conn

    @property
    def origin(self) -> str:
        """The origin of this store's own changes (region and incarnation, set by ``open``)."""
        return self.engine.origin

    async def aclose(self) -> None:
        """Commit every queued write, stop the writer and close every connection."""
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            self._queue.put_nowait(_STOP)
            await self._writer
        await self._release()

    async def _release(self) -> None:
        if self._node_lock is not None:
            self._node_lock.terminate()
            self._node_lock = None
        if self._pool is not None:
            try:
                await asyncio.wait_for(self._pool.close(), self.settings.timeout)
            except (TimeoutError, *DB_ERRORS):
                self._pool.terminate()
            self._pool = None

    # availability ----------------------------------------------------------------------------

    def _report(self, available: bool) -> None:
        if available != self._available:
            self._available = available
            self.hooks.on_available(available)

    async def _failed(self, what: str, exc: BaseException) -> StoreUnavailable:
        """Translate ``exc`` and drop pooled connections that may be dead."""
        self._report(False)
        if self._pool is not None:
            await self._pool.expire_connections()
        # The public detail names the kind of failure only: a server's message may quote data.
        error = StoreUnavailable(f"PostgreSQL {what} ({type(exc).__name__})")
        if isinstance(exc, asyncpg.ReadOnlySQLTransactionError):
            error = StoreUnavailable(f"PostgreSQL {what}: the server is read-only (a standby?)")
        elif isinstance(exc, asyncpg.TargetServerAttributeNotMatched):
            error = StoreUnavailable(
                f"PostgreSQL {what}: no listed host accepts writes (a standby awaiting promotion?)"
            )
        error.__cause__ = exc
        return error

    async def _hold_node_id(self) -> None:
        """Claim the node id again if its connection was lost; a taken id is unavailability."""
        try:
            await self._claim_node_id()
        except ConfigError as exc:
            self._report(False)
            raise StoreUnavailable(exc.detail) from exc

    # writes ------------------------------------------------------------------------------------

    async def apply(
        self, mutations: Sequence[Mutation], phases: CommitPhases | None = None
    ) -> list[MutationResult]:
        """Queue ``mutations`` for the next group commit and wait until they are durable."""
        if self._closed or self._writer is None:
            raise StoreUnavailable("the store is closed")
        if not mutations:
            return []
        future: asyncio.Future[list[MutationResult]] = asyncio.get_running_loop().create_future()
        if phases is not None:
            phases.queued = time.time_ns()
        self._queue.put_nowait(_WriteRequest(mutations, future, phases))
        return await future

    async def _writer_loop(self) -> None:
        while True:
            first = await self._queue.get()
            if first is _STOP:
                return
            batch: list[_WriteRequest] = [first]
            count = len(first.mutations)
            stop = False
            while count < self._max_batch and not self._queue.empty():
                item = self._queue.get_nowait()
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
                count += len(item.mutations)
            await self._commit(batch, count)
            if stop:
                return

    async def _commit(self, batch: list[_WriteRequest], count: int) -> None:
        started = time.perf_counter()
        traced = [request.phases for request in batch if request.phases is not None]
        mark_phase(traced, "started", count)
        staged = PgWriteBatch(self._clock_ms())
        outcomes: list[list[MutationResult] | BaseException]
        try:
            assert self._pool is not None
            await self._hold_node_id()
            mutations = [m for request in batch for m in request.mutations]
            async with self._pool.acquire() as conn:
                if self._optimism.worth_trying():
                    # On a snapshot read without the lock: two round trips in all.
                    await staged.prefetch(conn, mutations)
                    outcomes = [self._apply_request(staged, request) for request in batch]
                    mark_phase(traced, "merged")
                    shift = await staged.write_claimed(conn, self.engine.origin)
                    self._optimism.record(stale=shift is None)
                    if shift is not None and shift.seq:
                        outcomes = staged.renumber(outcomes, self.engine.origin, shift)
                    if shift is None:
                        # Another node committed in between: redo the group under the lock.
                        self.hooks.on_commit_retried()
                        staged = PgWriteBatch(staged.now_ms)
                        outcomes = await self._commit_locked(conn, staged, batch, mutations, traced)
                else:
                    outcomes = await self._commit_locked(conn, staged, batch, mutations, traced)
            self._report(True)
        except DB_ERRORS as exc:
            outcomes = [await self._failed("did not commit the write", exc)] * len(batch)
            staged = PgWriteBatch(0)
        except StoreUnavailable as exc:
            outcomes = [exc] * len(batch)
            staged = PgWriteBatch(0)
        except Exception as exc:  # a bug must fail its callers, never stop the writer
            outcomes = [exc] * len(batch)
            staged = PgWriteBatch(0)
        committed_at = time.time()
        mark_phase(traced, "committed")
        self.hooks.on_commit(count, time.perf_counter() - started)
        for conflict in staged.batch.conflicts:
            self.hooks.on_conflict(conflict.change.collection)
        for request, outcome in zip(batch, outcomes, strict=True):
            _resolve(request.future, outcome)
        if staged.touched:
            self.hooks.on_feed_advanced(staged.touched, committed_at)

    async def _commit_locked(
        self,
        conn: Connection,
        staged: PgWriteBatch,
        batch: list[_WriteRequest],
        mutations: list[Mutation],
        traced: list[CommitPhases],
    ) -> list[list[MutationResult] | BaseException]:
        """The group in a transaction holding the feed head's lock: four round trips, but no
        other group can commit between its read and its write."""
        try:
            # BEGIN and the lock share one round trip.
            await conn.execute("BEGIN; SELECT FROM feed_head FOR UPDATE")
            await staged.prefetch(conn, mutations)
            outcomes = [self._apply_request(staged, request) for request in batch]
            mark_phase(traced, "merged")
            await staged.flush(conn)
            await conn.execute("COMMIT")
        except BaseException:
            if not conn.is_closed():
                with contextlib.suppress(*DB_ERRORS):
                    await conn.execute("ROLLBACK")
            raise
        return outcomes

    def _apply_request(
        self, staged: PgWriteBatch, request: _WriteRequest
    ) -> list[MutationResult] | BaseException:
        """Apply one caller's mutations; a bug fails that caller alone, not the batch."""
        try:
            results = [self.engine.apply(staged, mutation) for mutation in request.mutations]
        except Exception as exc:
            staged.discard_request()
            return exc
        staged.keep_request()
        return results

    # reads -------------------------------------------------------------------------------------

    async def _read(self, fn: Callable[[Connection], Awaitable[T]]) -> T:
        """Run ``fn``, one statement (one snapshot), on a pooled connection."""
        if self._closed or self._pool is None:
            raise StoreUnavailable("the store is closed")
        try:
            async with self._pool.acquire() as conn:
                result = await fn(conn)
        except DB_ERRORS as exc:
            raise await self._failed("could not be read", exc) from exc
        self._report(True)
        return result

    async def get(self, collection: str, doc_id: str) -> StoredDoc | None:
        """A document, tombstones included."""

        async def read(conn: Connection) -> StoredDoc | None:
            row = await conn.fetchrow(
                f"SELECT {DOC_COLUMNS} FROM docs WHERE collection = $1 AND id = $2",
                collection,
                doc_id,
            )
            return None if row is None else doc_from_row(row)

        return await self._read(read)

    async def query(self, query: Query, visible: Visible | None = None) -> QueryPage:
        """Live documents matching ``query`` that ``visible`` accepts, keyset-paginated. With
        ``visible``, the rows are fetched through a cursor (one snapshot) until the page is
        complete, ``query.limit + 1`` rows per round trip."""
        sql, params = query_sql(query, limited=visible is None)

        async def read(conn: Connection) -> QueryPage:
            builder = PageBuilder(query, visible)
            if visible is None:
                for row in await conn.fetch(sql, *params):
                    builder.add(row)
                return builder.page()
            async with conn.transaction(readonly=True):
                async for row in conn.cursor(sql, *params, prefetch=query.limit + 1):
                    if not builder.add(row):
                        break
            return builder.page()

        return await self._read(read)

    async def head(self) -> VersionVector:
        """The committed seq of every origin."""

        async def read(conn: Connection) -> VersionVector:
            return {row[0]: row[1] for row in await conn.fetch("SELECT origin, seq FROM origins")}

        return await self._read(read)

    async def pull(
        self,
        vector: VersionVector,
        collections: Sequence[str] | None,
        limit: int,
        include_state: bool = False,
        *,
        urgent: bool = False,
        past_horizon: bool = False,
    ) -> FeedPage:
        """Changes past ``vector`` in commit order, read with the head in one statement (on the
        event loop whether ``urgent`` or not: asyncpg has no thread to skip)."""

        async def read(conn: Connection) -> FeedPage:
            return await _pull(conn, vector, collections, limit, include_state, past_horizon)

        return await self._read(read)

    async def conflicts(self, limit: int, collection: str | None = None) -> list[RecordedConflict]:
        """The most recent conflicts, newest first."""
        where, args = (
            ("WHERE collection = $2", (limit, collection)) if collection else ("", (limit,))
        )

        async def read(conn: Connection) -> list[RecordedConflict]:
            rows = await conn.fetch(
                "SELECT collection, doc_id, mutation_id, origin, seq, fields, winner_hlc, at_ms"
                f" FROM conflicts {where} ORDER BY id DESC LIMIT $1",
                *args,
            )
            return [conflict_of(tuple(row)) for row in rows]

        return await self._read(read)

    async def ping(self) -> None:
        """Check that the server answers and accepts writes, and hold this node's id.

        A pooled connection may outlive its server's role: a primary fenced read-only, or a
        connection made before a failover tool turned the server into a standby. Writes there
        would fail one by one, so the store reports itself unavailable and drops its
        connections; the next ones go to whichever listed host accepts writes.
        """
        try:
            await self._hold_node_id()
        except DB_ERRORS as exc:
            raise await self._failed("is unreachable", exc) from exc
        await self._read(_refuse_read_only)

    # replication (docs/adr/0022-replication.md) ------------------------------------------------

    async def _in_transaction(self, what: str, fn: Callable[[Connection], Awaitable[T]]) -> T:
        """``fn`` in a transaction holding the feed head's lock (between two group commits)."""
        if self._closed or self._pool is None:
            raise StoreUnavailable("the store is closed")
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT lsn FROM feed_head FOR UPDATE")
                return await fn(conn)
        except DB_ERRORS as exc:
            raise await self._failed(what, exc) from exc

    async def apply_replicated(
        self, entries: Sequence[FeedEntry], progress: Mapping[str, object] | None = None
    ) -> ReplicaApplied:
        """Apply a peer's feed entries at their original positions, and write ``progress``
        (replication bookkeeping) in the same durable transaction."""
        _replica.check_entries(entries)

        async def run(conn: Connection) -> ReplicaApplied:
            staged = PgWriteBatch(self._clock_ms())
            await staged.prefetch(conn, [entry.change for entry in entries])
            result = _replica.stage_entries(staged, self.engine, entries)
            await staged.flush(conn)
            await _put_replication(conn, progress or {}, self._clock_ms())
            return result

        result = await self._in_transaction("did not apply replicated changes", run)
        if result.head:
            self.hooks.on_feed_advanced(result.head, time.time())
        return result

    async def apply_repairs(self, repairs: Sequence[Repair]) -> list[StoredDoc]:
        """Join repairs into their documents at new local positions, in one transaction."""

        async def run(conn: Connection) -> tuple[list[StoredDoc], VersionVector]:
            staged = PgWriteBatch(self._clock_ms())
            await staged.prefetch(conn, _replica.repair_changes(self.engine.origin, repairs))
            repaired = _replica.stage_repairs(staged, self.engine, repairs)
            await staged.flush(conn)
            return repaired, staged.touched

        repaired, touched = await self._in_transaction("did not apply repairs", run)
        if touched:
            self.hooks.on_feed_advanced(touched, time.time())
        return repaired

    async def doc_summaries(self, collection: str | None = None) -> DocSummaries:
        """Every document's summary (of ``collection``) and the head, in one snapshot."""

        async def read(conn: Connection) -> DocSummaries:
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                head = {
                    row[0]: row[1] for row in await conn.fetch("SELECT origin, seq FROM origins")
                }
                rows = await conn.fetch(
                    f"SELECT {SUMMARY_COLUMNS} FROM docs"
                    " WHERE $1::text IS NULL OR collection = $1 ORDER BY collection, id",
                    collection,
                )
            return DocSummaries(head, [summary_from_row(row) for row in rows])

        return await self._read(read)

    async def replication_state(self) -> dict[str, Any]:
        """Every replication bookkeeping value by key (region state, peers, leases, stable)."""

        async def read(conn: Connection) -> dict[str, Any]:
            rows = await conn.fetch("SELECT key, value FROM replication")
            return {row[0]: codec.loads(row[1]) for row in rows}

        return await self._read(read)

    async def put_replication_state(
        self, writes: Mapping[str, object], *, only_new: bool = False
    ) -> None:
        """Write replication bookkeeping values (``only_new``: keep values already there)."""

        async def run(conn: Connection) -> None:
            await _put_replication(conn, writes, self._clock_ms(), only_new=only_new)

        await self._in_transaction("did not write replication state", run)

    async def take_lease(self, name: str, holder: str, ttl_ms: int) -> bool:
        """Take or renew lease ``name`` for ``holder`` unless another holder's is still live."""

        async def run(conn: Connection) -> bool:
            now = self._clock_ms()
            value = await conn.fetchval(
                "SELECT value FROM replication WHERE key = $1", f"lease:{name}"
            )
            lease = Lease.parse(None if value is None else codec.loads(value))
            if not lease.free_for(holder, now):
                return False
            await _put_replication(conn, {f"lease:{name}": Lease(holder, now + ttl_ms).dump()}, now)
            return True

        return await self._in_transaction("did not take the lease", run)

    async def compact(self, horizon_ms: int, now_ms: int | None = None) -> CompactionReport:
        """Apply the retention horizon in one transaction, between two group commits."""
        if self._closed or self._pool is None:
            raise StoreUnavailable("the store is closed")
        cutoff = (self._clock_ms() if now_ms is None else now_ms) - horizon_ms
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT lsn FROM feed_head FOR UPDATE")
                return await _compact(conn, cutoff)
        except DB_ERRORS as exc:
            raise await self._failed("compaction failed", exc) from exc


async def _put_replication(
    conn: Connection, writes: Mapping[str, object], now_ms: int, *, only_new: bool = False
) -> None:
    if not writes:
        return
    action = (
        "NOTHING"
        if only_new
        else ("UPDATE SET value = excluded.value, updated_ms = excluded.updated_ms")
    )
    await conn.executemany(
        "INSERT INTO replication (key, value, updated_ms) VALUES ($1, $2, $3)"
        f" ON CONFLICT (key) DO {action}",
        [(key, codec.dumps(value).decode(), now_ms) for key, value in writes.items()],
    )


async def _refuse_read_only(conn: Connection) -> None:
    """Fail as a write would where the server refuses writes (a standby, or a primary fenced
    with ``default_transaction_read_only``)."""
    if await conn.fetchval(
        "SELECT pg_is_in_recovery() OR current_setting('transaction_read_only') = 'on'"
    ):
        raise asyncpg.ReadOnlySQLTransactionError("the server accepts no writes")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Skip asyncpg's reset query when a connection returns to the pool (a round trip per use).

    The store never changes session state on pooled connections (no SET, LISTEN, cursors or
    session locks); an open transaction is still rolled back by the pool itself.
    """


def _resolve(
    future: asyncio.Future[list[MutationResult]], outcome: list[MutationResult] | BaseException
) -> None:
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


_PULL = (
    # One statement is one snapshot: the head (every origin's seq and low-water mark) and the
    # page are read together, in one round trip. Per origin lsn order is seq order, so the scan
    # starts after the oldest position that every origin's cursor covers (0 if the cursor
    # misses an origin), found with one probe of the (origin, seq) index per origin.
    "WITH head AS (SELECT origin, seq, low_water FROM origins),"
    " seen AS (SELECT * FROM unnest($1::text[], $2::bigint[]) AS v(o, s)),"
    " start AS (SELECT CASE WHEN EXISTS (SELECT FROM head) AND NOT EXISTS (SELECT FROM head h"
    " WHERE NOT EXISTS (SELECT FROM seen WHERE seen.o = h.origin AND seen.s > 0))"
    " THEN (SELECT MIN(COALESCE((SELECT c.lsn FROM changes c WHERE c.origin = h.origin"
    " AND c.seq <= seen.s ORDER BY c.seq DESC LIMIT 1), 0)) FROM head h"
    " JOIN seen ON seen.o = h.origin) ELSE 0 END AS lsn)"
    " SELECT * FROM (SELECT 0 AS part, 0::bigint AS lsn, origin, seq, low_water,"
    " NULL::text AS collection, NULL::text AS doc_id, NULL::text AS mutation_id,"
    " NULL::text AS hlc, NULL::text AS op, NULL::text AS data, NULL::text AS version,"
    " NULL::text AS state, NULL::bigint AS at_ms, NULL::boolean AS current FROM head"
    " UNION ALL (SELECT 1, c.lsn, c.origin, c.seq, 0, c.collection, c.doc_id, c.mutation_id,"
    " c.hlc, c.op, d.data, d.version, CASE WHEN $5::boolean THEN d.state END,"
    " CASE WHEN $5::boolean THEN c.at_ms END, CASE WHEN $5::boolean THEN d.lsn = c.lsn END"
    " FROM changes c JOIN docs d ON d.collection = c.collection AND d.id = c.doc_id"
    " WHERE c.lsn > (SELECT lsn FROM start)"
    " AND NOT EXISTS (SELECT FROM seen WHERE c.origin = seen.o AND c.seq <= seen.s)"
    " AND ($3::text[] IS NULL OR c.collection = ANY($3::text[]))"
    " ORDER BY c.lsn LIMIT $4)) AS page ORDER BY part, lsn"
)


async def _pull(
    conn: Connection,
    vector: VersionVector,
    collections: Sequence[str] | None,
    limit: int,
    include_state: bool,
    past_horizon: bool = False,
) -> FeedPage:
    rows = await conn.fetch(
        _PULL,
        list(vector),
        list(vector.values()),
        list(collections) if collections else None,
        limit + 1,
        include_state,
    )
    head: VersionVector = {}
    changes = []
    for row in rows:
        if row[0] == 0:
            head[row[2]] = row[3]
            # The empty cursor (full sync) is always valid.
            expired = vector and row[4] > 0 and vector.get(row[2], 0) < row[4]
            if expired and not past_horizon:
                raise CursorExpired(
                    "the cursor is older than the retention horizon; resync from an empty cursor"
                )
        else:
            changes.append(row)
    has_more = len(changes) > limit
    entries = [
        feed_entry(
            Change(row[2], row[3], row[5], row[6], row[7], row[8], row[9]),
            row[10],
            row[11],
            row[12] if include_state else None,
            row[13],
            row[14],
        )
        for row in changes[:limit]
    ]
    return feed_page(vector, entries, has_more, head)


async def _compact(conn: Connection, cutoff_ms: int) -> CompactionReport:
    """Remove what the retention horizon lets go, and raise low-water marks to match."""
    purge = await conn.fetch(
        "SELECT d.collection, d.id FROM docs d JOIN changes c ON c.lsn = d.lsn"
        " WHERE d.deleted AND c.at_ms < $1",
        cutoff_ms,
    )
    removed = await conn.fetch(
        "DELETE FROM changes WHERE at_ms < $1 AND NOT EXISTS (SELECT 1 FROM docs d"
        " WHERE d.collection = changes.collection AND d.id = changes.doc_id"
        " AND d.lsn = changes.lsn AND NOT d.deleted) RETURNING origin, seq",
        cutoff_ms,
    )
    await conn.execute(
        "DELETE FROM docs USING unnest($1::text[], $2::text[]) AS p(c, i)"
        " WHERE collection = p.c AND id = p.i",
        [row[0] for row in purge],
        [row[1] for row in purge],
    )
    low_water: VersionVector = {}
    for origin, seq in removed:
        low_water[origin] = max(low_water.get(origin, 0), seq)
    for origin, seq in low_water.items():
        await conn.execute(
            "UPDATE origins SET low_water = GREATEST(low_water, $1) WHERE origin = $2",
            seq,
            origin,
        )
    return CompactionReport(len(removed), len(purge), low_water)
