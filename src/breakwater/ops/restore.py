"""After a restore from a backup: give the store a new incarnation (ADR 0018).

A store put back from a backup has forgotten the positions it handed out after the backup. Its
new incarnation makes every later change land under a new origin, so no position is handed out
twice, and a device whose cursor saw the lost changes gets ``410 cursor_unknown`` and resyncs.
A store cannot tell a copy put back from the live file it was taken from, so this step is part
of every restore (docs/operations.md#restore); the nodes must be stopped while it runs.
"""

from __future__ import annotations

import secrets

from breakwater.core.engine import Engine
from breakwater.core.hlc import HybridClock
from breakwater.storage import open_store


async def start_new_incarnation(store_url: str, region: str) -> str:
    """Open the store at ``store_url`` as restored; return the origin its writes get now."""
    engine = Engine(region, HybridClock(f"restore-{secrets.token_hex(3)}"))
    store = open_store(store_url, engine)
    await store.open(restored=True)
    try:
        return store.origin
    finally:
        await store.aclose()
