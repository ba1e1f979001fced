"""``client.collection(name)``: reads, writes and live queries on the local view.

Every call is answered by the device's database, online or offline. A write returns once it and
its outbox entry are durable on the device (one SQLite transaction, fsynced); the background sync
delivers it later. Inputs are checked with the server's own rules first, so a write the server
would refuse for its shape is refused here, at once, and never queued.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from breakwater.client.change_signal import ChangeSignal
from breakwater.client.local_query import Where, build_query
from breakwater.client.local_store import Document, LocalStore
from breakwater.client.outbox import OutboxEntry
from breakwater.core.limits import Limits
from breakwater.core.mutation import check_collection, parse_mutation

CHECK_ID = "check.0"  # a placeholder id: only the mutation's shape is validated


class Collection:
    """One collection of the local view."""

    def __init__(
        self,
        name: str,
        store: LocalStore,
        signal: ChangeSignal,
        on_write: Callable[[OutboxEntry], None],
        limits: Limits,
    ) -> None:
        self.name = check_collection(name)
        self._store = store
        self._signal = signal
        self._on_write = on_write
        self._limits = limits

    async def _write(self, doc_id: str, op: str, data: dict[str, Any] | None) -> Document | None:
        raw: dict[str, Any] = {"mutation_id": CHECK_ID, "collection": self.name, "id": doc_id}
        raw["op"] = op
        if data is not None:
            raw["data"] = data
        parse_mutation(raw, self._limits)
        written = await self._store.write(self.name, doc_id, op, data)
        self._on_write(written.entry)
        return written.view

    async def get(self, doc_id: str) -> Document | None:
        """The document as this device sees it (``None`` when missing or deleted)."""
        return await self._store.get(self.name, doc_id)

    async def set(self, doc_id: str, data: dict[str, Any]) -> Document:
        """Replace the document (create it if missing)."""
        document = await self._write(doc_id, "set", data)
        if document is None:  # a set always leaves a live document
            raise AssertionError("set produced no document")
        return document

    async def patch(self, doc_id: str, data: dict[str, Any]) -> Document | None:
        """Write the fields of ``data`` (``None`` removes a field); others are untouched."""
        return await self._write(doc_id, "patch", data)

    async def delete(self, doc_id: str) -> None:
        """Delete the document (a tombstone that syncs like any write)."""
        await self._write(doc_id, "delete", None)

    async def increment(self, doc_id: str, amounts: dict[str, int | float]) -> Document | None:
        """Add to counter fields; concurrent increments on other devices all count."""
        return await self._write(doc_id, "increment", dict(amounts))

    async def query(
        self, where: Where = None, order_by: str | None = None, limit: int | None = None
    ) -> list[Document]:
        """Live documents matching every filter, ordered by ``order_by`` (``-field``: descending)
        then id. ``where``: ``{field: value}`` or clauses ``"field:op:value"`` /
        ``(field, op, value)`` with op in eq, ne, lt, lte, gt, gte (server semantics)."""
        return await self._store.query(build_query(self.name, where, order_by, limit))

    async def watch(
        self, where: Where = None, order_by: str | None = None, limit: int | None = None
    ) -> AsyncIterator[list[Document]]:
        """The query's results now, then again every time they change (local or synced writes)."""
        query = build_query(self.name, where, order_by, limit)
        last: list[Document] | None = None
        while True:
            waiter = self._signal.waiter(self.name)
            results = await self._store.query(query)
            if results != last:
                last = results
                yield results
            await waiter.wait()
