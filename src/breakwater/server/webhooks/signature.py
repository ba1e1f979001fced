"""Signing and verifying webhook deliveries, as Stripe and GitHub do.

The ``Breakwater-Signature`` header is ``t=<unix seconds>,v1=<hex HMAC-SHA256>``, the HMAC taken
with the subscription's secret over ``<t>.<raw body>``. The timestamp is signed so that a captured
delivery cannot be replayed after the tolerance; the raw body is signed so that a receiver checks
the bytes it received before it parses them. Several ``v1`` values may appear (a receiver accepts
any), which leaves room for rotating a secret.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from breakwater.core.errors import BreakwaterError

HEADER = "Breakwater-Signature"
SCHEME = "v1"
TOLERANCE = 300.0
"""Seconds a receiver accepts between the signed timestamp and its own clock (either way)."""


class SignatureInvalid(BreakwaterError):
    """A delivery's signature header is missing, malformed, stale or does not match its body."""

    type = "signature_invalid"
    status = 400
    title = "Invalid webhook signature"


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The header value for ``body`` sent at ``timestamp`` (unix seconds)."""
    return f"t={timestamp},{SCHEME}={_mac(secret, body, timestamp)}"


def verify(
    secret: str,
    body: bytes,
    header: str | None,
    *,
    now: float | None = None,
    tolerance: float = TOLERANCE,
) -> int:
    """Check ``header`` against ``body``; the signed timestamp, or ``SignatureInvalid``."""
    if not header:
        raise SignatureInvalid(f"no {HEADER} header")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isascii() and value.isdigit():
            timestamp = int(value)
        elif name == SCHEME:
            candidates.append(value)
    if timestamp is None or not candidates:
        raise SignatureInvalid(f"{HEADER} needs t=<seconds> and {SCHEME}=<hex>")
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise SignatureInvalid("the signed timestamp is outside the tolerance (a replay?)")
    expected = _mac(secret, body, timestamp)
    if not any(hmac.compare_digest(expected, candidate) for candidate in candidates):
        raise SignatureInvalid("the signature does not match the body")
    return timestamp


def _mac(secret: str, body: bytes, timestamp: int) -> str:
    message = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()
