"""The stable vector under every interleaving of writes, re-pushes and pulls between three
regions (hypothesis): it never covers a change some region lacks, a region whose stable vector
covers one position of a mutation holds every position that mutation has anywhere (so folding
cannot count a copy twice, ADR 0019), and one full round of pulls makes everything stable.

Regions are modelled as their feeds, pulled exactly as ``Store.pull`` pages them (local commit
order, the cursor moved to the head when a page ends the feed) and applied as
``apply_replicated`` does (entries the head covers skipped); ``stable`` is the real
:func:`breakwater.replication.stable.stable_vector` over the recorded caught-up heads.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from breakwater.core import cursor
from breakwater.core.cursor import VersionVector
from breakwater.replication.stable import stable_vector

NAMES = ("a", "b", "c")


@dataclass
class Model:
    """One region: its feed, head, the mutations it applied, and its replication rows."""

    name: str
    feed: list[tuple[str, int, str]] = field(default_factory=list)
    head: VersionVector = field(default_factory=dict)
    mutations: set[str] = field(default_factory=set)
    cursors: dict[str, VersionVector] = field(default_factory=dict)
    caught_up: dict[str, VersionVector | None] = field(default_factory=dict)

    def write(self, mutation_id: str) -> None:
        """A device write (or a re-push of a mutation another region applied): a new position
        of this region's origin, unless this region already applied the mutation (I2)."""
        if mutation_id in self.mutations:
            return
        seq = self.head.get(self.name, 0) + 1
        self.feed.append((self.name, seq, mutation_id))
        self.head[self.name] = seq
        self.mutations.add(mutation_id)

    def pull(self, peer: Model, limit: int) -> None:
        """One replication page from ``peer``, applied with its bookkeeping."""
        vector = self.cursors.get(peer.name, {})
        fresh = [e for e in peer.feed if not cursor.covers(vector, e[0], e[1])]
        page, has_more = fresh[:limit], len(fresh) > limit
        head = dict(peer.head)
        for origin, seq, mutation_id in page:
            if seq <= self.head.get(origin, 0):
                continue
            self.feed.append((origin, seq, mutation_id))
            self.head[origin] = seq
            self.mutations.add(mutation_id)
        moved = cursor.advance(vector, ((o, s) for o, s, _ in page))
        self.cursors[peer.name] = moved if has_more else cursor.merge(moved, head)
        if not has_more:
            self.caught_up[peer.name] = head

    def stable(self) -> VersionVector:
        """This region's stable vector, as the region view computes it."""
        peers = [name for name in NAMES if name != self.name]
        return stable_vector(self.head, [self.caught_up.get(name) for name in peers])

    def holds(self, origin: str, seq: int) -> bool:
        """True when the change ``(origin, seq)`` is in this region's feed."""
        return any(e[0] == origin and e[1] == seq for e in self.feed)


operation = st.one_of(
    st.tuples(st.just("write"), st.sampled_from(NAMES), st.integers(0, 5)),
    st.tuples(st.just("pull"), st.sampled_from(NAMES), st.sampled_from(NAMES), st.integers(1, 3)),
)


def check_invariants(regions: dict[str, Model]) -> None:
    """Safety: nothing stable is missing anywhere; a stable position's mutation is held here
    at every position it has anywhere."""
    for region in regions.values():
        stable = region.stable()
        assert cursor.covers_all(region.head, stable)
        for origin, upto in stable.items():
            for seq in range(1, upto + 1):
                for other in regions.values():
                    assert other.holds(origin, seq), (region.name, other.name, origin, seq)
        for origin, seq, mutation_id in region.feed:
            if not cursor.covers(stable, origin, seq):
                continue
            for other in regions.values():
                for position in other.feed:
                    if position[2] == mutation_id:
                        assert region.holds(position[0], position[1])


@settings(max_examples=300, deadline=None)
@given(st.lists(operation, max_size=60))
def test_stable_is_safe_under_any_interleaving_and_live_after_a_round(
    operations: list[tuple[object, ...]],
) -> None:
    """Run the operations, checking safety after each; then two rounds of full pulls make
    every change stable in every region."""
    regions = {name: Model(name) for name in NAMES}
    for op in operations:
        if op[0] == "write":
            regions[str(op[1])].write(f"m{op[2]}")
        elif op[1] != op[2]:
            regions[str(op[1])].pull(regions[str(op[2])], int(str(op[3])))
        check_invariants(regions)
    for _ in range(2):  # a round: each pulls each to its head (twice: learn what peers hold)
        for puller in regions.values():
            for peer in regions.values():
                if peer is not puller:
                    puller.pull(peer, 10_000)
        check_invariants(regions)
    everything: VersionVector = {}
    for region in regions.values():
        everything = cursor.merge(everything, region.head)
    for region in regions.values():
        assert region.head == everything
        assert region.stable() == {o: s for o, s in everything.items() if s > 0}
