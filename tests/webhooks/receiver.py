"""A real HTTP receiver on loopback whose behaviour a test switches: answer, fail or hang."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from breakwater.bench.loopback_receiver import LoopbackReceiver

Mode = Literal["ok", "fail", "hang"]


@dataclass(frozen=True)
class Received:
    """One request as it arrived."""

    headers: dict[str, str]
    body: bytes
    answered: int | None
    """The status it was answered with (None: it was left hanging)."""


class Receiver(LoopbackReceiver):
    """HTTP/1.1 on 127.0.0.1: ``mode`` decides each answer (200, 503, or no answer)."""

    def __init__(self) -> None:
        super().__init__()
        self.mode: Mode = "ok"
        self.refuse: Callable[[bytes], bool] | None = None
        """When set, a body it returns True for is answered 503 whatever the mode."""
        self.requests: list[Received] = []
        self._arrived = asyncio.Event()

    def _record(self, received: Received) -> None:
        self.requests.append(received)
        self._arrived.set()
        self._arrived = asyncio.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def delivered(self) -> list[Received]:
        """The requests answered 2xx."""
        return [r for r in self.requests if r.answered == 200]

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Wait (up to 30 s) until ``predicate()`` is true, checked as each request arrives."""
        async with asyncio.timeout(30):
            while not predicate():
                await self._arrived.wait()

    async def answer(self, headers: dict[str, str], body: bytes) -> int:
        mode = self.mode
        if mode == "hang":
            self._record(Received(headers, body, None))
            await asyncio.sleep(3600)
        refused = self.refuse is not None and self.refuse(body)
        status = 200 if mode == "ok" and not refused else 503
        self._record(Received(headers, body, status))
        return status
