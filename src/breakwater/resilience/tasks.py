"""Stopping a helper task without swallowing the stopper's own cancellation.

``task.cancel()`` followed by ``with suppress(CancelledError): await task`` is the usual way to
stop a task and wait for it. But the ``CancelledError`` that await raises is the caller's own
when the caller is cancelled meanwhile, and the ``suppress`` swallows it: the caller runs on as
if nothing happened (a sync loop that ``pause()`` cancelled while it was restarting realtime
kept syncing, and ``pause()`` waited for it for good). :func:`stop` waits with
:func:`asyncio.wait`, which never raises the stopped task's outcome, so a ``CancelledError``
there can only be the caller's, and it propagates.
"""

from __future__ import annotations

import asyncio
from typing import Any


async def stop(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` and wait until it has ended (``None``: nothing to do).

    Its outcome is consumed (no "exception was never retrieved" warning); a cancellation of
    the caller while it waits is raised, and ``task`` still ends on its own."""
    if task is None:
        return
    task.cancel()
    await asyncio.wait({task})
    if not task.cancelled():
        task.exception()
