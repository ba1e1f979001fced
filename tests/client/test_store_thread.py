"""The local store's thread: calls run one at a time in order, answers reach their callers."""

from __future__ import annotations

import asyncio
import threading

import pytest

from breakwater.client._store_thread import StoreThread


async def test_calls_run_in_order_on_one_other_thread() -> None:
    """Each call runs after every earlier one, on the same thread, not the loop's."""
    worker = StoreThread("test-store")
    seen: list[tuple[int, str]] = []

    def record(n: int) -> int:
        seen.append((n, threading.current_thread().name))
        return n * 2

    try:
        answers = await asyncio.gather(*(worker.run(record, n) for n in range(20)))
    finally:
        worker.stop()
    assert answers == [n * 2 for n in range(20)]
    assert [n for n, _ in seen] == list(range(20))
    assert {name for _, name in seen} == {"test-store"}


async def test_an_error_reaches_its_caller_and_the_thread_goes_on() -> None:
    """A call that raises gives its caller the error; the next call still runs."""
    worker = StoreThread("test-store")

    def fail() -> None:
        raise ValueError("no")

    try:
        with pytest.raises(ValueError, match="no"):
            await worker.run(fail)
        assert await worker.run(len, "abc") == 3
    finally:
        worker.stop()


async def test_a_call_whose_caller_gave_up_still_runs() -> None:
    """Cancelling the wait does not undo or skip the call (a transaction runs whole)."""
    worker = StoreThread("test-store")
    release = threading.Event()
    ran: list[str] = []
    try:
        blocker = worker.run(release.wait)
        abandoned = worker.run(ran.append, "abandoned")
        abandoned.cancel()
        release.set()
        await blocker
        await worker.run(ran.append, "after")
    finally:
        worker.stop()
    assert ran == ["abandoned", "after"]


async def test_then_is_given_the_result_also_when_the_caller_gave_up() -> None:
    """A call's ``then`` hears of its result on the loop, before the caller does, and even when
    the caller cancelled its wait (a committed page is always told)."""
    worker = StoreThread("test-store")
    release = threading.Event()
    told: list[int] = []
    try:
        blocker = worker.run(release.wait)
        abandoned = worker.run(len, "abc", then=told.append)
        abandoned.cancel()
        release.set()
        await blocker
        waited = worker.run(len, "abcd", then=told.append)
        assert await waited == 4
        assert told == [3, 4]
    finally:
        worker.stop()


async def test_a_failing_then_still_answers_the_caller(caplog: pytest.LogCaptureFixture) -> None:
    """An error in ``then`` goes to the loop's handler; the caller still gets its result."""
    worker = StoreThread("test-store")

    def fail(_result: int) -> None:
        raise ValueError("listener")

    try:
        assert await worker.run(len, "abc", then=fail) == 3
    finally:
        worker.stop()
    assert "listener" in caplog.text
