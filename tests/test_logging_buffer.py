"""Log lines leave in one write per event-loop step, in order, and none is lost."""

from __future__ import annotations

import asyncio
import io
import threading

from breakwater.obs.logging import StepBufferedLogger


class CountingStream(io.BytesIO):
    """A byte stream that counts its writes."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.writes += 1
        return super().write(data)


async def test_lines_of_one_step_leave_in_one_write() -> None:
    """Three lines logged in one step: one write, three lines, in order."""
    stream = CountingStream()
    logger = StepBufferedLogger(stream)
    for line in (b'{"n":1}', b'{"n":2}', b'{"n":3}'):
        logger.info(line)
    assert stream.writes == 0
    await asyncio.sleep(0)
    assert stream.writes == 1
    assert stream.getvalue() == b'{"n":1}\n{"n":2}\n{"n":3}\n'


def test_lines_logged_outside_a_loop_are_written_at_once() -> None:
    """A thread without an event loop (the store's writer) is never held back."""
    stream = CountingStream()
    logger = StepBufferedLogger(stream)
    worker = threading.Thread(target=logger.warning, args=(b'{"from":"thread"}',))
    worker.start()
    worker.join()
    assert stream.getvalue() == b'{"from":"thread"}\n'


async def test_flush_writes_what_is_pending() -> None:
    """An explicit flush (as at exit) writes lines whose step has not ended."""
    stream = CountingStream()
    logger = StepBufferedLogger(stream)
    logger.error(b'{"last":true}')
    logger.flush()
    assert stream.getvalue() == b'{"last":true}\n'
