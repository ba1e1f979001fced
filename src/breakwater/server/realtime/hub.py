"""The realtime layer of one node: fan-out, admission, open sessions and their drain.

The fan-out is one consumer of the node's feed follower; the node subscribes it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from breakwater.auth.identity import Identity
from breakwater.config import Config
from breakwater.core.cursor import NO_PEERS, Peers, VersionVector
from breakwater.core.errors import BreakwaterError, RateLimited
from breakwater.obs.metrics import Metrics
from breakwater.resilience import TokenBucket
from breakwater.server.application.feed import FeedFollower
from breakwater.server.gc_policy import CollectorPolicy
from breakwater.server.realtime import messages
from breakwater.server.realtime.admission import Admission
from breakwater.server.realtime.fanout import Fanout, head_is_stable
from breakwater.server.realtime.pacing import FanoutPacer
from breakwater.server.realtime.session import CLOSE_POLICY, CLOSE_RESTART, Session
from breakwater.storage.base import Store

if TYPE_CHECKING:
    from breakwater.obs.tracing import Tracing


class Realtime:
    """Everything the WebSocket, SSE and long-poll endpoints of a node share."""

    def __init__(
        self,
        config: Config,
        store: Store,
        feed: FeedFollower,
        metrics: Metrics,
        tracing: Tracing | None = None,
        stable_of: Callable[[VersionVector], VersionVector] = head_is_stable,
        peers_of: Callable[[], Peers] = lambda: NO_PEERS,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.feed = feed
        self.fanout = Fanout(
            store,
            feed,
            metrics,
            queue_limit=config.realtime_queue,
            pacer=FanoutPacer(share=config.realtime_fanout_share),
            tracing=tracing,
            stable_of=stable_of,
            peers_of=peers_of,
        )
        self.admission = Admission(
            config.max_realtime_connections,
            TokenBucket(config.realtime_admission_rate, config.realtime_admission_burst),
            config.realtime_admission_wait,
            metrics,
            on_wait=self._storm,
        )
        self.collector: CollectorPolicy | None = None
        """Set by the process that serves the node (tests leave the collector alone)."""
        self.sessions: set[Session] = set()
        self.per_user: dict[str, int] = {}
        """Open realtime connections of each user (bounded by ``auth.max_realtime_per_user``)."""
        self.draining = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._idle.set()

    async def start(self) -> None:
        """Start sending (on the event loop that serves the node)."""
        self._loop = asyncio.get_running_loop()
        await self.fanout.start()
        self._ticker = asyncio.create_task(self._tick_forever(), name="bw-realtime-tick")

    async def aclose(self) -> None:
        """Drop every session that is still open and stop the sender."""
        for session in list(self.sessions):
            session.abort("stopped")
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
        if self.collector is not None and self.collector.deferring:
            self.collector.tick()
        await self.fanout.aclose()

    def _storm(self) -> None:
        if self.collector is not None:
            self.collector.storm()

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            if self.collector is not None:
                self.collector.tick()

    def claim_user_slot(self, identity: Identity | None) -> None:
        """Count a connection of ``identity``; ``RateLimited`` past the per-user limit."""
        if identity is None:
            return
        count = self.per_user.get(identity.uid, 0)
        if count >= self.config.auth.max_realtime_per_user:
            self.metrics.realtime_refused.labels("any", "user_limit").inc()
            raise RateLimited(
                f"at most {self.config.auth.max_realtime_per_user} realtime connections per user",
                retry_after=5,
                limit="user_connections",
            )
        self.per_user[identity.uid] = count + 1

    def release_user_slot(self, identity: Identity | None) -> None:
        """Forget a connection counted by :meth:`claim_user_slot`."""
        if identity is None:
            return
        count = self.per_user.get(identity.uid, 0) - 1
        if count > 0:
            self.per_user[identity.uid] = count
        else:
            self.per_user.pop(identity.uid, None)

    def end_sessions_of(self, uids: frozenset[str], error: BreakwaterError) -> int:
        """Close the open sessions of the users ``uids`` (disabled or deleted accounts) with
        ``error``; returns how many. Their next connection is refused at the handshake."""
        ended = 0
        for session in list(self.sessions):
            identity = session.identity
            if identity is not None and identity.uid in uids and session.ending is None:
                session.send_control("error", messages.error(error.to_problem()))
                session.end("disabled", CLOSE_POLICY)
                ended += 1
        return ended

    def attach(self, session: Session) -> None:
        """Count a session that started; a session that starts while draining ends at once."""
        self.sessions.add(session)
        self._idle.clear()
        self.metrics.realtime_connections.labels(session.out.transport).inc()
        if self.draining:
            session.end("draining", CLOSE_RESTART)

    def detach(self, session: Session) -> None:
        """Forget a session that ended."""
        if session in self.sessions:
            self.sessions.discard(session)
            self.metrics.realtime_connections.labels(session.out.transport).dec()
        if not self.sessions:
            self._idle.set()

    def start_draining(self) -> None:
        """Refuse new connections and tell every open one to reconnect elsewhere.

        Safe to call from a signal handler: the work is scheduled on the node's event loop.
        """
        self.draining = True
        self.admission.draining = True
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._say_goodbye)

    def _say_goodbye(self) -> None:
        self.feed.stop_waiters()  # long-polls answer now, with what they have
        for session in list(self.sessions):
            session.end("draining", CLOSE_RESTART)

    async def drain(self, seconds: float) -> int:
        """Start draining and wait up to ``seconds`` for every session to end.

        Sessions still open then (their clients are not reading) are dropped without a
        goodbye. Returns how many had to be dropped.
        """
        self.draining = True
        self.admission.draining = True
        self._say_goodbye()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._idle.wait()
        stuck = list(self.sessions)
        for session in stuck:
            session.abort("stalled")
        if stuck:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self._idle.wait()
        return len(stuck)
