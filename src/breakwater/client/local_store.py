"""The device's SQLite database: server states, the local view, the outbox, cursors and the HLC.

Tables:

``server_docs``  the replicated state of each document as the server last sent it
``docs``         the local view: ``server_docs`` with the outbox re-applied (:mod:`.rebase`)
``outbox``       local mutations not yet acknowledged *and* stable (I6)
``rejected``     mutations the server refused, kept for the app to inspect
``meta``         device id, mutation counter, last HLC stamp, clock offset, cursor and the
                 scope it was pulled with, stable, time of the last complete pull, the
                 endpoint that gave the outbox's acknowledgements, and the
                 signed-in session (``credential:*``: it holds a refresh token, a bearer
                 secret, so the file is made owner-only)

The database runs in WAL mode with ``synchronous=FULL``: a call that returns has committed and
fsynced. A local write, its outbox entry and the clock's new stamp commit in one transaction, so
a write the app saw returned survives a crash. The one exception is the record of a push's
acknowledgement, committed without its own fsync (it survives the process's crash; an OS crash
may lose it, and then the entry is pushed again and answered ``duplicate``, ADR 0060). All
access goes through one thread (one connection), which serialises transactions without locks in
Python.

The outbox's counts (:class:`Backlog`) are kept in memory: each transaction that changes the
outbox updates them in the store's thread and publishes them when it commits (a rollback reads
them, and the cursor, ``stable`` and the resync flags it changed, again from the table), so the
sync loop reads them without a call to that thread. So are
the unsent entries while they are few and known (none at open, then each local write's): the
push of an online write reads them without a call either. A change the store does not follow
entry by entry (a rejection, a re-stamp, unsent acknowledgements) forgets them, and the next
read goes to the table.
"""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from breakwater.client import restore_offers
from breakwater.client._store_thread import StoreThread
from breakwater.client.clock import DeviceClock
from breakwater.client.local_query import LocalQuery, query_sql
from breakwater.client.outbox import OutboxEntry, Rejection
from breakwater.client.rebase import Pending, rebase, view_of
from breakwater.client.scope import Scope
from breakwater.core import codec
from breakwater.core import cursor as cursor_mod
from breakwater.core import hlc as hlc_mod
from breakwater.core.counter import is_legacy
from breakwater.core.document import State, delta_for, empty_state, join, version, visible

T = TypeVar("T")
REMOVAL_OP = "remove"
"""A pulled change of a document the user may not read: it leaves the device."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS server_docs (
    collection TEXT NOT NULL, id TEXT NOT NULL, state TEXT NOT NULL,
    seen INTEGER NOT NULL DEFAULT 1, PRIMARY KEY (collection, id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS docs (
    collection TEXT NOT NULL, id TEXT NOT NULL, data TEXT, hlc TEXT NOT NULL,
    pending INTEGER NOT NULL, PRIMARY KEY (collection, id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbox (
    position INTEGER PRIMARY KEY AUTOINCREMENT, mutation_id TEXT NOT NULL UNIQUE,
    collection TEXT NOT NULL, id TEXT NOT NULL, op TEXT NOT NULL, data TEXT,
    hlc TEXT NOT NULL, origin TEXT, seq INTEGER);
CREATE INDEX IF NOT EXISTS outbox_doc ON outbox (collection, id);
CREATE INDEX IF NOT EXISTS outbox_ack ON outbox (origin, seq) WHERE origin IS NOT NULL;
CREATE TABLE IF NOT EXISTS rejected (
    position INTEGER PRIMARY KEY, mutation_id TEXT NOT NULL, collection TEXT NOT NULL,
    id TEXT NOT NULL, op TEXT NOT NULL, data TEXT, problem TEXT NOT NULL);
"""

DocKey = tuple[str, str]
MAX_KNOWN_UNSENT = 256
"""Unsent entries held in memory at most (beyond: read from the table)."""
COUNTER_FORMAT = "2"
"""Counters in ``server_docs`` hold folded bases (docs/adr/0019-compact-counters.md)."""


@dataclass(frozen=True, slots=True)
class Document:
    """A document as the device sees it; ``pending`` when local edits are not yet settled."""

    collection: str
    id: str
    data: dict[str, Any]
    hlc: str
    pending: bool


@dataclass(frozen=True, slots=True)
class Backlog:
    """What the outbox holds: every entry, those not yet pushed, those acknowledged."""

    pending: int
    unsent: int
    acknowledged: int


