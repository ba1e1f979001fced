"""The embedded SQLite store: WAL, ``synchronous=FULL``, one writer thread with group commit.

Every write goes through one thread that drains whatever requests have queued while the previous
fsync ran and applies them in a single transaction: many requests, one fsync (I1 without trading
durability for speed). Because one thread (and, across processes, SQLite's write lock) serialises
every transaction, seqs are allocated in commit order and a reader can never see a seq before a
smaller one of the same origin (I3). Reads run on a small pool of reader threads, each with its own
connection, which WAL lets proceed while the writer commits.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from breakwater.core import codec
from breakwater.core.cursor import VersionVector
from breakwater.core.engine import Change, Engine, MutationResult, StoredDoc
from breakwater.core.errors import CursorExpired, StoreUnavailable
from breakwater.core.mutation import Mutation, check_collection
from breakwater.core.query import OPERATORS, Query, Scalar, Visible
from breakwater.core.sqlite_wal import enable_wal
from breakwater.storage import _bodies, _replica, _sqlite_schema
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
from breakwater.storage._sqlite_batch import WriteBatch
from breakwater.storage._sqlite_lock import WriterLock
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


PAGE_BYTES = 8192
"""Page size of a new store file. Documents of about 1 KB leave a fifth of 4 KB pages empty
(three rows fit, not four); 8 KB pages pack them to within a few percent (``bench disk``,
ADR 0044). A store created with other pages keeps them: SQLite reads either."""


def connect(path: str | Path) -> sqlite3.Connection:
    """A connection with the store's settings: WAL, ``synchronous=FULL``, a 30 s busy wait,
    and the SQL function that reads stored bodies (:data:`_bodies.BODY_SQL`)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA busy_timeout = 30000")
    conn.execute(f"PRAGMA page_size = {PAGE_BYTES}")  # a new file only: WAL fixes it after
    enable_wal(conn)
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA cache_size = -32000")
    conn.execute("PRAGMA temp_store = MEMORY")
    _bodies.register(conn)
    return conn


_Answer = tuple[asyncio.Future[list[MutationResult]], list[MutationResult] | BaseException]
"""A write request's future and what to resolve it with."""


@dataclass(slots=True)
class _WriteRequest:
    mutations: Sequence[Mutation]
    future: asyncio.Future[list[MutationResult]]
    loop: asyncio.AbstractEventLoop
    phases: CommitPhases | None = None


@dataclass(slots=True)
class _OwnTransaction:
    """Work that needs a write transaction of its own on the writer's connection (replicated
    batches, replication bookkeeping): ``run`` returns its answer and the origins it advanced."""

    run: Callable[[sqlite3.Connection], tuple[Any, VersionVector]]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


