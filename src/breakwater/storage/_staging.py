"""One group commit staged in memory: the engine's ``WriteTarget`` for every SQL backend.

A backend reads what a batch needs up front (which mutation ids are known, the documents the new
ones touch, the origins' seqs), the engine then runs entirely against dictionaries, and the
backend writes the kept effects with a few bulk statements. Each caller's request is staged in a
layer of its own, so an unexpected error while applying one request discards that request alone
(:meth:`StagedBatch.discard_request`). What was not read up front is asked of :meth:`_fetch_doc`,
:meth:`_fetch_mutation` and :meth:`_fetch_seq`, which a backend overrides.
"""

from __future__ import annotations

from breakwater.core.engine import Change, Conflict, StoredDoc


class Layer:
    """The staged effects of one request (or, merged, of the whole batch)."""

    def __init__(self) -> None:
        self.docs: dict[tuple[str, str], tuple[StoredDoc, bytes | None]] = {}
        self.changes: list[Change] = []
        self.applied: dict[str, tuple[str, int]] = {}
        self.conflicts: list[Conflict] = []
        self.seqs: dict[str, int] = {}

    def merge(self, other: Layer) -> None:
        """Take ``other``'s effects on top of these."""
        self.docs.update(other.docs)
        self.changes += other.changes
        self.applied.update(other.applied)
        self.conflicts += other.conflicts
        self.seqs.update(other.seqs)


class StagedBatch:
    """A ``WriteTarget`` over what the backend read up front, plus the staged effects."""

    def __init__(self, now_ms: int) -> None:
        self.now_ms = now_ms
        self.known_docs: dict[tuple[str, str], StoredDoc | None] = {}
        self.known_mutations: dict[str, tuple[str, int] | None] = {}
        self.known_seqs: dict[str, int] = {}
        self.batch = Layer()
        self._request = Layer()

    # what a backend did not read up front -----------------------------------------------------

    def _fetch_doc(self, collection: str, doc_id: str) -> StoredDoc | None:
        raise LookupError(f"document {collection}/{doc_id} was not read for this batch")

    def _fetch_mutation(self, mutation_id: str) -> tuple[str, int] | None:
        raise LookupError(f"mutation {mutation_id} was not looked up for this batch")

    def _fetch_seq(self, origin: str) -> int:
        return 0  # an origin the backend did not list has written nothing yet

    # WriteTarget ------------------------------------------------------------------------------

    def load(self, collection: str, doc_id: str) -> StoredDoc | None:
        key = (collection, doc_id)
        for layer in (self._request, self.batch):
            if key in layer.docs:
                return layer.docs[key][0]
        if key not in self.known_docs:
            self.known_docs[key] = self._fetch_doc(collection, doc_id)
        return self.known_docs[key]

    def find_mutation(self, mutation_id: str) -> tuple[str, int] | None:
        for layer in (self._request, self.batch):
            if mutation_id in layer.applied:
                return layer.applied[mutation_id]
        if mutation_id not in self.known_mutations:
            self.known_mutations[mutation_id] = self._fetch_mutation(mutation_id)
        return self.known_mutations[mutation_id]

    def next_seq(self, origin: str) -> int:
        current = self.seq_of(origin)
        self._request.seqs[origin] = current + 1
        return current + 1

    def seq_of(self, origin: str) -> int:
        """The highest seq of ``origin`` this store holds, staged changes included."""
        current = self._request.seqs.get(origin) or self.batch.seqs.get(origin)
        if current is None:
            if origin not in self.known_seqs:
                self.known_seqs[origin] = self._fetch_seq(origin)
            current = self.known_seqs[origin]
        return current

    def save_replicated(self, doc: StoredDoc, change: Change, data_json: bytes | None) -> None:
        """Stage a peer's change at its original position (its origin's head moves to it)."""
        self.save(doc, change, data_json)
        self._request.seqs[change.origin] = change.seq

    def save(self, doc: StoredDoc, change: Change, data_json: bytes | None) -> None:
        self._request.docs[(doc.collection, doc.doc_id)] = (doc, data_json)
        self._request.changes.append(change)
        self._request.applied[change.mutation_id] = (change.origin, change.seq)

    def record_conflict(self, conflict: Conflict) -> None:
        self._request.conflicts.append(conflict)

    # request layers ---------------------------------------------------------------------------

    def keep_request(self) -> None:
        """Make the current request's effects part of the batch."""
        self.batch.merge(self._request)
        self._request = Layer()

    def discard_request(self) -> None:
        """Forget the current request's effects (it failed)."""
        self._request = Layer()

    @property
    def touched(self) -> dict[str, int]:
        """The new head seq of every origin this batch wrote."""
        return dict(self.batch.seqs)

    def newest_hlc(self) -> dict[str, str]:
        """The newest HLC each origin's kept changes carry."""
        newest: dict[str, str] = {}
        for change in self.batch.changes:
            newest[change.origin] = max(newest.get(change.origin, ""), change.hlc)
        return newest
