"""The checker: from a history and the final replicas, prove or refute six properties.

- ``no_lost_writes`` (a): every acknowledged mutation is in every node's change feed, and every
  document on every node is what its mutations make it (a value missing there is a lost write).
- ``exactly_once`` (b): no mutation appears twice in a feed under one origin (with several
  regions a mutation applied in two of them before they met, e.g. re-pushed after a failover,
  keeps one position per origin: the effect still counts once, which the counters show), nothing
  appears that no client sent
  or that was certainly refused, and no counter holds more than its increments (a duplicate
  effect shows there: the workload increments counters so that each effect adds up).
- ``convergence`` (c): every node and device holds identical documents (the same data, deletion
  state and counter values, and the same replicated state: its version), and the last of them
  was read within the bound after the faults healed.
- ``read_your_writes`` (d): a read by a device reflects each of that device's writes acknowledged
  before the read began.
- ``gap_free_feed`` (e): in every node's feed each origin's seqs go up by one, in feed order (a
  seq skipped or given twice would show; a database failover is where it could happen).
- ``device_cursors`` (f): I3 seen from each device, from its ``cursor`` records (each page it
  committed: the cursor, and the synced data of the documents the page changed, from which its
  synced copy is rebuilt). Whenever a device records cursor ``C``, its synced copy of every
  document (1) holds every change at or below ``C``: per the final feeds, every mutation at a
  position ``(origin, seq)`` with ``seq <= C[origin]`` (a note shows a writer at least as new,
  by HLC, as the newest of them; a counter at least the sum of their increments); (2) holds
  nothing that took effect in no final feed (a note's writer is in a final feed; a counter is at
  most the sum of the final feeds' increments), except from the moment its cursor covers a
  position past every final feed (it pulled from a store lost before that store replicated)
  until a full resync ends; and (3) ``C`` is not below the device's previous cursor for any
  origin unless a resync started in between. A pulled state may be newer than ``C`` (a pull
  returns each document's current state), so nothing bounds it from above but (2). A history
  without cursor records, or replicas without feed positions, is judged as before.

The reference model is independent of the server's merge code: a document is the fold, in HLC
order, of the mutations that took effect on it (``set`` replaces, ``patch`` sets or removes
fields, ``increment`` adds, ``delete`` empties), which is what the merge rules of docs/protocol.md
promise. Which mutations took effect on a node is read from its feed, so operations whose outcome
is unknown need no guess. Read-your-writes relies on the workload's conventions (see
:mod:`breakwater.chaos.device`): every ``set`` and ``patch`` writes a token of its own, unique in
the run, in the field ``w`` (its mutation id will do), and counter documents only ever receive
increments.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from breakwater.chaos.history import CursorRecord, History, MutationRecord, Operation
from breakwater.core.canonical import dumps_canonical

WRITER_FIELD = "w"
"""The field in which every workload ``set`` and ``patch`` writes its own unique token."""
SHOWN_ANOMALIES = 20

DocKey = tuple[str, str]


@dataclass(frozen=True)
class DocState:
    """One document on one replica: ``data`` ``None`` when deleted; ``counters`` (nodes, when the
    state was pulled) maps each counter field to the amount of each mutation id counted in it."""

    data: dict[str, Any] | None
    version: str | None = None
    counters: dict[str, dict[str, float]] | None = None


@dataclass
class ReplicaState:
    """The final documents of one node or device, read at ``taken_at`` (run seconds).

    ``applied`` is a node's change feed as mutation ids in feed order (``None`` for a device),
    ``positions`` the ``(origin, seq)`` of each of those entries (``None`` if not recorded)."""

    name: str
    kind: Literal["node", "device"]
    docs: dict[DocKey, DocState]
    applied: list[str] | None = None
    taken_at: float = 0.0
    positions: list[tuple[str, int]] | None = None


@dataclass(frozen=True)
class Anomaly:
    """One violation, with the operations and mutations that show it."""

    message: str
    mutation_ids: tuple[str, ...] = ()
    op_ids: tuple[int, ...] = ()


@dataclass
class CheckResult:
    """The outcome of one check."""

    name: str
    description: str
    checked: int = 0
    anomalies: list[Anomaly] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.anomalies


@dataclass
class Verdict:
    """The six checks' results."""

    results: list[CheckResult]

    @property
    def passed(self) -> bool:
        return all(result.passed for result in self.results)

    def result(self, name: str) -> CheckResult:
        return next(r for r in self.results if r.name == name)

    def render(self) -> str:
        """A plain-text verdict naming the offending operations."""
        lines = [f"verdict: {'PASS' if self.passed else 'FAIL'}"]
        for result in self.results:
            state = "ok" if result.passed else f"FAIL ({len(result.anomalies)})"
            lines.append(f"  {result.name}: {state}, {result.checked} checked")
            for anomaly in result.anomalies[:SHOWN_ANOMALIES]:
                lines.append(f"    - {anomaly.message}")
            if len(result.anomalies) > SHOWN_ANOMALIES:
                lines.append(f"    ... {len(result.anomalies) - SHOWN_ANOMALIES} more")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "checks": [
                {
                    "name": r.name,
                    "description": r.description,
                    "passed": r.passed,
                    "checked": r.checked,
                    "anomalies": [
                        {
                            "message": a.message,
                            "mutation_ids": list(a.mutation_ids),
                            "op_ids": list(a.op_ids),
                        }
                        for a in r.anomalies
                    ],
                }
                for r in self.results
            ],
        }


