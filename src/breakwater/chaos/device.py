"""What a run drives: the simulated device seam, and the workload every device plays.

:class:`Device` is the seam between a run (the scenario runner, the load generator) and a
simulated phone; :class:`~breakwater.chaos.sdk_device.SdkDevice` implements it with the real SDK.
:class:`Workload` decides what each action writes or reads, with the conventions the checker
relies on:

- a device's ``set`` and ``patch`` go to its own note ``notes/<device>`` and carry a write token
  of their own, unique in the run, in :data:`~breakwater.chaos.checker.WRITER_FIELD`, so that a
  read names the write it shows;
- the shared counters ``counters/c<k>`` receive increments of 1 to 5 and nothing else, so that
  every effect adds up.

A *scoped* workload (the load test's default) is one user's data per device: the note is
``notes_<device>/<device>`` and the counters ``counters_<device>/c<k>``, and the device syncs
those two collections only (the SDK's ``sync_collections``). Every write then reaches the node
and its writer, not every device, so a load test measures the node rather than the fan-out of
each write into every simulated device's database. The counters are per device for the same
reason: shared ones would bring that fan-out back for half the writes, and a device's own
retried increments still prove exactly-once effects.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from breakwater.chaos.checker import WRITER_FIELD, DocKey, ReplicaState

ACTIONS = ("note", "counter", "read")


class Device(Protocol):
    """What a run needs from a simulated device."""

    name: str

    @property
    def online(self) -> bool:
        """Whether the device's network is on."""
        ...

    async def set_online(self, online: bool) -> None:
        """Switch the device's network off (it keeps reading and writing locally) or on."""

    async def act(self, kind: str) -> None:
        """One user action: ``note`` (write the device's note), ``counter`` (increment a shared
        counter) or ``read`` (read one of those documents); recorded in the history."""

    async def sync(self) -> bool:
        """Push every write made so far and pull the feed to its end, now; whether that got
        through within the device's bound (``False`` at once when offline)."""

    def pending(self) -> int:
        """Writes not yet acknowledged and settled."""

    async def snapshot(self, taken_at: float) -> ReplicaState:
        """The device's copy of the server's documents (no pending local writes on top)."""

    async def aclose(self) -> None:
        """Record what never completed as ``unknown``, and release the device."""


@dataclass(frozen=True)
class Write:
    """One write the workload asks for."""

    collection: str
    doc_id: str
    op: Literal["set", "patch", "increment"]
    data: dict[str, Any]


class Workload:
    """The actions of one device, drawn from its own seeded random stream."""

    def __init__(
        self, device: str, counters: int, rng: random.Random, *, scoped: bool = False
    ) -> None:
        self.device = device
        self.counters = counters
        self.rng = rng
        self.scoped = scoped
        self.notes = f"notes_{device}" if scoped else "notes"
        self.counter_collection = f"counters_{device}" if scoped else "counters"
        self._tokens = 0

    @property
    def collections(self) -> tuple[str, ...] | None:
        """The collections the device syncs: its own two when scoped, else all (``None``)."""
        return (self.notes, self.counter_collection) if self.scoped else None

    def write(self, kind: str) -> Write:
        """A ``note`` (a set or patch of the device's note) or a ``counter`` increment."""
        if kind == "counter":
            key = f"c{self.rng.randrange(self.counters)}"
            return Write(self.counter_collection, key, "increment", {"n": self.rng.randint(1, 5)})
        self._tokens += 1
        token = f"{self.device}.{self._tokens}"
        op: Literal["set", "patch"] = "set" if self.rng.random() < 0.5 else "patch"
        field = "v" if op == "set" else "p"
        data = {WRITER_FIELD: token, field: self.rng.randrange(1_000_000)}
        return Write(self.notes, self.device, op, data)

    def read(self) -> DocKey:
        """The document a ``read`` looks at: the device's note or one of its counters."""
        if self.rng.random() < 0.5:
            return (self.notes, self.device)
        return (self.counter_collection, f"c{self.rng.randrange(self.counters)}")
