"""Document state as a state-based CRDT, and the merge (join) that makes replicas converge.

A document's replicated state is a plain JSON object (so every store and device keeps it as is):

``f``  field registers ``{name: [hlc, value]}``; ``[hlc]`` alone marks the field removed at ``hlc``
``s``  HLC of the newest ``set`` (fields written before it are dead)
``x``  HLC of the newest ``delete`` (everything written before it is dead)
``n``  counters ``{name: counter}`` (:mod:`breakwater.core.counter`: folded bases, increments in
       flight keyed by ``mutation_id``, and the cut of what resets erased)

A mutation becomes a small state of the same shape (:func:`delta_for`) and applying it is
:func:`join`, which is commutative, associative and idempotent (I4). Increments are keyed by
``mutation_id`` (and by position once folded), so the same mutation reaching a replica twice
(client retry and replication) counts once (I2) even when it arrives embedded in a peer's state.
A reset (``set``, ``delete``, or ``patch`` of the field) that is the field's newest write when it
is first applied erases the increments that replica holds (:func:`apply`); the erasure travels
in the state as a cut. :func:`normalize` drops what can never be visible again (it only grows
dead), so converged replicas hold byte-identical states and versions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from breakwater.core import counter
from breakwater.core.canonical import dumps_canonical

State = dict[str, Any]
Register = list[Any]


def empty_state() -> State:
    """The state of a document nobody has written."""
    return {"f": {}, "s": "", "x": "", "n": {}}


def _register_wins(candidate: Register, current: Register) -> bool:
    """Field order: newer HLC wins; equal HLCs (one buggy writer) fall back to canonical bytes."""
    if candidate[0] != current[0]:
        return bool(candidate[0] > current[0])
    return dumps_canonical(candidate) > dumps_canonical(current)


def join(left: State, right: State) -> State:
    """The least upper bound of two states; neither argument is modified."""
    if not (left["f"] or left["n"] or left["s"] or left["x"]):
        return normalize(right)  # the common case of a new document
    fields: dict[str, Register] = dict(left["f"])
    for name, register in right["f"].items():
        current = fields.get(name)
        if current is None or _register_wins(register, current):
            fields[name] = register
    counters: dict[str, counter.Counter] = dict(left["n"])
    for name, right_counter in right["n"].items():
        mine = counters.get(name)
        counters[name] = right_counter if mine is None else counter.join(mine, right_counter)
    return normalize(
        {
            "f": fields,
            "s": max(left["s"], right["s"]),
            "x": max(left["x"], right["x"]),
            "n": counters,
        }
    )


def _reset(state: State) -> str:
    return str(max(state["s"], state["x"]))


def normalize(state: State) -> State:
    """Drop registers and increments that no future join can make visible again."""
    # A set's own fields carry the set's HLC, so they survive it; a delete kills its equals too.
    fields = {
        name: reg
        for name, reg in state["f"].items()
        if reg[0] >= state["s"] and reg[0] > state["x"]
    }
    counters = {}
    for name, value in state["n"].items():
        kept = counter.normalize(value)
        if kept:
            counters[name] = kept
    return {"f": fields, "s": state["s"], "x": state["x"], "n": counters}


def _floor(state: State, name: str) -> str:
    """The stamp of the newest write that reset field ``name`` (a set, delete or its own write)."""
    register = state["f"].get(name)
    reset = _reset(state)
    return max(reset, register[0]) if register is not None else reset


def newest_write(state: State) -> str:
    """The HLC of the newest write that is still visible (or the newest delete)."""
    newest = max(state["s"], state["x"])
    for register in state["f"].values():
        newest = max(newest, register[0])
    for value in state["n"].values():
        newest = max(newest, counter.newest(value))
    return str(newest)


def is_deleted(state: State, newest: str | None = None) -> bool:
    """A document is deleted when its newest write is a delete (or it was never written)."""
    newest = newest_write(state) if newest is None else newest
    return bool(state["x"] >= newest) if state["x"] else newest == ""


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def visible(state: State, newest: str | None = None) -> dict[str, Any] | None:
    """The document as users see it, or ``None`` when it is deleted (a tombstone).

    ``newest`` is :func:`newest_write` of ``state`` when the caller already has it.
    """
    if is_deleted(state, newest):
        return None
    data: dict[str, Any] = {}
    for name, register in state["f"].items():
        if len(register) == 2:
            data[name] = register[1]
    for name, value in state["n"].items():
        if not counter.counts(value):
            continue
        register = state["f"].get(name)
        base = register[1] if register and len(register) == 2 and _is_number(register[1]) else 0
        data[name] = counter.total(value, base)
    return data


def version(state: State) -> str:
    """A version that is equal on two replicas exactly when their states are equal (the ETag)."""
    return hashlib.blake2b(dumps_canonical(state), digest_size=10).hexdigest()


def delta_for(op: str, data: dict[str, Any] | None, hlc: str, mutation_id: str) -> State:
    """The state that a mutation contributes; joining it is applying the mutation."""
    delta = empty_state()
    if op == "set":
        delta["s"] = hlc
        delta["f"] = {name: [hlc, value] for name, value in (data or {}).items()}
    elif op == "patch":
        delta["f"] = {
            name: [hlc] if value is None else [hlc, value] for name, value in (data or {}).items()
        }
    elif op == "delete":
        delta["x"] = hlc
    elif op == "increment":
        delta["n"] = {
            name: {"i": {mutation_id: [hlc, amount]}} for name, amount in (data or {}).items()
        }
    else:
        raise ValueError(f"unknown op {op!r}")
    return delta


def _erase(state: State, names: Iterable[str], hlc: str) -> dict[str, counter.Counter]:
    """The erase cuts of a reset at ``hlc`` of the counters ``names``: it erases what this
    replica holds of each counter for which it is the newest write (a late, older reset of a
    field erases nothing; its value loses anyway)."""
    cuts = {}
    for name in names:
        current = state["n"].get(name)
        if current is not None and hlc > _floor(state, name):
            cuts[name] = counter.erase(current)  # {} when it held only unpositioned increments
    return cuts


def apply(
    state: State | None,
    newest: str,
    op: str,
    data: dict[str, Any] | None,
    hlc: str,
    mutation_id: str,
    position: tuple[str, int] | None = None,
) -> tuple[State, State, dict[str, Any] | None, str]:
    """Apply a mutation to ``state`` (whose :func:`newest_write` is ``newest``) where it is
    first applied, or on a device over its server state; ``position`` is the increment's feed
    position when known (a device's acknowledged write), so that a base covering it is seen.

    Returns the mutation's delta (with the erase cuts of a reset), the new state, its visible
    document and its newest write. A ``set`` newer than every write replaces everything, so it
    skips the general join (the common case of inserts and overwrites); the result is identical
    to the join (tested).
    """
    current = state if state is not None else empty_state()
    erased = {}
    if op in ("set", "delete") or (op == "patch" and data):
        erased = _erase(current, current["n"] if op != "patch" else (data or {}), hlc)
    delta: State
    if op == "set" and hlc > newest and data is not None:
        delta = {
            "f": {name: [hlc, value] for name, value in data.items()},
            "s": hlc,
            "x": "",
            "n": {name: cut for name, cut in erased.items() if cut},
        }
        if not current["x"]:
            return delta, delta, dict(data), hlc
        return delta, {**delta, "x": current["x"]}, dict(data), hlc
    delta = delta_for(op, data, hlc, mutation_id)
    if op == "increment" and position is not None:
        delta["n"] = {
            name: counter.place(value, mutation_id, *position) for name, value in delta["n"].items()
        }
    delta["n"].update(erased)
    joined = join(current, delta)
    for name in erased:  # a device's own unpositioned increments go too
        kept = counter.erase(joined["n"].get(name, {}))
        if kept:
            joined["n"][name] = kept
        else:
            joined["n"].pop(name, None)
    newest = newest_write(joined)
    return delta, joined, visible(joined, newest), newest


def settle(
    state: State, mutation_id: str, origin: str, seq: int, stable: Mapping[str, int]
) -> State:
    """``state`` with mutation ``mutation_id``'s increments at feed position ``(origin, seq)``
    and every increment that ``stable`` covers folded (:func:`breakwater.core.counter.fold`)."""
    counters = {
        name: counter.fold(counter.place(value, mutation_id, origin, seq), stable)
        for name, value in state["n"].items()
    }
    return {**state, "n": counters}


def upgrade(state: State) -> State:
    """``state`` with counters kept in the format before folding turned into folded bases."""
    if not any(counter.is_legacy(value) for value in state["n"].values()):
        return state
    counters = {
        name: counter.upgrade(value) if counter.is_legacy(value) else value
        for name, value in state["n"].items()
    }
    return {**state, "n": counters}


def lost_fields(delta: State, merged: State) -> list[str]:
    """Names of the fields a mutation wrote that a concurrent newer write overrides (a conflict).

    An increment never loses: it counts until a reset that is first applied after it erases it.
    """
    lost = [name for name, register in delta["f"].items() if merged["f"].get(name) != register]
    reset = max(delta["s"], delta["x"])
    if reset:
        if merged["s"] > reset or merged["x"] > reset:
            lost.append("*")
        else:
            lost.extend(
                name
                for name, register in merged["f"].items()
                if register[0] > reset and name not in delta["f"]
            )
    return sorted(set(lost))


def pack(state: State) -> State:
    """The state without the field values that :func:`visible` already holds (for storage).

    A field written by the newest ``set`` is implicit; another live field keeps only its HLC;
    removed fields and counter bases keep their registers. ``unpack(pack(s), visible(s)) == s``.
    """
    fields: dict[str, Any] = {}
    for name, register in state["f"].items():
        if len(register) == 1 or name in state["n"]:
            fields[name] = register
        elif register[0] != state["s"]:
            fields[name] = register[0]
    return {"f": fields, "s": state["s"], "x": state["x"], "n": state["n"]}


def unpack(packed: State, data: dict[str, Any] | None) -> State:
    """Rebuild the full state from :func:`pack`'s output and the visible document.

    Counters stored before folding existed come back folded (:func:`upgrade`); the next write
    stores them so (a document migrates on its first write, and reads never see the old form).
    """
    fields: dict[str, Register] = {}
    for name, entry in packed["f"].items():
        fields[name] = [entry, data[name]] if isinstance(entry, str) and data else entry
    if data:
        counters = packed["n"]
        for name, value in data.items():
            if name not in fields and name not in counters:
                fields[name] = [packed["s"], value]
    return upgrade({"f": fields, "s": packed["s"], "x": packed["x"], "n": packed["n"]})