@dataclass(frozen=True, slots=True)
class LocalWrite:
    """What a local write made: the document's new view and the queued outbox entry."""

    view: Document | None
    entry: OutboxEntry


@dataclass(frozen=True, slots=True)
class ServerDocument:
    """A document as the server last sent it, without pending local writes on top.

    ``data`` is ``None`` for a deleted document (a tombstone); ``version`` is the server's
    version of that state (the ``ETag``), equal on every replica holding the same state."""

    collection: str
    id: str
    data: dict[str, Any] | None
    version: str


@dataclass(frozen=True, slots=True)
class PageResult:
    """What committing one page of synced changes (pulled, or taken from a push answer)
    changed, and the entries it settled; ``cursor`` is the cursor it committed, ``documents``
    the synced data of each server document the page changed (``None``: none held),
    ``resynced`` whether the page ended a full resync."""

    cursor: str
    collections: frozenset[str]
    settled: int
    documents: dict[DocKey, dict[str, Any] | None]
    resynced: bool = False


def _dumps(value: Any) -> str:
    return codec.dumps(value).decode()


def _loads_or_none(text: str | None) -> Any:
    return None if text is None else codec.loads(text)


def connect(path: Path) -> sqlite3.Connection:
    """A connection to the local store's database at ``path``, with its pragmas and schema
    (also what ``breakwater bench sdk``'s floor writes through)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 5000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.executescript(SCHEMA)
    return conn


class LocalStore:
    """The SDK's durable state; every public method runs on the DB thread, awaited as a
    coroutine, or as a future for the two that commit synced changes (:meth:`record_acks`,
    :meth:`apply_page`): queued when called, they commit whether or not their caller still
    waits, and their ``committed`` callback is given the page's result on the event loop
    once it has committed, whether or not the caller still waits."""

    def __init__(self, path: Path | str, physical_ms: Callable[[], int] = hlc_mod.system_ms):
        self.path = Path(path)
        self._physical_ms = physical_ms
        self._thread = StoreThread("bw-local-store")
        self._conn: sqlite3.Connection | None = None
        self.device_id = ""
        self.clock = DeviceClock("d-unset")
        self.cursor = ""
        self._decoded: tuple[str, dict[str, int]] = ("", {})
        """The last cursor decoded, and its vector (the store's thread only)."""
        self._scope = "null"
        """The scope the cursor was pulled with, as stored (the store's thread only)."""
        self._counter = 0
        """The last mutation number given (the store's thread only)."""
        self.stable: dict[str, int] = {}
        self.resyncing = False
        self.offering = False
        self.last_synced_at: float | None = None
        self.backlog = Backlog(0, 0, 0)
        """The outbox's counts as of the last commit (read from any thread)."""
        self._pending = 0
        self._unsent = 0
        self._known: list[OutboxEntry] | None = None
        """The counts and the unsent entries (``None``: not known) as the running transaction
        leaves them (the store's thread only)."""
        self._known_unsent: tuple[OutboxEntry, ...] | None = None
        """The unsent entries as of the last commit, when known (read from any thread)."""

    # -- plumbing -------------------------------------------------------------------------

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._thread.run(fn, *args)

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("the local store is not open")
        return self._conn

    def _meta(self, key: str, default: str = "") -> str:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else default

    def _set_meta(self, *pairs: tuple[str, str]) -> None:
        """Store ``(key, value)`` pairs in one statement (a write and a push's acknowledgement
        each set two: a statement less for each)."""
        rows = ", ".join(["(?, ?)"] * len(pairs))
        params = [item for pair in pairs for item in pair]
        self._db.execute(f"INSERT OR REPLACE INTO meta (key, value) VALUES {rows}", params)

    async def credential(self, key: str) -> str:
        """A stored credential (``""`` when none): the device database keeps the session."""
        return await self._run(self._meta, f"credential:{key}")

    async def set_credential(self, key: str, value: str) -> None:
        """Store (``value``) or forget (``""``) a credential, durably."""
        await self._run(self._write_credential, f"credential:{key}", value)

    def _write_credential(self, key: str, value: str) -> None:
        with self._transaction():
            if value:
                self._set_meta((key, value))
            else:
                self._db.execute("DELETE FROM meta WHERE key = ?", (key,))

    async def open(self) -> None:
        """Open (creating when new) the database and restore the clock, cursor and device id."""
        await self._run(self._open)

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = connect(self.path)
        self.path.chmod(0o600)  # the session's refresh token is a bearer secret (docs/sdk.md)
        self._conn = conn
        with self._transaction():
            self._count_outbox()
            self.device_id = self._meta("device_id") or secrets.token_hex(6)
            self._set_meta(("device_id", self.device_id))
        offset = int(self._meta("clock_offset_ms", "0"))
        self.clock = DeviceClock(f"d-{self.device_id}", self._physical_ms, offset)
        last = self._meta("hlc")
        if last:
            self.clock.observe(last)
        self._scope = self._meta("scope", "null")
        self._load_sync_state()
        if self._meta("counter_format", "1") != COUNTER_FORMAT:
            self._forget_unfolded_counters()

    def _load_sync_state(self) -> None:
        """Read what transactions change in memory as they go (the mutation counter, cursor,
        ``stable``, resync flags, last pull) from the table: on open, and after a rollback so
        that memory is never ahead of what is stored."""
        self._counter = int(self._meta("counter", "0"))
        self.cursor = self._meta("cursor")
        self.stable = codec.loads(self._meta("stable", "{}"))
        self.resyncing = self._meta("resyncing") == "1"
        self.offering = self._meta("offering") == "1"
        synced = self._meta("last_synced_at")
        self.last_synced_at = float(synced) if synced else None

    def _forget_unfolded_counters(self) -> None:
        """Drop server states whose counters predate folding and pull everything again.

        Such a state keeps increments by mutation id that the node has since folded into a
        base: joined with the node's new state they would count twice. The local view keeps
        showing the document until the resync brings its state back; the outbox is untouched.
        """
        with self._transaction():
            stale = [
                (collection, doc_id)
                for collection, doc_id, text in self._db.execute(
                    "SELECT collection, id, state FROM server_docs"
                )
                if any(is_legacy(value) for value in codec.loads(text)["n"].values())
            ]
            self._db.executemany("DELETE FROM server_docs WHERE collection = ? AND id = ?", stale)
            if stale and self.cursor:
                self._start_resync()
            self._set_meta(("counter_format", COUNTER_FORMAT))

    async def aclose(self) -> None:
        """Close the database and stop its thread."""
        if self._conn is not None:
            await self._run(self._db.close)
            self._conn = None
        self._thread.stop()

    def _transaction(self, *, fsynced: bool = True) -> _Transaction:
        return _Transaction(self._db, self._ended, fsynced=fsynced)

    def _ended(self, committed: bool) -> None:
        """Publish the outbox's counts after a transaction; after a rollback, read them and
        the sync state the transaction changed in memory again from the table."""
        if not committed:
            self._count_outbox()
            self._load_sync_state()
        self.backlog = Backlog(self._pending, self._unsent, self._pending - self._unsent)
        self._known_unsent = None if self._known is None else tuple(self._known)

    def _count_outbox(self) -> None:
        """Count the outbox's entries from the table (on open, after rare changes)."""
        pending, unsent = self._db.execute(
            "SELECT count(*), count(*) FILTER (WHERE origin IS NULL) FROM outbox"
        ).fetchone()
        self._pending, self._unsent = int(pending), int(unsent)
        self._forget_unsent()

    def _forget_unsent(self) -> None:
        """The unsent entries changed other than one by one: read them from the table next."""
        self._known = [] if self._unsent == 0 else None

    # -- local writes and reads -----------------------------------------------------------

    async def write(
        self, collection: str, doc_id: str, op: str, data: dict[str, Any] | None
    ) -> LocalWrite:
        """Apply a local mutation and queue it, durably, in one transaction."""
        return await self._run(self._write, collection, doc_id, op, data)

    def _write(
        self, collection: str, doc_id: str, op: str, data: dict[str, Any] | None
    ) -> LocalWrite:
        with self._transaction():
            self._counter += 1
            counter = self._counter
            stamp = self.clock.now()
            self._set_meta(("counter", str(counter)), ("hlc", stamp))
            mutation_id = f"{self.device_id}.{counter}"
            stored = None if data is None else _dumps(data)
            cursor = self._db.execute(
                "INSERT INTO outbox (mutation_id, collection, id, op, data, hlc)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (mutation_id, collection, doc_id, op, stored, stamp),
            )
            position = int(cursor.lastrowid or 0)

            def as_stored() -> OutboxEntry:
                """The entry as stored, a copy of its own: the caller (or the app, told of it)
                changing its ``data`` later changes nothing that is pushed."""
                return OutboxEntry(
                    position, mutation_id, collection, doc_id, op, _loads_or_none(stored), stamp
                )

            # An outbox empty before this write holds only this entry of the document: the
            # view needs no read of it (the common online write, settled before the next).
            pending: list[Pending] | None = None
            if self._pending == 0:
                pending = [(op, _loads_or_none(stored), stamp, mutation_id, None)]
            self._pending += 1
            self._unsent += 1
            if self._known is not None and len(self._known) < MAX_KNOWN_UNSENT:
                self._known.append(as_stored())
            else:
                self._known = None
            return LocalWrite(self._refresh_view(collection, doc_id, pending=pending), as_stored())

    async def get(self, collection: str, doc_id: str) -> Document | None:
        """The local view of one document (``None`` when missing or deleted)."""
        return await self._run(self._get, collection, doc_id)

    def _get(self, collection: str, doc_id: str) -> Document | None:
        row = self._db.execute(
            "SELECT data, hlc, pending FROM docs WHERE collection = ? AND id = ?",
            (collection, doc_id),
        ).fetchone()
        if row is None or row[0] is None:
            return None
        return Document(collection, doc_id, codec.loads(row[0]), row[1], bool(row[2]))

    async def query(self, query: LocalQuery) -> list[Document]:
        """Live documents of the local view matching ``query``, in its order."""
        return await self._run(self._query, query)

    def _query(self, query: LocalQuery) -> list[Document]:
        sql, params = query_sql(query)
        return [
            Document(query.collection, row[0], codec.loads(row[1]), row[2], bool(row[3]))
            for row in self._db.execute(sql, params)
        ]

    async def server_documents(self) -> list[ServerDocument]:
        """Every document as the server last sent it, tombstones included, in key order."""
        return await self._run(self._server_documents)

    def _server_documents(self) -> list[ServerDocument]:
        rows = self._db.execute("SELECT collection, id, state FROM server_docs ORDER BY 1, 2")
        documents = []
        for collection, doc_id, text in rows:
            state = codec.loads(text)
            documents.append(ServerDocument(collection, doc_id, visible(state), version(state)))
        return documents

    def _server_state(
        self, collection: str, doc_id: str, *, seen_only: bool = False
    ) -> State | None:
        """The server state held of a document (``seen_only``: only if this resync brought it)."""
        seen = " AND seen = 1" if seen_only else ""
        row = self._db.execute(
            f"SELECT state FROM server_docs WHERE collection = ? AND id = ?{seen}",
            (collection, doc_id),
        ).fetchone()
        return None if row is None else codec.loads(row[0])

    def _refresh_view(
        self,
        collection: str,
        doc_id: str,
        held: Mapping[DocKey, State | None] | None = None,
        pending: list[Pending] | None = None,
    ) -> Document | None:
        """Recompute one document's local view from its server state and its outbox entries;
        ``held``: server states just written, by key (``None``: deleted), not read again;
        ``pending``: the document's outbox entries when the caller knows them (not read)."""
        if pending is None:
            pending = [
                (
                    op,
                    _loads_or_none(data),
                    stamp,
                    mutation_id,
                    None if origin is None else (origin, seq),
                )
                for op, data, stamp, mutation_id, origin, seq in self._db.execute(
                    "SELECT op, data, hlc, mutation_id, origin, seq FROM outbox"
                    " WHERE collection = ? AND id = ? ORDER BY position",
                    (collection, doc_id),
                )
            ]
        key = (collection, doc_id)
        if held is not None and key in held:
            server = held[key]
        else:
            server = self._server_state(collection, doc_id)
        if server is None and not pending:
            self._db.execute(
                "DELETE FROM docs WHERE collection = ? AND id = ?", (collection, doc_id)
            )
            return None
        data, newest = view_of(rebase(server, pending))
        self._db.execute(
            "INSERT OR REPLACE INTO docs (collection, id, data, hlc, pending)"
            " VALUES (?, ?, ?, ?, ?)",
            (
                collection,
                doc_id,
                None if data is None else _dumps(data),
                newest,
                int(bool(pending)),
            ),
        )
        if data is None:
            return None
        return Document(collection, doc_id, data, newest, bool(pending))

    # -- the outbox -----------------------------------------------------------------------

    async def unsent(self, limit: int) -> list[OutboxEntry]:
        """The oldest ``limit`` entries not yet acknowledged, in write order."""
        known = self._known_unsent
        if known is not None:
            return list(known[:limit])
        return await self._run(self._read_unsent, limit)

    def _read_unsent(self, limit: int) -> list[OutboxEntry]:
        entries = self._entries("WHERE origin IS NULL", limit)
        if len(entries) < limit and len(entries) <= MAX_KNOWN_UNSENT:  # all of them
            self._known = list(entries)
            self._known_unsent = tuple(entries)
        return entries

    async def outbox(self) -> list[OutboxEntry]:
        """Every entry still in the outbox (acknowledged but not stable ones included)."""
        return await self._run(self._entries, "", -1)

    def _entries(self, where: str, limit: int) -> list[OutboxEntry]:
        rows = self._db.execute(
            "SELECT position, mutation_id, collection, id, op, data, hlc, origin, seq FROM outbox"
            f" {where} ORDER BY position LIMIT ?",
            (limit,),
        )
        return [
            OutboxEntry(pos, mid, coll, doc_id, op, _loads_or_none(data), stamp, origin, seq)
            for pos, mid, coll, doc_id, op, data, stamp, origin, seq in rows
        ]

    async def queued_backlog(self) -> Backlog:
        """:attr:`backlog` once every call to the store made before this one has run (a page
        being committed may add offers to the outbox)."""
        return await self._run(lambda: self.backlog)

    def record_acks(
        self,
        acks: Sequence[tuple[str, str, int]],
        states: Mapping[str, State] | None = None,
        stable: dict[str, int] | None = None,
        derive: frozenset[str] = frozenset(),
        committed: Callable[[PageResult | None], None] | None = None,
    ) -> asyncio.Future[PageResult | None]:
        """Remember ``(mutation_id, origin, seq)`` for acknowledged entries.

        With the push answer's ``states`` (by mutation id) and ``stable``, acknowledged changes
        right after the cursor are taken in as their pull would (states joined, the cursor moved
        past them), and entries that makes settled leave the outbox: the device settles its own
        write without pulling it back (docs/protocol.md#push). Gives what was taken in, as a
        pulled page's result (``None``: nothing, the cursor did not move). For the mutation ids
        in ``derive`` the node sent no state: the change's state is the entry's own delta
        (docs/protocol.md#push-over-the-realtime-websocket)."""
        return self._thread.run(
            self._record_acks, acks, states or {}, stable or {}, derive, then=committed
        )

    def _record_acks(
        self,
        acks: Sequence[tuple[str, str, int]],
        states: Mapping[str, State],
        stable: dict[str, int],
        derive: frozenset[str],
    ) -> PageResult | None:
        # Not fsynced: lost only to an OS crash, after which the entry is pushed again and the
        # node answers ``duplicate`` (I2); the write it acknowledges was fsynced (ADR 0060).
        with self._transaction(fsynced=False):
            rows = [(origin, seq, mid) for mid, origin, seq in acks]
            newly = self._db.executemany(
                "UPDATE outbox SET origin = ?, seq = ? WHERE mutation_id = ? AND origin IS NULL",
                rows,
            ).rowcount
            self._unsent -= newly
            if self._known is not None:
                acked = {mid for mid, _origin, _seq in acks}
                self._known = [e for e in self._known if e.mutation_id not in acked]
            if newly < len(rows):  # acknowledged before, or gone: as the node says now
                self._db.executemany(
                    "UPDATE outbox SET origin = ?, seq = ? WHERE mutation_id = ?", rows
                )
            if self.resyncing:
                return None
            vector, changes = self._next_changes(acks, states, derive)
            if vector == self._vector() and not stable:
                return None
            cursor = cursor_mod.encode(vector)
            self._decoded = (cursor, vector)  # known: not decoded again
            return self._join_page(changes, cursor, stable, done=False)

    def _next_changes(
        self,
        acks: Sequence[tuple[str, str, int]],
        states: Mapping[str, State],
        derive: frozenset[str],
    ) -> tuple[dict[str, int], list[dict[str, Any]]]:
        """The cursor moved past the acknowledged changes that follow it without a gap, and
        those changes as a pull would bring them (one outside the scope moves the cursor only,
        as in a pull)."""
        vector = self._vector()
        scope = codec.loads(self._scope)
        changes = []
        taken: dict[DocKey, State] = {}
        for mid, origin, seq in sorted(acks, key=lambda ack: (ack[1], ack[2])):
            state = states.get(mid)
            if (state is None and mid not in derive) or vector.get(origin, 0) != seq - 1:
                continue
            row = self._db.execute(
                "SELECT collection, id, op, data, hlc FROM outbox WHERE mutation_id = ?", (mid,)
            ).fetchone()
            if row is None:
                continue
            if state is None:
                # The node's state is the one before joined with this delta (it said so):
                # joined into the device's server state below (with this page's earlier
                # changes of the document: a page keeps each document's last state), it is
                # what a pull would bring.
                delta = delta_for(row[2], _loads_or_none(row[3]), row[4], mid)
                state = join(taken.get((row[0], row[1]), empty_state()), delta)
            taken[(row[0], row[1])] = state
            vector[origin] = seq
            if scope is None or row[0] in scope:
                changes.append({"collection": row[0], "id": row[1], "state": state})
        return vector, changes

    async def reject(self, rejections: Sequence[tuple[str, dict[str, Any]]]) -> list[Rejection]:
        """Move refused entries to ``rejected`` and roll their documents back to server state."""
        return await self._run(self._reject, rejections)

    def _reject(self, rejections: Sequence[tuple[str, dict[str, Any]]]) -> list[Rejection]:
        done: list[Rejection] = []
        with self._transaction():
            for mutation_id, problem in rejections:
                row = self._db.execute(
                    "SELECT position, collection, id, op, data FROM outbox WHERE mutation_id = ?",
                    (mutation_id,),
                ).fetchone()
                if row is None:
                    continue
                position, collection, doc_id, op, data = row
                self._db.execute(
                    "INSERT OR REPLACE INTO rejected VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (position, mutation_id, collection, doc_id, op, data, _dumps(problem)),
                )
                self._db.execute("DELETE FROM outbox WHERE position = ?", (position,))
                self._refresh_view(collection, doc_id)
                done.append(
                    Rejection(mutation_id, collection, doc_id, op, _loads_or_none(data), problem)
                )
            self._count_outbox()
        return done

    async def rejections(self) -> list[Rejection]:
        """Every mutation the server refused, oldest first."""
        return await self._run(self._rejections)

    def _rejections(self) -> list[Rejection]:
        rows = self._db.execute(
            "SELECT mutation_id, collection, id, op, data, problem FROM rejected ORDER BY position"
        )
        return [
            Rejection(mid, coll, doc_id, op, _loads_or_none(data), codec.loads(problem))
            for mid, coll, doc_id, op, data, problem in rows
        ]

    async def use_endpoint(self, url: str) -> bool:
        """Sync with ``url`` from now on; whether that forgot the outbox's acknowledgements.

        An acknowledgement that ``stable`` does not cover yet holds only in the region that
        gave it, which may be lost. So when the device moves to another endpoint than the one
        that acknowledged its unsettled writes (also across a restart: the endpoint is kept
        here), they count as unsent and are pushed again there (RPO 0; I2 makes it safe).
        """
        return await self._run(self._use_endpoint, url)

    def _use_endpoint(self, url: str) -> bool:
        with self._transaction():
            previous = self._meta("endpoint")
            self._set_meta(("endpoint", url))
            if previous in ("", url):
                return False
            self._db.execute("UPDATE outbox SET origin = NULL, seq = NULL")
            self._unsent = self._pending
            self._forget_unsent()
            return True

    async def restamp(self, node_stamp: str) -> int:
        """Correct the clock to a node's and re-stamp every unsent entry (after ``clock_skew``)."""
        return await self._run(self._restamp, node_stamp)

    def _restamp(self, node_stamp: str) -> int:
        self.clock.correct(node_stamp)
        with self._transaction():
            rows = self._db.execute(
                "SELECT position, collection, id FROM outbox WHERE origin IS NULL ORDER BY position"
            ).fetchall()
            docs: set[DocKey] = set()
            for position, collection, doc_id in rows:
                stamp = self.clock.now()
                self._db.execute("UPDATE outbox SET hlc = ? WHERE position = ?", (stamp, position))
                docs.add((collection, doc_id))
            self._forget_unsent()  # re-stamped
            self._set_meta(
                ("clock_offset_ms", str(self.clock.offset_ms)), ("hlc", self.clock.now())
            )
            for collection, doc_id in docs:
                self._refresh_view(collection, doc_id)
        return len(rows)

    # -- pulled changes -------------------------------------------------------------------

    def apply_page(
        self,
        changes: Sequence[dict[str, Any]],
        cursor: str,
        stable: dict[str, int],
        done: bool,
        committed: Callable[[PageResult], None] | None = None,
    ) -> asyncio.Future[PageResult]:
        """Join a pulled page into the server states, move the cursor and settle the outbox.

        Everything commits in one transaction, so a crash mid-sync resumes from this page's
        cursor with its documents in place. ``done`` (no more pages) ends a running resync.
        """
        return self._thread.run(self._apply_page, changes, cursor, stable, done, then=committed)

    def _apply_page(
        self, changes: Sequence[dict[str, Any]], cursor: str, stable: dict[str, int], done: bool
    ) -> PageResult:
        with self._transaction():
            return self._join_page(changes, cursor, stable, done)

    def _join_page(
        self, changes: Sequence[dict[str, Any]], cursor: str, stable: dict[str, int], done: bool
    ) -> PageResult:
        """:meth:`apply_page` inside the caller's transaction."""
        latest: dict[DocKey, State | None] = {}
        for change in changes:
            state = change.get("state")
            if change.get("op") == REMOVAL_OP:
                # A document the user may not read (any more): drop it (docs/protocol.md).
                latest[(change["collection"], change["id"])] = None
                continue
            if state is None:
                raise ValueError("pulled change without state (pull with include_state=true)")
            latest[(change["collection"], change["id"])] = state
            if change.get("hlc"):
                self.clock.observe(change["hlc"])
        touched: set[DocKey] = set(latest)
        synced: dict[DocKey, dict[str, Any] | None] = {}
        held: dict[DocKey, State | None] = {}
        for (collection, doc_id), incoming in latest.items():
            if incoming is None:
                self._db.execute(
                    "DELETE FROM server_docs WHERE collection = ? AND id = ?",
                    (collection, doc_id),
                )
                synced[(collection, doc_id)] = held[(collection, doc_id)] = None
                continue
            # A full resync replaces what the device held before it (the device may hold
            # changes no region has: a node restored from a backup, a lost store, ADR
            # 0037) and joins what the resync itself brought (docs/protocol.md#cursors).
            current = self._server_state(collection, doc_id, seen_only=self.resyncing)
            if self.offering:
                self._offer_if_lost(collection, doc_id, incoming)
            merged = incoming if current is None else join(current, incoming)
            held[(collection, doc_id)] = merged
            synced[(collection, doc_id)] = visible(merged)
            self._db.execute(
                "INSERT OR REPLACE INTO server_docs (collection, id, state, seen)"
                " VALUES (?, ?, ?, 1)",
                (collection, doc_id, _dumps(merged)),
            )
        self.cursor = cursor
        self.stable = cursor_mod.merge(self.stable, stable)
        self._set_meta(("cursor", cursor), ("stable", _dumps(self.stable)))
        if done:
            self.last_synced_at = time.time()
            self._set_meta(("last_synced_at", repr(self.last_synced_at)))
        resynced = done and self.resyncing
        if resynced:
            gone = self._finish_resync()
            synced.update(dict.fromkeys(gone))
            touched |= gone
        settled = self._settle()
        touched |= settled
        none_left: list[Pending] | None = [] if self._pending == 0 else None  # nothing to read
        for collection, doc_id in touched:
            self._refresh_view(collection, doc_id, held, none_left)
        return PageResult(cursor, frozenset(c for c, _ in touched), len(settled), synced, resynced)

    def _settle(self) -> set[DocKey]:
        """Drop outbox entries that are acknowledged, stable and already pulled (I6).

        "Pulled" is "behind the cursor": a write to a collection outside the device's scope is
        never pulled, so it settles there too, and its document leaves the local view."""
        pulled = self._vector()
        settled: set[DocKey] = set()
        for origin, stable_seq in self.stable.items():
            limit = min(stable_seq, pulled.get(origin, 0))
            gone = self._db.execute(
                "DELETE FROM outbox WHERE origin = ? AND seq <= ? RETURNING collection, id",
                (origin, limit),
            ).fetchall()
            self._pending -= len(gone)
            settled.update((str(c), str(i)) for c, i in gone)
        return settled

    def _vector(self) -> dict[str, int]:
        """The cursor's vector, a copy to change (decoded once per cursor)."""
        if self._decoded[0] != self.cursor:
            self._decoded = (self.cursor, cursor_mod.decode(self.cursor))
        return dict(self._decoded[1])

    async def follow(self, scope: Scope) -> bool:
        """Make the stored cursor belong to ``scope``; whether that started a full resync.

        A cursor covers the changes of the collections it was pulled with and skips the others
        for good (docs/protocol.md#cursors), so a database synced with another scope starts
        over from the empty cursor, keeping the outbox; documents the new scope does not bring
        back leave the device when that resync completes."""
        return await self._run(self._follow, scope)

    def _follow(self, scope: Scope) -> bool:
        wanted = _dumps(None if scope is None else list(scope))
        if self._scope == wanted:
            return False
        with self._transaction():
            self._set_meta(("scope", wanted))
            resync = bool(self.cursor)  # not when nothing was pulled yet, or a resync runs
            if resync:
                self._start_resync()
        self._scope = wanted
        return resync

    async def begin_resync(self, *, offer: bool = False) -> None:
        """Start over from an empty cursor (``cursor_expired``, ``cursor_unknown``), keeping
        the outbox; ``offer``: the node was restored, so offer back what it lost
        (:mod:`breakwater.client.restore_offers`)."""
        await self._run(self._begin_resync, offer)

    def _begin_resync(self, offer: bool) -> None:
        with self._transaction():
            self._start_resync()
            self.offering = offer
            self._set_meta(("offering", "1" if offer else "0"))

    def _start_resync(self) -> None:
        """Forget the cursor, ``stable`` and the acknowledgements of unsettled writes: after a
        restore the node may have lost a write it acknowledged, so each is pushed again (the
        node answers ``duplicate`` for those it holds, I2)."""
        self._db.execute("UPDATE server_docs SET seen = 0")
        self._db.execute("UPDATE outbox SET origin = NULL, seq = NULL")
        self._unsent = self._pending
        self._forget_unsent()
        self.offering = False
        self.cursor = ""
        self.stable = {}
        self.resyncing = True
        self._set_meta(("offering", "0"), ("cursor", ""), ("stable", "{}"), ("resyncing", "1"))

    def _finish_resync(self) -> set[DocKey]:
        """Forget server documents the full resync did not bring back (purged meanwhile, or
        lost by a restore: then offered back first)."""
        gone = {
            (str(c), str(i))
            for c, i in self._db.execute("SELECT collection, id FROM server_docs WHERE seen = 0")
        }
        if self.offering:
            for collection, doc_id in gone:
                self._offer_if_lost(collection, doc_id, None)
        self._db.execute("DELETE FROM server_docs WHERE seen = 0")
        self.resyncing = False
        self.offering = False
        self._set_meta(("resyncing", "0"), ("offering", "0"))
        return gone

    def _offer_if_lost(self, collection: str, doc_id: str, node: State | None) -> None:
        """Queue a write of what this device held of a document before the node's restore, if
        the node's state (``node``, ``None``: it has none) lacks it."""
        row = self._db.execute(
            "SELECT state FROM server_docs WHERE collection = ? AND id = ? AND seen = 0",
            (collection, doc_id),
        ).fetchone()
        if row is None:
            return
        offer = restore_offers.offer_for(collection, doc_id, codec.loads(row[0]), node)
        if offer is None:
            return
        offered = self._db.execute(
            "INSERT OR IGNORE INTO outbox (mutation_id, collection, id, op, data, hlc)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                offer.mutation_id,
                collection,
                doc_id,
                offer.op,
                None if offer.data is None else _dumps(offer.data),
                offer.hlc,
            ),
        ).rowcount
        self._pending += offered
        self._unsent += offered
        self._forget_unsent()


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (or ``ROLLBACK`` on error) on an autocommit connection;
    ``ended`` is told which (after it).

    Not ``fsynced`` (``synchronous=NORMAL`` for this transaction only, then ``FULL`` again): in
    WAL mode its commit survives the process's crash, and the next fsynced commit makes it
    durable; only an OS crash or power loss before that can lose it (ADR 0060)."""

    def __init__(
        self, conn: sqlite3.Connection, ended: Callable[[bool], None], *, fsynced: bool = True
    ) -> None:
        self._conn = conn
        self._ended = ended
        self._fsynced = fsynced

    def __enter__(self) -> None:
        if not self._fsynced:
            self._conn.execute("PRAGMA synchronous = NORMAL")
        self._conn.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            self._end(exc_type is None)
        finally:
            if not self._fsynced:
                self._conn.execute("PRAGMA synchronous = FULL")

    def _end(self, commit: bool) -> None:
        if not commit:
            self._conn.execute("ROLLBACK")
            self._ended(False)
            return
        try:
            self._conn.execute("COMMIT")
        except sqlite3.Error:
            if self._conn.in_transaction:  # a failed COMMIT may leave it open
                self._conn.execute("ROLLBACK")
            self._ended(False)
            raise
        self._ended(True)
