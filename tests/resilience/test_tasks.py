"""Stopping a helper task: the stopper's own cancellation is never taken for the task's."""

from __future__ import annotations

import asyncio

import pytest

from breakwater.resilience.tasks import stop


async def test_a_stopper_cancelled_while_it_waits_is_cancelled() -> None:
    """A task slow to end after its cancel; the stopper is cancelled meanwhile and ends so."""
    closing, release = asyncio.Event(), asyncio.Event()

    async def slow_to_close() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            closing.set()
            await asyncio.shield(release.wait())
            raise

    helper = asyncio.create_task(slow_to_close())
    await asyncio.sleep(0)
    went_on = asyncio.Event()

    async def stopper() -> None:
        await stop(helper)
        went_on.set()

    stopping = asyncio.create_task(stopper())
    await closing.wait()
    stopping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopping
    assert not went_on.is_set()
    release.set()
    await asyncio.wait({helper})
    assert helper.cancelled()


async def test_stopping_a_task_that_failed_consumes_its_error() -> None:
    """The task's own outcome is not raised to the stopper (nor left unretrieved)."""

    async def fails() -> None:
        raise RuntimeError("boom")

    task = asyncio.create_task(fails())
    await asyncio.sleep(0)
    await stop(task)
    await stop(None)
    assert isinstance(task.exception(), RuntimeError)
