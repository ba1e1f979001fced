"""What a receiver gets for one change: the event body and its idempotency key."""

from __future__ import annotations

import hashlib
from typing import Any

from breakwater.core import codec
from breakwater.storage.base import FeedEntry

EVENT_VERSION = 1


def delivery_id(sub_id: str, origin: str, seq: int) -> str:
    """The idempotency key of a change's delivery to a subscription.

    Derived from the change's position, so it is the same on every retry, after a node crash
    (the change is delivered again from the durable cursor) and on a manual redelivery.
    """
    digest = hashlib.sha256(f"{sub_id}\x00{origin}\x00{seq}".encode()).hexdigest()
    return f"whd_{digest[:32]}"


def event(sub_id: str, entry: FeedEntry) -> tuple[str, bytes]:
    """The delivery id and the JSON body for ``entry``.

    ``data`` is the document's merged state when the delivery was prepared (``null`` with
    ``deleted: true`` for a tombstone): a later change of the same document may already be in
    it, as in the change feed; ``version`` says which.
    """
    change = entry.change
    key = delivery_id(sub_id, change.origin, change.seq)
    body: dict[str, Any] = {
        "id": key,
        "event_version": EVENT_VERSION,
        "subscription": sub_id,
        "collection": change.collection,
        "doc_id": change.doc_id,
        "op": change.op,
        "mutation_id": change.mutation_id,
        "origin": change.origin,
        "seq": change.seq,
        "hlc": change.hlc,
        "version": entry.version,
        "deleted": entry.data is None,
        "data": entry.data,
    }
    return key, codec.dumps(body)