# The reference model ------------------------------------------------------------------------------


def apply_mutation(doc: dict[str, Any] | None, mutation: MutationRecord) -> dict[str, Any] | None:
    """``doc`` after ``mutation`` (``None``: absent or deleted), by the merge rules' semantics."""
    data = mutation.data or {}
    if mutation.op == "set":
        return dict(data)
    if mutation.op == "delete":
        return None
    doc = dict(doc or {})
    if mutation.op == "patch":
        for name, value in data.items():
            if value is None:
                doc.pop(name, None)
            else:
                doc[name] = value
    elif mutation.op == "increment":
        for name, amount in data.items():
            current = doc.get(name, 0)
            numeric = isinstance(current, int | float) and not isinstance(current, bool)
            doc[name] = (current if numeric else 0) + amount
    return doc


def fold(mutations: Iterable[MutationRecord]) -> dict[str, Any] | None:
    """The document that ``mutations`` make, applied in HLC order (``None``: absent or deleted)."""
    doc: dict[str, Any] | None = None
    for mutation in sorted(mutations, key=lambda m: m.hlc):
        doc = apply_mutation(doc, mutation)
    return doc


def _by_doc(mutations: Iterable[MutationRecord]) -> dict[DocKey, list[MutationRecord]]:
    grouped: dict[DocKey, list[MutationRecord]] = defaultdict(list)
    for mutation in mutations:
        grouped[(mutation.collection, mutation.doc_id)].append(mutation)
    return grouped


def _counter_fields(mutations: Iterable[MutationRecord]) -> set[str]:
    return {name for m in mutations if m.op == "increment" for name in (m.data or {})}


def _fmt(key: DocKey) -> str:
    return f"{key[0]}/{key[1]}"


# The checks -------------------------------------------------------------------------------------


