"""The stable vector (ARCHITECTURE §5.4): how far every region durably holds every origin.

``caught_up[R]`` is peer R's head vector as it came with the last page of a pull that reached
R's head, recorded once that page was applied here. At that moment this region held everything R
held, so ``stable`` = the pointwise minimum of this region's own head and every peer's
``caught_up`` is causally stable (ADR 0019): every region holds each change at or below it, and
this region holds every change any region applied before receiving one of them (a copy of an
increment under another position included). An origin a vector lacks counts as 0, a peer never
caught up makes ``stable`` empty. See docs/adr/0022-replication.md for why standbys count too and
why a region that does not pull from every region it hears of must not fold.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from breakwater.core.cursor import VersionVector


def stable_vector(
    own_head: Mapping[str, int], caught_up: Iterable[Mapping[str, int] | None]
) -> VersionVector:
    """The pointwise minimum of ``own_head`` and every peer's caught-up head (``None``: that
    peer was never caught up, so nothing is stable)."""
    stable = {origin: seq for origin, seq in own_head.items() if seq > 0}
    for vector in caught_up:
        if vector is None:
            return {}
        stable = {
            origin: min(seq, vector.get(origin, 0))
            for origin, seq in stable.items()
            if vector.get(origin, 0) > 0
        }
    return stable


def unknown_regions(
    region: str, peers: Iterable[str], heard_of: Iterable[Iterable[str]]
) -> frozenset[str]:
    """Regions a peer replicates with that this region does not pull from (nor is).

    While there is one, ``caught_up`` says nothing of what that region holds, so the stable
    vector must stay empty: a change counted stable could still be missing there.
    """
    known = {region.lower(), *(peer.lower() for peer in peers)}
    return frozenset(name for names in heard_of for name in names if name.lower() not in known)
