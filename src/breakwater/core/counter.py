"""A counter field's replicated state: folded bases per origin plus increments still in flight.

One counter is a JSON object with three optional members (empty ones are left out):

``b``  folded bases ``{origin: [upto_seq, sum, newest_hlc]}``: the sum of the live increments of
       ``origin`` with a seq up to ``upto_seq`` (a G-counter entry: the larger ``upto`` wins)
``i``  increments not folded yet ``{mutation_id: [hlc, amount, origin, seq]}``; a device's own
       increment the node has not acknowledged yet has no position: ``[hlc, amount]``
``k``  the erase cut ``{origin: seq}``: every increment at or below it was erased by a reset

An increment is counted once whatever path it takes: by its mutation id while it is in ``i``,
and by its position once folded (an increment a base already covers is dropped on arrival).
Folding (:func:`fold`) moves the increments that a *stable* vector covers into the bases, so
the state is bounded by the origins and by what is in flight, not by history, and the value
does not depend on when, or whether, a replica folded. See docs/adr/0019-compact-counters.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from breakwater.core.codec import dumps_canonical

Counter = dict[str, Any]
Increment = list[Any]
LEGACY_ORIGIN = ""
"""The base that holds a counter's increments from before folding existed (format 1)."""


def _order(increment: Increment) -> tuple[int, str, int, bytes]:
    """Which copy of one mutation's increment a join keeps (the smallest): a positioned copy
    over a device's unpositioned one, then the smaller position (a mutation that two regions
    applied before exchanging it), then the canonical bytes."""
    if len(increment) >= 4:
        return (0, str(increment[2]), int(increment[3]), dumps_canonical(increment))
    return (1, "", 0, dumps_canonical(increment))


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
        if current_inc is None or _order(increment) < _order(current_inc):
            increments[mutation_id] = increment
    return normalize({"b": bases, "i": increments, "k": cut})


def _counted(increment: Increment, bases: Mapping[str, list[Any]], cut: Mapping[str, int]) -> bool:
    """Whether an increment still counts on its own: not folded into a base, not erased."""
    if len(increment) < 4:
        return True
    origin, seq = increment[2], increment[3]
    base = bases.get(origin)
    return not (base is not None and seq <= base[0]) and seq > cut.get(origin, -1)


def normalize(counter: Counter) -> Counter:
    """Drop erased bases and increments that are erased or already folded; leave out empties."""
    cut: dict[str, int] = counter.get("k", {})
    bases = {o: base for o, base in counter.get("b", {}).items() if base[0] > cut.get(o, -1)}
    increments = {
        mid: inc for mid, inc in counter.get("i", {}).items() if _counted(inc, bases, cut)
    }
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
    positions += [(inc[2], inc[3]) for inc in counter.get("i", {}).values() if len(inc) >= 4]
    for origin, seq in positions:
        if seq > cut.get(origin, -1):
            cut[origin] = seq
    return {"k": cut} if cut else {}


def counts(counter: Counter) -> bool:
    """Whether the counter adds anything to its field (a bare erase cut does not)."""
    return bool(counter.get("b") or counter.get("i"))


def total(counter: Counter, start: Any) -> Any:
    """``start`` plus every base and live increment, summed in a fixed order (bases by origin,
    then increments by stamp and id) so that float rounding is equal on every replica."""
    result = start
    for _, base in sorted(counter.get("b", {}).items()):
        result += base[1]
    for _, increment in sorted(counter.get("i", {}).items(), key=lambda it: (it[1][0], it[0])):
        result += increment[1]
    return result


def newest(counter: Counter) -> str:
    """The newest stamp among the bases and increments ("" for none)."""
    stamps = [str(base[2]) for base in counter.get("b", {}).values()]
    stamps += [str(inc[0]) for inc in counter.get("i", {}).values()]
    return max(stamps, default="")


def place(counter: Counter, mutation_id: str, origin: str, seq: int) -> Counter:
    """The counter with mutation ``mutation_id``'s increment given its feed position."""
    increment = counter.get("i", {}).get(mutation_id)
    if increment is None or len(increment) >= 4:
        return counter
    increments = dict(counter["i"])
    increments[mutation_id] = [increment[0], increment[1], origin, seq]
    return {**counter, "i": increments}


def fold(counter: Counter, stable: Mapping[str, int]) -> Counter:
    """Move the increments ``stable`` covers into their origin's base, in seq order.

    ``stable`` must be causally stable for this replica: every region holds every change at or
    below it, and this replica holds every change any region applied before receiving one of
    them (with one region: the node's committed head). Then no copy of a folded increment can
    arrive later under a position the base does not cover, and no reset can arrive whose cut
    splits a base, so the value is the same folded or not.
    """
    ripe = sorted(
        (inc[2], inc[3], mid)
        for mid, inc in counter.get("i", {}).items()
        if len(inc) >= 4 and inc[3] <= stable.get(inc[2], 0)
    )
    if not ripe:
        return counter
    increments = dict(counter["i"])
    bases: dict[str, list[Any]] = dict(counter.get("b", {}))
    for origin, seq, mid in ripe:
        hlc, amount = increments.pop(mid)[:2]
        upto, summed, newest_hlc = bases.get(origin, [0, 0, ""])
        bases[origin] = [max(upto, seq), summed + amount, max(newest_hlc, hlc)]
    return normalize({**counter, "b": bases, "i": increments})


def is_legacy(counter: Mapping[str, Any]) -> bool:
    """Whether ``counter`` is in the format before folding: ``{mutation_id: [hlc, amount]}``."""
    return any(isinstance(entry, list) for entry in counter.values())


def upgrade(increments: Mapping[str, Increment]) -> Counter:
    """A format-1 counter as one base: every increment it kept was applied at its node."""
    summed = total({"i": dict(increments)}, 0)
    newest_hlc = max(str(inc[0]) for inc in increments.values())
    return {"b": {LEGACY_ORIGIN: [0, summed, newest_hlc]}}