@dataclass
class _Facts:
    """What the history says about each mutation."""

    sent: dict[str, MutationRecord]
    acked: dict[str, Operation]  # mutation id -> the first op that acknowledged it
    refused: set[str]  # every push of it failed or rejected it: certainly not applied
    writers: dict[str, MutationRecord]  # the WRITER_FIELD token of a set or patch -> it

    @classmethod
    def of(cls, history: History) -> _Facts:
        acked: dict[str, Operation] = {}
        maybe: set[str] = set()
        for op in history.operations:
            if op.kind != "push":
                continue
            for mutation in op.mutations:
                mid = mutation.mutation_id
                if op.acknowledged(mid):
                    acked.setdefault(mid, op)
                if op.outcome == "unknown" or (
                    op.outcome == "ok" and op.results.get(mid) != "rejected"
                ):
                    maybe.add(mid)
        sent = history.mutations()
        writers = {
            token: m
            for m in sent.values()
            if m.op in ("set", "patch")
            and isinstance(token := (m.data or {}).get(WRITER_FIELD), str)
        }
        return cls(sent, acked, set(sent) - maybe, writers)


def _check_lost(facts: _Facts, nodes: list[ReplicaState]) -> CheckResult:
    result = CheckResult("no_lost_writes", "(a) every acknowledged write is on every node")
    for node in nodes:
        applied = set(node.applied or ())
        for mid, op in facts.acked.items():
            result.checked += 1
            if mid not in applied:
                result.anomalies.append(
                    Anomaly(
                        f"acknowledged mutation {mid} ({op.process}, op {op.op_id}, acked at "
                        f"{op.completed_at}s) is missing from {node.name}'s feed",
                        (mid,),
                        (op.op_id,),
                    )
                )
        effective = [facts.sent[mid] for mid in applied if mid in facts.sent]
        for key, mutations in _by_doc(effective).items():
            expected = fold(mutations)
            actual = node.docs.get(key, DocState(None)).data
            counters = _counter_fields(mutations)
            missing = _missing_values(expected, actual, counters)
            if missing:
                winners = _writers_of(mutations, missing)
                result.anomalies.append(
                    Anomaly(
                        f"{_fmt(key)} on {node.name}: fields {sorted(missing)} should be "
                        f"{_pick(expected, missing)} (mutations {winners}) but are "
                        f"{_pick(actual, missing)}",
                        tuple(winners),
                        tuple(facts.acked[m].op_id for m in winners if m in facts.acked),
                    )
                )
    return result


def _missing_values(
    expected: dict[str, Any] | None, actual: dict[str, Any] | None, counters: set[str]
) -> set[str]:
    """Fields that are not what the mutations make them (a counter only when it holds too
    little: too much is a duplicate effect); ``*`` when a deleted document has data."""
    if expected is None and actual is not None:
        return {"*"}
    expected, actual = expected or {}, actual or {}
    missing = set()
    for name in expected.keys() | actual.keys():
        want, have = expected.get(name), actual.get(name)
        if name in counters and isinstance(want, int | float) and isinstance(have, int | float):
            if have < want:
                missing.add(name)
        elif have != want:
            missing.add(name)
    return missing


def _writers_of(mutations: list[MutationRecord], fields: set[str]) -> list[str]:
    """The last mutations (by HLC) that wrote one of ``fields`` (any, for ``*``)."""
    ordered = sorted(mutations, key=lambda m: m.hlc)
    return [
        m.mutation_id
        for m in ordered
        if "*" in fields or m.op in ("set", "delete") or fields & set(m.data or {})
    ][-5:]


def _pick(doc: dict[str, Any] | None, names: set[str]) -> dict[str, Any]:
    return {name: (doc or {}).get(name) for name in sorted(names)}


