"""A node in a test's memory: applies pushed mutations with core's engine rules, serves pages.

Used to drive the local store through the same shapes the wire protocol has (results with
``(origin, seq)``, changes with states) without a network.
"""

from __future__ import annotations

from typing import Any

from breakwater.client.outbox import OutboxEntry
from breakwater.core import cursor as cursor_mod
from breakwater.core import document
from breakwater.core.document import State


class FakeNode:
    """One origin's feed of changes over documents held as replicated states."""

    def __init__(self, origin: str = "r1") -> None:
        self.origin = origin
        self.states: dict[tuple[str, str], State] = {}
        self.feed: list[tuple[int, tuple[str, str], str, str]] = []
        self.applied: dict[str, int] = {}

    def push(self, entries: list[OutboxEntry]) -> list[tuple[str, str, int]]:
        """Apply each entry once (by mutation id); return ``(mutation_id, origin, seq)`` acks."""
        acks = []
        for entry in entries:
            if entry.mutation_id not in self.applied:
                key = (entry.collection, entry.doc_id)
                state = self.states.get(key)
                newest = document.newest_write(state) if state else ""
                _, new, _, _ = document.apply(
                    state, newest, entry.op, entry.data, entry.hlc, entry.mutation_id
                )
                seq = len(self.feed) + 1
                # As the engine: the increment takes its position and, one region, folds at once.
                new = document.settle(new, entry.mutation_id, self.origin, seq, {self.origin: seq})
                self.states[key] = new
                self.feed.append((seq, key, entry.mutation_id, entry.hlc))
                self.applied[entry.mutation_id] = seq
            acks.append((entry.mutation_id, self.origin, self.applied[entry.mutation_id]))
        return acks

    def pull(self, cursor: str, limit: int = 1000) -> dict[str, Any]:
        """A pull page after ``cursor``, with states, like ``GET /v1/sync/pull``."""
        after = cursor_mod.decode(cursor).get(self.origin, 0)
        rows = [row for row in self.feed if row[0] > after][:limit]
        changes = [
            {
                "origin": self.origin,
                "seq": seq,
                "collection": key[0],
                "id": key[1],
                "mutation_id": mid,
                "hlc": hlc,
                "state": self.states[key],
            }
            for seq, key, mid, hlc in rows
        ]
        last = rows[-1][0] if rows else after
        return {
            "changes": changes,
            "cursor": cursor_mod.encode({self.origin: last}) if last else cursor,
            "has_more": bool(rows) and rows[-1][0] < len(self.feed),
            "stable": {self.origin: len(self.feed)} if self.feed else {},
        }

    def visible(self, collection: str, doc_id: str) -> dict[str, Any] | None:
        """The document as the node shows it."""
        state = self.states.get((collection, doc_id))
        return None if state is None else document.visible(state)