class SqliteStore:
    """A :class:`~breakwater.storage.base.Store` in one SQLite file (``sqlite:///path``)."""

    def __init__(
        self,
        path: str | Path,
        engine: Engine,
        *,
        readers: int = 2,
        max_batch: int = 2000,
        hooks: StoreHooks = NO_HOOKS,
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        self.path = str(path)
        self.engine = engine
        self.hooks = hooks
        self._max_batch = max_batch
        self._clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._writer_lock = WriterLock(":memory:")
        self._readers = ThreadPoolExecutor(max_workers=readers, thread_name_prefix="bw-read")
        self._local = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._available: bool | None = None

    # lifecycle -------------------------------------------------------------------------------

    async def open(self, *, restored: bool = False) -> None:
        """Create the file, migrate, create the configured indexes and start the writer."""
        self._loop = asyncio.get_running_loop()
        if restored:
            _sqlite_schema.require_existing(self.path)
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._writer_lock = WriterLock(self.path)
            # Processes opening one new file at once turn it to WAL and migrate it once: SQLite
            # answers "locked" at once, without waiting, to a second journal-mode change.
            with self._writer_lock:
                conn = connect(self.path)
                _sqlite_schema.migrate(conn)
                self._create_indexes(conn)
                self.engine.incarnate(_sqlite_schema.incarnate(conn, restored))
            # A restarted node must never stamp behind what it already wrote, even if the
            # wall clock went back while it was down.
            newest = conn.execute("SELECT MAX(hlc) FROM origins").fetchone()[0]
            if newest:
                self.engine.clock.observe(newest)
        except (OSError, sqlite3.Error) as exc:
            raise StoreUnavailable(f"cannot open SQLite store at {self.path}: {exc}") from exc
        self._writer = threading.Thread(
            target=self._writer_loop, args=(conn,), name="bw-writer", daemon=True
        )
        self._writer.start()

    def _create_indexes(self, conn: sqlite3.Connection) -> None:
        for config in self.engine.collections.values():
            for name in config.indexes:
                # Names are validated against a strict pattern, so inlining them is safe; the
                # expression must be literal for SQLite to match it against queries.
                conn.execute(
                    f"CREATE INDEX IF NOT EXISTS bw_{config.name}__{name} ON docs"
                    f" (json_extract({_bodies.BODY_SQL}, '$.{name}'), id)"
                    f" WHERE collection = '{config.name}' AND deleted = 0"
                )

    @property
    def origin(self) -> str:
        """The origin of this store's own changes (region and incarnation, set by ``open``)."""
        return self.engine.origin

    async def aclose(self) -> None:
        """Drain the write queue, stop the writer and close every connection."""
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            self._queue.put(_STOP)
            await asyncio.to_thread(self._writer.join)
        self._readers.shutdown(wait=True)
        with self._conns_lock:
            for conn in self._reader_conns:
                conn.close()
            self._reader_conns.clear()

    # writes ------------------------------------------------------------------------------------

    async def apply(
        self, mutations: Sequence[Mutation], phases: CommitPhases | None = None
    ) -> list[MutationResult]:
        """Queue ``mutations`` for the next group commit and wait until they are durable."""
        if self._closed or self._writer is None:
            raise StoreUnavailable("the store is closed")
        if not mutations:
            return []
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[MutationResult]] = loop.create_future()
        if phases is not None:
            phases.queued = time.time_ns()
        self._queue.put(_WriteRequest(mutations, future, loop, phases))
        return await future

    def _writer_loop(self, conn: sqlite3.Connection) -> None:
        try:
            while True:
                first = self._queue.get()
                if first is _STOP:
                    return
                if isinstance(first, _OwnTransaction):
                    self._run_own(conn, first)
                    continue
                batch = [first]
                count = len(first.mutations)
                stop = False
                own: _OwnTransaction | None = None
                while count < self._max_batch:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is _STOP:
                        stop = True
                        break
                    if isinstance(item, _OwnTransaction):
                        own = item
                        break
                    batch.append(item)
                    count += len(item.mutations)
                self._commit(conn, batch, count)
                if own is not None:
                    self._run_own(conn, own)
                if stop:
                    return
        finally:
            conn.close()
            self._writer_lock.close()

    def _commit(self, conn: sqlite3.Connection, batch: list[_WriteRequest], count: int) -> None:
        started = time.perf_counter()
        traced = [request.phases for request in batch if request.phases is not None]
        mark_phase(traced, "started", count)
        staged = WriteBatch(conn, self._clock_ms())
        outcomes: list[list[MutationResult] | BaseException] = []
        try:
            with self._writer_lock:
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    staged.prefetch(m for request in batch for m in request.mutations)
                    outcomes = [self._apply_request(staged, request) for request in batch]
                    mark_phase(traced, "merged")
                    staged.flush()
                    conn.execute("COMMIT")
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                    raise
        except Exception as exc:  # the writer thread must outlive any failure, or writes hang
            error = StoreUnavailable(f"the write was not committed: {exc}")
            error.__cause__ = exc
            outcomes = [error] * len(batch)
            staged = WriteBatch(conn, 0)
        committed_at = time.time()
        mark_phase(traced, "committed")
        self.hooks.on_commit(count, time.perf_counter() - started)
        # One wake-up per event loop, not per request; on the store's own loop the commit
        # notice follows the answers in the same callback, so nothing can run between them.
        by_loop: dict[asyncio.AbstractEventLoop, list[_Answer]] = {}
        for request, outcome in zip(batch, outcomes, strict=True):
            by_loop.setdefault(request.loop, []).append((request.future, outcome))
        touched = staged.touched
        if touched and self._loop is not None:
            by_loop.setdefault(self._loop, [])
        for loop, answers in by_loop.items():
            notice = (touched, committed_at) if touched and loop is self._loop else None
            # A loop closed since its caller queued the write has nobody left to answer.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._deliver, answers, notice)

    def _run_own(self, conn: sqlite3.Connection, request: _OwnTransaction) -> None:
        """Run ``request`` in a transaction of its own, then answer it and tell the hooks."""
        touched: VersionVector = {}
        outcome: Any
        try:
            with self._writer_lock:
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    outcome, touched = request.run(conn)
                    conn.execute("COMMIT")
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                    raise
        except sqlite3.Error as exc:
            error = StoreUnavailable(f"the write was not committed: {exc}")
            error.__cause__ = exc
            outcome, touched = error, {}
        except Exception as exc:  # a bad batch fails its caller, never the writer thread
            outcome, touched = exc, {}
        notice = (touched, time.time()) if touched else None
        with contextlib.suppress(RuntimeError):
            request.loop.call_soon_threadsafe(self._deliver_own, request.future, outcome, notice)

    def _deliver_own(
        self, future: asyncio.Future[Any], outcome: Any, notice: tuple[VersionVector, float] | None
    ) -> None:
        if not future.done():
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
        if notice is not None:
            self.hooks.on_feed_advanced(*notice)

    async def _in_own_transaction(
        self, run: Callable[[sqlite3.Connection], tuple[T, VersionVector]]
    ) -> T:
        if self._closed or self._writer is None:
            raise StoreUnavailable("the store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_OwnTransaction(run, future, loop))
        return await future

    # replication (docs/adr/0022-replication.md) ------------------------------------------------

    async def apply_replicated(
        self, entries: Sequence[FeedEntry], progress: Mapping[str, object] | None = None
    ) -> ReplicaApplied:
        """Apply a peer's feed entries at their original positions, and write ``progress``
        (replication bookkeeping) in the same durable transaction."""
        _replica.check_entries(entries)

        def run(conn: sqlite3.Connection) -> tuple[ReplicaApplied, VersionVector]:
            staged = WriteBatch(conn, self._clock_ms())
            staged.prefetch(entry.change for entry in entries)
            result = _replica.stage_entries(staged, self.engine, entries)
            staged.flush()
            _put_replication(conn, progress or {}, self._clock_ms())
            return result, result.head

        return await self._in_own_transaction(run)

    async def apply_repairs(self, repairs: Sequence[Repair]) -> list[StoredDoc]:
        """Join repairs into their documents at new local positions, in one transaction."""

        def run(conn: sqlite3.Connection) -> tuple[list[StoredDoc], VersionVector]:
            staged = WriteBatch(conn, self._clock_ms())
            staged.prefetch(_replica.repair_changes(self.engine.origin, repairs))
            repaired = _replica.stage_repairs(staged, self.engine, repairs)
            staged.flush()
            return repaired, staged.touched

        return await self._in_own_transaction(run)

    async def doc_summaries(self, collection: str | None = None) -> DocSummaries:
        """Every document's summary (of ``collection``) and the head, in one snapshot."""
        where, args = ("WHERE collection = ?", (collection,)) if collection else ("", ())

        def read(conn: sqlite3.Connection) -> DocSummaries:
            rows = conn.execute(
                f"SELECT {SUMMARY_COLUMNS} FROM docs {where} ORDER BY collection, id", args
            ).fetchall()
            return DocSummaries(_head(conn), [summary_from_row(row) for row in rows])

        return await self._read(read)

    async def replication_state(self) -> dict[str, Any]:
        """Every replication bookkeeping value by key (region state, peers, leases, stable)."""

        def read(conn: sqlite3.Connection) -> dict[str, Any]:
            rows = conn.execute("SELECT key, value FROM replication").fetchall()
            return {key: codec.loads(value) for key, value in rows}

        return await self._read(read)

    async def put_replication_state(
        self, writes: Mapping[str, object], *, only_new: bool = False
    ) -> None:
        """Write replication bookkeeping values (``only_new``: keep values already there)."""

        def run(conn: sqlite3.Connection) -> tuple[None, VersionVector]:
            _put_replication(conn, writes, self._clock_ms(), only_new=only_new)
            return None, {}

        await self._in_own_transaction(run)

    async def take_lease(self, name: str, holder: str, ttl_ms: int) -> bool:
        """Take or renew lease ``name`` for ``holder`` unless another holder's is still live."""

        def run(conn: sqlite3.Connection) -> tuple[bool, VersionVector]:
            now = self._clock_ms()
            row = conn.execute(
                "SELECT value FROM replication WHERE key = ?", (f"lease:{name}",)
            ).fetchone()
            lease = Lease.parse(None if row is None else codec.loads(row[0]))
            if not lease.free_for(holder, now):
                return False, {}
            _put_replication(conn, {f"lease:{name}": Lease(holder, now + ttl_ms).dump()}, now)
            return True, {}

        return await self._in_own_transaction(run)

    def _apply_request(
        self, staged: WriteBatch, request: _WriteRequest
    ) -> list[MutationResult] | BaseException:
        """Apply one caller's mutations; a bug fails that caller alone, not the batch."""
        try:
            results = [self.engine.apply(staged, mutation) for mutation in request.mutations]
        except sqlite3.Error:
            raise
        except Exception as exc:
            staged.discard_request()
            return exc
        staged.keep_request()
        for result in results:
            if result.conflict_fields and result.doc is not None:
                self.hooks.on_conflict(result.doc.collection)
        return results

    def _deliver(self, answers: list[_Answer], notice: tuple[VersionVector, float] | None) -> None:
        """On an event loop, after COMMIT: answer the callers, then tell the hooks."""
        for future, outcome in answers:
            _resolve(future, outcome)
        if notice is not None:
            self.hooks.on_feed_advanced(*notice)

    # reads -------------------------------------------------------------------------------------

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path)
            self._local.conn = conn
            with self._conns_lock:
                self._reader_conns.append(conn)
        return conn

    def _in_snapshot(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn`` on this thread's reader connection, in one read transaction."""
        conn = self._reader()
        conn.execute("BEGIN")
        try:
            return fn(conn)
        finally:
            conn.execute("COMMIT")

    async def _read(self, fn: Callable[[sqlite3.Connection], T], here: bool = False) -> T:
        """``fn`` in a snapshot, on a reader thread (or, ``here``, on the calling one)."""
        if self._closed:
            raise StoreUnavailable("the store is closed")
        try:
            if here:
                result = self._in_snapshot(fn)
            else:
                loop = asyncio.get_running_loop()
                result = await loop.run_in_executor(self._readers, self._in_snapshot, fn)
        except sqlite3.Error as exc:
            self._report(False)
            raise StoreUnavailable(f"the store could not be read: {exc}") from exc
        self._report(True)
        return result

    def _report(self, available: bool) -> None:
        """Tell the hooks when reads start or stop working (on the event loop)."""
        if available != self._available:
            self._available = available
            self.hooks.on_available(available)

    async def get(self, collection: str, doc_id: str) -> StoredDoc | None:
        """A document, tombstones included."""

        def read(conn: sqlite3.Connection) -> StoredDoc | None:
            row = conn.execute(
                f"SELECT {DOC_COLUMNS} FROM docs WHERE collection = ? AND id = ?",
                (collection, doc_id),
            ).fetchone()
            return None if row is None else doc_from_row(row)

        return await self._read(read)

    async def query(self, query: Query, visible: Visible | None = None) -> QueryPage:
        """Live documents matching ``query`` that ``visible`` accepts, keyset-paginated; the
        rows are read lazily, in one snapshot, until the page is complete."""
        indexes = self.engine.collection(query.collection).indexes
        sql, params = _query_sql(query, indexes, limited=visible is None)

        def read(conn: sqlite3.Connection) -> QueryPage:
            builder = PageBuilder(query, visible)
            # Closed at once when the page is complete: an unfinished statement would keep its
            # read snapshot (and hold back WAL checkpoints) until collected.
            with contextlib.closing(conn.execute(sql, params)) as rows:
                for row in rows:
                    if not builder.add(row):
                        break
            return builder.page()

        return await self._read(read)

    async def head(self) -> VersionVector:
        """The committed seq of every origin."""
        return await self._read(_head)

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
        """Changes past ``vector`` in local commit order, read in one snapshot.

        ``urgent`` reads run on the calling thread: the follower's reads are a few new rows
        (a fraction of a millisecond), while a hop to a reader thread and back waits for the
        GIL and for the event loop, several milliseconds on a node busy sending.
        """

        def read(conn: sqlite3.Connection) -> FeedPage:
            return _pull(conn, vector, collections, limit, include_state, past_horizon)

        return await self._read(read, here=urgent)

    async def ping(self) -> None:
        """Run a trivial read."""
        await self._read(lambda conn: conn.execute("SELECT 1").fetchone())

    async def conflicts(self, limit: int, collection: str | None = None) -> list[RecordedConflict]:
        """The most recent conflicts, newest first."""
        where, args = (
            ("WHERE collection = ?", (collection, limit)) if collection else ("", (limit,))
        )

        def read(conn: sqlite3.Connection) -> list[RecordedConflict]:
            rows = conn.execute(
                "SELECT collection, doc_id, mutation_id, origin, seq, fields, winner_hlc, at_ms"
                f" FROM conflicts {where} ORDER BY id DESC LIMIT ?",
                args,
            ).fetchall()
            return [conflict_of(row) for row in rows]

        return await self._read(read)

    async def compact(self, horizon_ms: int, now_ms: int | None = None) -> CompactionReport:
        """Apply the retention horizon through the writer thread's connection."""
        cutoff = (self._clock_ms() if now_ms is None else now_ms) - horizon_ms

        def run(conn: sqlite3.Connection) -> CompactionReport:
            return _compact(conn, cutoff)

        return await asyncio.to_thread(self._with_own_connection, run)

    def _with_own_connection(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = connect(self.path)
        lock = WriterLock(self.path)
        try:
            with lock:
                return fn(conn)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"compaction failed: {exc}") from exc
        finally:
            lock.close()
            conn.close()


def _resolve(
    future: asyncio.Future[list[MutationResult]], outcome: list[MutationResult] | BaseException
) -> None:
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


def _put_replication(
    conn: sqlite3.Connection, writes: Mapping[str, object], now_ms: int, *, only_new: bool = False
) -> None:
    verb = "INSERT OR IGNORE" if only_new else "INSERT OR REPLACE"
    conn.executemany(
        f"{verb} INTO replication (key, value, updated_ms) VALUES (?, ?, ?)",
        [(key, codec.dumps(value).decode(), now_ms) for key, value in writes.items()],
    )


def _head(conn: sqlite3.Connection) -> VersionVector:
    return dict(conn.execute("SELECT origin, seq FROM origins").fetchall())


def _bind(value: Scalar) -> Scalar:
    """``value`` as json_extract yields it: 1/0 for booleans."""
    return int(value) if isinstance(value, bool) else value


def _index_for(query: Query, indexes: Sequence[str]) -> str | None:
    """The configured index that serves ``query`` best: its order field's, else a filter's."""
    if query.order in indexes:
        return query.order
    return next((f.field for f in query.filters if f.field in indexes), None)


def _query_sql(
    query: Query, indexes: Sequence[str] = (), limited: bool = True
) -> tuple[str, list[Any]]:
    """The SELECT of ``query`` in its order: one row more than the page, or every row
    (``limited=False``) for a scan that decides row by row which ones count."""
    # The collection is inlined (its name is validated against a strict pattern) so that SQLite
    # can match the partial index of that collection; a bound parameter would hide it.
    clauses = [f"collection = '{check_collection(query.collection)}'", "deleted = 0"]
    params: list[Any] = []
    for item in query.filters:
        expr = f"json_extract({_bodies.BODY_SQL}, '$.{item.field}')"
        if item.value is None:
            clauses.append(f"{expr} IS {'NOT ' if item.op == 'ne' else ''}NULL")
        else:
            clauses.append(f"{expr} {OPERATORS[item.op]} ?")
            params.append(_bind(item.value))
    direction = "DESC" if query.descending else "ASC"
    compare = "<" if query.descending else ">"
    if query.order is None:
        if query.after is not None:
            clauses.append(f"id {compare} ?")
            params.append(query.after[1])
        order_sql = f"id {direction}"
    else:
        expr = f"json_extract({_bodies.BODY_SQL}, '$.{query.order}')"
        if query.after is not None:
            value, after_id = query.after
            if value is None:
                # NULLs sort first ascending and last descending in SQLite.
                tail = "" if query.descending else f" OR {expr} IS NOT NULL"
                clauses.append(f"(({expr} IS NULL AND id {compare} ?){tail})")
                params.append(after_id)
            else:
                tail = f" OR {expr} IS NULL" if query.descending else ""
                clauses.append(f"({expr} {compare} ? OR ({expr} = ? AND id {compare} ?){tail})")
                params.extend([_bind(value), _bind(value), after_id])
        order_sql = f"{expr} {direction}, id {direction}"
    # Without statistics SQLite prefers the (collection, id) key over a field index; name it.
    field = _index_for(query, indexes)
    indexed_by = f" INDEXED BY bw_{query.collection}__{field}" if field else ""
    sql = (
        f"SELECT {DOC_COLUMNS} FROM docs{indexed_by} WHERE {' AND '.join(clauses)}"
        f" ORDER BY {order_sql}{f' LIMIT {int(query.limit) + 1}' if limited else ''}"
    )
    return sql, params


def _start_lsn(conn: sqlite3.Connection, vector: VersionVector, head: VersionVector) -> int:
    """The local position before which every change is covered by ``vector``.

    An origin's changes are appended in seq order, so its lsn grows with its seq: the newest
    covered change is found by one index step, not by a scan of everything covered.
    """
    start: int | None = None
    for origin in head:
        seen = vector.get(origin, 0)
        if seen <= 0:
            return 0
        row = conn.execute(
            "SELECT lsn FROM changes WHERE origin = ? AND seq <= ? ORDER BY seq DESC LIMIT 1",
            (origin, seen),
        ).fetchone()
        lsn = row[0] if row else 0
        start = lsn if start is None else min(start, lsn)
    return start or 0


def _head_checked(
    conn: sqlite3.Connection, vector: VersionVector, past_horizon: bool
) -> VersionVector:
    """The committed seq of every origin, read with the retention horizon in one statement
    (every pull, the feed follower's after each commit included, needs both): raises
    ``CursorExpired`` when ``vector`` is behind an origin's low water, unless ``past_horizon``
    or the cursor is empty (a full sync is always valid)."""
    head: VersionVector = {}
    expired = False
    for origin, seq, low_water in conn.execute("SELECT origin, seq, low_water FROM origins"):
        head[origin] = seq
        expired = expired or (low_water > 0 and vector.get(origin, 0) < low_water)
    if expired and vector and not past_horizon:
        raise CursorExpired(
            "the cursor is older than the retention horizon; resync from an empty cursor"
        )
    return head


def _pull(
    conn: sqlite3.Connection,
    vector: VersionVector,
    collections: Sequence[str] | None,
    limit: int,
    include_state: bool,
    past_horizon: bool = False,
) -> FeedPage:
    head = _head_checked(conn, vector, past_horizon)
    clauses = ["c.lsn > ?"]
    params: list[Any] = [_start_lsn(conn, vector, head)]
    covered = [(origin, seq) for origin, seq in vector.items() if seq > 0]
    if covered:
        clauses.append(
            "NOT (" + " OR ".join("(c.origin = ? AND c.seq <= ?)" for _ in covered) + ")"
        )
        params.extend(itertools.chain.from_iterable(covered))
    if collections:
        clauses.append(f"c.collection IN ({', '.join('?' for _ in collections)})")
        params.extend(collections)
    state_col = ", d.state, c.at_ms, d.lsn = c.lsn" if include_state else ""
    rows = conn.execute(
        "SELECT c.origin, c.seq, c.collection, c.doc_id, c.mutation_id, c.hlc, c.op,"
        f" d.data, d.version{state_col} FROM changes c"
        " JOIN docs d ON d.collection = c.collection AND d.id = c.doc_id"
        f" WHERE {' AND '.join(clauses)} ORDER BY c.lsn LIMIT ?",
        [*params, limit + 1],
    ).fetchall()
    has_more = len(rows) > limit
    rows = rows[:limit]
    entries = [
        feed_entry(
            Change(row[0], row[1], row[2], row[3], row[4], row[5], row[6]),
            row[7],
            row[8],
            *((row[9], row[10], row[11]) if include_state else (None,)),
        )
        for row in rows
    ]
    return feed_page(vector, entries, has_more, head)


def _compact(conn: sqlite3.Connection, cutoff_ms: int) -> CompactionReport:
    """Remove what the retention horizon lets go, and raise low-water marks to match."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        purge = conn.execute(
            "SELECT d.collection, d.id FROM docs d JOIN changes c ON c.lsn = d.lsn"
            " WHERE d.deleted = 1 AND c.at_ms < ?",
            (cutoff_ms,),
        ).fetchall()
        removed = conn.execute(
            "DELETE FROM changes WHERE at_ms < ? AND NOT EXISTS (SELECT 1 FROM docs d"
            " WHERE d.collection = changes.collection AND d.id = changes.doc_id"
            " AND d.lsn = changes.lsn AND d.deleted = 0) RETURNING origin, seq",
            (cutoff_ms,),
        ).fetchall()
        for collection, doc_id in purge:
            conn.execute("DELETE FROM docs WHERE collection = ? AND id = ?", (collection, doc_id))
        low_water: VersionVector = {}
        for origin, seq in removed:
            low_water[origin] = max(low_water.get(origin, 0), seq)
        for origin, seq in low_water.items():
            conn.execute(
                "UPDATE origins SET low_water = MAX(low_water, ?) WHERE origin = ?", (seq, origin)
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return CompactionReport(len(removed), len(purge), low_water)
