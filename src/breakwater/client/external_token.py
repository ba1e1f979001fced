"""Credentials from an identity provider the app already uses (Auth0, Keycloak, Firebase Auth,
Supabase Auth): the app's callback gives the provider's access token, and the node accepts it
through ``[auth.external.NAME]`` (docs/security.md#external-tokens).

Passed as ``Client(headers=ExternalToken(get_token))``. ``get_token(force_refresh)`` is the
provider SDK's own call (Firebase's ``getIdToken(forceRefresh)``, Auth0's ``getCredentials``):
the token it gives is kept until shortly before its ``exp``; after a 401 the callback is asked
again with ``force_refresh=True``; realtime streams present a new token before ``exp``.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import json
import time
from collections.abc import Awaitable, Callable, Mapping

TokenCallback = Callable[[bool], str | Awaitable[str | None] | None]
RENEW_MARGIN_SECONDS = 30.0
"""Streams re-authenticate this long before the token's ``exp``."""
UNKNOWN_LIFETIME_SECONDS = 300.0
"""How often streams ask again when a token's ``exp`` cannot be read."""


def expiry_of(token: str) -> float | None:
    """The ``exp`` a JWT claims (read, not verified: the node verifies), or None."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None


class ExternalToken:
    """A :class:`~breakwater.client.node_api.Credentials` over the app's token callback."""

    def __init__(self, get_token: TokenCallback, clock: Callable[[], float] = time.time) -> None:
        self._get_token = get_token
        self._clock = clock
        self._token: str | None = None
        self._lock = asyncio.Lock()

    async def _ask(self, force_refresh: bool) -> str | None:
        token = self._get_token(force_refresh)
        if inspect.isawaitable(token):
            token = await token
        self._token = token or None
        return self._token

    async def access_token(self) -> str | None:
        """The token from the last answer while it is not about to expire; otherwise the
        callback's current one."""
        token = self._token
        exp = None if token is None else expiry_of(token)
        if token is not None and (exp is None or exp - RENEW_MARGIN_SECONDS > self._clock()):
            return token
        return await self._ask(False)

    async def __call__(self) -> Mapping[str, str]:
        """The headers of a request."""
        token = await self.access_token()
        return {} if token is None else {"Authorization": f"Bearer {token}"}

    async def renew(self, used: Mapping[str, str]) -> bool:
        """After a 401: ask the provider for a fresh token; retry only when it is a new one."""
        async with self._lock:
            if self._token is not None and used.get("Authorization") != f"Bearer {self._token}":
                return True
            old = self._token
            return (await self._ask(True)) not in (None, old)

    async def next_renewal(self) -> None:
        """Return shortly before the current token expires."""
        exp = None if self._token is None else expiry_of(self._token)
        if exp is None:
            await asyncio.sleep(UNKNOWN_LIFETIME_SECONDS)
        else:
            await asyncio.sleep(max(exp - RENEW_MARGIN_SECONDS - self._clock(), 1.0))