def _check_exactly_once(facts: _Facts, nodes: list[ReplicaState]) -> CheckResult:
    result = CheckResult("exactly_once", "(b) every mutation's effect appears exactly once")
    for node in nodes:
        counts = Counter(node.applied or ())
        origins = _origins_by_mutation(node)
        for mid, count in counts.items():
            result.checked += 1
            seen = origins[mid]
            if count > len(set(seen)) or (count > 1 and None in seen):
                result.anomalies.append(
                    Anomaly(f"{mid} appears {count} times in {node.name}'s feed", (mid,))
                )
            if mid not in facts.sent:
                result.anomalies.append(
                    Anomaly(f"{mid} is in {node.name}'s feed but no client sent it", (mid,))
                )
            elif mid in facts.refused:
                result.anomalies.append(
                    Anomaly(
                        f"{mid} was refused on every push yet took effect on {node.name}", (mid,)
                    )
                )
        effective = [facts.sent[mid] for mid in counts if mid in facts.sent]
        grouped = _by_doc(effective)
        for key, mutations in grouped.items():
            expected = fold(mutations) or {}
            doc = node.docs.get(key, DocState(None))
            actual = doc.data or {}
            for name in sorted(_counter_fields(mutations)):
                want, have = expected.get(name), actual.get(name)
                if isinstance(want, int | float) and isinstance(have, int | float) and have > want:
                    result.anomalies.append(
                        Anomaly(
                            f"{_fmt(key)}.{name} on {node.name} is {have}, but its increments "
                            f"add up to {want}: an effect counted more than once",
                            tuple(m.mutation_id for m in mutations if name in (m.data or {}))[-5:],
                        )
                    )
            result.anomalies.extend(_check_counter_state(node, key, doc, mutations, facts))
        for key in node.docs.keys() - grouped.keys():
            if node.docs[key].data is not None:
                result.anomalies.append(
                    Anomaly(
                        f"{_fmt(key)} on {node.name} exists but no mutation in its feed made it"
                    )
                )
    return result


def _origins_by_mutation(node: ReplicaState) -> dict[str, list[str | None]]:
    """The origin of each feed entry of every mutation id (``None`` where not recorded)."""
    positions = node.positions or []
    origins: dict[str, list[str | None]] = {}
    for index, mid in enumerate(node.applied or ()):
        origin = positions[index][0] if index < len(positions) else None
        origins.setdefault(mid, []).append(origin)
    return origins


def _check_counter_state(
    node: ReplicaState,
    key: DocKey,
    doc: DocState,
    mutations: list[MutationRecord],
    facts: _Facts,
) -> list[Anomaly]:
    """With the replicated state pulled: each counted mutation is a sent increment, counted once
    with the amount it carried."""
    if doc.counters is None:
        return []
    sent = {m.mutation_id: m for m in mutations if m.op == "increment"}
    anomalies = []
    for name, counted in doc.counters.items():
        for mid, amount in counted.items():
            mutation = sent.get(mid) or facts.sent.get(mid)
            if mutation is None or mutation.op != "increment":
                anomalies.append(
                    Anomaly(f"{_fmt(key)}.{name} on {node.name} counts {mid}, not a sent increment")
                )
            elif (mutation.data or {}).get(name) != amount:
                anomalies.append(
                    Anomaly(
                        f"{_fmt(key)}.{name} on {node.name} counts {mid} as {amount}, "
                        f"but it added {(mutation.data or {}).get(name)}",
                        (mid,),
                    )
                )
    return anomalies


def divergences(replicas: list[ReplicaState], versions: bool = True) -> list[Anomaly]:
    """The documents on which ``replicas`` differ: in data (deletion and counter values
    included), or, with ``versions``, in version where both have one.

    A version is the hash of the document's whole replicated state, so equal versions are equal
    states. Every node and device that holds the same changes holds the same state, in every
    region (ADR 0037): the join is a semilattice, a counter is folded only at a local write
    whose folded state travels with its change (a fold never stays in one region), and a device
    drops a lost store's copies by the resync of ``cursor_unknown`` (``retired``). A replica
    without a version (a tombstone another replica already purged) is compared by data only.
    ``versions=False`` re-checks reports of runs from before versions were compared across
    regions."""
    anomalies = []
    keys: set[DocKey] = set().union(*(replica.docs for replica in replicas))
    for key in sorted(keys):
        states = {r.name: r.docs.get(key, DocState(None)) for r in replicas}
        datas = {dumps_canonical(state.data) for state in states.values()}
        seen = {state.version for state in states.values() if state.version is not None}
        how = _how_they_differ(list(states.values())) if len(datas) > 1 else "in version"
        if len(datas) > 1 or (versions and len(seen) > 1):
            shown = ", ".join(
                f"{name}={state.version}:{state.data}" for name, state in sorted(states.items())
            )
            anomalies.append(Anomaly(f"{_fmt(key)} diverges {how}: {shown}"))
    return anomalies


