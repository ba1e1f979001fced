"""The history of a run: every operation with its timing and outcome, as JSON lines.

One line per record, each a JSON object with a ``type``:

- ``meta``: what ran (scenario name, wall-clock start); first line.
- ``op``: one client operation, written when it completes: who (``process``), what (``kind``
  ``push`` with its ``mutations``, or ``read`` with what it returned), where (``target`` node, or
  ``local`` for a device's own replica), when (``invoked_at`` and ``completed_at``, seconds since
  the run began) and how it ended (``outcome``):

  - ``ok``: the node answered; for a push, each mutation's ``results`` status says whether it was
    acknowledged (``applied`` or ``duplicate``) or ``rejected``;
  - ``failed``: certainly not applied (refused whole with a 4xx, ``503 store_unavailable``, or
    no connection);
  - ``unknown``: may or may not have been applied (timeout or reset after sending, other 5xx).

- ``fault``: a fault starting or healing (``action`` ``start`` or ``heal``), for the report.
- ``cursor``: a device's cursor moved (``process``, ``at``): a pulled page committed, with the
  ``cursor`` it committed as its version vector and the synced (server) ``docs`` the page
  changed (``data`` ``null``: none held), ``resync`` ``done`` if the page ended a full resync;
  or the device dropped its cursor for a full resync (``resync`` ``start``, the cursor empty).
  ``collections`` names what the device syncs when not every collection. Histories without
  these records are judged as before.

The checker needs nothing else from the run but the final states of the replicas.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

from breakwater.core import codec

Outcome = Literal["ok", "failed", "unknown"]
OUTCOMES = ("ok", "failed", "unknown")
ACKNOWLEDGED = ("applied", "duplicate")


class HistoryError(ValueError):
    """A history file is malformed; the message names the line."""


@dataclass(frozen=True)
class MutationRecord:
    """A mutation as the client sent it (its ``hlc`` is the client's stamp)."""

    mutation_id: str
    collection: str
    doc_id: str
    op: str
    data: dict[str, Any] | None
    hlc: str

    def wire(self) -> dict[str, Any]:
        """The mutation as ``POST /v1/sync/push`` takes it."""
        body: dict[str, Any] = {
            "mutation_id": self.mutation_id,
            "collection": self.collection,
            "id": self.doc_id,
            "op": self.op,
            "hlc": self.hlc,
        }
        if self.data is not None:
            body["data"] = self.data
        return body


@dataclass(frozen=True)
class ReadRecord:
    """What a read of one document returned (``data`` ``None``: absent or deleted)."""

    collection: str
    doc_id: str
    data: dict[str, Any] | None
    version: str | None = None


@dataclass(frozen=True)
class Operation:
    """One client operation and its outcome."""

    op_id: int
    process: str
    kind: Literal["push", "read"]
    target: str
    invoked_at: float
    completed_at: float | None
    outcome: Outcome
    mutations: tuple[MutationRecord, ...] = ()
    results: dict[str, str] = field(default_factory=dict)
    read: ReadRecord | None = None
    error: str | None = None

    def acknowledged(self, mutation_id: str) -> bool:
        """Whether this operation acknowledged ``mutation_id``."""
        return self.outcome == "ok" and self.results.get(mutation_id) in ACKNOWLEDGED


@dataclass(frozen=True)
class FaultEvent:
    """A fault started or healed at ``at`` (seconds since the run began)."""

    at: float
    action: Literal["start", "heal"]
    fault: str
    target: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CursorRecord:
    """A device's cursor moved at ``at``: see the ``cursor`` record above."""

    process: str
    at: float
    cursor: dict[str, int]
    docs: dict[tuple[str, str], dict[str, Any] | None] = field(default_factory=dict)
    resync: Literal["start", "done"] | None = None
    collections: tuple[str, ...] | None = None


Record = Operation | FaultEvent | CursorRecord


@dataclass
class History:
    """Everything recorded in one run."""

    meta: dict[str, Any] = field(default_factory=dict)
    operations: list[Operation] = field(default_factory=list)
    faults: list[FaultEvent] = field(default_factory=list)
    cursors: list[CursorRecord] = field(default_factory=list)

    def mutations(self) -> dict[str, MutationRecord]:
        """Every mutation sent, by id (the first record of each id)."""
        found: dict[str, MutationRecord] = {}
        for operation in self.operations:
            for mutation in operation.mutations:
                found.setdefault(mutation.mutation_id, mutation)
        return found

    def pushes_of(self, mutation_id: str) -> list[Operation]:
        """The push operations that carried ``mutation_id``, in invocation order."""
        return [
            op
            for op in self.operations
            if op.kind == "push" and any(m.mutation_id == mutation_id for m in op.mutations)
        ]


# JSON lines --------------------------------------------------------------------------------------


def _op_json(op: Operation) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "op",
        "op_id": op.op_id,
        "process": op.process,
        "kind": op.kind,
        "target": op.target,
        "invoked_at": op.invoked_at,
        "completed_at": op.completed_at,
        "outcome": op.outcome,
    }
    if op.mutations:
        body["mutations"] = [m.wire() for m in op.mutations]
        body["results"] = op.results
    if op.read is not None:
        body["read"] = {
            "collection": op.read.collection,
            "id": op.read.doc_id,
            "data": op.read.data,
            "version": op.read.version,
        }
    if op.error is not None:
        body["error"] = op.error
    return body


def _cursor_json(record: CursorRecord) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "cursor",
        "process": record.process,
        "at": record.at,
        "cursor": record.cursor,
        "docs": [[c, i, data] for (c, i), data in record.docs.items()],
    }
    if record.resync is not None:
        body["resync"] = record.resync
    if record.collections is not None:
        body["collections"] = list(record.collections)
    return body


