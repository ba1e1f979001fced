"""Events the client emits for the UI, and the status they carry.

Listeners are plain callables registered with ``Client.on``; they run on the event loop and must
not block. The same facts are readable at any time as ``Client.status`` and friends.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from breakwater.client.outbox import OutboxEntry, Rejection

Connectivity = Literal["offline", "syncing", "online"]
AuthKind = Literal["signed_out", "signed_in", "anonymous"]


@dataclass(frozen=True, slots=True)
class Status:
    """What a UI shows: connectivity, unsent writes, the last problem and the last full sync."""

    state: Connectivity = "offline"
    pending: int = 0
    last_error: str | None = None
    last_synced_at: float | None = None
    transport: str | None = None
    endpoint: str | None = None


@dataclass(frozen=True, slots=True)
class StatusChanged:
    """Any field of :class:`Status` changed."""

    status: Status


@dataclass(frozen=True, slots=True)
class MutationQueued:
    """A local write committed on the device with its outbox entry; emitted before the write
    call returns, so the caller learns the write's ``mutation_id``."""

    entry: OutboxEntry


@dataclass(frozen=True, slots=True)
class MutationsAcknowledged:
    """A node acknowledged these entries of one push: they are durable on the server (I1).

    ``entries`` are as pushed (the stamp the node got; ``origin`` and ``seq`` set). They stay in
    the outbox until ``stable`` covers them (I6), so after a failover the same entry may be
    acknowledged again, as a ``duplicate``. ``duplicates`` names the ids the node already had
    (a retry of a push whose answer was lost); ``endpoint`` is the base URL that answered."""

    entries: tuple[OutboxEntry, ...]
    duplicates: frozenset[str]
    endpoint: str


@dataclass(frozen=True, slots=True)
class MutationRejected:
    """The server refused a local write; it left the outbox and its document rolled back."""

    rejection: Rejection


@dataclass(frozen=True, slots=True)
class SyncProgress:
    """One pulled page: changes and pages received in this catch-up, and whether more wait."""

    changes: int
    pages: int
    has_more: bool


@dataclass(frozen=True, slots=True)
class PageApplied:
    """A page of synced changes committed on the device, with the cursor it committed: a
    pulled page, or the device's own acknowledged writes taken in from the push answer (those
    that follow the cursor without a gap, ADR 0045), told once committed even if the sync was
    stopped meanwhile. For tools that check the device's sync (the chaos checker: every move
    of the cursor is one of these); a UI wants :class:`SyncProgress`.

    ``documents`` is the synced (server) data of each document the page changed, after the
    join (``None``: the device holds none: deleted, removed, or dropped because the resync
    this page ended did not bring it back); ``resynced``: the page ended a full resync."""

    cursor: str
    documents: Mapping[tuple[str, str], dict[str, Any] | None]
    resynced: bool = False


@dataclass(frozen=True, slots=True)
class ResyncStarted:
    """The device dropped its cursor and pulls everything again, keeping its outbox;
    ``reason`` is ``cursor_expired``, ``cursor_unknown`` or ``scope`` (the synced collections
    changed)."""

    reason: str


@dataclass(frozen=True, slots=True)
class AuthState:
    """Who the device is signed in as: nobody, an email account, or an anonymous account."""

    kind: AuthKind = "signed_out"
    uid: str | None = None


@dataclass(frozen=True, slots=True)
class AuthChanged:
    """The sign-in changed. ``reason`` says why: ``signed_up``, ``signed_in``, ``anonymous``,
    ``linked``, ``password``, ``restored`` (from the device database), ``signed_out``, or
    ``refresh_refused``: the node refused the refresh token (the sign-in was revoked, the
    account deleted, or the token reused), so the device is signed out; pending writes stay;
    ``account_deleted``: this device deleted the account."""

    state: AuthState
    reason: str


Event = (
    StatusChanged
    | MutationQueued
    | MutationsAcknowledged
    | MutationRejected
    | SyncProgress
    | PageApplied
    | ResyncStarted
    | AuthChanged
)
Listener = Callable[[Event], None]
