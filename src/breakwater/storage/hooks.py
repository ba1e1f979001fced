"""Hooks through which a store reports what it does, without depending on a metrics library."""

from __future__ import annotations

from typing import Protocol


class StoreHooks(Protocol):
    """Callbacks a store calls from its writer; implementations must be fast and never raise."""

    def on_commit(self, mutations: int, seconds: float) -> None:
        """One group commit of ``mutations`` mutations took ``seconds``."""

    def on_conflict(self, collection: str) -> None:
        """A merge in ``collection`` overrode (part of) a concurrent write."""


class _NoHooks:
    def on_commit(self, mutations: int, seconds: float) -> None:
        """Ignore."""

    def on_conflict(self, collection: str) -> None:
        """Ignore."""


NO_HOOKS: StoreHooks = _NoHooks()
