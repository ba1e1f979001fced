"""The local store's thread: runs its calls one at a time, each answered on the caller's loop.

It replaces ``loop.run_in_executor`` on a one-worker ``ThreadPoolExecutor``: same order, same
single connection, but no ``concurrent.futures.Future`` (a lock and a condition per state
change) and no second future chained to it; a call is one queue put and one
``call_soon_threadsafe``. About half the CPU of an executor's hop on this machine, and a settled
online write makes two (ADR 0058); measured in docs/benchmarks.md ("One fsync per write, fewer
wake-ups", ADR 0060).

Unlike an executor's, a call queued and then cancelled by its caller still runs (a call that had
started always did): the store's calls are transactions that leave the database consistent
whether or not anyone reads their answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_Then = Callable[[Any], None] | None
_Call = tuple[
    asyncio.AbstractEventLoop, "asyncio.Future[Any]", Callable[..., Any], tuple[Any, ...], _Then
]


class StoreThread:
    """One daemon thread, started on the first call (a process that exits without closing the
    store loses only calls nobody has been answered: each is one SQLite transaction)."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def run(
        self, fn: Callable[..., T], *args: Any, then: Callable[[T], None] | None = None
    ) -> asyncio.Future[T]:
        """``fn(*args)`` on the thread, after every call made before; its result or error.

        ``then`` is given the result on the loop, just before the future is: also when the
        caller has cancelled its wait (a commit is told of whether or not anyone still waits,
        without a second future shielding the first)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name=self._name, daemon=True)
            self._thread.start()
        self._calls.put((loop, future, fn, args, then))
        return future

    def stop(self) -> None:
        """Run the calls already made, then end the thread (blocks until it has)."""
        if self._thread is not None:
            self._calls.put(None)
            self._thread.join()
            self._thread = None

    def _work(self) -> None:
        while (call := self._calls.get()) is not None:
            loop, future, fn, args, then = call
            try:
                result, error = fn(*args), None
            except BaseException as exc:  # the caller's to see, as an executor would give it
                result, error = None, exc
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits for it
                loop.call_soon_threadsafe(_answer, future, result, error, then)


def _answer(
    future: asyncio.Future[Any], result: Any, error: BaseException | None, then: _Then
) -> None:
    try:
        if error is None and then is not None:
            then(result)
    finally:  # a failing ``then`` is the loop's to report; the caller still gets its answer
        if not future.cancelled():
            if error is None:
                future.set_result(result)
            else:
                future.set_exception(error)
