"""A simulated mobile device on plain HTTP: writes offline, syncs when it can, records everything.

This was written before the SDK (``breakwater.client``) and stands in for it; :class:`Device` is
the seam a runner drives, so an SDK-backed device can replace :class:`HttpDevice` without
touching the runner or the checker. It behaves as the SDK promises to (ARCHITECTURE.md section 6):

- a write gets a client-made ``mutation_id`` and an HLC stamp from the device's own clock, applies
  to the local view at once and waits in the outbox; pushes retry the same ids until a node
  acknowledges them (a retry is safe by I2);
- pulls follow the change feed from the device's cursor into a copy of the server's documents;
- the local view is that copy with the device's own mutations that no pull has shown yet applied
  on top, so a device always reads its own writes, online or offline;
- when a node fails (error, timeout, refusal) the device moves to the next endpoint.

Workload conventions the checker relies on: every ``set`` and ``patch`` of the device's note
(``notes/<device>``) writes its own mutation id in :data:`~breakwater.chaos.checker.WRITER_FIELD`,
and the shared counters (``counters/c<k>``) only ever receive increments.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, Protocol

import httpx

from breakwater.chaos.checker import WRITER_FIELD, DocKey, DocState, ReplicaState, apply_mutation
from breakwater.chaos.history import MutationRecord as Mutation
from breakwater.chaos.history import Operation, Outcome, ReadRecord, Recorder
from breakwater.core.hlc import HybridClock

PUSH_BATCH = 100
PULL_PAGE = 500
MAX_PULL_PAGES = 200
DEFINITE_REFUSALS = ("store_unavailable", "unavailable")
"""503 problem types that promise nothing was applied (docs/protocol.md#push)."""


class Device(Protocol):
    """What a scenario runner needs from a simulated device."""

    name: str
    online: bool

    async def act(self, kind: str) -> None:
        """One user action: ``note`` (write the device's note), ``counter`` (increment a shared
        counter) or ``read`` (read one of those documents)."""

    async def sync(self) -> bool:
        """Push the outbox and pull; whether both got through."""

    def pending(self) -> int:
        """Mutations not yet acknowledged."""

    def snapshot(self, taken_at: float) -> ReplicaState:
        """The device's copy of the server's documents."""

    async def aclose(self) -> None:
        """Release connections."""


def outcome_of_error(error: httpx.HTTPError) -> Outcome:
    """``failed`` when the request certainly never reached a node, else ``unknown``."""
    if isinstance(error, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout):
        return "failed"
    return "unknown"


def outcome_of_status(response: httpx.Response) -> Outcome:
    """``ok`` for 200, ``failed`` for a refusal that promises nothing was done, else unknown."""
    if response.status_code == 200:
        return "ok"
    if 400 <= response.status_code < 500:
        return "failed"
    if response.status_code == 503 and _problem_type(response) in DEFINITE_REFUSALS:
        return "failed"
    return "unknown"


def _problem_type(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    kind = body.get("type") if isinstance(body, dict) else None
    return kind if isinstance(kind, str) else None


class HttpDevice:
    """One simulated phone: an HLC, an outbox, a cursor and a copy of the server's documents.

    ``endpoints`` are ``(node name, base URL)`` pairs, tried in turn from ``first``.
    Operations are sequential, as on a phone's single sync loop.
    """

    def __init__(
        self,
        name: str,
        endpoints: Sequence[tuple[str, str]],
        recorder: Recorder,
        rng: random.Random,
        *,
        timeout_s: float,
        counters: int,
        first: int = 0,
    ) -> None:
        self.name = name
        self.online = True
        self.endpoints = list(endpoints)
        self.recorder = recorder
        self.rng = rng
        self.counters = counters
        self.clock = HybridClock(name)
        self.http = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(max_connections=2, max_keepalive_connections=2),
        )
        self._endpoint = first % len(self.endpoints)
        self._sequence = 0
        self.outbox: list[Mutation] = []
        self.unseen: dict[str, Mutation] = {}
        self.reflected: set[str] = set()
        self.server: dict[DocKey, DocState] = {}
        self.cursor = ""

    async def aclose(self) -> None:
        await self.http.aclose()

    # Local state -------------------------------------------------------------------------------

    def pending(self) -> int:
        return len(self.outbox)

    def local_view(self, key: DocKey) -> dict[str, Any] | None:
        """The server's copy of ``key`` with this device's not-yet-pulled mutations on top."""
        doc = self.server.get(key, DocState(None)).data
        mine = [*self.unseen.values(), *self.outbox]
        for mutation in sorted(mine, key=lambda m: m.hlc):
            if (mutation.collection, mutation.doc_id) == key and (
                mutation.mutation_id not in self.reflected
            ):
                doc = apply_mutation(doc, mutation)
        return doc

    def snapshot(self, taken_at: float) -> ReplicaState:
        return ReplicaState(self.name, "device", dict(self.server), None, taken_at)

    def _new_mutation(self, kind: str) -> Mutation:
        self._sequence += 1
        mid = f"{self.name}.{self._sequence}"
        stamp = self.clock.now()
        if kind == "counter":
            key = f"c{self.rng.randrange(self.counters)}"
            amount = self.rng.randint(1, 5)
            return Mutation(mid, "counters", key, "increment", {"n": amount}, stamp)
        op = "set" if self.rng.random() < 0.5 else "patch"
        field = "v" if op == "set" else "p"
        data = {WRITER_FIELD: mid, field: self.rng.randrange(1_000_000)}
        return Mutation(mid, "notes", self.name, op, data, stamp)

    # Actions -----------------------------------------------------------------------------------

    async def act(self, kind: str) -> None:
        if kind == "read":
            key = (
                ("notes", self.name)
                if self.rng.random() < 0.5
                else ("counters", f"c{self.rng.randrange(self.counters)}")
            )
            await self.read(key)
            return
        self.outbox.append(self._new_mutation(kind))
        if self.online:
            await self.push()

    async def sync(self) -> bool:
        if not self.online:
            return False
        pushed = await self.push() if self.outbox else True
        return await self.pull() and pushed

    def _target(self) -> tuple[str, str]:
        return self.endpoints[self._endpoint]

    def _fail_over(self) -> None:
        self._endpoint = (self._endpoint + 1) % len(self.endpoints)

    async def push(self) -> bool:
        """Push the head of the outbox once; whether the node answered 200."""
        batch = tuple(self.outbox[:PUSH_BATCH])
        if not batch:
            return True
        node, url = self._target()
        invoked = self.recorder.now()
        body = {"client_id": self.name, "mutations": [m.wire() for m in batch]}
        results: dict[str, str] = {}
        error = None
        try:
            response = await self.http.post(f"{url}/v1/sync/push", json=body)
            outcome = outcome_of_status(response)
            if outcome == "ok":
                answer = response.json()
                results = {r["mutation_id"]: r["status"] for r in answer["results"]}
                self.clock.observe(answer["hlc"])
            else:
                error = f"{response.status_code} {_problem_type(response)}"
        except httpx.HTTPError as exc:
            outcome, error = outcome_of_error(exc), type(exc).__name__
        self.recorder.add(
            Operation(
                self.recorder.next_id(),
                self.name,
                "push",
                node,
                invoked,
                self.recorder.now(),
                outcome,
                batch,
                results,
                error=error,
            )
        )
        if outcome != "ok":
            self._fail_over()
            return False
        done = set(results)
        for mutation in batch:
            if results.get(mutation.mutation_id) in ("applied", "duplicate") and (
                mutation.mutation_id not in self.reflected
            ):
                self.unseen[mutation.mutation_id] = mutation
        self.outbox = [m for m in self.outbox if m.mutation_id not in done]
        return True

    async def pull(self) -> bool:
        """Follow the feed to its end; whether it got there."""
        _, url = self._target()
        seen: set[str] = set()
        for _ in range(MAX_PULL_PAGES):
            params: dict[str, str | int] = {"cursor": self.cursor, "limit": PULL_PAGE}
            try:
                response = await self.http.get(f"{url}/v1/sync/pull", params=params)
            except httpx.HTTPError:
                self._fail_over()
                return False
            if response.status_code != 200:
                self._fail_over()
                return False
            page = response.json()
            for change in page["changes"]:
                key = (change["collection"], change["id"])
                data = None if change["deleted"] else change["data"]
                self.server[key] = DocState(data, change["version"])
                seen.add(change["mutation_id"])
            self.cursor = page["cursor"]
            self.clock.observe(page["hlc"])
            if not page["has_more"]:
                self.reflected |= seen
                for mid in seen:
                    self.unseen.pop(mid, None)
                return True
        return False

    async def read(self, key: DocKey) -> None:
        """Read ``key`` from a node when online, else from the local view; recorded either way."""
        invoked = self.recorder.now()
        if not self.online:
            data = self.local_view(key)
            self._record_read(invoked, "local", "ok", ReadRecord(key[0], key[1], data))
            return
        node, url = self._target()
        try:
            response = await self.http.get(f"{url}/v1/collections/{key[0]}/docs/{key[1]}")
        except httpx.HTTPError as exc:
            self._record_read(invoked, node, outcome_of_error(exc), None, type(exc).__name__)
            self._fail_over()
            return
        if response.status_code == 200:
            body = response.json()
            read = ReadRecord(key[0], key[1], body["data"], body["version"])
            self._record_read(invoked, node, "ok", read)
        elif response.status_code == 404:
            self._record_read(invoked, node, "ok", ReadRecord(key[0], key[1], None))
        else:
            self._record_read(invoked, node, "failed", None, str(response.status_code))
            self._fail_over()

    def _record_read(
        self,
        invoked: float,
        target: str,
        outcome: Outcome,
        read: ReadRecord | None,
        error: str | None = None,
    ) -> None:
        self.recorder.add(
            Operation(
                self.recorder.next_id(),
                self.name,
                "read",
                target,
                invoked,
                self.recorder.now(),
                outcome,
                read=read,
                error=error,
            )
        )
