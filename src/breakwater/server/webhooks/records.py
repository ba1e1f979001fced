"""What the webhook store keeps: subscriptions, delivery attempts and dead letters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from breakwater.core.cursor import VersionVector

OPERATIONS = ("set", "patch", "delete", "increment")
"""The operations a subscription can ask for: the mutation ops of the change feed."""
Outcome = Literal["delivered", "failed", "refused"]
"""An attempt's result: a 2xx answer; an error answer, timeout or network error; or a target
the node refuses to call (a private address while those are not allowed)."""
LetterState = Literal["dead", "queued", "redelivered"]


@dataclass(frozen=True, slots=True)
class Subscription:
    """Changes of ``collections`` (all when empty) by ``operations`` go to ``url``."""

    sub_id: str
    url: str
    collections: tuple[str, ...]
    operations: tuple[str, ...]
    secret: str
    """The HMAC key. Kept in clear (the node must sign with it); shown once at creation."""
    created_ms: int
    description: str = ""

    def wants(self, collection: str, op: str) -> bool:
        """True if a change of ``collection`` by ``op`` is for this subscription."""
        return (not self.collections or collection in self.collections) and op in self.operations


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try of one delivery (the delivery log)."""

    sub_id: str
    delivery_id: str
    """The idempotency key: the same on every attempt and redelivery of one change."""
    attempt: int
    outcome: Outcome
    status: int | None
    latency_ms: float
    error: str
    at_ms: int


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A delivery that failed every attempt, kept with its payload for manual redelivery."""

    sub_id: str
    delivery_id: str
    payload: bytes
    attempts: int
    error: str
    at_ms: int
    state: LetterState = "dead"


@dataclass(frozen=True, slots=True)
class Progress:
    """Where a subscription's delivery stands (``None``: start at the feed's head)."""

    sub_id: str
    cursor: VersionVector | None
