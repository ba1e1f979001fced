"""Hooks through which a store reports what it does, without depending on a metrics library."""

from __future__ import annotations

from typing import Protocol

from breakwater.core.cursor import VersionVector


class StoreHooks(Protocol):
    """Callbacks a store calls; implementations must be fast and never raise.

    ``on_commit`` and ``on_conflict`` run on the store's writer (a thread of their own in the
    SQLite store); ``on_feed_advanced`` runs on the event loop that opened the store.
    """

    def on_commit(self, mutations: int, seconds: float) -> None:
        """One group commit of ``mutations`` mutations took ``seconds``."""

    def on_conflict(self, collection: str) -> None:
        """A merge in ``collection`` overrode (part of) a concurrent write."""

    def on_commit_retried(self) -> None:
        """A group commit read without a lock found its read outdated at write time, and was
        redone under the lock (nothing of the first attempt was written)."""

    def on_feed_advanced(self, head: VersionVector, at: float) -> None:
        """Changes up to ``head`` are committed and readable (never called before the commit).

        ``head`` holds the new seq of every origin the commit wrote; ``at`` is the wall-clock
        time (``time.time()``) right after the commit. Called on the store's event loop.
        """

    def on_available(self, available: bool) -> None:
        """The store found it can (``True``) or cannot (``False``) serve; called on changes.

        Called on the store's event loop after an operation succeeded or failed, so that a
        health gauge follows the store without waiting for a readiness probe.
        """


class _NoHooks:
    def on_commit(self, mutations: int, seconds: float) -> None:
        """Ignore."""

    def on_conflict(self, collection: str) -> None:
        """Ignore."""

    def on_commit_retried(self) -> None:
        """Ignore."""

    def on_feed_advanced(self, head: VersionVector, at: float) -> None:
        """Ignore."""

    def on_available(self, available: bool) -> None:
        """Ignore."""


NO_HOOKS: StoreHooks = _NoHooks()