def _how_they_differ(states: list[DocState]) -> str:
    """Which part of the documents differs: deletion, a counter's value, or other data."""
    if len({state.data is None for state in states}) > 1:
        return "in deletion"
    counted = {name for state in states for name in (state.counters or {})}
    fields = {name for state in states for name in (state.data or {})}
    differing = {
        name
        for name in fields
        if len({dumps_canonical((s.data or {}).get(name)) for s in states}) > 1
    }
    return "in a counter's value" if differing and differing <= counted else "in data"


def _check_convergence(
    replicas: list[ReplicaState], healed_at: float, bound_s: float, versions: bool
) -> CheckResult:
    result = CheckResult("convergence", "(c) every node and device holds identical documents")
    if not replicas:
        return result
    result.checked = len(set().union(*(replica.docs for replica in replicas)))
    result.anomalies.extend(divergences(replicas, versions))
    last = max(replica.taken_at for replica in replicas)
    if last - healed_at > bound_s:
        result.anomalies.append(
            Anomaly(
                f"replicas were read {last - healed_at:.1f}s after the faults healed; "
                f"the bound is {bound_s:g}s"
            )
        )
    return result


def _check_read_your_writes(history: History, facts: _Facts) -> CheckResult:
    result = CheckResult("read_your_writes", "(d) each device reads its own acknowledged writes")
    by_doc = _by_doc(facts.sent.values())
    counter_only = {key for key, ms in by_doc.items() if all(m.op == "increment" for m in ms)}
    acks: dict[tuple[str, DocKey], list[tuple[float, MutationRecord, int]]] = defaultdict(list)
    for mid, op in facts.acked.items():
        mutation = facts.sent[mid]
        key = (mutation.collection, mutation.doc_id)
        acks[(op.process, key)].append((op.completed_at or 0.0, mutation, op.op_id))
    for op in history.operations:
        if op.kind != "read" or op.outcome != "ok" or op.read is None:
            continue
        key = (op.read.collection, op.read.doc_id)
        own = [a for a in acks.get((op.process, key), ()) if a[0] < op.invoked_at]
        if not own:
            continue
        result.checked += 1
        anomaly = (
            _stale_counter(op, key, own)
            if key in counter_only
            else _stale_writer(op, key, own, facts)
        )
        if anomaly is not None:
            result.anomalies.append(anomaly)
    return result


def _stale_counter(
    op: Operation, key: DocKey, own: list[tuple[float, MutationRecord, int]]
) -> Anomaly | None:
    data = (op.read.data if op.read else None) or {}
    totals: Counter[str] = Counter()
    for _, mutation, _ in own:
        totals.update(mutation.data or {})
    for name, total in totals.items():
        value = data.get(name, 0)
        if isinstance(value, int | float) and value < total:
            return Anomaly(
                f"{op.process} read {_fmt(key)}.{name} = {value} (op {op.op_id}) after its own "
                f"acknowledged increments added {total}",
                tuple(m.mutation_id for _, m, _ in own)[-5:],
                (op.op_id, *(i for _, _, i in own[-5:])),
            )
    return None


