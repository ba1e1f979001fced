"""The bus: how a node learns that changes were committed, by itself or by other nodes.

The store is the source of truth for changes; the bus only carries small *commit notices*
("the store committed up to this head"). A node that hears one pulls the new changes from the
store itself, so a lost or late notice delays a delivery but never loses or reorders one.

Contract for every backend (checked by tests/bus/test_conformance.py):

- ``publish`` is fire-and-forget: it never blocks, never raises and never waits for a remote
  broker. It is called after the commit it announces, never before.
- ``subscribe`` gives an iterator of the notices published after it was called, in publish
  order, through a bounded buffer. When a subscriber falls behind, its *oldest* notices are
  dropped (each notice carries the whole head it announces, so the newest one is enough) and
  counted in ``Subscription.dropped``.
- Lifecycle: ``await open()`` … ``await aclose()``; ``aclose`` ends every subscription's
  iteration. A backend that loses its broker keeps accepting ``publish`` calls (dropping what
  it cannot send) and reports it through ``healthy``; readers then rely on their fallback poll.

Backends are chosen by URL scheme with :func:`open_bus`: ``memory://`` (one process) and
``ipc:///directory`` (the processes of one machine, e.g. the workers of ``serve --workers``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from breakwater.core.cursor import VersionVector
from breakwater.core.errors import ConfigError

SCHEMES = ("memory", "ipc")

__all__ = ["SCHEMES", "Bus", "CommitNotice", "Subscription", "open_bus"]


@dataclass(frozen=True, slots=True)
class CommitNotice:
    """The store committed changes up to ``head`` (per origin) at wall-clock time ``at``."""

    head: VersionVector
    at: float


class Subscription(Protocol):
    """The notices published after :meth:`Bus.subscribe`; iterate, then ``close()``."""

    dropped: int
    """How many notices were dropped because this subscriber fell behind."""

    def __aiter__(self) -> AsyncIterator[CommitNotice]:
        """Iterate the notices in publish order; the iteration ends when the bus closes."""

    async def __anext__(self) -> CommitNotice:
        """The next notice; waits for one; ``StopAsyncIteration`` once closed."""

    def close(self) -> None:
        """Stop receiving; a pending ``__anext__`` ends. Idempotent."""


class Bus(Protocol):
    """Fan-out of commit notices between the writers and the readers of one region's store."""

    async def open(self) -> None:
        """Connect to the broker (if any) and start serving."""

    async def aclose(self) -> None:
        """End every subscription and release connections. Idempotent."""

    def publish(self, notice: CommitNotice) -> None:
        """Announce a commit to every subscriber; never blocks, never raises."""

    def subscribe(self, buffer: int = 64) -> Subscription:
        """A new subscription holding at most ``buffer`` undelivered notices (drop-oldest)."""

    @property
    def healthy(self) -> bool:
        """False while the backend cannot deliver notices (readers fall back to polling)."""


def open_bus(url: str) -> Bus:
    """A bus for ``url`` (not yet opened); an unknown scheme lists the supported ones."""
    parts = urlsplit(url)
    scheme = parts.scheme
    if scheme == "memory":
        from breakwater.bus.memory import MemoryBus

        return MemoryBus()
    if scheme == "ipc":
        from breakwater.bus.ipc import IpcBus

        if parts.netloc or not parts.path.startswith("/"):
            raise ConfigError("an ipc bus URL names an absolute directory: ipc:///path/to/dir")
        return IpcBus(Path(parts.path))
    # The URL itself is not repeated: a broker URL may carry a password.
    raise ConfigError(
        f"bus URL has an unsupported scheme {scheme!r}; supported: "
        + ", ".join(f"{name}://" for name in SCHEMES)
    )
