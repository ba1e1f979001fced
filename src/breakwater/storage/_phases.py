"""Stamping the commit phases of traced writes (:class:`~breakwater.storage.base.CommitPhases`)."""

from __future__ import annotations

import time
from typing import Literal

from breakwater.storage.base import CommitPhases


def mark_phase(
    traced: list[CommitPhases], phase: Literal["started", "merged", "committed"], group: int = 0
) -> None:
    """Stamp ``phase`` now on every traced write of a group commit (no clock read if none)."""
    if not traced:
        return
    now = time.time_ns()
    for phases in traced:
        setattr(phases, phase, now)
        if group:
            phases.group = group