def _stale_writer(
    op: Operation, key: DocKey, own: list[tuple[float, MutationRecord, int]], facts: _Facts
) -> Anomaly | None:
    writes = [(m, i) for _, m, i in own if m.op in ("set", "patch", "delete")]
    if not writes:
        return None
    latest, latest_op = max(writes, key=lambda w: w[0].hlc)
    data = op.read.data if op.read else None
    seen = (data or {}).get(WRITER_FIELD)
    seen_mutation = facts.writers.get(seen) if isinstance(seen, str) else None
    if latest.op == "delete":
        if data is None or (seen_mutation is not None and seen_mutation.hlc >= latest.hlc):
            return None
    elif seen_mutation is not None and seen_mutation.hlc >= latest.hlc:
        return None
    return Anomaly(
        f"{op.process} read {_fmt(key)} (op {op.op_id}) and saw writer {seen!r}"
        f"{f' ({seen_mutation.mutation_id})' if seen_mutation else ''}, older than its "
        f"own {latest.op} {latest.mutation_id} acknowledged before (op {latest_op})",
        (latest.mutation_id,),
        (op.op_id, latest_op),
    )


def replicas_json(
    replicas: list[ReplicaState], healed_at: float, bound_s: float, versions: bool = True
) -> dict[str, Any]:
    """The final states and the bound, as JSON, so that a run can be checked again later
    (``versions_compared``: whether convergence compares versions, see :func:`divergences`)."""
    return {
        "healed_at": healed_at,
        "bound_s": bound_s,
        "versions_compared": versions,
        "replicas": [
            {
                "name": r.name,
                "kind": r.kind,
                "taken_at": r.taken_at,
                "applied": r.applied,
                "positions": r.positions,
                "docs": [
                    {
                        "collection": key[0],
                        "id": key[1],
                        "data": doc.data,
                        "version": doc.version,
                        "counters": doc.counters,
                    }
                    for key, doc in sorted(r.docs.items())
                ],
            }
            for r in replicas
        ],
    }


def parse_replicas(raw: Any) -> tuple[list[ReplicaState], float, float]:
    """Read back :func:`replicas_json`: the replicas, ``healed_at`` and ``bound_s``."""
    replicas = [
        ReplicaState(
            name=str(r["name"]),
            kind="node" if r["kind"] == "node" else "device",
            docs={
                (str(d["collection"]), str(d["id"])): DocState(
                    d["data"], d["version"], d.get("counters")
                )
                for d in r["docs"]
            },
            applied=None if r["applied"] is None else [str(m) for m in r["applied"]],
            taken_at=float(r["taken_at"]),
            positions=None
            if r.get("positions") is None
            else [(str(origin), int(seq)) for origin, seq in r["positions"]],
        )
        for r in raw["replicas"]
    ]
    return replicas, float(raw["healed_at"]), float(raw["bound_s"])


def check(
    history: History,
    replicas: list[ReplicaState],
    *,
    healed_at: float,
    bound_s: float,
    versions: bool = True,
) -> Verdict:
    """Run the six checks over ``history`` and the final ``replicas`` (``versions``: whether
    convergence also compares versions; not across regions, see :func:`divergences`)."""
    facts = _Facts.of(history)
    nodes = [replica for replica in replicas if replica.kind == "node"]
    return Verdict(
        [
            _check_lost(facts, nodes),
            _check_exactly_once(facts, nodes),
            _check_convergence(replicas, healed_at, bound_s, versions),
            _check_read_your_writes(history, facts),
            _check_gap_free(nodes),
            _check_device_cursors(history, facts, nodes),
        ]
    )


def _check_gap_free(nodes: list[ReplicaState]) -> CheckResult:
    result = CheckResult("gap_free_feed", "(e) each origin's seqs go up by one in every feed")
    for node in nodes:
        last: dict[str, int] = {}
        for mutation_id, (origin, seq) in zip(
            node.applied or (), node.positions or (), strict=False
        ):
            result.checked += 1
            # The first entry of an origin may follow compacted ones, so it can start anywhere.
            if origin in last and seq != last[origin] + 1:
                result.anomalies.append(
                    Anomaly(
                        f"{mutation_id} has seq {seq} of {origin} in {node.name}'s feed, after"
                        f" {last[origin]}",
                        (mutation_id,),
                    )
                )
            last[origin] = seq
    return result


# (f) device cursors -------------------------------------------------------------------------------


