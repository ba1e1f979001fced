"""``client.auth``: sign-in, the stored session, and a fresh access token for every request.

Tokens come from the node's ``/v1/auth`` endpoints (docs/protocol.md#authentication). The session
(access token, refresh token, uid) is kept in the device database, so a restarted app stays
signed in. Refresh tokens rotate and presenting a spent one revokes the whole sign-in, so
refreshes are serialised: one at a time, and a caller whose token was replaced meanwhile simply
uses the new one (two concurrent 401s make one refresh). A refresh the node refuses signs the
device out; local data and the outbox stay.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

import httpx

from breakwater.client.endpoints import EndpointPool
from breakwater.client.errors import EndpointUnavailable, MfaRequired, NotSignedIn
from breakwater.client.events import AuthChanged, AuthState, Event
from breakwater.client.local_store import LocalStore
from breakwater.client.node_api import NodeApi
from breakwater.core import codec
from breakwater.core.errors import BreakwaterError, Unauthorized

log = logging.getLogger("breakwater.client")

REFRESH_MARGIN_MAX = 60.0
"""Refresh this many seconds before the access token expires ..."""
REFRESH_MARGIN_FRACTION = 0.5
"""... or halfway through its lifetime when it lives less than two minutes."""
CLAIM_ROUNDING = 1.0
"""``exp`` is in whole seconds: count a token as expiring up to a second early."""
SESSION_KEY = "session"

Reason = Literal[
    "restored", "signed_up", "signed_in", "anonymous", "linked", "password", "signed_out",
    "refresh_refused", "account_deleted",
]  # fmt: skip
PKCE_VERIFIER_BYTES = 48
"""64 characters of base64url: inside RFC 7636's 43-128."""


@dataclass(frozen=True, slots=True)
class OidcStart:
    """A started OpenID Connect sign-in: open ``authorize_url`` in the system browser, then
    pass ``state``, the returned ``code`` and ``code_verifier`` to ``sign_in_with_oidc``.
    ``code_verifier`` never leaves the device until then (PKCE)."""

    provider: str
    authorize_url: str
    state: str
    code_verifier: str
    redirect_uri: str


@dataclass(frozen=True, slots=True)
class Tokens:
    """A node's session answer, with when it was received (wall clock, seconds)."""

    access_token: str
    refresh_token: str
    uid: str
    anonymous: bool
    received_at: float
    expires_at: float

    @classmethod
    def from_answer(cls, answer: Mapping[str, Any], now: float) -> Tokens:
        lifetime = max(float(answer["expires_in"]) - CLAIM_ROUNDING, 0.0)
        return cls(
            str(answer["access_token"]),
            str(answer["refresh_token"]),
            str(answer["uid"]),
            bool(answer["anonymous"]),
            now,
            now + lifetime,
        )

    @property
    def refresh_due_at(self) -> float:
        lifetime = self.expires_at - self.received_at
        return self.expires_at - min(REFRESH_MARGIN_MAX, lifetime * REFRESH_MARGIN_FRACTION)

    @property
    def state(self) -> AuthState:
        return AuthState("anonymous" if self.anonymous else "signed_in", self.uid)


