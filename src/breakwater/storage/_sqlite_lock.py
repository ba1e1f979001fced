"""The writer lock of a SQLite file shared by several processes (``serve --workers``).

SQLite serializes writers itself, but a writer that finds the file locked sleeps in its busy
handler for 1, 2, 5, 10 … ms before it looks again: with two processes committing hundreds of
groups a second, those sleeps would cost more than the commits. An ``flock`` on a file beside the
database makes the waiting writer wake the moment the other one commits. Each lock is its own open
file description, so two locks on one path exclude each other within one process too.
"""

from __future__ import annotations

import fcntl
import os


class WriterLock:
    """An exclusive, blocking lock on ``<database>-writer.lock`` (no-op for ``:memory:``)."""

    def __init__(self, database: str) -> None:
        self._fd = -1
        if database != ":memory:":
            self._fd = os.open(f"{database}-writer.lock", os.O_RDWR | os.O_CREAT, 0o600)

    def __enter__(self) -> WriterLock:
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        """Release the file descriptor (and the lock with it)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