@dataclass
class _Feeds:
    """The final feeds of the nodes: each origin's entries ``(seq, mutation id)`` in seq order,
    the highest seq of each origin, and every mutation that took effect."""

    entries: dict[str, list[tuple[int, str]]]
    heads: dict[str, int]
    effective: set[str]

    @classmethod
    def of(cls, nodes: list[ReplicaState]) -> _Feeds | None:
        """``None`` when a node's positions were not recorded (an older report)."""
        if any(node.positions is None for node in nodes):
            return None
        found: dict[str, set[tuple[int, str]]] = defaultdict(set)
        for node in nodes:
            for mid, (origin, seq) in zip(node.applied or (), node.positions or (), strict=False):
                found[origin].add((seq, mid))
        entries = {origin: sorted(pairs) for origin, pairs in found.items()}
        heads = {origin: pairs[-1][0] for origin, pairs in entries.items()}
        effective = {mid for node in nodes for mid in node.applied or ()}
        return cls(entries, heads, effective)

    def beyond(self, cursor: dict[str, int]) -> bool:
        """Whether ``cursor`` covers a change no final feed holds (a lost store's)."""
        return any(seq > self.heads.get(origin, 0) for origin, seq in cursor.items())


@dataclass
class _Floor:
    """What a device's cursor says it holds, per document: the newest write (by HLC) and the
    increments' sums of the changes at or below the cursor, taken from the final feeds."""

    taken: dict[str, int] = field(default_factory=dict)  # entries of each origin counted
    counted: set[str] = field(default_factory=set)  # one effect under two origins counts once
    newest: dict[DocKey, MutationRecord] = field(default_factory=dict)
    sums: dict[DocKey, Counter[str]] = field(default_factory=dict)

    def advance(
        self,
        cursor: dict[str, int],
        feeds: _Feeds,
        sent: dict[str, MutationRecord],
        collections: tuple[str, ...] | None,
    ) -> set[DocKey]:
        """Count the changes ``cursor`` newly covers; the documents whose floor rose."""
        risen: set[DocKey] = set()
        for origin, covered in cursor.items():
            entries = feeds.entries.get(origin, [])
            index = self.taken.get(origin, 0)
            while index < len(entries) and entries[index][0] <= covered:
                mutation = sent.get(entries[index][1])
                index += 1
                if mutation is None or (collections and mutation.collection not in collections):
                    continue
                if mutation.mutation_id in self.counted:
                    continue
                self.counted.add(mutation.mutation_id)
                key = (mutation.collection, mutation.doc_id)
                risen.add(key)
                if mutation.op == "increment":
                    self.sums.setdefault(key, Counter()).update(mutation.data or {})
                elif key not in self.newest or self.newest[key].hlc < mutation.hlc:
                    self.newest[key] = mutation
            self.taken[origin] = index
        return risen


