"""A counter field's replicated state: folded bases per origin plus increments still in flight.

One counter is a JSON object with three optional members (empty ones are left out):

``b``  folded bases ``{origin: [upto_seq, sum, newest_hlc]}``: every increment with a position of
       ``origin`` up to ``upto_seq`` is folded, and ``sum`` adds those summed under ``origin``
       (the first of their positions); a G-counter entry: the larger ``upto`` wins; a base
       that only covers other copies of increments summed elsewhere is ``[upto, 0, ""]``
``i``  increments not folded yet ``{mutation_id: [hlc, amount, [[origin, seq], ...]]}``: every feed
       position the mutation was applied at (two regions may each apply it before they exchange
       it); a device's own increment the node has not acknowledged yet has none: ``[hlc, amount]``
``k``  the erase cut ``{origin: seq}``: an increment with a position at or below it was erased by
       a reset; it stays (not counted) until folded, so a copy of it under another position
       cannot count again

An increment is counted once whatever path it takes: by its mutation id while it is in ``i``,
and by its positions once folded (an increment a base already covers is dropped on arrival).
Folding (:func:`fold`) moves the increments that a *stable* vector covers into the bases, so
the state is bounded by the origins and by what is in flight, not by history, and the value
does not depend on when, or whether, a replica folded. See docs/adr/0019-compact-counters.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from breakwater.core.canonical import dumps_canonical

Counter = dict[str, Any]
Increment = list[Any]
LEGACY_ORIGIN = ""
"""The base that holds a counter's increments from before folding existed (format 1)."""


def _positions(increment: Increment) -> list[list[Any]]:
    return increment[2] if len(increment) > 2 else []


def _join_increment(left: Increment, right: Increment) -> Increment:
    """Two copies of one mutation's increment: its feed positions are the union of theirs."""
    if len(left) <= 2 and len(right) <= 2:
        return left if dumps_canonical(left) >= dumps_canonical(right) else right
    positions = sorted({(o, s) for o, s in _positions(left) + _positions(right)})
    return [left[0], left[1], [list(position) for position in positions]]


def _base_wins(candidate: list[Any], current: list[Any]) -> bool:
    """The base that covers more of its origin wins; equal coverage falls back to bytes."""
    if candidate[0] != current[0]:
        return bool(candidate[0] > current[0])
    return dumps_canonical(candidate) > dumps_canonical(current)


def join(left: Counter, right: Counter) -> Counter:
    """The least upper bound of two counters of one field; neither argument is modified."""
    cut: dict[str, int] = dict(left.get("k", {}))
    for origin, seq in right.get("k", {}).items():
        if seq > cut.get(origin, -1):
            cut[origin] = seq
    bases: dict[str, list[Any]] = dict(left.get("b", {}))
    for origin, base in right.get("b", {}).items():
        current = bases.get(origin)
        if current is None or _base_wins(base, current):
            bases[origin] = base
    increments: dict[str, Increment] = dict(left.get("i", {}))
    for mutation_id, increment in right.get("i", {}).items():
        current_inc = increments.get(mutation_id)
        increments[mutation_id] = (
            increment if current_inc is None else _join_increment(current_inc, increment)
        )
    return normalize({"b": bases, "i": increments, "k": cut})


def _erased(increment: Increment, cut: Mapping[str, int]) -> bool:
    """Erased: a reset's cut covers one of its positions."""
    return any(seq <= cut.get(origin, -1) for origin, seq in _positions(increment))


def _folded(increment: Increment, bases: Mapping[str, list[Any]]) -> bool:
    """Folded: a base covers one of its positions (a fold covers every position it took)."""
    return any(origin in bases and seq <= bases[origin][0] for origin, seq in _positions(increment))


def normalize(counter: Counter) -> Counter:
    """Drop the increments a base already holds; leave out empty members.

    Erased increments and bases stay (they no longer count): an erased increment until it is
    folded, since dropping it earlier would let a copy of it under another position count again;
    an erased base because its ``upto`` still says which increments it took (one per origin).
    """
    cut: dict[str, int] = counter.get("k", {})
    bases = counter.get("b", {})
    increments = {mid: inc for mid, inc in counter.get("i", {}).items() if not _folded(inc, bases)}
    result: Counter = {}
    if bases:
        result["b"] = bases
    if increments:
        result["i"] = increments
    if cut:
        result["k"] = dict(cut)
    return result


def erase(counter: Counter) -> Counter:
    """The counter after a reset that saw it: every increment it holds is erased for good.

    Positioned increments and bases go through the cut, so the erasure also reaches copies
    that arrive later from other replicas; a device's unpositioned increments simply go.
    """
    cut: dict[str, int] = dict(counter.get("k", {}))
    positions = [(o, base[0]) for o, base in counter.get("b", {}).items()]
    for increment in counter.get("i", {}).values():
        positions += [(o, s) for o, s in _positions(increment)]
    for origin, seq in positions:
        if seq > cut.get(origin, -1):
            cut[origin] = seq
    increments = {mid: inc for mid, inc in counter.get("i", {}).items() if _positions(inc)}
    return normalize({"b": counter.get("b", {}), "i": increments, "k": cut})