class Auth:
    """The device's sign-in; also the credentials every request and stream of the SDK uses."""

    def __init__(
        self,
        store: LocalStore,
        pool: EndpointPool,
        http: Callable[[], httpx.AsyncClient],
        emit: Callable[[Event], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._pool = pool
        self._http = http
        self._emit = emit
        self._clock = clock
        self._tokens: Tokens | None = None
        self._lock = asyncio.Lock()
        self._changed = asyncio.Event()
        self.refreshes = 0
        """Refreshes made by this client (each spends one refresh token)."""

    # -- state ----------------------------------------------------------------------------

    @property
    def state(self) -> AuthState:
        """Signed out, signed in as a uid, or anonymous (as a uid)."""
        return AuthState() if self._tokens is None else self._tokens.state

    @property
    def uid(self) -> str | None:
        """The signed-in user's uid, or ``None``."""
        return None if self._tokens is None else self._tokens.uid

    async def restore(self) -> None:
        """Load the session a previous run stored (the app stays signed in across restarts)."""
        stored = await self._store.credential(SESSION_KEY)
        if not stored:
            return
        try:
            self._tokens = Tokens(**codec.loads(stored))
        except (codec.JSONDecodeError, TypeError):
            log.warning("the stored session is unreadable: signed out")
            await self._store.set_credential(SESSION_KEY, "")
            return
        self._emit(AuthChanged(self.state, "restored"))

    # -- sign-in and account calls --------------------------------------------------------

    async def sign_up(self, email: str, password: str) -> AuthState:
        """Create an account with email and password and sign in (409 ``email_taken`` raises)."""
        answer = await self._post("/v1/auth/signup", {"email": email, "password": password})
        return await self._adopt(answer, "signed_up")

    async def sign_in(
        self, email: str, password: str, otp: str | None = None, recovery_code: str | None = None
    ) -> AuthState:
        """Sign in; raises :class:`MfaRequired` when the account needs a one-time code (call
        again with ``otp`` or a ``recovery_code``) and ``Unauthorized`` for a wrong password."""
        body: dict[str, Any] = {"email": email, "password": password}
        if otp is not None:
            body["otp"] = otp
        if recovery_code is not None:
            body["recovery_code"] = recovery_code
        try:
            answer = await self._post("/v1/auth/login", body)
        except Unauthorized as exc:
            if exc.extra.get("mfa_required"):
                raise MfaRequired(exc.detail, **exc.extra) from exc
            raise
        return await self._adopt(answer, "signed_in")

    async def sign_in_anonymously(self) -> AuthState:
        """Sign in as a new anonymous account (link an email later to keep its uid and data)."""
        return await self._adopt(await self._post("/v1/auth/anonymous", None), "anonymous")

    async def start_oidc(self, provider: str, redirect_uri: str) -> OidcStart:
        """Begin signing in with the OpenID Connect provider ``provider`` (its name in the
        node's ``[auth.oidc.providers]``): a fresh PKCE verifier stays here, its challenge goes
        to the node, which answers the provider's authorize URL."""
        verifier = secrets.token_urlsafe(PKCE_VERIFIER_BYTES)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
        body = {"redirect_uri": redirect_uri, "code_challenge": challenge.rstrip(b"=").decode()}
        answer = await self._post(f"/v1/auth/oidc/{quote(provider, safe='')}/start", body)
        return OidcStart(provider, answer["authorize_url"], answer["state"], verifier, redirect_uri)

    async def sign_in_with_oidc(
        self,
        provider: str,
        code: str,
        code_verifier: str,
        redirect_uri: str,
        state: str,
        otp: str | None = None,
    ) -> AuthState:
        """Finish an OpenID Connect sign-in with what the provider sent to ``redirect_uri``;
        the node exchanges the code and signs in the linked account (made on first sign-in).
        Raises ``Unauthorized`` for a spent state or a refused code, :class:`MfaRequired` when
        the account needs a one-time code, and a 409 error when the email belongs to an
        account the provider may not join by itself (sign in there and ``link_oidc``)."""
        body = _oidc_body(code, code_verifier, redirect_uri, state)
        if otp is not None:
            body["otp"] = otp
        try:
            answer = await self._post(f"/v1/auth/oidc/{quote(provider, safe='')}/callback", body)
        except Unauthorized as exc:
            if exc.extra.get("mfa_required"):
                raise MfaRequired(exc.detail, **exc.extra) from exc
            raise
        return await self._adopt(answer, "signed_in")

    async def link_oidc(
        self, provider: str, code: str, code_verifier: str, redirect_uri: str, state: str
    ) -> list[dict[str, str]]:
        """Link the provider's user to the signed-in account (after ``start_oidc`` and the
        browser); answers the account's linked identities."""
        path = f"/v1/auth/oidc/{quote(provider, safe='')}/link"
        answer = await self._post_as_user(
            path, _oidc_body(code, code_verifier, redirect_uri, state)
        )
        return list(answer["identities"])

    async def link_email(self, email: str, password: str) -> AuthState:
        """Turn the signed-in anonymous account into an email account; the uid (and so the
        documents it owns, and the writes still queued) stay the same."""
        answer = await self._post_as_user("/v1/auth/link", {"email": email, "password": password})
        return await self._adopt(answer, "linked")

    async def change_password(self, current_password: str, new_password: str) -> AuthState:
        """Change the password; the node signs out every other device of the account."""
        body = {"current_password": current_password, "new_password": new_password}
        return await self._adopt(await self._post_as_user("/v1/auth/password", body), "password")

    # -- the account lifecycle (mailed links: docs/security.md#account-lifecycle) ----------

    async def request_password_reset(self, email: str) -> None:
        """Ask the node to mail a reset link; it answers the same whether or not ``email`` has
        an account. The link carries a token for :meth:`confirm_password_reset`."""
        await self._post("/v1/auth/password/reset", {"email": email})

    async def confirm_password_reset(self, token: str, new_password: str) -> None:
        """Set a new password with a mailed token; every session of the account ends (sign in
        again with the new password)."""
        await self._post(
            "/v1/auth/password/reset/confirm", {"token": token, "new_password": new_password}
        )

    async def request_email_verification(self) -> None:
        """Mail the signed-in account's address a (new) verification link."""
        await self._post_as_user("/v1/auth/email/verify", None)

    async def verify_email(self, token: str) -> dict[str, Any]:
        """Verify an address with a mailed token; the account as the node now has it (access
        rules see ``auth.email_verified`` from the next token refresh)."""
        account: dict[str, Any] = await self._post(
            "/v1/auth/email/verify/confirm", {"token": token}
        )
        return account

    async def change_email(self, new_email: str, password: str) -> None:
        """Ask to move the account to ``new_email``: the password again, then a link to the new
        address (and a notice to the old one)."""
        await self._post_as_user(
            "/v1/auth/email/change", {"new_email": new_email, "password": password}
        )

    async def confirm_email_change(self, token: str) -> dict[str, Any]:
        """Confirm a change of email with the token mailed to the new address."""
        account: dict[str, Any] = await self._post(
            "/v1/auth/email/change/confirm", {"token": token}
        )
        return account

    async def export_account(self) -> dict[str, Any]:
        """The signed-in account and every document it owns, as the node exports them."""
        token = await self.access_token()
        if token is None:
            raise NotSignedIn("sign in first")
        export: dict[str, Any] = await self._api({"Authorization": f"Bearer {token}"}).get(
            "/v1/auth/account/export"
        )
        return export

    async def delete_account(self, password: str | None = None) -> None:
        """Delete the account and the documents it owns at the node (the password again; an
        anonymous account has none), then forget the session here."""
        body = {} if password is None else {"password": password}
        await self._post_as_user("/v1/auth/account/delete", body)
        async with self._lock:
            await self._forget("account_deleted")

    async def sign_out(self) -> None:
        """Forget the session here and revoke it at the node (best effort: offline, the device
        is signed out all the same). Local documents and queued writes stay."""
        async with self._lock:
            tokens = self._tokens
            if tokens is None:
                return
            await self._forget("signed_out")
        with contextlib.suppress(BreakwaterError):  # signed out here whatever the node says
            await self._post("/v1/auth/logout", {"refresh_token": tokens.refresh_token})

    # -- credentials for requests and streams ---------------------------------------------

    async def access_token(self) -> str | None:
        """The access token to send now, refreshed first when it is close to expiry."""
        tokens = self._tokens
        if tokens is not None and self._clock() >= tokens.refresh_due_at:
            async with self._lock:
                current = self._tokens
                if current is not None and self._clock() >= current.refresh_due_at:
                    try:
                        await self._refresh(current)
                    except EndpointUnavailable as exc:
                        log.info("token refresh postponed: %s", exc)
            tokens = self._tokens
        return None if tokens is None else tokens.access_token

    async def __call__(self) -> dict[str, str]:
        """The headers of a request: the bearer token, when signed in."""
        token = await self.access_token()
        return {} if token is None else {"Authorization": f"Bearer {token}"}

    async def renew(self, used: Mapping[str, str]) -> bool:
        """A request with ``used`` headers got 401: refresh once (unless another caller already
        replaced that token) and say whether a retry has a new token to send."""
        async with self._lock:
            tokens = self._tokens
            if tokens is None:
                return False
            if used.get("Authorization") != f"Bearer {tokens.access_token}":
                return True
            return await self._refresh(tokens)

    async def next_renewal(self) -> None:
        """Return when a stream should present a new token: the token changed (sign-in,
        refresh) or its refresh is due. Waits for a sign-in while signed out."""
        changed = self._changed
        tokens = self._tokens
        delay = None if tokens is None else max(tokens.refresh_due_at - self._clock(), 0.0)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await changed.wait()

    # -- internals ------------------------------------------------------------------------

    async def _refresh(self, tokens: Tokens) -> bool:
        """Spend ``tokens``' refresh token (the caller holds the lock); ``False`` when the node
        refused it, which signs the device out."""
        try:
            answer = await self._post("/v1/auth/refresh", {"refresh_token": tokens.refresh_token})
        except Unauthorized as exc:
            log.warning("the node refused the refresh token (%s): signed out", exc.detail)
            await self._forget("refresh_refused")
            return False
        self.refreshes += 1
        await self._set(Tokens.from_answer(answer, self._clock()), None)
        return True

    async def _adopt(self, answer: Mapping[str, Any], reason: Reason) -> AuthState:
        async with self._lock:
            await self._set(Tokens.from_answer(answer, self._clock()), reason)
        return self.state

    async def _set(self, tokens: Tokens, reason: Reason | None) -> None:
        record = {
            "access_token": tokens.access_token,
            "refresh_token": tokens.refresh_token,
            "uid": tokens.uid,
            "anonymous": tokens.anonymous,
            "received_at": tokens.received_at,
            "expires_at": tokens.expires_at,
        }
        await self._store.set_credential(SESSION_KEY, codec.dumps(record).decode())
        self._tokens = tokens
        self._announce(reason)

    async def _forget(self, reason: Reason) -> None:
        await self._store.set_credential(SESSION_KEY, "")
        self._tokens = None
        self._announce(reason)

    def _announce(self, reason: Reason | None) -> None:
        self._changed.set()
        self._changed = asyncio.Event()
        if reason is not None:
            self._emit(AuthChanged(self.state, reason))

    def _api(self, headers: dict[str, str] | None = None) -> NodeApi:
        endpoint = self._pool.choose()
        if endpoint is None:
            raise EndpointUnavailable("no endpoint is available for sign-in")
        return NodeApi(self._http(), endpoint.url, None if headers is None else lambda: headers)

    async def _post(self, path: str, body: dict[str, Any] | None) -> Any:
        return await self._api().post(path, body)

    async def _post_as_user(self, path: str, body: dict[str, Any] | None) -> Any:
        token = await self.access_token()
        if token is None:
            raise NotSignedIn("sign in first")
        return await self._api({"Authorization": f"Bearer {token}"}).post(path, body)


def _oidc_body(code: str, code_verifier: str, redirect_uri: str, state: str) -> dict[str, Any]:
    return {
        "code": code,
        "code_verifier": code_verifier,
        "redirect_uri": redirect_uri,
        "state": state,
    }
