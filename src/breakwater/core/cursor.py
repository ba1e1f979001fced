"""Feed cursors: opaque strings that encode a version vector ``{origin: seq}``.

A vector says, per origin region, the highest seq a reader has seen. Every region can answer
"changes not covered by this vector", so a client keeps its cursor when it fails over. The empty
cursor means "from the beginning" and is always valid.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from breakwater.core import codec, incarnation
from breakwater.core.errors import CursorUnknown, ValidationError

PREFIX = "c1."
ORIGIN_PATTERN = re.compile(r"^[A-Za-z0-9_.~:-]{1,64}$", re.ASCII)
MAX_ORIGINS = 256

VersionVector = dict[str, int]


def encode(vector: Mapping[str, int]) -> str:
    """The opaque cursor for ``vector`` (origins sorted, so equal vectors give equal cursors)."""
    if not vector:
        return ""
    # Exact integers, not the canonical form: a seq beyond 2**53 must survive the round trip.
    body = codec.dumps(dict(sorted(vector.items())))
    return PREFIX + base64.urlsafe_b64encode(body).decode("ascii").rstrip("=")


def decode(cursor: str | None) -> VersionVector:
    """The vector inside ``cursor``; a malformed cursor is a :class:`ValidationError`."""
    if not cursor:
        return {}
    if not cursor.startswith(PREFIX) or len(cursor) > 16_384:
        raise ValidationError("cursor is not a Breakwater cursor", field="cursor")
    body = cursor[len(PREFIX) :]
    try:
        raw = codec.parse_body(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (binascii.Error, ValueError, ValidationError) as exc:
        raise ValidationError("cursor is corrupt", field="cursor") from exc
    if not isinstance(raw, dict) or len(raw) > MAX_ORIGINS:
        raise ValidationError("cursor is corrupt", field="cursor")
    for origin, seq in raw.items():
        valid_seq = isinstance(seq, int) and not isinstance(seq, bool) and 0 <= seq < 2**63
        if not ORIGIN_PATTERN.fullmatch(origin) or not valid_seq:
            raise ValidationError("cursor is corrupt", field="cursor")
    return raw


def advance(vector: Mapping[str, int], changes: Iterable[tuple[str, int]]) -> VersionVector:
    """``vector`` moved past every ``(origin, seq)`` in ``changes``."""
    result = dict(vector)
    for origin, seq in changes:
        if seq > result.get(origin, 0):
            result[origin] = seq
    return result


def merge(left: Mapping[str, int], right: Mapping[str, int]) -> VersionVector:
    """The pointwise maximum of two vectors."""
    return advance(left, right.items())


def covers(vector: Mapping[str, int], origin: str, seq: int) -> bool:
    """True when the change ``(origin, seq)`` is at or behind ``vector``."""
    return vector.get(origin, 0) >= seq


def covers_all(vector: Mapping[str, int], other: Mapping[str, int]) -> bool:
    """True when ``vector`` covers every change that ``other`` covers."""
    return all(vector.get(origin, 0) >= seq for origin, seq in other.items())


@dataclass(frozen=True, slots=True)
class Peers:
    """What a region knows of its peer regions' feeds: whose changes a cursor may name before
    replication brings them here (see :func:`require_honourable`)."""

    regions: frozenset[str] = frozenset()
    """The peer regions."""
    current: Mapping[str, str] = field(default_factory=dict)
    """Each peer region's current origin (``region~incarnation``), where a pull told it."""
    held: Mapping[str, int] = field(default_factory=dict)
    """The pointwise maximum of the peers' heads as last pulled: how far some peer holds each
    origin."""

    def may_bring(self, origin: str, seq: int) -> bool:
        """Whether replication may still bring the change ``(origin, seq)`` of a peer region.

        A peer's current origin may be ahead of what has arrived. An origin the peer no longer
        writes under (its store was lost or restored: a *retired* incarnation) never grows, so
        only what some peer still holds of it can arrive; past that, nobody holds the change.
        """
        region = incarnation.region_of(origin)
        if region not in self.regions:
            return False
        current = self.current.get(region)
        return current is None or current == origin or seq <= self.held.get(origin, 0)


NO_PEERS = Peers()


def require_honourable(
    vector: Mapping[str, int], head: Mapping[str, int], peers: Peers = NO_PEERS
) -> None:
    """Raise :class:`CursorUnknown` unless a store at ``head`` can answer "changes after
    ``vector``" without leaving a gap.

    A vector ahead of the store's committed head for an origin says the reader has seen changes
    the store does not hold: it was restored from a backup taken before them (``ahead``), or the
    origin never wrote here (``unknown_origin``: another deployment's cursor). Answering such a
    cursor with an empty page would hide from the reader every change the store later makes at
    positions it believes it has. The one legal case is an origin of a peer region whose changes
    replication may still bring (a device that failed over, :meth:`Peers.may_bring`); a retired
    incarnation of a peer past what any peer holds is refused as ``retired``: the reader holds
    state that no region has (ADR 0037), which only a full resync drops.
    """
    for origin, seq in vector.items():
        known = head.get(origin)
        if seq <= (known or 0) or peers.may_bring(origin, seq):
            continue
        if incarnation.region_of(origin) in peers.regions:
            raise CursorUnknown(
                f"the cursor has seen changes of origin {origin!r}, a store of a peer region"
                " that was lost or restored, which no region holds; resync from an empty cursor",
                reason="retired",
                origin=origin,
            )
        reason = "unknown_origin" if known is None else "ahead"
        raise CursorUnknown(
            f"the cursor has seen changes of origin {origin!r} that this node does not hold"
            " (a restore from a backup, or another deployment's cursor); resync from an"
            " empty cursor",
            reason=reason,
            origin=origin,
        )
