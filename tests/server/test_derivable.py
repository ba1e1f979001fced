"""Which push answers may leave a change's state for the device to derive (ADR 0052)."""

from __future__ import annotations

from breakwater.core.document import delta_for, empty_state, join
from breakwater.core.engine import MutationResult, StoredDoc
from breakwater.core.mutation import Mutation
from breakwater.server.pushes import derivable

HLC = "0001733400000000000-0000-d-a"


def _applied(mutation: Mutation) -> MutationResult:
    """The result of ``mutation`` applied to a new document, stored exactly as its delta."""
    assert mutation.hlc is not None
    state = join(
        empty_state(),
        delta_for(mutation.op, mutation.data, mutation.hlc, mutation.mutation_id),
    )
    doc = StoredDoc(mutation.collection, mutation.doc_id, state, None, "v", mutation.hlc, "o", 1)
    return MutationResult(mutation.mutation_id, "applied", "o", 1, doc, prior=None)


def test_a_set_stored_as_its_delta_is_derivable() -> None:
    mutation = Mutation("d.1", "notes", "n1", "set", {"title": "milk"}, hlc=HLC)
    assert derivable(mutation, _applied(mutation))


def test_an_increment_is_never_derivable_even_when_stored_as_its_delta() -> None:
    """Across regions a counter's state is rewritten once its increments are stable (folded):
    a device must hold the node's state, not one it computed (the region-loss scenario kept a
    device on another version of every counter, for good)."""
    mutation = Mutation("d.2", "counters", "c1", "increment", {"n": 1}, hlc=HLC)
    assert not derivable(mutation, _applied(mutation))
