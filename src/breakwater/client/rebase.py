"""The local view of a document: the server's state with the pending local mutations on top.

Pending mutations are joined into the server state as the same deltas the server will apply
(core.document.delta_for with the mutation's own stamp and id), so the device computes exactly the
document the server will hold once it has them all (I4), whatever the server received meanwhile.
A mutation the server already has joins as a no-op (the join is idempotent).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from breakwater.core.document import State, delta_for, empty_state, join, newest_write, visible


def rebase(server_state: State | None, pending: Iterable[tuple[str, Any, str, str]]) -> State:
    """``server_state`` joined with each pending ``(op, data, hlc, mutation_id)``."""
    state = server_state if server_state is not None else empty_state()
    for op, data, hlc, mutation_id in pending:
        state = join(state, delta_for(op, data, hlc, mutation_id))
    return state


def view_of(state: State) -> tuple[dict[str, Any] | None, str]:
    """The visible document (``None``: deleted or never written) and its newest write."""
    newest = newest_write(state)
    return visible(state, newest), newest
