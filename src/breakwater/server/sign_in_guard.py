"""Failed sign-ins, limited per account in a way that cannot lock the account's owner out.

A sign-in (password, then TOTP or a recovery code once MFA is on) takes a token from two
buckets before the password is checked:

- ``signin_address``: the account from this address. One address guessing at one account is
  stopped after ``burst_signin_failures_per_address`` failures.
- ``signin_account``: the account from every address, the global slow-down. An attacker who
  rotates addresses is stopped after ``burst_signin_failures_per_account`` failures, then gets
  one guess per ``1 / rate_signin_failures_per_account`` seconds for the whole account.

A success gives both tokens back (only failures count) and makes the address *known* to the
account for ``signin_known_address_days``. A known address does not take from the account's
bucket, so an owner signing in from an address they used before is never held up by failures
from elsewhere; from a new address they wait at most one slow-down interval per attempt,
never a lockout. The account is named by a keyed hash of its email, so the rules are the same
for an email that has no account (no enumeration through the limits) and no email is a key.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from breakwater.auth.settings import AuthSettings
from breakwater.cache.buckets import Buckets, Limit
from breakwater.core.errors import Unauthorized
from breakwater.obs.metrics import Metrics
from breakwater.server.rate_limit import Pseudonyms, refusal

DAY = 86_400.0


class SignInGuard:
    """Wraps a sign-in attempt: refuses it while its buckets are empty, counts its failure."""

    def __init__(
        self, settings: AuthSettings, metrics: Metrics, buckets: Buckets, names: Pseudonyms
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.buckets = buckets
        self.names = names

    @contextlib.asynccontextmanager
    async def attempt(self, email: object, ip: str) -> AsyncIterator[None]:
        """Admit one sign-in of ``email`` from ``ip``; an ``Unauthorized`` inside is a failure.

        Raises ``RateLimited`` (429) before the body runs when a bucket is empty.
        """
        if not isinstance(email, str):
            yield  # not a sign-in attempt: the body answers 400
            return
        s = self.settings
        account = self.names.of("email", email.lower())
        address = self.names.of("ip", ip)
        known = f"fk:{account}:{address}"
        scoped: dict[Limit, str] = {}
        if s.rate_signin_failures_per_address > 0:
            pair = f"fa:{account}:{address}"
            rate, burst = s.rate_signin_failures_per_address, s.burst_signin_failures_per_address
            scoped[Limit(pair, rate, burst)] = "signin_address"
        if s.rate_signin_failures_per_account > 0 and not await self.buckets.marked(known):
            rate, burst = s.rate_signin_failures_per_account, s.burst_signin_failures_per_account
            scoped[Limit(f"fs:{account}", rate, burst)] = "signin_account"
        limits = list(scoped)
        wait = await self.buckets.take(limits)
        if wait is not None:
            raise refusal(scoped[wait.limit], wait.seconds, self.metrics)
        try:
            yield
        except Unauthorized:
            raise  # a failure: the tokens stay taken
        except Exception:
            await self.buckets.refund(limits)  # not a guess (bad input, the store is down)
            raise
        await self.buckets.refund(limits)
        await self.buckets.mark(known, s.signin_known_address_days * DAY)
