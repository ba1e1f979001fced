"""Synthetic runs for the checker's tests: a correct system, and anomalies planted into it.

The "system" here is a perfect single store with its own small merge (per-field registers, a set
stamp, per-mutation counters), written independently of the checker's fold, so that a clean run
really is clean by the merge rules and not by the checker's own definition.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field, replace
from typing import Any

from breakwater.chaos.checker import WRITER_FIELD, DocState, ReplicaState
from breakwater.chaos.history import (
    CursorRecord,
    History,
    MutationRecord,
    Operation,
    ReadRecord,
)
from breakwater.core import hlc

ANOMALIES = (
    "lost_write",
    "lost_effect",
    "duplicate_feed",
    "duplicate_count",
    "divergent",
    "stale",
    "seq_skipped",
    "seq_reused",
    "cursor_skips",
    "cursor_back",
    "device_ahead",
)


@dataclass
class _Doc:
    """Replicated state: registers ``{field: (hlc, value)}``, set stamp, counters."""

    registers: dict[str, tuple[str, Any]] = field(default_factory=dict)
    set_stamp: str = ""
    counters: dict[str, dict[str, tuple[str, float]]] = field(default_factory=dict)

    def apply(self, m: MutationRecord) -> None:
        if m.op == "set":
            self.set_stamp = max(self.set_stamp, m.hlc)
        for name, value in (m.data or {}).items():
            if m.op == "increment":
                self.counters.setdefault(name, {})[m.mutation_id] = (m.hlc, value)
            elif name not in self.registers or self.registers[name][0] < m.hlc:
                self.registers[name] = (m.hlc, value)

    def data(self) -> dict[str, Any] | None:
        out: dict[str, Any] = {
            name: value
            for name, (stamp, value) in self.registers.items()
            if stamp >= self.set_stamp
        }
        for name, counted in self.counters.items():
            written = self.registers.get(name, ("", 0))
            base_stamp = max(self.set_stamp, written[0])
            base = out.get(name, 0)
            out[name] = base + sum(a for s, a in counted.values() if s > base_stamp)
        return out or None


def version_of(data: dict[str, Any] | None) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:20]


@dataclass
class Run:
    """A history and the final replicas of a correct run."""

    history: History
    replicas: list[ReplicaState]
    healed_at: float
    bound_s: float = 10.0

    def node(self, name: str) -> ReplicaState:
        return next(r for r in self.replicas if r.name == name)


def simulate(seed: int, devices: int = 3, steps: int = 40, tokens: bool = False) -> Run:
    """A correct run: devices write their notes, share counters, read, retry; some pushes fail
    or end unknown (applied or not); devices pull pages of the feed (each change with its
    document's current data) and now and then resync in full, recording each page; every device
    ends with an acknowledged write, a read and a pull to the end of the feed.
    A note's writer token is its mutation id, or with ``tokens`` one of the device's own (as an
    app that learns mutation ids only after writing makes)."""
    rng = random.Random(seed)
    history = History(meta={"seed": seed})
    docs: dict[tuple[str, str], _Doc] = {}
    feed: list[str] = []
    pending: dict[str, list[MutationRecord]] = {f"d{i}": [] for i in range(devices)}
    clock = [0.0]
    counter = [0]

    def tick() -> float:
        clock[0] += rng.uniform(0.01, 0.5)
        return round(clock[0], 6)

    def stamp(device: str) -> str:
        counter[0] += 1
        return hlc.encode(1_800_000_000_000 + counter[0] * 7, 0, device)

    def new_write(device: str, kind: str) -> MutationRecord:
        mid = f"{device}.{counter[0] + 1}"
        if kind == "counter":
            return MutationRecord(
                mid, "counters", f"c{rng.randrange(2)}", "increment", {"n": rng.randint(1, 3)},
                stamp(device),
            )  # fmt: skip
        op = rng.choice(["set", "patch"])
        token = f"{device}-w{counter[0] + 1}" if tokens else mid
        data = {WRITER_FIELD: token, "v" if op == "set" else "p": rng.randint(0, 99)}
        return MutationRecord(mid, "notes", device, op, data, stamp(device))

    def push(device: str, batch: list[MutationRecord], outcome: str | None = None) -> None:
        invoked = tick()
        outcome = outcome or rng.choices(["ok", "failed", "unknown"], [6, 1, 2])[0]
        applies = outcome == "ok" or (outcome == "unknown" and rng.random() < 0.5)
        results = {}
        for m in batch:
            status = "duplicate" if m.mutation_id in feed else "applied"
            if applies and status == "applied":
                feed.append(m.mutation_id)
                by_id[m.mutation_id] = m
                docs.setdefault((m.collection, m.doc_id), _Doc()).apply(m)
            results[m.mutation_id] = status
        op = Operation(
            len(history.operations) + 1, device, "push", "n1", invoked, tick(), outcome,  # type: ignore[arg-type]
            tuple(batch), results if outcome == "ok" else {},
        )  # fmt: skip
        history.operations.append(op)
        if outcome != "ok":
            pending[device] = [*batch]  # retried later with the same ids and stamps
        else:
            pending[device] = []

    def read(device: str, key: tuple[str, str]) -> None:
        invoked = tick()
        doc = docs.get(key)
        data = doc.data() if doc else None
        history.operations.append(
            Operation(
                len(history.operations) + 1,
                device,
                "read",
                "n1",
                invoked,
                tick(),
                "ok",
                read=ReadRecord(key[0], key[1], data, version_of(data)),
            )
        )

    cursors = dict.fromkeys(pending, 0)
    by_id: dict[str, MutationRecord] = {}

    def pull(device: str, resync: bool = False) -> None:
        """Pages to the end of the feed (from the start, after a resync's start)."""
        if resync:
            cursors[device] = 0
            history.cursors.append(CursorRecord(device, tick(), {}, resync="start"))
        while True:
            start = cursors[device]
            page = feed[start : start + rng.randint(1, 5)]
            cursors[device] = start + len(page)
            touched = {(by_id[m].collection, by_id[m].doc_id) for m in page}
            done = cursors[device] == len(feed)
            history.cursors.append(
                CursorRecord(
                    device, tick(), {"r1": cursors[device]} if cursors[device] else {},
                    {key: docs[key].data() for key in sorted(touched)},
                    "done" if resync and done else None,
                )
            )  # fmt: skip
            if done:
                return

    names = list(pending)
    for _ in range(steps):
        device = rng.choice(names)
        action = rng.random()
        if action > 0.85:
            pull(device, resync=rng.random() < 0.3)
        elif pending[device] and action < 0.3:
            push(device, pending[device])
        elif action < 0.75:
            push(device, [*pending[device], new_write(device, rng.choice(["note", "counter"]))])
        else:
            key = ("notes", device) if rng.random() < 0.5 else ("counters", f"c{rng.randrange(2)}")
            read(device, key)
    for device in names:
        push(device, [*pending[device], new_write(device, "note")], "ok")
        read(device, ("notes", device))
        push(device, [new_write(device, "counter")], "ok")
        read(device, ("counters", "c0"))
        read(device, ("counters", "c1"))
    for device in names:
        pull(device)
        pull(device)  # nothing new: the same cursor again
    healed_at = tick()
    states = {key: doc.data() for key, doc in docs.items()}
    counters = {
        key: {f: {mid: a for mid, (_, a) in ids.items()} for f, ids in doc.counters.items()}
        for key, doc in docs.items()
    }
    replicas = [
        ReplicaState(
            name,
            "node",
            {k: DocState(d, version_of(d), counters[k] or None) for k, d in states.items()},
            list(feed),
            tick(),
            [("r1", seq) for seq in range(1, len(feed) + 1)],
        )
        for name in ("n1", "n2")
    ]
    replicas += [
        ReplicaState(name, "device", {k: DocState(d, version_of(d)) for k, d in states.items()})
        for name in names
    ]
    for replica in replicas[2:]:
        replica.taken_at = tick()
    return Run(history, replicas, healed_at)


def _acked(run: Run) -> list[MutationRecord]:
    sent = run.history.mutations()
    return [
        sent[mid]
        for op in run.history.operations
        for mid in op.results
        if op.acknowledged(mid) and op.results[mid] == "applied"
    ]


def plant(run: Run, anomaly: str, rng: random.Random) -> str:
    """Plant one ``anomaly`` into ``run``; return the check that must catch it."""
    node = run.node(rng.choice(["n1", "n2"]))
    acked = _acked(run)
    if anomaly == "lost_write":
        victim = rng.choice(acked)
        node.applied = [m for m in node.applied or () if m != victim.mutation_id]
        return "no_lost_writes"
    if anomaly == "lost_effect":
        victim = rng.choice([m for m in acked if m.op == "increment"])
        key = (victim.collection, victim.doc_id)
        data = dict(node.docs[key].data or {})
        data["n"] -= victim.data["n"]  # type: ignore[index]
        node.docs[key] = DocState(data, version_of(data))
        return "no_lost_writes"
    if anomaly == "duplicate_feed":
        victim = rng.choice(acked)
        node.applied = [*(node.applied or ()), victim.mutation_id]
        return "exactly_once"
    if anomaly == "duplicate_count":
        victim = rng.choice([m for m in acked if m.op == "increment"])
        key = (victim.collection, victim.doc_id)
        data = dict(node.docs[key].data or {})
        data["n"] += victim.data["n"]  # type: ignore[index]
        node.docs[key] = replace(node.docs[key], data=data, version=version_of(data))
        return "exactly_once"
    if anomaly in ("seq_skipped", "seq_reused"):
        positions = node.positions or []
        at = rng.randrange(1, len(positions))
        shift = 1 if anomaly == "seq_skipped" else -1
        node.positions = positions[:at] + [(o, seq + shift) for o, seq in positions[at:]]
        return "gap_free_feed"
    if anomaly == "divergent":
        replica = rng.choice(run.replicas)
        key = rng.choice(sorted(replica.docs))
        data = {**(replica.docs[key].data or {}), "v": -1}
        replica.docs[key] = DocState(data, version_of(data))
        return "convergence"
    if anomaly == "stale":
        reads = [
            (i, op)
            for i, op in enumerate(run.history.operations)
            if op.kind == "read" and op.read and op.read.collection == "notes"
            and op.process == op.read.doc_id and _own_acked_before(run, op)
        ]  # fmt: skip
        index, op = rng.choice(reads)
        assert op.read is not None
        older = [
            (m.data or {})[WRITER_FIELD]
            for m in acked
            if m.doc_id == op.process and m.collection == "notes"
            and m.hlc < _latest_own(run, op).hlc
        ]  # fmt: skip
        stale = {WRITER_FIELD: rng.choice(older)} if older and rng.random() < 0.7 else None
        run.history.operations[index] = replace(op, read=replace(op.read, data=stale))
        return "read_your_writes"
    if anomaly in ("cursor_skips", "cursor_back", "device_ahead"):
        return _plant_in_cursors(run, anomaly, rng)
    raise ValueError(anomaly)


def _plant_in_cursors(run: Run, anomaly: str, rng: random.Random) -> str:
    """A page that left out a document it was the first to bring (the cursor covers a change
    the device does not hold), a cursor lower than the one before without a resync, or a page
    bringing a state no node holds (a counter too high, or a writer no push applied)."""
    records = run.history.cursors
    if anomaly == "cursor_skips":
        held: set[tuple[str, tuple[str, str]]] = set()
        firsts = []
        for index, record in enumerate(records):
            firsts += [(index, k) for k in record.docs if (record.process, k) not in held]
            held |= {(record.process, k) for k in record.docs}
        index, key = rng.choice(firsts)
        docs = {k: d for k, d in records[index].docs.items() if k != key}
        records[index] = replace(records[index], docs=docs)
    elif anomaly == "cursor_back":
        after = [
            (i, before)
            for i, record in enumerate(records)
            if record.resync != "start" and (before := _previous(records, i)) and before.cursor
        ]
        index, before = rng.choice(after)
        lower = {o: seq - 1 for o, seq in before.cursor.items()}
        records[index] = replace(records[index], cursor=lower)
    else:
        index, key = rng.choice([(i, k) for i, r in enumerate(records) for k in r.docs])
        data = dict(records[index].docs[key] or {})
        if "n" in data:
            data["n"] += 1000
        else:
            data[WRITER_FIELD] = "never-applied"
        records[index] = replace(records[index], docs={**records[index].docs, key: data})
    return "device_cursors"


def _previous(records: list[CursorRecord], index: int) -> CursorRecord | None:
    """The record of the same device before ``records[index]``, if any."""
    device = records[index].process
    return next((r for r in reversed(records[:index]) if r.process == device), None)


def _own_acked_before(run: Run, read: Operation) -> list[MutationRecord]:
    assert read.read is not None
    return [
        m
        for op in run.history.operations
        if op.kind == "push" and op.process == read.process
        and (op.completed_at or 0) < read.invoked_at
        for m in op.mutations
        if op.acknowledged(m.mutation_id) and m.doc_id == read.read.doc_id
        and m.collection == read.read.collection
    ]  # fmt: skip


def _latest_own(run: Run, read: Operation) -> MutationRecord:
    return max(_own_acked_before(run, read), key=lambda m: m.hlc)
