"""Rate limits that know who is asking (429 + Retry-After), shared by a region's nodes.

Which buckets a request under ``/v1/`` takes a token from:

- ``global``: every request (off by default).
- ``user`` per account for a signed-in user, ``key`` per API key. The per-address bucket does
  not apply to them: carrier-grade NAT puts thousands of phones behind one address, so any
  per-address ceiling either throttles honest users or is too high to stop anyone. What an
  attacker can do with accounts is bounded by how fast they can be made, and making them
  (sign-up, anonymous) is limited per address.
- ``ip`` per client address for every request without a valid credential, and always for the
  sign-in endpoints (sign-up, login, anonymous, refresh, logout), whatever credential they carry.
- ``auth`` on ``/v1/auth/*`` (each costs an argon2id hash or guards a secret): per address for
  the sign-in endpoints, per account for the others (password change, linking, MFA).

A refused request takes nothing from any bucket. Failed sign-ins have rules of their own
(server/sign_in_guard.py). Buckets are keyed by uid, key id, or a keyed hash of the address,
so no address, email or secret is ever a key in Redis.
"""

from __future__ import annotations

import hashlib
import hmac
import math

from breakwater.auth.identity import Identity
from breakwater.auth.settings import AuthSettings, proxy_networks
from breakwater.cache.buckets import Buckets, Limit
from breakwater.core.errors import RateLimited
from breakwater.obs.metrics import Metrics

AUTH_PATH_PREFIX = "/v1/auth/"
SIGN_IN_PATHS = frozenset(
    AUTH_PATH_PREFIX + name
    for name in (
        "signup",
        "login",
        "anonymous",
        "refresh",
        "logout",
        "password/reset",
        "password/reset/confirm",
        "email/verify/confirm",
        "email/change/confirm",
    )
)
"""The auth endpoints a caller uses before it has (or to renew) a credential: limited per
address, like sign-in, whatever token the request carries."""
Scoped = tuple[tuple[str, Limit], ...]
"""Buckets with the scope each is named by in a refusal."""
Limits = tuple[Limit, ...]


REMEMBERED_NAMES = 4096
"""Pseudonyms kept per process: the addresses a node hears from repeat request after request,
and each pseudonym is an HMAC (a few microseconds, on every anonymous request)."""


class Pseudonyms:
    """Stable, unlinkable names for addresses and emails in bucket keys (HMAC-SHA256)."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret
        self._known: dict[tuple[str, str], str] = {}

    def of(self, kind: str, value: str) -> str:
        """``value``'s pseudonym, distinct per ``kind``; 128 bits in hex."""
        key = (kind, value)
        name = self._known.get(key)
        if name is None:
            if len(self._known) >= REMEMBERED_NAMES:
                self._known.clear()  # bounded; the names are computed again as they come
            name = self._known[key] = self._digest(kind, value)
        return name

    def _digest(self, kind: str, value: str) -> str:
        digest = hmac.new(self._secret, f"{kind}\0{value}".encode(), hashlib.sha256)
        return digest.hexdigest()[:32]


def refusal(scope: str, seconds: float, metrics: Metrics) -> RateLimited:
    """The 429 of a ``scope`` bucket that has a token again in ``seconds``, counted."""
    metrics.rate_limited.labels(scope).inc()
    wait = max(1, math.ceil(seconds))
    return RateLimited(
        f"too many requests ({scope} limit); retry in {wait} s", retry_after=wait, limit=scope
    )


class RateLimiter:
    """The node's request limits; :meth:`check` raises ``RateLimited`` and counts the refusal."""

    def __init__(
        self, settings: AuthSettings, metrics: Metrics, buckets: Buckets, names: Pseudonyms
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.buckets = buckets
        self.names = names
        self.trusted = proxy_networks(settings.trusted_proxies)
        """Proxies whose ``X-Forwarded-For`` names the client (see ``access.client_ip``)."""
        self._known: dict[tuple[str, str, bool], tuple[Scoped, Limits]] = {}

    def limits(self, caller: Identity | None, ip: str, path: str) -> Scoped:
        """The buckets (with their scope names) a request of ``caller`` from ``ip`` takes from."""
        return self._lookup(caller, ip, path)[0]

    def _lookup(self, caller: Identity | None, ip: str, path: str) -> tuple[Scoped, Limits]:
        """:meth:`limits`, and the same limits alone, remembered per (whose bucket, address
        or uid, auth endpoint or not): the settings are fixed for the limiter's life, and
        building the list cost a third of a request's gatekeeping (docs/benchmarks.md)."""
        auth = path.startswith(AUTH_PATH_PREFIX)
        if caller is None or path in SIGN_IN_PATHS:
            key = ("ip", ip, auth)
        else:
            key = ("key" if caller.kind == "key" else "user", caller.uid, auth)
        known = self._known.get(key)
        if known is None:
            if len(self._known) >= REMEMBERED_NAMES:
                self._known.clear()  # bounded; the lists are built again as they come
            scoped = self._build(*key)
            known = self._known[key] = (scoped, tuple(limit for _, limit in scoped))
        return known

    def _build(self, kind: str, who: str, auth: bool) -> Scoped:
        s = self.settings
        wanted: list[tuple[str, str, float, int]] = [("global", "g", s.rate_global, s.burst_global)]
        if kind == "ip":
            # The address's pseudonym (an HMAC) only where a bucket is keyed by it: not for
            # the signed-in callers that make most requests.
            bucket = f"ip:{self.names.of('ip', who)}"
            wanted.append(("ip", bucket, s.rate_per_ip, s.burst_per_ip))
        else:
            bucket = f"u:{who}"
            if kind == "key":
                wanted.append(("key", f"k:{who}", s.rate_per_key, s.burst_per_key))
            else:
                wanted.append(("user", bucket, s.rate_per_user, s.burst_per_user))
        if auth:
            wanted.append(("auth", f"a:{bucket}", s.rate_auth_per_ip, s.burst_auth_per_ip))
        return tuple(
            (scope, Limit(key, rate, burst)) for scope, key, rate, burst in wanted if rate > 0
        )

    async def check(self, caller: Identity | None, ip: str, path: str) -> None:
        """Take one token from every bucket that applies, or refuse with the longest wait."""
        scoped, limits = self._lookup(caller, ip, path)
        if not limits:
            return
        wait = await self.buckets.take(limits)
        if wait is not None:
            scope = next(scope for scope, limit in scoped if limit == wait.limit)
            raise refusal(scope, wait.seconds, self.metrics)
