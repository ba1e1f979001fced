"""One HTTP attempt of one delivery: signed, bounded by a timeout, its answer reduced to an
outcome. A receiver's answer body is never kept (a slow or huge answer costs nothing)."""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass

import breakwater
from breakwater.server.webhooks import signature
from breakwater.server.webhooks._http1 import Http1Client, ProtocolError
from breakwater.server.webhooks.records import Outcome, Subscription
from breakwater.server.webhooks.targets import TargetRefused, check_target

USER_AGENT = f"Breakwater-Webhooks/{breakwater.__version__}"
DELIVERY_HEADER = "Breakwater-Delivery"
ATTEMPT_HEADER = "Breakwater-Attempt"


@dataclass(frozen=True, slots=True)
class Answer:
    """What one attempt came to."""

    outcome: Outcome
    status: int | None
    latency_ms: float
    error: str


class Sender:
    """Posts deliveries over kept-alive connections; redirects are never followed (one could
    point inside the network). ``ssl_context`` replaces the system's trust (tests)."""

    def __init__(
        self, timeout: float, allow_private: bool, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self.timeout = timeout
        self.allow_private = allow_private
        self._client = Http1Client(ssl_context)

    async def send(
        self, subscription: Subscription, delivery_id: str, body: bytes, attempt: int
    ) -> Answer:
        """Sign and post ``body``; never raises for the receiver's or the network's faults."""
        started = time.perf_counter()
        try:
            await check_target(subscription.url, self.allow_private)
        except TargetRefused as refused:
            return Answer("refused", None, 0.0, str(refused))
        headers = {
            "User-Agent": USER_AGENT,
            "Content-Type": "application/json",
            signature.HEADER: signature.sign(subscription.secret, body, int(time.time())),
            DELIVERY_HEADER: delivery_id,
            "Idempotency-Key": delivery_id,
            ATTEMPT_HEADER: str(attempt),
        }
        try:
            async with asyncio.timeout(self.timeout):
                status = await self._client.post(subscription.url, headers, body)
        except TimeoutError:
            return Answer("failed", None, _ms_since(started), "timeout")
        except (OSError, asyncio.IncompleteReadError, ProtocolError) as error:
            # The kind only: a message can quote the URL, whose query may hold a token.
            return Answer("failed", None, _ms_since(started), type(error).__name__)
        latency = _ms_since(started)
        if 200 <= status < 300:
            return Answer("delivered", status, latency, "")
        return Answer("failed", status, latency, f"HTTP {status}")

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
