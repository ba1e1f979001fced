"""Devices help a restore: what a device offers back to a node restored to an earlier point.

A node restored from a backup (or to a time) has lost the changes after that point; a device
that synced them still holds the documents' states. When the node answers ``cursor_unknown``,
the device resyncs, and for every document whose state it held has something the node's state
lacks (the node's join with it differs from the node's), it writes that document back: a
``set`` of the data it held, stamped with the newest write it held, or a ``delete`` of a document
it held deleted. The node merges it like any write (last writer wins per field by stamp, so a
newer write made on the node since the restore keeps its fields) and checks it with the same
access rules as any write of this device's user: a device can only bring back what its user
could have written. The mutation id is derived from the state offered, so devices offering the
same state bring it back once (the node answers ``duplicate`` to the others).

Known limits (docs/adr/0029-backups-and-point-in-time-restore.md): the offer restamps every
field of the document with its newest write, and documents holding counters are not offered
(a ``set`` would turn a counter into a plain value).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from breakwater.core.document import State, join, newest_write, version, visible

PREFIX = "restore"


@dataclass(frozen=True, slots=True)
class Offer:
    """The write a device queues to bring back one document the node lost."""

    mutation_id: str
    op: str
    data: dict[str, Any] | None
    hlc: str


def lacks(node: State | None, held: State) -> bool:
    """Whether the node's state (``None``: none) lacks something of ``held``."""
    if node is None:
        return True
    return version(join(node, held)) != version(node)


def offer_for(collection: str, doc_id: str, held: State, node: State | None) -> Offer | None:
    """The write bringing back what the node lacks of ``held``; ``None`` if nothing is lacking
    or the document cannot be offered (counters)."""
    if held["n"] or not lacks(node, held):
        return None
    data = visible(held)
    if data is None and node is None:
        return None  # the node never had it or purged its tombstone: nothing to delete
    key = hashlib.blake2b(f"{collection}/{doc_id}".encode(), digest_size=6).hexdigest()
    mutation_id = f"{PREFIX}.{key}.{version(held)}"
    return Offer(mutation_id, "set" if data is not None else "delete", data, newest_write(held))