def _cursor_record(raw: dict[str, Any]) -> CursorRecord:
    resync = raw.get("resync")
    if resync not in (None, "start", "done"):
        raise ValueError(f"resync {resync!r} is not start or done")
    collections = raw.get("collections")
    return CursorRecord(
        process=str(raw["process"]),
        at=float(raw["at"]),
        cursor={str(origin): int(seq) for origin, seq in raw["cursor"].items()},
        docs={(str(c), str(i)): data for c, i, data in raw.get("docs", ())},
        resync=resync,
        collections=None if collections is None else tuple(str(c) for c in collections),
    )


def record_json(record: Record) -> dict[str, Any]:
    """The JSON line of one record."""
    if isinstance(record, Operation):
        return _op_json(record)
    if isinstance(record, CursorRecord):
        return _cursor_json(record)
    return {
        "type": "fault",
        "at": record.at,
        "action": record.action,
        "fault": record.fault,
        "target": record.target,
        "params": record.params,
    }


def _mutation(raw: Any) -> MutationRecord:
    return MutationRecord(
        mutation_id=str(raw["mutation_id"]),
        collection=str(raw["collection"]),
        doc_id=str(raw["id"]),
        op=str(raw["op"]),
        data=raw.get("data"),
        hlc=str(raw["hlc"]),
    )


def _operation(raw: dict[str, Any]) -> Operation:
    if raw["kind"] not in ("push", "read"):
        raise ValueError(f"kind {raw['kind']!r} is not push or read")
    if raw["outcome"] not in OUTCOMES:
        raise ValueError(f"outcome {raw['outcome']!r} is not one of {OUTCOMES}")
    read = raw.get("read")
    return Operation(
        op_id=int(raw["op_id"]),
        process=str(raw["process"]),
        kind=raw["kind"],
        target=str(raw["target"]),
        invoked_at=float(raw["invoked_at"]),
        completed_at=None if raw["completed_at"] is None else float(raw["completed_at"]),
        outcome=raw["outcome"],
        mutations=tuple(_mutation(m) for m in raw.get("mutations", ())),
        results={str(k): str(v) for k, v in raw.get("results", {}).items()},
        read=None
        if read is None
        else ReadRecord(str(read["collection"]), str(read["id"]), read["data"], read["version"]),
        error=raw.get("error"),
    )


def parse_lines(lines: Iterable[str], source: str = "history") -> History:
    """Build a :class:`History` from JSON lines; :class:`HistoryError` names a bad line."""
    history = History()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            raw = codec.loads(line)
            kind = raw["type"]
            if kind == "meta":
                history.meta.update({k: v for k, v in raw.items() if k != "type"})
            elif kind == "op":
                history.operations.append(_operation(raw))
            elif kind == "cursor":
                history.cursors.append(_cursor_record(raw))
            elif kind == "fault":
                history.faults.append(
                    FaultEvent(
                        float(raw["at"]),
                        raw["action"],
                        str(raw["fault"]),
                        str(raw["target"]),
                        dict(raw.get("params", {})),
                    )
                )
            else:
                raise ValueError(f"unknown record type {kind!r}")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise HistoryError(f"{source} line {number}: {exc!r}") from exc
    return history


def read_history(path: Path) -> History:
    """Read a history file written by :class:`HistoryWriter`."""
    with path.open(encoding="utf-8") as file:
        return parse_lines(file, str(path))


def iter_lines(history: History) -> Iterator[bytes]:
    """A history as JSON lines (meta, then faults and operations in time order)."""
    yield codec.dumps({"type": "meta", **history.meta}) + b"\n"
    records: list[Record] = [*history.faults, *history.operations, *history.cursors]
    records.sort(key=lambda r: (r.completed_at or 0.0) if isinstance(r, Operation) else r.at)
    for record in records:
        yield codec.dumps(record_json(record)) + b"\n"


def write_history(history: History, path: Path) -> None:
    """Write ``history`` to ``path`` as JSON lines."""
    with path.open("wb") as file:
        file.writelines(iter_lines(history))


class Recorder:
    """Collects a run's history as it happens, and streams it to a file when given one.

    Times are seconds since the recorder was made, from an injectable monotonic ``clock``.
    """

    def __init__(self, meta: dict[str, Any], file: IO[bytes] | None = None, clock: Any = None):
        self.history = History(meta=dict(meta))
        self._clock = clock or time.monotonic
        self._start = self._clock()
        self._file = file
        self._next_id = 0
        if file is not None:
            file.write(codec.dumps({"type": "meta", **meta}) + b"\n")

    def start_clock(self) -> None:
        """Make this instant time zero of the history (the start of the workload)."""
        self._start = self._clock()

    def now(self) -> float:
        """Seconds since the run began."""
        return round(self._clock() - self._start, 6)

    def next_id(self) -> int:
        """A new operation id."""
        self._next_id += 1
        return self._next_id

    def add(self, record: Record) -> None:
        """Keep ``record`` (and write it out)."""
        if isinstance(record, Operation):
            self.history.operations.append(record)
        elif isinstance(record, CursorRecord):
            self.history.cursors.append(record)
        else:
            self.history.faults.append(record)
        if self._file is not None:
            self._file.write(codec.dumps(record_json(record)) + b"\n")
            self._file.flush()

    def fault(
        self, action: Literal["start", "heal"], fault: str, target: str, **params: Any
    ) -> None:
        """Record a fault starting or healing now."""
        self.add(FaultEvent(self.now(), action, fault, target, params))
