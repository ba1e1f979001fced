"""Signing in with an OpenID Connect provider, the way native apps do it (RFC 8252, AppAuth).

1. ``start``: the app sends its redirect URI and PKCE ``code_challenge`` (it keeps the verifier);
   Breakwater records a single-use ``state`` and a ``nonce`` and answers the provider's authorize
   URL.
2. The app opens that URL in the system browser; the provider sends the user back to the app's
   redirect URI with ``code`` and ``state``.
3. ``finish``: the app posts ``state``, ``code``, ``code_verifier`` and the redirect URI;
   Breakwater spends the state (a replay finds nothing), exchanges the code with the verifier
   (the provider checks PKCE), verifies the ID token and its nonce, and signs the user in to the
   account linked to the provider's ``sub``, creating one on first sign-in.

Linking is by ``(provider, sub)`` only. An email match links an existing account automatically
only when the provider says ``email_verified`` and the provider's ``link_verified_email`` is on;
otherwise the user signs in to that account first and links the provider explicitly (``link``).
See docs/security.md for the account-takeover risk this guards against.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TypeVar

from breakwater.auth.external_settings import OidcSettings
from breakwater.auth.identity import Identity
from breakwater.auth.oidc import OidcClient, ProviderUser
from breakwater.auth.records import Account, LinkedIdentity, OidcFlow
from breakwater.auth.service import AuthService, Session
from breakwater.auth.store import IdentityTaken
from breakwater.auth.tokens import hash_secret
from breakwater.core.errors import (
    BreakwaterError,
    Forbidden,
    NotFound,
    Unauthorized,
    ValidationError,
)

T = TypeVar("T")
PKCE_PATTERN = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$", re.ASCII)
"""RFC 7636 §4.1: a code verifier is 43-128 unreserved characters."""
CHALLENGE_PATTERN = re.compile(r"^[A-Za-z0-9\-_]{43}$", re.ASCII)
"""An S256 challenge: base64url of a SHA-256 digest, unpadded."""
MAX_CODE_LENGTH = 2048
STATE_BYTES = 32


class AccountExists(BreakwaterError):
    """The provider's email belongs to an account this identity may not link by itself."""

    type = "account_exists"
    status = 409
    title = "Account exists"


@dataclass(frozen=True)
class Started:
    """What the app needs to open the provider's sign-in page."""

    authorize_url: str
    state: str
    expires_in: int


@dataclass(frozen=True)
class Callback:
    """What the app posts after the provider sent the user back."""

    provider: str
    state: str
    code: str
    code_verifier: str
    redirect_uri: str
    otp: object = None
    recovery_code: object = None
    iss: object = None
    """The authorization response's ``iss`` (RFC 9207), when the provider sends one."""

    @staticmethod
    def of(provider: str, body: Mapping[str, object]) -> Callback:
        """Checked fields from a request body."""
        state, code = body.get("state"), body.get("code")
        verifier, redirect_uri = body.get("code_verifier"), body.get("redirect_uri")
        if not isinstance(state, str) or not 1 <= len(state) <= 256:
            raise ValidationError("state is required", field="state")
        if not isinstance(code, str) or not 1 <= len(code) <= MAX_CODE_LENGTH:
            raise ValidationError("code is required", field="code")
        if not isinstance(verifier, str) or not PKCE_PATTERN.fullmatch(verifier):
            raise ValidationError(
                "code_verifier must be 43 to 128 unreserved characters", field="code_verifier"
            )
        if not isinstance(redirect_uri, str):
            raise ValidationError("redirect_uri is required", field="redirect_uri")
        return Callback(
            provider,
            state,
            code,
            verifier,
            redirect_uri,
            body.get("otp"),
            body.get("recovery_code"),
            body.get("iss"),
        )


