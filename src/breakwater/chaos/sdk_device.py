"""A simulated phone that is a real SDK client: its own database, outbox, sync loop and failover.

Every :class:`SdkDevice` is a :class:`breakwater.client.Client` on its own SQLite file, given the
nodes (their chaos proxies, in a scenario) as its endpoints, first to last from a rotating
start so that devices spread over the nodes. The app's side of the phone is the workload
(:class:`~breakwater.chaos.device.Workload`); everything between the app and the nodes (stamping,
the outbox, batching, retries, backoff, breakers, failover, realtime, rebase) is the SDK's own.

The history is written from what the SDK tells the app, so it stays truthful:

- a write is invoked when the app calls the SDK; the SDK's
  :class:`~breakwater.client.MutationQueued` event names its mutation id before the call returns;
- it completes ``ok`` when a node acknowledges that id
  (:class:`~breakwater.client.MutationsAcknowledged`: the first acknowledgement, ``applied`` or
  ``duplicate``, with the node that gave it and the stamp the node got);
- it completes ``failed`` when the server rejects it (:class:`~breakwater.client.MutationRejected`):
  that is definite, because a node answers ``duplicate`` for an id it already holds before it
  judges anything, and the SDK re-sends a mutation with the same content every time;
- a write never acknowledged when the device closes is recorded ``unknown``: a push whose
  answer was lost may have been applied;
- a read is the SDK's local read (``target`` ``local``), online or not: read-your-writes is the
  SDK's promise, and the checker holds it to it;
- each page the SDK commits (:class:`~breakwater.client.PageApplied`: pulled, or its own
  writes taken in from a push answer) that moved the cursor or changed a document is a
  ``cursor`` record: the cursor's vector and the synced data
  of the documents the page changed; a full resync's start
  (:class:`~breakwater.client.ResyncStarted`) is one with the empty cursor. The checker
  rebuilds the device's synced copy from them and holds it to its cursor.

Offline is :meth:`breakwater.client.Client.pause`: the SDK stops all traffic (an in-flight push
is abandoned, its outcome unknown) until :meth:`~breakwater.client.Client.resume` (ADR 0013).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from breakwater.chaos.checker import DocState, ReplicaState
from breakwater.chaos.device import Workload
from breakwater.chaos.history import (
    CursorRecord,
    MutationRecord,
    Operation,
    Outcome,
    ReadRecord,
    Recorder,
)
from breakwater.client import (
    Client,
    Event,
    MutationQueued,
    MutationRejected,
    MutationsAcknowledged,
    OutboxEntry,
    PageApplied,
    ResyncStarted,
)
from breakwater.core.cursor import decode

LOCAL = "local"
"""The ``target`` of a read answered by the device's own database."""


def _record(entry: OutboxEntry) -> MutationRecord:
    return MutationRecord(
        entry.mutation_id, entry.collection, entry.doc_id, entry.op, entry.data, entry.hlc
    )


