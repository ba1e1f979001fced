"""Outbox entries: local mutations waiting to be acknowledged and made stable by the server."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    """One pending mutation; ``origin``/``seq`` are set once a push acknowledged it."""

    position: int
    mutation_id: str
    collection: str
    doc_id: str
    op: str
    data: dict[str, Any] | None
    hlc: str
    origin: str | None = None
    seq: int | None = None

    def to_wire(self) -> dict[str, Any]:
        """The mutation as ``POST /v1/sync/push`` takes it."""
        wire: dict[str, Any] = {
            "mutation_id": self.mutation_id,
            "collection": self.collection,
            "id": self.doc_id,
            "op": self.op,
            "hlc": self.hlc,
        }
        if self.op != "delete":
            wire["data"] = self.data
        return wire


@dataclass(frozen=True, slots=True)
class Rejection:
    """A mutation the server refused: it is out of the outbox and its effect rolled back."""

    mutation_id: str
    collection: str
    doc_id: str
    op: str
    data: dict[str, Any] | None
    problem: dict[str, Any]
