"""The continuous archive of the change feed (``breakwater archive``).

The archiver follows a store's feed as a reader (any backend, through ``Store.pull``) and writes
what each read brings as one *segment*: the changes in commit order with their positions, commit
times and the documents' full CRDT states. Then it writes the archive's cursor. Both are sealed
objects (ops/sealing.py), so a damaged segment is refused on replay. A crash between the two
writes the segment again from the old cursor under the same name, so the archive never has a gap.

One read is one snapshot: a document's state there is the one its last change in the read left.
An earlier change of the same document in the same read is archived with ``state`` left out
(``current`` false); a replay can stop only where every such change is followed by its
document's next state (:func:`replay_plan`). So a restore to a time T is exact unless a document
was written twice within one read across T, and then it stops at the last point before T where
it is exact, and says so.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from breakwater.core import codec
from breakwater.core.cursor import VersionVector, merge
from breakwater.core.errors import ConfigError
from breakwater.ops import sealing
from breakwater.ops.objects import ObjectStore
from breakwater.storage.base import FeedEntry, Store

CURSOR = "cursor.json"
SEGMENTS = "segments/"
FORMAT = 1


@dataclass(frozen=True, slots=True)
class ArchivedChange:
    """One change as the archive keeps it; ``state`` is ``None`` when ``current`` is false."""

    origin: str
    seq: int
    collection: str
    doc_id: str
    mutation_id: str
    hlc: str
    op: str
    at_ms: int
    current: bool
    state: dict[str, Any] | None

    def row(self) -> dict[str, Any]:
        """The change as a segment line."""
        return {
            "o": self.origin,
            "s": self.seq,
            "c": self.collection,
            "i": self.doc_id,
            "m": self.mutation_id,
            "h": self.hlc,
            "p": self.op,
            "t": self.at_ms,
            "state": self.state,
        }

    @classmethod
    def of_row(cls, row: dict[str, Any]) -> ArchivedChange:
        """A change read back from a segment line."""
        state = row["state"]
        return cls(
            row["o"],
            row["s"],
            row["c"],
            row["i"],
            row["m"],
            row["h"],
            row["p"],
            row["t"],
            state is not None,
            state,
        )

    @classmethod
    def of_entry(cls, entry: FeedEntry) -> ArchivedChange:
        """A change from a feed entry read with its state."""
        change = entry.change
        if entry.at_ms is None:
            raise ValueError("the archive reads the feed with include_state=True")
        return cls(
            change.origin,
            change.seq,
            change.collection,
            change.doc_id,
            change.mutation_id,
            change.hlc,
            change.op,
            entry.at_ms,
            entry.current,
            entry.state if entry.current else None,
        )


def segment_name(number: int) -> str:
    """Segments sort by name in the order they were written."""
    return f"{SEGMENTS}{number:012d}.seg"


def encode_segment(changes: Sequence[ArchivedChange], after: VersionVector) -> bytes:
    """A segment body: a header line, then one line per change."""
    header = {"format": FORMAT, "count": len(changes), "cursor": after}
    return b"\n".join([codec.dumps(header), *(codec.dumps(c.row()) for c in changes)])


def decode_segment(body: bytes) -> tuple[list[ArchivedChange], VersionVector]:
    """A segment's changes and the cursor after it; a count that does not match is refused."""
    lines = body.split(b"\n")
    header = codec.loads(lines[0])
    if header.get("format") != FORMAT or header.get("count") != len(lines) - 1:
        raise sealing.SealBroken("an archive segment's header does not match its contents")
    return [ArchivedChange.of_row(codec.loads(line)) for line in lines[1:]], header["cursor"]


@dataclass
class ArchiveCursor:
    """Where the archive stands: the feed vector it covers and the next segment's number."""

    vector: VersionVector
    next_segment: int

    @classmethod
    def read(cls, target: ObjectStore, key: bytes | None) -> ArchiveCursor:
        """The stored cursor, or the start of an empty archive."""
        try:
            stored = target.get(CURSOR)
        except FileNotFoundError:
            return cls({}, 0)
        raw = codec.loads(sealing.unseal(CURSOR, stored, key))
        return cls(raw["vector"], raw["next_segment"])

    def write(self, target: ObjectStore, key: bytes | None) -> None:
        """Store the cursor (after the segment it follows)."""
        body = codec.dumps({"vector": self.vector, "next_segment": self.next_segment})
        target.put(CURSOR, sealing.seal(CURSOR, body, key))


class Archiver:
    """Follows one store's feed into one archive location."""

    def __init__(
        self,
        store: Store,
        target: ObjectStore,
        key: bytes | None,
        *,
        interval: float = 0.1,
        batch: int = 5000,
    ) -> None:
        self.store = store
        self.target = target
        self.key = key
        self.interval = interval
        self.batch = batch
        self.cursor = ArchiveCursor.read(target, key)
        self.archived = 0

    async def step(self) -> int:
        """Archive what one read of the feed brings; how many changes it archived."""
        page = await self.store.pull(self.cursor.vector, None, self.batch, include_state=True)
        ahead = {o: s for o, s in self.cursor.vector.items() if s > page.head.get(o, 0)}
        if ahead:
            raise ConfigError(
                f"the store is behind this archive ({ahead}): it was restored; archive it to a"
                " new location (docs/operations.md#continuous-archive)"
            )
        if not page.entries:
            self.cursor.vector = merge(self.cursor.vector, page.vector)
            return 0
        changes = [ArchivedChange.of_entry(entry) for entry in page.entries]
        name = segment_name(self.cursor.next_segment)
        sealed = sealing.seal(name, encode_segment(changes, page.vector), self.key)
        await asyncio.to_thread(self.target.put, name, sealed)
        self.cursor = ArchiveCursor(page.vector, self.cursor.next_segment + 1)
        await asyncio.to_thread(self.cursor.write, self.target, self.key)
        self.archived += len(changes)
        return len(changes)

    async def run(self, stop: asyncio.Event) -> None:
        """Archive until ``stop`` is set, reading again at once while reads are full."""
        while not stop.is_set():
            if await self.step() >= self.batch:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)


def read_archive(source: ObjectStore, key: bytes | None) -> Iterator[ArchivedChange]:
    """Every archived change in commit order, each segment verified as it is read."""
    for name in source.names(SEGMENTS):
        changes, _ = decode_segment(sealing.unseal(name, source.get(name), key))
        yield from changes


@dataclass(frozen=True, slots=True)
class ReplayPlan:
    """The archived changes a restore replays: a prefix of the commit order."""

    changes: list[ArchivedChange]
    exact: bool
    """False when the prefix had to stop before the target time (a document written twice
    within one archive read across it)."""


def replay_plan(
    archived: Iterator[ArchivedChange], base_head: VersionVector, until_ms: int | None
) -> ReplayPlan:
    """The longest prefix of the changes past ``base_head`` committed at or before
    ``until_ms`` (all when ``None``) that ends where every document's state is known."""
    taken: list[ArchivedChange] = []
    end = 0
    awaiting: set[tuple[str, str]] = set()
    reached_target = False
    for change in archived:
        if change.seq <= base_head.get(change.origin, 0):
            continue
        if until_ms is not None and change.at_ms > until_ms:
            reached_target = True
            break
        taken.append(change)
        key = (change.collection, change.doc_id)
        if change.current:
            awaiting.discard(key)
        else:
            awaiting.add(key)
        if not awaiting:
            end = len(taken)
    exact = len(taken) == end and (reached_target or until_ms is None or not awaiting)
    return ReplayPlan(taken[:end], exact)
