"""Store incarnations: why a store put back from a backup never hands out a position twice.

A change's position is ``(origin, seq)``, and a store allocates the seqs of its own origin. A
store restored from a backup has forgotten every seq it handed out after the backup; writing
under the same origin it would give those positions to other changes, and a device that had
seen the first ones would never learn of the new ones. So a store writes under its region
qualified by an *incarnation*: random, made when the store is created and made anew whenever it
is restored (ADR 0018). The old incarnation's origin just stops growing; a cursor ahead of it
names changes the store lost, which :func:`breakwater.core.cursor.require_honourable` refuses.
"""

from __future__ import annotations

import re
import secrets

SEPARATOR = "~"
REGION_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,48}$", flags=re.ASCII)
"""Region names: no :data:`SEPARATOR`, and short enough that a qualified origin fits a cursor."""
PATTERN = re.compile(r"^[0-9a-f]{12}$", flags=re.ASCII)


def new() -> str:
    """A fresh incarnation id (48 random bits: distinct for every restore a store will see)."""
    return secrets.token_hex(6)


def origin(region: str, incarnation: str) -> str:
    """The origin a store of ``region`` in ``incarnation`` writes under."""
    return f"{region}{SEPARATOR}{incarnation}"


def region_of(origin: str) -> str:
    """The region that wrote under ``origin`` (an origin made before incarnations is a region)."""
    return origin.rpartition(SEPARATOR)[0] or origin