class OidcSignIn:
    """The ``/v1/auth/oidc`` operations over the configured providers."""

    def __init__(self, settings: OidcSettings, service: AuthService) -> None:
        self.settings = settings
        self.service = service
        self.store = service.store
        self.clients = {p.name: OidcClient(p) for p in settings.providers}

    def _client(self, provider: str) -> OidcClient:
        client = self.clients.get(provider)
        if client is None:
            raise NotFound(f"no OpenID Connect provider {provider[:64]!r}")
        return client

    def _now_ms(self) -> int:
        return int(self.service.clock() * 1000)

    async def start(self, provider: str, redirect_uri: object, code_challenge: object) -> Started:
        """Record a new sign-in and answer the provider's authorize URL."""
        client = self._client(provider)
        if not isinstance(redirect_uri, str) or redirect_uri not in client.settings.redirect_uris:
            raise ValidationError(
                "redirect_uri is not one of the provider's redirect_uris", field="redirect_uri"
            )
        if not isinstance(code_challenge, str) or not CHALLENGE_PATTERN.fullmatch(code_challenge):
            raise ValidationError(
                "code_challenge must be the S256 challenge of a PKCE verifier",
                field="code_challenge",
            )
        state, nonce = secrets.token_urlsafe(STATE_BYTES), secrets.token_urlsafe(STATE_BYTES)
        url = await client.authorize_url(redirect_uri, state, nonce, code_challenge)
        ttl_ms = int(self.settings.flow_ttl * 1000)
        flow = OidcFlow(hash_secret(state), provider, nonce, redirect_uri, self._now_ms() + ttl_ms)
        await self._run(lambda: self.store.add_flow(flow))
        return Started(url, state, int(self.settings.flow_ttl))

    async def _verified_user(self, callback: Callback) -> ProviderUser:
        """Spend the state, exchange the code, check the ID token."""
        client = self._client(callback.provider)
        if callback.iss is not None and callback.iss != client.settings.issuer:
            # RFC 9207: the answer came from another provider than this flow's (mix-up attack).
            raise Unauthorized("the authorization response is from another issuer")
        now_ms = self._now_ms()
        flow = await self._run(lambda: self.store.take_flow(hash_secret(callback.state), now_ms))
        if flow is None or flow.provider != callback.provider:
            raise Unauthorized("the sign-in state is unknown, used or expired; start again")
        if flow.redirect_uri != callback.redirect_uri:
            raise Unauthorized("redirect_uri is not the one this sign-in started with")
        return await client.exchange(
            callback.code, callback.code_verifier, callback.redirect_uri, flow.nonce
        )

    async def finish(self, callback: Callback) -> Session:
        """Sign in the account linked to the provider's user, creating one on first sign-in."""
        user = await self._verified_user(callback)
        settings = self._client(callback.provider).settings

        def work() -> Session:
            account = self._linked_account(callback.provider, user, settings.link_verified_email)
            amr = ("oidc",)
            return self.service.sign_in_as(account, amr, callback.otp, callback.recovery_code)

        return await self._run(work)

    def _linked_account(self, provider: str, user: ProviderUser, by_email: bool) -> Account:
        owner = self.store.identity_owner(provider, user.sub)
        if owner is not None:
            account = self.store.account(owner)
            if account is None:
                raise Unauthorized("the account linked to this identity no longer exists")
            return account
        identity = LinkedIdentity(provider, user.sub, "", self._now_ms())
        existing = (
            self.store.account_by_email(user.email)
            if user.email is not None and user.email_verified
            else None
        )
        if existing is not None:
            if not by_email:
                raise AccountExists(
                    "an account with this email exists: sign in to it and link this provider"
                )
            self.store.add_identity(replace(identity, uid=existing.uid))
            return existing
        account = Account(
            uid=secrets.token_hex(12),
            email=user.email if user.email_verified else None,
            password_hash=None,
            anonymous=False,
            created_ms=self._now_ms(),
        )
        try:
            self.store.create_linked_account(account, replace(identity, uid=account.uid))
        except IdentityTaken:
            # A concurrent first sign-in of the same user created the account: use it.
            return self._linked_account(provider, user, by_email=False)
        return account

    async def link(self, caller: Identity, callback: Callback) -> list[LinkedIdentity]:
        """Link the provider's user to the caller's account (explicit, so allowed whatever the
        emails say); answers the account's identities. An anonymous account stops being one
        (its tokens say so from the next refresh)."""
        if caller.kind != "user" or ":" in caller.uid:
            raise Forbidden("only a Breakwater account can link a provider")
        user = await self._verified_user(callback)

        def work() -> list[LinkedIdentity]:
            account = self.store.account(caller.uid)
            if account is None:
                raise Unauthorized("the account no longer exists")
            owner = self.store.identity_owner(callback.provider, user.sub)
            if owner is None:
                self.store.add_identity(
                    LinkedIdentity(callback.provider, user.sub, account.uid, self._now_ms())
                )
            elif owner != account.uid:
                raise IdentityTaken("this identity is linked to another account")
            if account.anonymous:
                self.store.update_account(replace(account, anonymous=False))
            return list(self.store.identities(account.uid))

        return await self._run(work)

    async def identities(self, caller: Identity) -> list[LinkedIdentity]:
        """The providers linked to the caller's account."""
        return list(await self._run(lambda: self.store.identities(caller.uid)))

    async def _run(self, work: Callable[[], T]) -> T:
        return await asyncio.to_thread(work)