class SdkDevice:
    """One simulated phone on the SDK. Open it with :meth:`open` (or ``async with``).

    ``endpoints`` are ``(node name, base URL)`` pairs; the device prefers them in order from
    ``first``. The device syncs the collections its workload uses (all of them unless the
    workload is scoped). ``sync_interval`` is the SDK's poll interval (it also syncs after
    every write and on every realtime notice); ``sync_timeout`` bounds :meth:`sync`. Other
    keyword arguments go to :class:`~breakwater.client.Client` (``transports``, ...).
    """

    def __init__(
        self,
        name: str,
        endpoints: Sequence[tuple[str, str]],
        db_path: Path,
        recorder: Recorder,
        workload: Workload,
        *,
        request_timeout: float,
        sync_interval: float,
        sync_timeout: float,
        first: int = 0,
        **client_options: Any,
    ) -> None:
        self.name = name
        self.recorder = recorder
        self.workload = workload
        self.sync_timeout = sync_timeout
        start = first % len(endpoints)
        ordered = [*endpoints[start:], *endpoints[:start]]
        self._nodes = {url.rstrip("/"): node for node, url in ordered}
        self.client = Client(
            [url for _, url in ordered],
            db_path,
            request_timeout=request_timeout,
            poll_interval=sync_interval,
            sync_collections=workload.collections,
            **client_options,
        )
        self.client.on(self._on_event)
        self._online = True
        self._invoked = 0.0
        self._unacknowledged: dict[str, tuple[float, OutboxEntry]] = {}
        self._cursor: dict[str, int] = {}  # as last recorded

    async def open(self) -> SdkDevice:
        """Open the device database and start syncing."""
        await self.client.open()
        return self

    async def __aenter__(self) -> SdkDevice:
        return await self.open()

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    # The Device protocol ---------------------------------------------------------------------

    @property
    def online(self) -> bool:
        return self._online

    async def set_online(self, online: bool) -> None:
        if online == self._online:
            return
        self._online = online
        if online:
            self.client.resume()
        else:
            await self.client.pause()

    async def act(self, kind: str) -> None:
        if kind == "read":
            await self._read()
            return
        write = self.workload.write(kind)
        documents = self.client.collection(write.collection)
        self._invoked = self.recorder.now()
        if write.op == "increment":
            await documents.increment(write.doc_id, write.data)
        elif write.op == "set":
            await documents.set(write.doc_id, write.data)
        else:
            await documents.patch(write.doc_id, write.data)

    async def sync(self) -> bool:
        if not self._online:
            return False
        try:
            async with asyncio.timeout(self.sync_timeout):
                return await self.client.refresh()
        except TimeoutError:
            return False

    def pending(self) -> int:
        return self.client.pending

    async def snapshot(self, taken_at: float) -> ReplicaState:
        docs = {
            (doc.collection, doc.id): DocState(doc.data, doc.version)
            for doc in await self.client.server_documents()
        }
        return ReplicaState(self.name, "device", docs, None, taken_at)

    async def aclose(self) -> None:
        # Sync stops first, so that no acknowledgement can arrive after the verdict below.
        node = self._current_node()
        await self.client.aclose()
        for invoked, entry in self._unacknowledged.values():
            self._add(node, invoked, None, "unknown", entry, {}, "never acknowledged")
        self._unacknowledged.clear()

    # What the SDK tells the app -------------------------------------------------------------

    def _on_event(self, event: Event) -> None:
        if isinstance(event, MutationQueued):
            self._unacknowledged[event.entry.mutation_id] = (self._invoked, event.entry)
        elif isinstance(event, MutationsAcknowledged):
            node = self._nodes.get(event.endpoint, event.endpoint)
            for entry in event.entries:
                known = self._unacknowledged.pop(entry.mutation_id, None)
                if known is None:
                    continue  # acknowledged again after a failover: the first one counts
                status = "duplicate" if entry.mutation_id in event.duplicates else "applied"
                results = {entry.mutation_id: status}
                self._add(node, known[0], self.recorder.now(), "ok", entry, results)
        elif isinstance(event, PageApplied):
            self._moved(
                decode(event.cursor), dict(event.documents), "done" if event.resynced else None
            )
        elif isinstance(event, ResyncStarted):
            self._moved({}, {}, "start")
        elif isinstance(event, MutationRejected):
            rejection = event.rejection
            known = self._unacknowledged.pop(rejection.mutation_id, None)
            if known is not None:
                node = self._current_node()
                results = {rejection.mutation_id: "rejected"}
                error = str(rejection.problem.get("type", "rejected"))
                completed = self.recorder.now()
                self._add(node, known[0], completed, "failed", known[1], results, error)

    def _moved(
        self,
        cursor: dict[str, int],
        docs: dict[tuple[str, str], dict[str, Any] | None],
        resync: Literal["start", "done"] | None,
    ) -> None:
        if cursor == self._cursor and not docs and resync is None:
            return  # a page with nothing new: the checker would learn nothing from it
        self._cursor = cursor
        collections = self.workload.collections
        self.recorder.add(
            CursorRecord(self.name, self.recorder.now(), cursor, docs, resync, collections)
        )

    def _current_node(self) -> str:
        endpoint = (self.client.status.endpoint or "").rstrip("/")
        return self._nodes.get(endpoint, endpoint)

    async def _read(self) -> None:
        collection, doc_id = self.workload.read()
        invoked = self.recorder.now()
        document = await self.client.collection(collection).get(doc_id)
        read = ReadRecord(collection, doc_id, None if document is None else document.data)
        self.recorder.add(
            Operation(
                self.recorder.next_id(),
                self.name,
                "read",
                LOCAL,
                invoked,
                self.recorder.now(),
                "ok",
                read=read,
            )
        )

    def _add(
        self,
        target: str,
        invoked: float,
        completed: float | None,
        outcome: Outcome,
        entry: OutboxEntry,
        results: dict[str, str],
        error: str | None = None,
    ) -> None:
        self.recorder.add(
            Operation(
                self.recorder.next_id(),
                self.name,
                "push",
                target,
                invoked,
                completed,
                outcome,
                (_record(entry),),
                results,
                error=error,
            )
        )
