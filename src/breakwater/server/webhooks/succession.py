"""Which region delivers a lost region's changes, and from where (ADR 0042).

Each region delivers the changes of its own origins. A peer region from which no replication
page arrived for ``after_ms`` counts as lost; the live region whose name sorts first (among
this one and the peers not lost) takes over its deliveries, starting from the progress the lost
region last reported in its pull answers (its cursors over its own origins). Regions that see
the same peers alike choose the same successor; a partition that makes two regions each think
the other lost makes both deliver, which at-least-once delivery with stable idempotency keys
allows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from breakwater.core.cursor import VersionVector
from breakwater.core.incarnation import region_of


def adopted_regions(
    region: str, peer_rows: Mapping[str, Mapping[str, Any]], now_ms: int, after_ms: int
) -> dict[str, dict[str, VersionVector]]:
    """The lost peers whose deliveries ``region`` takes over, each with the per-subscription
    progress it last reported (a peer never heard from is neither live nor lost)."""
    lost = {
        name
        for name, row in peer_rows.items()
        if isinstance(updated := row.get("updated_ms"), int) and now_ms - updated > after_ms
    }
    live = sorted({region} | (set(peer_rows) - lost))
    if live[0] != region:
        return {}
    return {name: dict(peer_rows[name].get("webhooks") or {}) for name in sorted(lost)}


def rewound(cursor: VersionVector, lost: str, reported: VersionVector) -> VersionVector:
    """``cursor`` moved back, for the origins of region ``lost``, to what it reported having
    delivered: the changes in between are delivered again (at least once)."""
    return {
        origin: min(seq, reported.get(origin, 0)) if region_of(origin) == lost else seq
        for origin, seq in cursor.items()
    }
