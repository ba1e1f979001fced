"""The local view of a document: the server's state with the pending local mutations on top.

Pending mutations are applied to the server state as the server applies them
(core.document.apply with the mutation's own stamp and id), so the device computes the document
the server will hold once it has them, whatever the server received meanwhile. A mutation the
server already has changes nothing: by its id while the server keeps its increment apart, and by
its acknowledged position once the server has folded it into a base.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from breakwater.core.document import State, apply, empty_state, newest_write, visible

Pending = tuple[str, Any, str, str, tuple[str, int] | None]
"""``(op, data, hlc, mutation_id, position)``; ``position`` once the server acknowledged it."""


def rebase(server_state: State | None, pending: Iterable[Pending]) -> State:
    """``server_state`` with each pending mutation applied in order."""
    state = server_state if server_state is not None else empty_state()
    newest = newest_write(state)
    for op, data, hlc, mutation_id, position in pending:
        _, state, _, newest = apply(state, newest, op, data, hlc, mutation_id, position)
    return state


def view_of(state: State) -> tuple[dict[str, Any] | None, str]:
    """The visible document (``None``: deleted or never written) and its newest write."""
    newest = newest_write(state)
    return visible(state, newest), newest