def _live(counter: Counter) -> list[tuple[str, Increment]]:
    cut = counter.get("k", {})
    return [(mid, inc) for mid, inc in counter.get("i", {}).items() if not _erased(inc, cut)]


def _live_bases(counter: Counter) -> list[tuple[str, list[Any]]]:
    """The bases that count: not erased, and holding at least one live increment's amount.

    A base also covers the other positions of increments summed under another origin (a
    mutation two regions applied); one that took nothing else has no stamp and adds nothing,
    like the erased copies it covers (counting it brought a removed counter back as 0).
    """
    cut = counter.get("k", {})
    return sorted(
        (o, base)
        for o, base in counter.get("b", {}).items()
        if base[0] > cut.get(o, -1) and base[2]
    )


def counts(counter: Counter) -> bool:
    """Whether the counter adds anything to its field (erased increments and bases do not)."""
    return bool(_live_bases(counter) or _live(counter))


def total(counter: Counter, start: Any) -> Any:
    """``start`` plus every base and live increment, summed in a fixed order (bases by origin,
    then increments by stamp and id) so that float rounding is equal on every replica."""
    result = start
    for _, base in _live_bases(counter):
        result += base[1]
    for _, increment in sorted(_live(counter), key=lambda it: (it[1][0], it[0])):
        result += increment[1]
    return result


def newest(counter: Counter) -> str:
    """The newest stamp among the bases and increments ("" for none)."""
    stamps = [str(base[2]) for _, base in _live_bases(counter)]
    stamps += [str(inc[0]) for _, inc in _live(counter)]
    return max(stamps, default="")


def place(counter: Counter, mutation_id: str, origin: str, seq: int) -> Counter:
    """The counter with mutation ``mutation_id``'s increment given its feed position."""
    increment = counter.get("i", {}).get(mutation_id)
    if increment is None:
        return counter
    increments = dict(counter["i"])
    increments[mutation_id] = _join_increment(
        increment, [increment[0], increment[1], [[origin, seq]]]
    )
    return {**counter, "i": increments}


def fold(counter: Counter, stable: Mapping[str, int]) -> Counter:
    """Move the increments ``stable`` covers into their origin's base, in seq order.

    ``stable`` must be causally stable for this replica: every region holds every change at or
    below it, and this replica holds every change any region applied before receiving one of
    them (with one region: the node's committed head). Then no copy of a folded increment can
    arrive later under a position the base does not cover, and no reset can arrive whose cut
    splits a base, so the value is the same folded or not.
    """
    cut = counter.get("k", {})
    # A base covers every seq up to its ``upto``, so no base may pass a position of an
    # increment that does not fold now; holding one back can hold back others (a fixpoint).
    positioned = {mid: _positions(inc) for mid, inc in counter.get("i", {}).items()}
    ripe_ids = {mid for mid, ps in positioned.items() if ps}
    while True:
        limit = dict(stable)
        for mid, positions in positioned.items():
            if mid not in ripe_ids:
                for origin, seq in positions:
                    limit[origin] = min(seq - 1, limit.get(origin, 0))
        held = {mid for mid in ripe_ids if any(s > limit.get(o, 0) for o, s in positioned[mid])}
        if not held:
            break
        ripe_ids -= held
    ripe = sorted((min(positioned[mid]), mid) for mid in ripe_ids)
    if not ripe:
        return counter
    increments = dict(counter["i"])
    bases: dict[str, list[Any]] = dict(counter.get("b", {}))
    for (origin, _), mid in ripe:
        increment = increments.pop(mid)
        for at, seq in _positions(increment):
            upto, summed, newest_hlc = bases.get(at, [0, 0, ""])
            if upto <= cut.get(at, -1):  # an erased base starts over
                summed, newest_hlc = 0, ""
            if at == origin and not _erased(increment, cut):  # summed under its first position
                summed, newest_hlc = summed + increment[1], max(newest_hlc, increment[0])
            bases[at] = [max(upto, seq), summed, newest_hlc]
    return normalize({**counter, "b": bases, "i": increments})


def is_legacy(counter: Mapping[str, Any]) -> bool:
    """Whether ``counter`` is in the format before folding: ``{mutation_id: [hlc, amount]}``."""
    return any(isinstance(entry, list) for entry in counter.values())


def upgrade(increments: Mapping[str, Increment]) -> Counter:
    """A format-1 counter as one base: every increment it kept was applied at its node."""
    summed = total({"i": dict(increments)}, 0)
    newest_hlc = max(str(inc[0]) for inc in increments.values())
    return {"b": {LEGACY_ORIGIN: [0, summed, newest_hlc]}}