@dataclass
class _Judge:
    """What every device is judged against: the history's facts, the final feeds, and the sum
    of the final feeds' increments of each counter document (one only ever incremented)."""

    facts: _Facts
    feeds: _Feeds
    totals: dict[DocKey, Counter[str]]

    @classmethod
    def of(cls, facts: _Facts, feeds: _Feeds) -> _Judge:
        by_doc = _by_doc(facts.sent.values())
        totals: dict[DocKey, Counter[str]] = {
            key: Counter() for key, ms in by_doc.items() if all(m.op == "increment" for m in ms)
        }
        for mid in feeds.effective:
            mutation = facts.sent.get(mid)
            if mutation is not None and (key := (mutation.collection, mutation.doc_id)) in totals:
                totals[key].update(mutation.data or {})
        return cls(facts, feeds, totals)

    def below_floor(self, key: DocKey, data: dict[str, Any] | None, floor: _Floor) -> str | None:
        """How ``data`` lacks a change its cursor covers, or ``None``."""
        newest = floor.newest.get(key)
        if newest is not None:
            seen = self.facts.writers.get(str((data or {}).get(WRITER_FIELD)))
            if data is None:
                if newest.op != "delete" and not self._deleted_since(key, newest):
                    return f"is absent, lacking {newest.op} {newest.mutation_id}"
            elif seen is None or seen.hlc < newest.hlc:
                return f"shows writer {data.get(WRITER_FIELD)!r}, older than {newest.mutation_id}"
        if key in self.totals:
            for name, total in floor.sums.get(key, Counter()).items():
                value = (data or {}).get(name, 0)
                if isinstance(value, int | float) and value < total:
                    return f"has {name} = {value}, less than the {total} its covered increments add"
        return None

    def _deleted_since(self, key: DocKey, newest: MutationRecord) -> bool:
        """Whether a delete newer than ``newest`` took effect (the device may hold it early)."""
        return any(
            m.op == "delete" and m.hlc > newest.hlc and m.mutation_id in self.feeds.effective
            for m in self.facts.sent.values()
            if (m.collection, m.doc_id) == key
        )

    def above_feeds(self, key: DocKey, data: dict[str, Any] | None) -> str | None:
        """How ``data`` holds what no final feed has, or ``None``."""
        if data is None:
            return None
        token = data.get(WRITER_FIELD)
        if isinstance(token, str):
            writer = self.facts.writers.get(token)
            if writer is None or writer.mutation_id not in self.feeds.effective:
                return f"shows writer {token!r}, a write that took effect in no final feed"
        for name, total in self.totals.get(key, Counter()).items():
            value = data.get(name)
            if isinstance(value, int | float) and value > total:
                return f"has {name} = {value}, more than the {total} the final feeds' add"
        return None


def _check_device_cursors(
    history: History, facts: _Facts, nodes: list[ReplicaState]
) -> CheckResult:
    result = CheckResult(
        "device_cursors", "(f) each device holds every change its cursor covers, and no other"
    )
    feeds = _Feeds.of(nodes)
    if feeds is None:
        return result
    judge = _Judge.of(facts, feeds)
    records: dict[str, list[CursorRecord]] = defaultdict(list)
    for record in history.cursors:
        records[record.process].append(record)
    for device, moves in records.items():
        result.checked += len(moves)
        result.anomalies.extend(_judge_device(device, moves, judge))
    return result


def _judge_device(device: str, moves: list[CursorRecord], judge: _Judge) -> list[Anomaly]:
    """Replay one device's cursor records, judging each document that changed or whose floor
    rose (a document's judgement changes only then)."""
    anomalies: list[Anomaly] = []
    copy: dict[DocKey, dict[str, Any] | None] = {}
    cursor: dict[str, int] = {}
    floor = _Floor()
    tainted = False  # it pulled changes of a store lost before they replicated
    for move in moves:
        if move.resync == "start":
            cursor, floor = {}, _Floor()
            continue
        back = sorted(o for o, seq in cursor.items() if move.cursor.get(o, 0) < seq)
        if back:
            moved = ", ".join(f"{o} {cursor[o]} -> {move.cursor.get(o, 0)}" for o in back)
            anomalies.append(Anomaly(f"{device}'s cursor moved back at {move.at}s: {moved}"))
        cursor = move.cursor
        copy.update(move.docs)
        beyond = judge.feeds.beyond(cursor)
        # Until a full resync ends, the device may hold what no region kept (ADR 0037).
        tainted = beyond if move.resync == "done" else tainted or beyond
        judged = set(move.docs)
        judged |= floor.advance(cursor, judge.feeds, judge.facts.sent, move.collections)
        if move.resync == "done":
            judged |= set(copy)
        for key in sorted(judged):
            data = copy.get(key)
            above = None if tainted else judge.above_feeds(key, data)
            for what in (judge.below_floor(key, data, floor), above):
                if what is not None:
                    anomalies.append(
                        Anomaly(f"{device} at {move.at}s (cursor {cursor}): {_fmt(key)} {what}")
                    )
    return anomalies
